"""The runner and CLI: files written, a real signal check, resuming, plug-ins and failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import grnndata
from bengrn.cli import main
from bengrn.runner import run_benchmark
from bengrn.tasks import BeelineTask, McCallaTask
from tests.processes import gone, wait_for

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cli_run(data_dir, tmp_path_factory):
    """The documented command on small variants: 3 methods x (McCalla hESC subset, BEELINE, DoRothEA)."""
    out = tmp_path_factory.mktemp("bench")
    code = main(
        [
            "run",
            "--method", "pearson",
            "--method", "genie3",
            "--method", "random",
            "--task", "mccalla-hesc",
            "--task", "beeline-synthetic",
            "--task", "literature",
            "--task-option", "mccalla-hesc:n_genes=150",
            "--task-option", "literature:n_genes=150",
            "--task-option", "literature:sources=('dorothea',)",
            "--task-option", "mccalla-hesc:variants=('chip','intersection')",
            "--param", "genie3:n_trees=10",
            "--out", str(out),
        ]
    )  # fmt: skip
    return code, out


def test_cli_run_writes_networks_tables_and_figures(cli_run):
    code, out = cli_run
    assert code == 0
    table = pd.read_csv(out / "results.csv")
    assert set(table["method"]) == {"pearson", "genie3", "random"}
    assert (table["status"] == "ok").all()
    # methods x (2 McCalla variants + 6 BEELINE networks + DoRothEA with / without TF restriction)
    assert len(table) == 3 * (2 + 6 + 2)
    assert (out / "results.md").read_text().count("\n| ") == len(table) + 1
    for name in ("pr_mccalla-hesc.png", "pr_beeline-synthetic.png", "summary.png"):
        png = out / "figures" / name
        assert png.read_bytes()[:4] == b"\x89PNG"
    grn = grnndata.read_zarr(out / "networks" / "beeline-synthetic" / "dyn-LL" / "genie3.zarr")
    assert grn.n_vars == 18 and grn.grn.nnz > 0
    assert json.loads(grn.uns["grn"]["parameters"])["n_trees"] == 10
    assert (table["infer_seconds"] > 0).all() and (table["peak_rss_mb"] > 0).all()
    # McCalla hESC and literature use the same expression set and regulators: one network each
    assert sorted(p.name for p in (out / "networks").iterdir()) == [
        "beeline-synthetic",
        "mccalla-hESC-chen-150",
    ]


def test_genie3_and_pearson_beat_random_on_beeline_synthetic(cli_run):
    _, out = cli_run
    table = pd.read_csv(out / "results.csv")
    beeline = table[table["task"] == "beeline-synthetic"].groupby("method")["auprc_ratio"].mean()
    assert beeline["genie3"] > beeline["random"] + 0.2
    assert beeline["pearson"] > beeline["random"] + 0.2


def test_rerun_skips_finished_pairs_and_report_regenerates(cli_run, capsys):
    _, out = cli_run
    run_file = out / "runs" / "beeline-synthetic" / "dyn-BF" / "pearson.json"
    before = run_file.stat().st_mtime_ns
    first = pd.read_csv(out / "results.csv")
    frame = run_benchmark(["pearson"], ["beeline-synthetic"], out, report=False)
    assert run_file.stat().st_mtime_ns == before
    assert len(frame) == len(first)
    (out / "results.csv").unlink()
    (out / "figures" / "summary.png").unlink()
    assert main(["report", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), first)
    assert (out / "figures" / "summary.png").exists()


def test_rerun_with_other_parameters_runs_again(data_dir, tmp_path):
    task = BeelineTask("synthetic", networks=["dyn-LL"])
    run_file = tmp_path / "runs" / "beeline-synthetic" / "dyn-LL" / "genie3.json"
    net_file = tmp_path / "networks" / "beeline-synthetic" / "dyn-LL" / "genie3.zarr"
    run_benchmark(["genie3"], [task], tmp_path, params={"genie3": {"n_trees": 5}}, report=False)
    stamp = run_file.stat().st_mtime_ns
    run_benchmark(["genie3"], [task], tmp_path, params={"genie3": {"n_trees": 5}}, report=False)
    assert run_file.stat().st_mtime_ns == stamp  # same parameters: skipped
    run_benchmark(["genie3"], [task], tmp_path, params={"genie3": {"n_trees": 7}}, report=False)
    assert run_file.stat().st_mtime_ns != stamp
    assert json.loads(run_file.read_text())["params"]["n_trees"] == 7
    assert json.loads(grnndata.read_zarr(net_file).uns["grn"]["parameters"])["n_trees"] == 7


def test_a_table_parameter_is_recorded_by_digest_and_a_changed_row_reruns(data_dir, tmp_path):
    """A DataFrame parameter (a prior network) used to be recorded as its truncated repr: a table
    changed in a middle row recorded the same text, so the changed run was skipped as done."""
    from bengrn.datasets import load_omnipath

    prior = load_omnipath().iloc[:2000].reset_index(drop=True)
    changed = prior.copy()
    changed.loc[1000, "target"] = "not-a-gene"
    assert repr(prior) == repr(changed)  # what the old record compared
    task = BeelineTask("synthetic", networks=["dyn-LL"])
    run_file = tmp_path / "runs" / "beeline-synthetic" / "dyn-LL" / "with_prior.json"
    method = ["tests.plugin_methods:with_prior"]
    run_benchmark(method, [task], tmp_path, params={"with_prior": {"prior": prior}}, report=False)
    record = json.loads(run_file.read_text())["params"]["prior"]
    assert record.startswith("<DataFrame 2000 x 5, sha1 ") and len(record) < 60
    stamp = run_file.stat().st_mtime_ns
    run_benchmark(method, [task], tmp_path, params={"with_prior": {"prior": prior}}, report=False)
    assert run_file.stat().st_mtime_ns == stamp  # same contents: skipped
    run_benchmark(method, [task], tmp_path, params={"with_prior": {"prior": changed}}, report=False)
    assert run_file.stat().st_mtime_ns != stamp
    assert json.loads(run_file.read_text())["params"]["prior"] != record


def test_forced_rerun_gives_identical_networks(cli_run):
    _, out = cli_run
    task = BeelineTask("synthetic", networks=["dyn-BF"])
    path = out / "networks" / "beeline-synthetic" / "dyn-BF" / "genie3.zarr"
    before = grnndata.read_zarr(path).grn.toarray()
    run_benchmark(
        ["genie3"], [task], out, params={"genie3": {"n_trees": 10}}, force=True, report=False
    )
    assert (grnndata.read_zarr(path).grn.toarray() == before).all()


def test_plugin_function_and_external_command_run_through_the_runner(data_dir, tmp_path):
    task = BeelineTask("synthetic", networks=["dyn-LL"])
    command = f"edges=cmd:{sys.executable} {HERE / 'write_edges.py'} {{input}} {{output}}"
    frame = run_benchmark(
        ["tests.plugin_methods:mean_product", command, "pearson"],
        [task],
        tmp_path,
        params={"mean_product": {"scale": 2.0}},
        report=False,
    )
    assert (frame["status"] == "ok").all(), frame[["method", "error"]]
    by_method = frame.set_index("method")
    # the external command computes |Pearson| on the raw values: it must find the same signal
    assert by_method.loc["edges", "auprc_ratio"] > 3
    assert by_method.loc["mean_product", "n_true_edges"] == by_method.loc["pearson", "n_true_edges"]
    info = json.loads(
        (tmp_path / "networks" / "beeline-synthetic" / "dyn-LL" / "mean_product.json").read_text()
    )
    assert info["params"] == {"scale": 2.0}


def test_failing_methods_are_recorded_and_the_others_still_run(data_dir, tmp_path):
    task = BeelineTask("synthetic", networks=["dyn-CY"])
    frame = run_benchmark(
        [
            "tests.plugin_methods:raises",
            "tests.plugin_methods:wrong_genes",
            "tests.plugin_methods:nan_scores",
            "tests.plugin_methods:sleeps",
            "not_a_module_xyz:infer",
            "pearson",
        ],
        [task],
        tmp_path,
        timeout=8,
    )
    errors = frame.set_index("method")["error"].fillna("")
    status = frame.set_index("method")["status"]
    assert "broken on purpose" in errors["raises"]
    assert "not in the expression set" in errors["wrong_genes"]
    assert "NaN" in errors["nan_scores"]
    assert "time limit of 8 s" in errors["sleeps"]
    assert "cannot import module" in errors["infer"]
    assert status["pearson"] == "ok" and (status.drop("pearson") == "failed").all()
    markdown = (tmp_path / "results.md").read_text()
    assert "broken on purpose" in markdown


def test_cli_list_names_methods_and_tasks(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "genie3" in text and "beeline-synthetic" in text and "mccalla-hESC-knockdown" in text


def test_timeout_stops_every_process_the_command_started_and_removes_its_temp_folder(
    data_dir, tmp_path
):
    # regression: the cmd: program and its children kept running as orphans (first its own
    # child, then a child in a session of its own), and its temporary folder stayed behind
    task = BeelineTask("synthetic", networks=["dyn-LL"])
    pidfile = tmp_path / "pids.txt"
    program = f"{sys.executable} {HERE / 'spawn_and_sleep.py'} {pidfile} {{input}} {{output}}"
    frame = run_benchmark(
        [f"slow=cmd:{program}"], [task], tmp_path / "out", timeout=15, report=False
    )
    assert "time limit of 15 s" in frame.loc[0, "error"]
    *pids, input_path = pidfile.read_text().split()
    assert len(pids) == 3  # the program, its child, its setsid child
    assert wait_for(lambda: all(gone(int(pid)) for pid in pids), 10)
    assert not Path(input_path).parent.exists()


def test_a_daemon_left_by_a_finished_command_is_stopped(data_dir, tmp_path):
    # the program exits 0 with a network but leaves a double-forked setsid daemon running
    task = BeelineTask("synthetic", networks=["dyn-LL"])
    pidfile = tmp_path / "pids.txt"
    program = f"{sys.executable} {HERE / 'daemon_and_edges.py'} {pidfile} {{input}} {{output}}"
    frame = run_benchmark([f"daemon=cmd:{program}"], [task], tmp_path / "out", report=False)
    assert frame.loc[0, "status"] == "ok", frame.loc[0, "error"]
    program_pid, daemon_pid = (int(p) for p in pidfile.read_text().split())
    assert wait_for(lambda: gone(program_pid) and gone(daemon_pid), 10)


def test_degenerate_networks_get_their_own_status_and_score_as_random(data_dir, tmp_path):
    # regression: an all-zero or constant network was "ok" with an AUPRC ratio of 6-9
    task = BeelineTask("synthetic", networks=["dyn-LL"])
    methods = ["tests.plugin_methods:all_zero", "tests.plugin_methods:constant", "pearson"]
    frame = run_benchmark(methods, [task], tmp_path, report=True).set_index("method")
    assert frame.loc["all_zero", "status"] == "degenerate"
    assert "no non-zero edge" in frame.loc["all_zero", "error"]
    assert frame.loc["constant", "status"] == "degenerate"
    assert "same score" in frame.loc["constant", "error"]
    assert frame.loc["pearson", "status"] == "ok"
    for method in ("all_zero", "constant"):
        assert frame.loc[method, "auprc_ratio"] == pytest.approx(1.0)
    assert frame.loc["pearson", "auprc_ratio"] > 1.5
    # a rerun keeps them (nothing to redo)
    info = tmp_path / "networks" / "beeline-synthetic" / "dyn-LL" / "constant.json"
    before = info.stat().st_mtime_ns
    again = run_benchmark(methods, [task], tmp_path, report=False).set_index("method")
    assert again.loc["constant", "status"] == "degenerate" and info.stat().st_mtime_ns == before


def test_a_network_over_part_of_the_genes_is_scored_over_the_whole_expression_set(
    data_dir, tmp_path, hesc_intersection, hesc_expression, hesc_task
):
    # regression: a method returning a network over half of the genes was scored "ok" on the
    # edges it covered only (a higher AUPRC ratio than the same method on all genes), while the
    # report named the full universe
    from bengrn.metrics import score
    from tests.plugin_methods import pearson_half

    task = McCallaTask(cell="hESC", n_genes=400, variants=("intersection",))
    frame = run_benchmark(
        ["pearson", "half=tests.plugin_methods:pearson_half"], [task], tmp_path, report=True
    ).set_index("method")
    full, half = frame.loc["pearson"], frame.loc["half"]
    assert half["status"] == "ok" and full["genes_covered"] == 1
    n = hesc_expression.n_vars
    assert half["genes_covered"] == pytest.approx(((n + 1) // 2) / n)
    # the same universe and truth as the method over all genes ...
    for column in ("n_universe_edges", "n_true_edges", "n_truth_edges_outside_genes"):
        assert half[column] == full[column], column
    # ... with the missing genes' edges scored as no prediction, as score(missing="zero") does
    network = pearson_half(hesc_expression, regulators=hesc_task.regulators())
    options = dict(
        truth_genes=hesc_expression.var_names,
        regulators=hesc_task.regulators(),
        regulators_in_truth=True,
    )
    expected = score(network, hesc_intersection, missing="zero", **options)
    assert half["auprc"] == pytest.approx(expected["auprc"], rel=1e-9)
    assert half["n_universe_edges"] == expected["n_universe_edges"]
    covered_only = score(network, hesc_intersection, missing="drop", **options)
    assert covered_only["n_universe_edges"] < half["n_universe_edges"]
    # the truth's edges outside the expression set are counted, and the report shows both
    truth_pairs = hesc_intersection.drop_duplicates().query("regulator != target")
    genes = set(hesc_expression.var_names)
    outside = ~(truth_pairs["regulator"].isin(genes) & truth_pairs["target"].isin(genes))
    assert full["n_truth_edges_listed"] == len(truth_pairs)
    assert full["n_truth_edges_outside_genes"] == int(outside.sum()) > 0
    markdown = (tmp_path / "results.md").read_text()
    assert "genes_covered" in markdown and "n_truth_edges_outside_genes" in markdown
    record = json.loads((tmp_path / "runs" / "mccalla-hesc" / "default" / "half.json").read_text())
    assert record["coverage"]["n_genes_missing"] == n // 2
