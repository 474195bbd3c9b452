"""The task contract, checked for every task the ``scprint`` command registers.

The walk is over :data:`scprint.tasks.cli.COMMANDS`: a task added there (a module with
``TASK_CLASS`` and ``EXAMPLE_ARGS``, the flags of a small run) is held to the same contract
without a line here. The contract (the table in the package README):

- ``Task(ckpt, **options)(adata, *, key_added=<default>, copy=False)``: options in the constructor,
  the call takes the data, ``key_added`` and ``copy`` only;
- ``copy=False`` writes into ``adata`` and returns ``None``; ``copy=True`` returns a changed copy
  and leaves ``adata`` as it was; ``key_added`` is the full key of the main result, its settings
  in ``uns[key_added]``;
- the same ``genes`` choices wherever a task chooses genes; bad input is a
  :class:`scprint.tasks.InputError`;
- on the command line a flag means one thing in every subcommand (a flag named like a task
  option sets that option, so ``--seed`` exists only where the task has a seed); exit status 2
  and one line for a usage mistake (an ``InputError`` included), 1 and one line for any other
  failure, the traceback with ``--debug``.

Real data (the Kang PBMC cells) and the session's tiny model trained on them.
"""

from __future__ import annotations

import argparse
import inspect
import zipfile
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import scprint
from scprint.tasks import InputError
from scprint.tasks.cli import COMMANDS, build_parser, command_module, main
from scprint.tasks.cli._options import task_class
from scprint.tasks.options import GENE_CHOICES

#: Every ``genes`` choice a task that chooses genes must offer (besides a list of genes).
COMMON_GENE_CHOICES = ("all", "hvg", "expressed")
SLOTS = ("obs", "obsm", "layers", "var", "varm", "varp", "uns")


@pytest.fixture(scope="module")
def pretrained(tiny_checkpoint):
    return scprint.load(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def cells(kang_adata) -> ad.AnnData:
    """24 Kang cells, B cells among them (the generate example's target)."""
    b_cells = np.flatnonzero(kang_adata.obs["cell_type"].astype(str).to_numpy() == "B cells")
    rows = np.union1d(np.arange(16), b_cells[:8])
    return kang_adata[rows].copy()


@pytest.fixture(scope="module")
def files(cells, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("contract")
    cells.write_h5ad(folder / "cells.h5ad")
    unknown = cells.copy()
    unknown.var_names = [f"NOT_A_GENE_{i}" for i in range(unknown.n_vars)]
    unknown.var = unknown.var.drop(columns=[c for c in unknown.var.columns])
    unknown.write_h5ad(folder / "unknown_genes.h5ad")
    return folder


def _task(command: str) -> type:
    return task_class(command_module(command).TASK_CLASS)


def _example_options(command: str) -> dict[str, Any]:
    """The task options of the subcommand's small run (its ``EXAMPLE_ARGS`` through its plan)."""
    module = command_module(command)
    args = _parse(command, ["--ckpt", "m.ckpt", "--adata", "a.h5ad", *module.EXAMPLE_ARGS])
    options, _ = module.plan(args)
    return options


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args([command, *argv])


def _snapshot(adata: ad.AnnData) -> dict[str, Any]:
    """Everything a task could change, to compare before and after."""
    keys = {slot: sorted(map(str, getattr(adata, slot).keys())) for slot in SLOTS}
    return {"keys": keys, "X": adata.X.copy(), "obs": adata.obs.copy(), "var": adata.var.copy()}


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    x_equal = (
        (before["X"] != after["X"]).nnz == 0
        if sp.issparse(before["X"])
        else np.array_equal(before["X"], after["X"])
    )
    return (
        before["keys"] == after["keys"]
        and x_equal
        and before["obs"].equals(after["obs"])
        and before["var"].equals(after["var"])
    )


def _main_result(adata: ad.AnnData, key: str) -> Any:
    """The value stored under ``key`` outside ``uns`` (the task's main result)."""
    found = [
        slot for slot in ("obsm", "layers", "varp", "varm", "obs") if key in getattr(adata, slot)
    ]
    assert found, f"no result under key_added={key!r} in obsm/layers/varp/varm/obs"
    value = getattr(adata, found[0])[key]
    return value.toarray() if sp.issparse(value) else np.asarray(value)


# -- the Python API -------------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_task_signature_puts_options_in_the_constructor_and_data_in_the_call(command):
    task = _task(command)
    call = inspect.signature(task.__call__).parameters
    assert list(call) == ["self", "adata", "key_added", "copy"], (command, list(call))
    assert call["key_added"].kind is inspect.Parameter.KEYWORD_ONLY
    assert call["copy"].kind is inspect.Parameter.KEYWORD_ONLY
    assert call["copy"].default is False, f"{task.__name__}: copy must default to False"
    assert isinstance(call["key_added"].default, str) and call["key_added"].default
    init = inspect.signature(task.__init__).parameters
    assert list(init)[:2] == ["self", "ckpt"]
    options = [p for name, p in init.items() if name not in ("self", "ckpt")]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in options), command
    assert {"gene_matching", "batch_size", "device"} <= set(init), command


@pytest.mark.parametrize("command", COMMANDS)
def test_task_writes_in_place_or_into_a_copy_under_key_added(command, pretrained, cells):
    task = _task(command)(pretrained, **_example_options(command), device="cpu")
    default_key = inspect.signature(task.__call__).parameters["key_added"].default
    adata = cells.copy()
    before = _snapshot(adata)
    copied = task(adata, key_added="contract_key", copy=True)
    assert isinstance(copied, ad.AnnData) and copied is not adata
    assert _same(before, _snapshot(adata)), f"{command}: copy=True changed the input"
    assert "contract_key" in copied.uns and default_key not in copied.uns
    expected = _main_result(copied, "contract_key")
    assert task(adata, key_added="contract_key") is None  # copy=False: in place
    assert _snapshot(adata)["keys"] == _snapshot(copied)["keys"]
    np.testing.assert_allclose(_main_result(adata, "contract_key"), expected, rtol=1e-5, atol=1e-6)
    fresh = cells.copy()
    assert task(fresh) is None
    assert default_key in fresh.uns
    _main_result(fresh, default_key)


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_is_an_input_error(command, pretrained, cells):
    task = _task(command)(pretrained, **_example_options(command), device="cpu")
    unknown = cells.copy()
    unknown.var_names = [f"NOT_A_GENE_{i}" for i in range(unknown.n_vars)]
    unknown.var = pd.DataFrame(index=unknown.var_names)
    with pytest.raises(InputError) as info:
        task(unknown)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError):
        task(cells.copy(), key_added="")
    assert issubclass(InputError, ValueError)


