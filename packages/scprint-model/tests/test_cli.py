"""The ``scprint`` task commands refuse user mistakes early: exit status 2, one line, no traceback.

No model is loaded here: every mistake is caught before the checkpoint is read (the checkpoint
given is a zip archive holding no model, which would fail to load), which is what "checked
before computing" means.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import anndata as ad
import numpy as np
import pytest

from scprint.cli import main as scprint_main
from scprint.tasks.cli import main as tasks_main


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("cli")
    cells = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")[:20].copy()
    cells.write_h5ad(folder / "cells.h5ad")
    with zipfile.ZipFile(folder / "model.ckpt", "w") as archive:
        archive.writestr("archive/data.pkl", b"no model in here")
    return folder


def _run(files, *extra, command="gninfer"):
    return tasks_main(
        [command, "--ckpt", str(files / "model.ckpt"), "--adata", str(files / "cells.h5ad"), *extra]
    )


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_unknown_command_and_misspelt_option_suggest_the_right_name(files, capsys):
    assert scprint_main(["gnifer"]) == 2
    _one_line_error(capsys, "unknown command 'gnifer'", "did you mean 'gninfer'")
    assert tasks_main(["denoize"]) == 2
    _one_line_error(capsys, "unknown task 'denoize'", "did you mean 'denoise'")
    out = str(files / "net.zarr")
    assert _run(files, "--out", out, "--n-gene", "5") == 2
    _one_line_error(capsys, "unknown option '--n-gene'", "did you mean --n-genes")
    assert not (files / "net.zarr").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--n-genes", "many"], "invalid int value: 'many'"),
        (["--filtration", "strongest"], "--filtration must be one of"),
        (["--head_agg", "median"], "--head-aggregation must be one of"),
        (["--symmetrize", "maybe"], "expected true or false"),
        (["--how", "most var"], "--how must be one of"),
        (["--species", "NCBITaxon:1"], "unknown organism"),
        (["--comp_attn", "true", "--aggregation", "exact"], "contradicts"),
        (["--forward_mode", "generate"], "--forward-mode must be one of"),
    ],
)
def test_bad_values_exit_2_with_one_line(files, capsys, options, message):
    assert _run(files, "--out", str(files / "bad.zarr"), *options) == 2
    _one_line_error(capsys, message)
    assert not (files / "bad.zarr").exists()


def test_output_that_is_not_ours_to_replace_is_refused_and_left_intact(files, capsys, tmp_path):
    foreign = tmp_path / "keep.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my notes")
    assert _run(files, "--out", str(foreign)) == 2
    _one_line_error(capsys, "not a zarr store", "refusing to replace")
    assert (foreign / "notes.txt").read_text() == "my notes"

    plain = tmp_path / "net.zarr"
    plain.write_text("a file")
    assert _run(files, "--out", str(plain)) == 2
    _one_line_error(capsys, "a file that is not a zarr store")
    assert plain.read_text() == "a file"

    text = tmp_path / "emb.h5ad"
    text.write_text("my text, not HDF5")
    assert _run(files, "--out", str(text), command="embed") == 2
    _one_line_error(capsys, "not an HDF5 (.h5ad) file", "--overwrite")
    assert text.read_text() == "my text, not HDF5"

    folder = tmp_path / "den.h5ad"
    folder.mkdir()
    assert _run(files, "--out", str(folder), command="denoise") == 2
    _one_line_error(capsys, "is a folder")

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert _run(files, "--out", str(blocker / "net.zarr")) == 2
    _one_line_error(capsys, "is a file, not a folder")

    assert _run(files, "--out", str(tmp_path / "net.csv")) == 2
    _one_line_error(capsys, "output must end in .h5ad or .zarr")
    assert _run(files, "--out", str(tmp_path / "emb.zarr"), command="embed") == 2
    _one_line_error(capsys, "output must end in .h5ad")
    assert _run(files, "--out", str(files / "cells.h5ad"), command="denoise") == 2
    _one_line_error(capsys, "is the input file")


def test_missing_inputs_and_unreadable_data_exit_2(files, capsys, tmp_path):
    out = str(tmp_path / "net.zarr")
    missing = tasks_main(["gninfer", "--ckpt", str(files / "model.ckpt"), "--out", out])
    assert missing == 2
    _one_line_error(capsys, "--adata is required")
    status = tasks_main(
        ["gninfer", "--ckpt", str(tmp_path / "nope.ckpt"), "--adata", str(files / "cells.h5ad")]
        + ["--out", out]
    )
    assert status == 2
    _one_line_error(capsys, "checkpoint", "does not exist")
    status = tasks_main(
        ["gninfer", "--ckpt", str(files / "model.ckpt"), "--adata", str(tmp_path / "x.h5ad")]
        + ["--out", out]
    )
    assert status == 2
    _one_line_error(capsys, "input", "x.h5ad", "does not exist")
    garbage = tmp_path / "garbage.h5ad"
    garbage.write_bytes(np.random.default_rng(0).bytes(256))
    status = tasks_main(
        ["gninfer", "--ckpt", str(files / "model.ckpt"), "--adata", str(garbage), "--out", out]
    )
    assert status == 2
    _one_line_error(capsys, "cannot read", "garbage.h5ad")
    assert _run(files, "--out", out, "--ground-truth", str(tmp_path / "edges.csv")) == 2
    _one_line_error(capsys, "ground truth", "does not exist")
    assert _run(files, "--output_filename", str(tmp_path / "run"), "--out", out) == 2
    _one_line_error(capsys, "not both")
    assert not (tmp_path / "net.zarr").exists()


def test_checkpoint_that_is_not_one_exits_2_naming_the_file(files, capsys, tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((files / "model.ckpt").read_bytes()[:-30])
    for bad in (text, empty, truncated):
        status = tasks_main(
            ["embed", "--ckpt", str(bad), "--adata", str(files / "cells.h5ad")]
            + ["--out", str(tmp_path / "emb.h5ad")]
        )
        assert status == 2
        _one_line_error(capsys, f"checkpoint {str(bad)!r} is not a PyTorch checkpoint")
    assert not (tmp_path / "emb.h5ad").exists()


def test_debug_shows_the_traceback_and_the_console_script_exits_2(files, tmp_path):
    command = [sys.executable, "-m", "scprint.cli", "gninfer", "--ckpt", str(files / "model.ckpt")]
    command += ["--adata", str(files / "cells.h5ad"), "--out", str(tmp_path / "net.csv")]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2
    assert quiet.stderr.strip().splitlines() == [
        f"scprint gninfer: error: output must end in .h5ad or .zarr, got {str(tmp_path / 'net.csv')!r}"
    ]
    loud = subprocess.run([*command, "--debug"], capture_output=True, text=True, timeout=120)
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr and "UsageError" in loud.stderr


def test_overwrite_passes_the_path_check_and_a_failed_run_keeps_the_old_output(files, capsys):
    foreign = files / "mine.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my notes")
    status = _run(files, "--out", str(foreign), "--overwrite")
    err = capsys.readouterr().err
    assert "cannot be written" not in err  # the path was accepted ...
    assert status != 0 and "model.ckpt" in err  # ... the run failed later, on the empty checkpoint
    assert (foreign / "notes.txt").read_text() == "my notes"


def test_every_subcommand_documents_every_flag(capsys):
    from grnndata.cli import missing_help
    from scprint.tasks.cli import COMMANDS, build_parser

    assert missing_help(build_parser()) == []
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            tasks_main([command, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        for flag in ("--out", "--data-dir", "--param", "--verbose", "--quiet", "--debug"):
            assert flag in text, (command, flag)


def test_common_flags_go_before_or_after_the_task_and_params_are_checked(files, capsys, tmp_path):
    out = str(tmp_path / "net.zarr")
    # the flags are accepted in both places: the run goes on to fail on the empty checkpoint, a
    # damaged input rather than a usage mistake (exit status 1, one line naming the file)
    for argv in (["-v", "--debug", "gninfer"], ["gninfer", "-q"]):
        status = tasks_main([*argv, "--ckpt", str(files / "model.ckpt")] + _inputs(files, out))
        assert status == 1
        err = capsys.readouterr().err
        assert "CheckpointError" in err and "model.ckpt" in err
    assert _run(files, "--out", out, "--param", "n_gene=5") == 2
    _one_line_error(capsys, "--param n_gene", "scprint.tasks.GNInfer has no option", "n_genes")
    assert _run(files, "--out", out, "--param", "n_genes") == 2
    _one_line_error(capsys, "--param expects NAME=VALUE")
    assert _run(files, "--out", out, "--data-dir", str(tmp_path / "absent")) == 2
    _one_line_error(capsys, "--data-dir", "is not a folder")
    assert not (tmp_path / "net.zarr").exists()


def _inputs(files, out):
    return ["--adata", str(files / "cells.h5ad"), "--out", out]


def test_duplicated_gene_names_found_by_the_data_checks_exit_2_with_one_line(
    files, capsys, tmp_path
):
    """A real file whose gene names repeat (20 Kang cells, one Ensembl id given to two columns)
    is refused by the data checks shared with training (``scprint.data.checks``) with the same
    error class as the task's own checks: exit 2, one line naming a duplicated gene."""
    from pathlib import Path

    cells = ad.read_h5ad(files / "cells.h5ad")
    names = cells.var_names.tolist()
    names[1] = names[0]
    cells.var_names = names
    cells.write_h5ad(tmp_path / "duplicated.h5ad")
    checkpoint = Path(__file__).parent / "fixtures" / "parity" / "v2_pos_fsq.ckpt"
    status = scprint_main(
        [
            "embed",
            "--ckpt",
            str(checkpoint),
            "--adata",
            str(tmp_path / "duplicated.h5ad"),
            "--out",
            str(tmp_path / "emb.h5ad"),
        ]
    )
    assert status == 2
    _one_line_error(capsys, "duplicated gene name", names[0])
    assert not (tmp_path / "emb.h5ad").exists()
