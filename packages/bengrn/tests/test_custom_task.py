"""Your own ground truth as a task: `bengrn run --task custom` and YAML task files give the same
scores as the registered task built on the same truth, with the same reports."""

from __future__ import annotations

import json
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bengrn.cli import main
from bengrn.expression import ExpressionError
from bengrn.runner import run_benchmark
from bengrn.tasks import CustomTask, McCallaTask, TaskFileError


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, hesc_task, hesc_expression, hesc_intersection):
    """A user's files derived from a shipped truth: McCalla hESC intersection edges (a TSV with
    a header), the hESC Chen subset of the tests (h5ad) and its TF list (one per line)."""
    folder = tmp_path_factory.mktemp("user")
    hesc_intersection.to_csv(folder / "edges.tsv", sep="\t", index=False)
    hesc_expression.write_h5ad(folder / "cells.h5ad")
    (folder / "tfs.txt").write_text("\n".join(hesc_task.regulators()) + "\n")
    return folder


def _results(out) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv")


def test_custom_task_scores_equal_the_registered_task_on_the_same_truth(
    user_files, hesc_pearson, hesc_intersection
):
    mine = CustomTask(
        user_files / "edges.tsv", user_files / "cells.h5ad", regulators=user_files / "tfs.txt"
    )
    registered = McCallaTask(cell="hESC", n_genes=400, variants=("intersection",))
    got = mine.run(hesc_pearson).metrics
    expected = registered.run(hesc_pearson).metrics
    for key in ("auprc", "ap", "epr", "n_true_edges", "n_universe_edges", "n_regulators"):
        assert got[key] == expected[key], key
    headerless = user_files / "headerless.txt"
    hesc_intersection.to_csv(headerless, sep="\t", index=False, header=False)
    assert CustomTask(headerless, user_files / "cells.h5ad").truth.equals(mine.truth)


