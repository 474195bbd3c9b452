"""Faults: the runner's and the report's writers and readers under SIGKILL (real subprocesses)
and with corrupted or missing files. Real data: BEELINE synthetic networks (18-19 genes)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import grnndata
from bengrn.report import collect_results, write_report
from bengrn.runner import run_benchmark
from bengrn.tasks import BeelineTask
from tests.processes import gone, wait_for

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
NETWORKS = ["dyn-LL", "dyn-CY"]


def _task() -> BeelineTask:
    return BeelineTask("synthetic", networks=NETWORKS)


def _leftovers(folder: Path) -> list[Path]:
    """Temporaries of killed writers (grnndata.atomic names them ``.<name>.tmp-*``/``.bak-*``)."""
    return [p for p in folder.rglob(".*") if ".tmp-" in p.name or ".bak-" in p.name]


def _bengrn(*args: str, tmpdir: Path) -> subprocess.Popen:
    code = "import sys; from bengrn.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=PACKAGE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(PACKAGE), "TMPDIR": str(tmpdir)},
    )


@pytest.fixture(scope="module")
def results(data_dir, tmp_path_factory):
    """A finished results folder: pearson and random on two BEELINE networks."""
    out = tmp_path_factory.mktemp("faults") / "results"
    run_benchmark(["pearson", "random"], [_task()], out, report=True)
    return out


def test_killed_benchmark_resumes_to_a_complete_table_and_leaves_no_process(data_dir, tmp_path):
    # SIGKILL the benchmark while a cmd: method (which starts a child and a setsid daemon) runs;
    # regression: the daemon kept running, and empty temporary folders were left behind
    out = tmp_path / "results"
    pidfile = tmp_path / "pids.txt"
    temp = tmp_path / "tmp"
    temp.mkdir()
    program = f"{sys.executable} {HERE / 'spawn_and_sleep.py'} {pidfile} {{input}} {{output}}"
    proc = _bengrn(
        "run", "--method", "pearson", "--method", f"slow=cmd:{program}",
        "--task", "beeline-synthetic", "--task-option", "beeline-synthetic:networks=('dyn-LL',)",
        "--timeout", "120", "--out", str(out), tmpdir=temp,
    )  # fmt: skip
    try:
        assert wait_for(pidfile.exists, 90), proc.stderr.read() if proc.poll() else "no start"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    *pids, input_path = pidfile.read_text().split()
    # the inference process dies with the benchmark and takes everything it started with it
    assert wait_for(lambda: all(gone(int(pid)) for pid in pids), 20)
    assert wait_for(lambda: not any(temp.iterdir()), 10), list(temp.rglob("*"))
    assert not Path(input_path).parent.exists()
    # every run file written so far is complete JSON
    for path in (out / "runs").rglob("*.json"):
        if not path.name.startswith("."):  # killed writers' temporaries: checked by _leftovers
            json.loads(path.read_text())
    frame = run_benchmark(["pearson", "random"], [_task()], out, report=True)
    assert sorted(frame["method"].unique()) == ["pearson", "random"]
    assert len(frame) == 4 and (frame["status"] == "ok").all()
    assert not _leftovers(out / "runs")


def test_report_killed_while_writing_leaves_each_file_complete(results):
    expected = collect_results(results)
    loop = (
        "import sys\nfrom bengrn.report import write_report\n"
        "while True:\n    write_report(sys.argv[1])\n"
    )
    for delay in (0.8, 1.3, 1.9, 2.6):
        proc = subprocess.Popen([sys.executable, "-c", loop, str(results)], cwd=PACKAGE)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        table = pd.read_csv(results / "results.csv")
        assert len(table) == len(expected) and list(table["method"]) == list(expected["method"])
        assert (results / "results.md").read_text().count("\n| ") == len(expected) + 1
        for png in (results / "figures").glob("*.png"):
            if png.name.startswith("."):  # a killed writer's temporary: checked by _leftovers
                continue
            data = png.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND", png
    # the next report removes what the killed writers left behind
    write_report(results)
    assert not _leftovers(results)


def test_corrupted_run_file_is_skipped_by_the_report_and_redone_by_a_rerun(results, caplog):
    run_file = results / "runs" / "beeline-synthetic" / "dyn-CY" / "random.json"
    run_file.write_text(run_file.read_text()[:50])  # truncated
    with caplog.at_level(logging.WARNING, logger="bengrn.report"):
        table = collect_results(results)
    assert "unreadable run file" in caplog.text
    assert len(table) == 3
    frame = run_benchmark(["pearson", "random"], [_task()], results, report=True)
    assert len(frame) == 4 and (frame["status"] == "ok").all()
    json.loads(run_file.read_text())


def test_unreadable_cached_network_is_inferred_again_once(results, caplog):
    # regression: a corrupted cached network failed every later run until --force redid all
    store = results / "networks" / "beeline-synthetic" / "dyn-LL" / "pearson.zarr"
    metadata = next(p for p in (store / "zarr.json", store / ".zgroup") if p.exists())
    metadata.write_text("{ not json")
    (results / "runs" / "beeline-synthetic" / "dyn-LL" / "pearson.json").unlink()
    with caplog.at_level(logging.WARNING, logger="bengrn.runner"):
        frame = run_benchmark(["pearson", "random"], [_task()], results, report=False)
    assert "cannot be read" in caplog.text and "inferring pearson again" in caplog.text
    assert (frame["status"] == "ok").all()
    assert grnndata.read_zarr(store).grn.nnz > 0


def test_missing_network_info_or_input_is_rebuilt(results):
    key = results / "networks" / "beeline-synthetic" / "dyn-CY"
    (key / "pearson.json").unlink()
    (results / "inputs" / "beeline-synthetic" / "dyn-CY.h5ad").unlink()
    (results / "runs" / "beeline-synthetic" / "dyn-CY" / "pearson.json").unlink()
    frame = run_benchmark(["pearson", "random"], [_task()], results, report=False)
    assert (frame["status"] == "ok").all() and len(frame) == 4
    assert json.loads((key / "pearson.json").read_text())["status"] == "ok"
    assert (results / "inputs" / "beeline-synthetic" / "dyn-CY.h5ad").stat().st_size > 0
