"""Every committed results file can be traced and regenerated: ``run_all.py`` has a job for it (or
says why none), the jobs' scripts exist and take the arguments the job passes, each results JSON
records its commit, and every results file a README cites is committed. Nothing here runs a
benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402
import run_all  # noqa: E402


def test_every_results_file_has_a_job_and_every_job_a_script():
    assert run_all.coverage_problems() == []


def test_the_check_finds_a_results_file_without_a_job(tmp_path, monkeypatch):
    (tmp_path / "orphan_benchmark.json").write_text("{}")
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    assert run_all.coverage_problems() == [
        "results/orphan_benchmark: no job in run_all.JOBS writes it"
    ]


@pytest.mark.parametrize("job", run_all.JOBS, ids=lambda job: ",".join(job.writes))
def test_each_job_passes_only_flags_its_script_defines(job):
    """The flags of a job (and ``--peers`` where it adds it) are options its script declares
    (read from its source: importing each script would load torch two dozen times)."""
    source = (run_all.REPO / job.script).read_text()
    flags = [arg for arg in job.args if arg.startswith("--")]
    flags += ["--peers"] if job.peers_flag else []
    missing = [flag for flag in flags if f'"{flag}"' not in source]
    assert missing == [], f"{job.script} declares no {missing}"


def test_each_results_json_records_its_commit():
    assert _common.results_without_commit() == []
    for path in sorted(_common.RESULTS_DIR.glob("*.json")):
        git = json.loads(path.read_text())["git"]
        assert len(git["commit"]) == 40, path.name


def test_every_results_file_a_readme_cites_is_committed():
    assert _common.readme_citations_missing() == []


def test_a_readme_citing_a_missing_results_file_is_reported(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "tasks_throughput.md").write_text("# t\n")
    (tmp_path / "README.md").write_text(
        "embed 10 cells/s (`tasks_throughput.md`); train 5 cells/s "
        "(`benchmarks/results/training_throughput.md`)\n"
    )
    assert _common.readme_citations_missing(tmp_path) == [
        "README.md:1: training_throughput.md (no such results file)"
    ]


def _mode(full: bool = False, peers: bool = False) -> argparse.Namespace:
    return argparse.Namespace(full=full, peers=peers)


def test_quick_mode_skips_long_gpu_and_peer_jobs_and_says_why():
    by_name = {name: job for job in run_all.JOBS for name in job.writes}
    assert run_all.skip_reason(by_name["tasks_throughput"], _mode(), has_gpu=False) is None
    assert "--full" in run_all.skip_reason(by_name["grnndata_full"], _mode(), has_gpu=False)
    gpu = run_all.skip_reason(by_name["kernels_attention_gpu"], _mode(full=True), has_gpu=False)
    assert "GPU" in gpu
    peer = run_all.skip_reason(by_name["parity_denoise"], _mode(), has_gpu=False)
    assert "scprint-2.3.8" in peer and "--peers" in peer
    assert run_all.skip_reason(by_name["parity_denoise"], _mode(peers=True), has_gpu=False) is None


def test_list_names_every_results_file_and_runs_nothing(capsys):
    before = {p.name: p.stat().st_mtime for p in _common.RESULTS_DIR.iterdir()}
    assert run_all.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for path in _common.RESULTS_DIR.glob("*.json"):
        assert f"| {path.stem} |" in listed
    assert {p.name: p.stat().st_mtime for p in _common.RESULTS_DIR.iterdir()} == before