def test_bengrn_run_custom_and_a_task_file_write_the_usual_reports(
    user_files, hesc_pearson, tmp_path, capsys
):
    import anndata as ad

    from bengrn.methods import pearson
    from bengrn.metrics import score

    (user_files / "task.yaml").write_text(
        "name: my-hesc\ntruth: edges.tsv\nexpression: cells.h5ad\nregulators: tfs.txt\n"
    )
    out = tmp_path / "results"
    argv = ["run", "--method", "pearson", "--out", str(out), "--task", "custom"]
    argv += [
        "--truth",
        str(user_files / "edges.tsv"),
        "--expression",
        str(user_files / "cells.h5ad"),
    ]
    assert main([*argv, "--task", str(user_files / "task.yaml")]) == 0
    table = _results(out).set_index("task")
    assert set(table.index) == {"custom", "my-hesc"} and (table["status"] == "ok").all()
    assert (out / "results.md").is_file() and (out / "figures" / "pr_custom.png").is_file()
    # the runner's pearson had no candidate regulators for `custom` (none given): all genes
    truth = pd.read_csv(user_files / "edges.tsv", sep="\t")
    cells = ad.read_h5ad(user_files / "cells.h5ad")
    direct = score(pearson(cells), truth, truth_genes=cells.var_names, regulators_in_truth=True)
    assert table.loc["custom", "auprc"] == pytest.approx(direct["auprc"], rel=1e-6)
    # the task file handed the TFs to pearson (the fixture's network) and restricted the
    # universe to them: the registered McCalla task's numbers
    registered = McCallaTask(cell="hESC", n_genes=400, variants=("intersection",))
    expected = registered.run(hesc_pearson).metrics
    assert table.loc["my-hesc", "auprc"] == pytest.approx(expected["auprc"], rel=1e-6)
    assert table.loc["my-hesc", "n_true_edges"] == expected["n_true_edges"]
    # a changed truth under the same name is scored again, not skipped
    truth.iloc[: len(truth) // 2].to_csv(user_files / "half.tsv", sep="\t", index=False)
    argv[argv.index(str(user_files / "edges.tsv"))] = str(user_files / "half.tsv")
    assert main(argv) == 0
    again = _results(out).set_index("task")
    assert again.loc["custom", "n_true_edges"] < table.loc["custom", "n_true_edges"]
    run = json.loads((out / "runs" / "custom" / "default" / "pearson.json").read_text())
    assert (
        run["requested"]["task"]
        == CustomTask(user_files / "half.tsv", user_files / "cells.h5ad").fingerprint()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("truth: edges.tsv\n", "needs expression"),
        (
            "truth: edges.tsv\nexpression: cells.h5ad\nregulator: tfs.txt\n",
            r"unknown key\(s\) regulator;",
        ),
        (
            "truth: nothere.tsv\nexpression: cells.h5ad\n",
            "the truth file .*nothere.tsv.* does not exist",
        ),
        ("- truth\n", "must be a mapping"),
        ("truth: [unclosed\n", "not valid YAML"),
        # regression: wrong YAML types raised raw TypeErrors (or were taken as true)
        ("truth: 5\nexpression: cells.h5ad\n", "truth: 5 is a number; expected a path"),
        ("truth: edges.tsv\nexpression: [cells.h5ad]\n", "expression: .* is a list; expected a"),
        (
            "truth: edges.tsv\nexpression: cells.h5ad\nregulators_in_truth: 'no'\n",
            "regulators_in_truth: 'no' is a text; expected true or false",
        ),
        (
            "truth: edges.tsv\nexpression: cells.h5ad\nregulators: {SOX2: 1}\n",
            "regulators: .* is a mapping; expected a path",
        ),
        ("truth: edges.tsv\nexpression: cells.h5ad\nregulators: [SOX2, 3]\n", "regulators:"),
    ],
)
def test_bad_task_files_are_one_line_errors(user_files, tmp_path, text, message, capsys):
    path = user_files / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaskFileError, match=message):
        CustomTask.from_file(path)
    assert (
        main(["run", "--method", "pearson", "--task", str(path), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err
    assert not (tmp_path / "o").exists()


def test_custom_task_needs_its_files_and_a_shared_gene(user_files, tmp_path, capsys):
    run = ["run", "--method", "pearson", "--task", "custom", "--out", str(tmp_path / "o")]
    assert main(run) == 2
    assert "--task custom needs your truth and expression set" in capsys.readouterr().err
    other = tmp_path / "mouse.tsv"
    other.write_text("regulator\ttarget\nSox2\tNanog\nPou5f1\tSox2\n")
    argv = [*run, "--truth", str(other), "--expression", str(user_files / "cells.h5ad")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "share 0 gene(s)" in err and "symbols vs Ensembl IDs, case" in err


def _zero_cells(cells):
    return cells[:0].copy()


def _negative(cells):
    X = cells.X.toarray() if hasattr(cells.X, "toarray") else np.array(cells.X)
    X[3, 5] = -2.0
    return ad.AnnData(X=X, obs=cells.obs, var=cells.var)


def _not_finite(cells):
    X = cells.X.toarray() if hasattr(cells.X, "toarray") else np.array(cells.X, dtype=float)
    X[0, 0] = np.nan
    return ad.AnnData(X=X, obs=cells.obs, var=cells.var)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_zero_cells, "has 0 cells"),
        (_negative, r"has negative values in X \(e.g. -2\); expected counts >= 0"),
        (_not_finite, "has non-finite \\(NaN or infinite\\) values in X"),
    ],
)
def test_an_expression_set_that_cannot_hold_counts_is_refused_before_any_method_runs(
    user_files, tmp_path, capsys, make, message
):
    # regression: a 0-cell file failed only after inference; negative values were scored "ok"
    bad = make(ad.read_h5ad(user_files / "cells.h5ad"))
    path = tmp_path / "bad.h5ad"
    bad.write_h5ad(path)
    truth = str(user_files / "edges.tsv")
    out = tmp_path / "o"
    custom = ["--task", "custom", "--truth", truth, "--expression", str(path)]
    for argv in (
        ["run", "--method", "pearson", *custom],
        ["run", "--method", "pearson", "--task", "beeline-synthetic", "--input", str(path)],
    ):
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
        assert not out.exists()
    with pytest.raises(ExpressionError, match=message):
        CustomTask(user_files / "edges.tsv", bad)
    with pytest.raises(ExpressionError, match=message):
        run_benchmark(["pearson"], ["beeline-synthetic"], out, adata=bad)
    assert not out.exists()


def test_a_network_stored_in_place_under_another_key_is_scored_without_conversion(
    user_files, hesc_pearson, tmp_path, capsys
):
    # a tool that infers in place keeps its network in the cells' own file, under its own varp
    # key, and marks the genes it chose in var[key]; score it with --key, no conversion
    cells = ad.read_h5ad(user_files / "cells.h5ad")
    network = hesc_pearson[:, cells.var_names].varp["GRN"]
    cells.varp["tool_grn"] = network
    cells.var["tool_grn"] = True
    path = tmp_path / "cells_with_network.h5ad"
    cells.write_h5ad(path)
    task = tmp_path / "task.yaml"
    task.write_text(
        f"name: my-hesc\ntruth: {user_files / 'edges.tsv'}\nexpression: {path}\n"
        f"regulators: {user_files / 'tfs.txt'}\n"
    )
    out = tmp_path / "results"
    argv = ["run", "--method", f"stored=file:{path}", "--task", str(task), "--out", str(out)]
    assert main([*argv, "--key", "tool_grn"]) == 0
    capsys.readouterr()
    got = _results(out).set_index("method").loc["stored"]
    expected = McCallaTask(cell="hESC", n_genes=400, variants=("intersection",))
    expected = expected.run(hesc_pearson).metrics
    assert got["status"] == "ok" and got["genes_covered"] == 1
    assert got["auprc"] == pytest.approx(expected["auprc"], rel=1e-6)
    assert got["n_true_edges"] == expected["n_true_edges"]
    # the same from Python
    from bengrn import score

    direct = score(
        cells, pd.read_csv(user_files / "edges.tsv", sep="\t"), key="tool_grn",
        truth_genes=cells.var_names, regulators=cells.var_names[cells.var_names.isin(
            (user_files / "tfs.txt").read_text().split())], regulators_in_truth=True,
    )  # fmt: skip
    assert direct["auprc"] == pytest.approx(expected["auprc"], rel=1e-6)
    # a wrong key is a usage mistake, found before anything runs
    assert main([*argv, "--key", "nope", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no varp['nope'] (varp keys: ['tool_grn'])" in err