@pytest.mark.parametrize("command", COMMANDS)
def test_tasks_that_choose_genes_offer_the_same_choices(command, pretrained):
    task = _task(command)
    if "genes" not in inspect.signature(task.__init__).parameters:
        pytest.skip(f"{task.__name__} has no genes option")
    options = {**_example_options(command), "n_genes": 10}
    for choice in COMMON_GENE_CHOICES:
        assert task(pretrained, **{**options, "genes": choice}).genes == choice
    assert "n_genes" in inspect.signature(task.__init__).parameters
    with pytest.raises(InputError, match=r"genes must be one of \("):
        task(pretrained, **{**options, "genes": "most variable"})
    with pytest.raises(InputError, match="gene list is empty"):
        task(pretrained, **{**options, "genes": []})
    assert set(COMMON_GENE_CHOICES) < set(GENE_CHOICES)


# -- the command line -----------------------------------------------------------------------------
def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_a_flag_means_one_thing_in_every_subcommand():
    """The same spelling has the same destination everywhere, and a flag named like a task
    option (``--seed``, ``--max-len``, ``--n-genes`` ...) exists only where the task has it."""
    options = {
        command: set(inspect.signature(_task(command).__init__).parameters) for command in COMMANDS
    }
    every_option = set().union(*options.values())
    meaning: dict[str, tuple[str, str]] = {}
    for command, sub in _subparsers().items():
        for action in sub._actions:
            for flag in action.option_strings:
                seen = meaning.setdefault(flag, (command, action.dest))
                assert seen[1] == action.dest, (
                    f"{flag} sets {seen[1]!r} in `scprint {seen[0]}` but {action.dest!r} in "
                    f"`scprint {command}`"
                )
                name = flag.lstrip("-").replace("-", "_")
                if name in every_option:
                    assert name in options[command], (
                        f"`scprint {command}` has {flag} but {_task(command).__name__} has no "
                        f"option {name!r}"
                    )
        seed = any("--seed" in a.option_strings for a in sub._actions)
        assert seed == ("seed" in options[command]), (command, "--seed")


def _argv(command: str, files: Path, checkpoint: Path, adata: str, out: str) -> list[str]:
    module = command_module(command)
    return [
        command,
        "--ckpt",
        str(checkpoint),
        "--adata",
        str(files / adata),
        "--out",
        str(files / f"{command}_{out}{module.OUT_SUFFIXES[0]}"),
        "--device",
        "cpu",
        *module.EXAMPLE_ARGS,
    ]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_exit_statuses(command, files, tiny_checkpoint, capsys, tmp_path):
    """0 for the small run; 2 for a usage mistake, an InputError included (no known gene); 1
    for another failure (a checkpoint that fails to load); one line each, the traceback with --debug."""
    assert main(_argv(command, files, tiny_checkpoint, "cells.h5ad", "ok")) == 0
    capsys.readouterr()
    module = command_module(command)
    written = files / f"{command}_ok{module.OUT_SUFFIXES[0]}"
    assert written.exists()
    assert main(_argv(command, files, tiny_checkpoint, "unknown_genes.h5ad", "bad")) == 2
    assert "genes" in _one_line(capsys)
    assert main([*_argv(command, files, tiny_checkpoint, "cells.h5ad", "x"), "--no-such-flag"]) == 2
    assert "unknown option '--no-such-flag'" in _one_line(capsys)
    damaged = tmp_path / "damaged.ckpt"  # a zip archive, as torch.save writes, holding no model
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("archive/data.pkl", b"no model in here")
    assert main(_argv(command, files, damaged, "cells.h5ad", "damaged")) == 1
    assert "damaged.ckpt" in _one_line(capsys)
    assert main([*_argv(command, files, damaged, "cells.h5ad", "damaged"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert not list(files.glob(f"{command}_bad*")) and not list(files.glob(f"{command}_damaged*"))


def test_an_in_place_network_goes_to_grnndata_and_bengrn_as_is(
    files, tiny_checkpoint, data_dir, cells, capsys, tmp_path
):
    """``scprint gninfer --in-place`` writes the cells with varp["GRN"]: ``grnndata info`` and
    ``bengrn run --method file:`` read that very file, without conversion."""
    from bengrn.cli import main as bengrn_main
    from grnndata.command import main as grnndata_main

    out = tmp_path / "cells_with_grn.h5ad"
    argv = ["gninfer", "--ckpt", str(tiny_checkpoint), "--adata", str(files / "cells.h5ad")]
    argv += ["--out", str(out), "--device", "cpu", "--n-genes", "40", "--in-place"]
    assert main(argv) == 0
    written = ad.read_h5ad(out)
    assert written.shape == cells.shape and written.varp["GRN"].shape == (cells.n_vars,) * 2
    assert written.var["GRN"].sum() == 40
    capsys.readouterr()
    assert grnndata_main(["info", str(out)]) == 0
    assert "40" in capsys.readouterr().out
    # the truth: OmniPath's transcriptional edges among the Kang genes, by Ensembl id
    omnipath = pd.read_parquet(data_dir / "grn" / "omnipath_interactions.parquet")
    omnipath = omnipath.loc[omnipath["type"] == "transcriptional", ["source", "target"]]
    by_symbol = pd.Series(cells.var_names, index=cells.var["gene_symbol"].astype(str))
    by_symbol = by_symbol[~by_symbol.index.duplicated()]
    known = omnipath["source"].isin(by_symbol.index) & omnipath["target"].isin(by_symbol.index)
    truth = pd.DataFrame(
        {
            "regulator": by_symbol[omnipath.loc[known, "source"]].to_numpy(),
            "target": by_symbol[omnipath.loc[known, "target"]].to_numpy(),
        }
    )
    assert len(truth) > 100
    truth.to_csv(tmp_path / "truth.tsv", sep="\t", index=False)
    status = bengrn_main(
        ["run", "--method", f"scprint={'file:' + str(out)}", "--task", "custom"]
        + ["--truth", str(tmp_path / "truth.tsv"), "--expression", str(files / "cells.h5ad")]
        + ["--out", str(tmp_path / "bench")]
    )
    assert status == 0, capsys.readouterr().err
    results = pd.read_csv(tmp_path / "bench" / "results.csv")
    assert len(results) == 1 and results["method"].iloc[0] == "scprint"
