"""Faults in the tasks' writers and input checks (issue 14), on a slice of the real Kang counts.

- the task writers never delete what they did not write (``--out keep.zarr`` on a user's folder);
- a writer killed mid-write (real subprocess, SIGKILL) leaves the previous output intact and its
  temporary is cleaned by the next write;
- infinite / NaN counts and duplicated ``var_names`` are clear errors before any compute, in the
  tasks and in training data (issue 25: the same checks, :mod:`scprint.data.checks`).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap

import anndata as ad
import lightning as L
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from grnndata import atomic
from grnndata.atomic import OutputExistsError
from scprint.checkpoints import CheckpointError, load
from scprint.cli import main as scprint_main
from scprint.tasks import _input, write_anndata
from scprint.training import fit


@pytest.fixture(scope="module")
def kang_counts(data_dir) -> ad.AnnData:
    adata = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    return adata[:50, :200].copy()


def test_writing_over_a_users_folder_is_refused_and_the_folder_kept(kang_counts, tmp_path):
    keep = tmp_path / "keep.zarr"
    keep.mkdir()
    (keep / "notes.txt").write_text("my notes")
    with pytest.raises(OutputExistsError, match="not a zarr store"):
        write_anndata(kang_counts, keep)
    assert (keep / "notes.txt").read_text() == "my notes"
    text = tmp_path / "keep.h5ad"
    text.write_text("a,b\n")
    with pytest.raises(OutputExistsError, match="not an HDF5"):
        write_anndata(kang_counts, text)
    assert text.read_text() == "a,b\n"
    metrics = tmp_path / "metrics.json"
    metrics.write_text("my own notes, not JSON")
    with pytest.raises(OutputExistsError, match="not a JSON file"):
        atomic.write_json(metrics, {"auc": 0.5})  # how the CLI writes --metrics
    assert metrics.read_text() == "my own notes, not JSON"
    write_anndata(kang_counts, keep, overwrite=True)
    assert ad.read_zarr(keep).shape == kang_counts.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5ad", "keep.zarr", "metrics.json"]


_KILLED_WRITER = """
import os, signal, sys
import anndata as ad
from scprint.tasks import write_anndata
adata = ad.read_h5ad(sys.argv[1])
original = ad.AnnData.write_zarr
def write_then_die(self, store, *args, **kwargs):
    original(self, store, *args, **kwargs)  # the temporary is complete, the swap not yet done
    os.kill(os.getpid(), signal.SIGKILL)
ad.AnnData.write_zarr = write_then_die
write_anndata(adata[:7].copy(), sys.argv[2])
"""


def test_a_killed_task_writer_leaves_the_previous_output(kang_counts, tmp_path):
    source = tmp_path / "in.h5ad"
    kang_counts.write_h5ad(source)
    out = tmp_path / "out" / "result.zarr"
    write_anndata(kang_counts, out)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")], "no temporary left"
    assert ad.read_zarr(out).shape == kang_counts.shape
    write_anndata(kang_counts[:3].copy(), out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.zarr"]
    assert ad.read_zarr(out).shape == (3, kang_counts.n_vars)


@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_non_finite_counts_are_rejected_naming_the_cell(kang_counts, value, layout):
    bad = kang_counts.copy()
    dense = bad.X.toarray().astype(np.float32)
    dense[4, 7] = value
    bad.X = sp.csr_matrix(dense) if layout == "sparse" else dense
    with pytest.raises(ValueError, match=r"finite raw counts.*in cell 4"):
        _input.prepare(bad, pretrained=None)  # fails before the model is used
    with pytest.raises(ValueError, match="finite raw counts"):
        _input.counts_matrix(bad)


def test_duplicated_var_names_are_an_error_not_a_dropped_column(kang_counts):
    bad = kang_counts.copy()
    names = bad.var_names.to_numpy().copy()
    names[5] = names[2]
    bad.var_names = names
    with pytest.raises(ValueError, match=rf"1 duplicated gene name.*'{names[2]}'"):
        _input.prepare(bad, pretrained=None)


def _with_value(adata: ad.AnnData, value: float) -> ad.AnnData:
    bad = adata.copy()
    dense = bad.X.toarray().astype(np.float32)
    dense[3, np.flatnonzero(dense[3])[0]] = value
    bad.X = sp.csr_matrix(dense)
    return bad


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.inf, r"finite raw counts; found 1 non-finite value.*inf in cell '"),
        (np.nan, r"finite raw counts; found 1 non-finite value.*nan in cell '"),
        (-2.0, r"raw integer counts, found -2.0 \(negative values"),
    ],
)
def test_training_data_get_the_task_checks_before_training(kang_counts, tmp_path, value, message):
    """Issue 25: inf/NaN/negative counts in training data are refused up front, by the checks the
    tasks use (scprint.data.checks), naming the cell."""
    bad = _with_value(kang_counts, value)
    run = {"trainer": {"max_steps": 2, "default_root_dir": str(tmp_path)}}
    with pytest.raises(ValueError, match=message):
        fit("tiny", run, data={"files": [bad]})
    with pytest.raises(ValueError, match=message.split(r"\(")[0].split(";")[0]):
        _input.prepare(bad, pretrained=None)
    assert not list(tmp_path.iterdir())


def test_duplicated_genes_in_training_data_are_refused_not_dropped(kang_counts, tmp_path):
    bad = kang_counts.copy()
    names = bad.var_names.to_numpy().copy()
    names[5] = names[2]
    bad.var_names = names
    run = {"trainer": {"max_steps": 2, "default_root_dir": str(tmp_path)}}
    with pytest.raises(ValueError, match=rf"var_names has 1 duplicated gene name.*'{names[2]}'"):
        fit("tiny", run, data={"files": [bad]})


def test_a_zero_cell_training_file_says_it_has_no_cells(kang_counts, tmp_path, capsys):
    """Issue 25: not "has no label column 'cell_type'" (the column exists)."""
    empty = tmp_path / "empty.h5ad"
    kang_counts[:0].copy().write_h5ad(empty)
    assert "cell_type" in ad.read_h5ad(empty).obs
    run = ["--trainer.default_root_dir", str(tmp_path / "run"), "--data.files", f"[{empty}]"]
    assert scprint_main(["fit", "--config", "tiny", *run]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "dataset 'empty.h5ad' has no cells" in err and "label column" not in err


def _nan_checkpoint(tiny_checkpoint, folder):
    checkpoint = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    key = "model.transformer.blocks.0.mlp.fc1.weight"
    assert key in checkpoint["state_dict"]
    checkpoint["state_dict"][key] = checkpoint["state_dict"][key].clone()
    checkpoint["state_dict"][key][0, :3] = torch.tensor([float("nan"), float("inf"), 1.0])
    path = folder / "diverged.ckpt"
    torch.save(checkpoint, path)
    return path


def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(
    tiny_checkpoint, kang_adata, tmp_path
):
    """Issue 25: no NaN embeddings from a NaN checkpoint, no fine-tuning from one."""
    path = _nan_checkpoint(tiny_checkpoint, tmp_path)
    message = r"tensor 'transformer.blocks.0.mlp.fc1.weight' holds 1 NaN and 1 infinite values"
    with pytest.raises(CheckpointError, match=message):
        load(path, device="cpu")
    run = {"trainer": {"max_steps": 2, "default_root_dir": str(tmp_path / "run")}}
    with pytest.raises(ValueError, match=message):
        fit("finetune", run, data={"files": [kang_adata]}, model={"init_from": str(path)})
    assert not (tmp_path / "run").exists()


class _WeightsBecomeNaN(L.Callback):
    """Sets one weight to NaN before step 2's forward pass (a diverging run)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 2:
            with torch.no_grad():
                pl_module.model.transformer.blocks[0].mlp.fc1.weight[0, 0] = float("nan")


def test_a_non_finite_loss_stops_training_and_keeps_the_good_checkpoints(kang_adata, tmp_path):
    run = tmp_path / "run"
    every_step = ModelCheckpoint(
        dirpath=run / "checkpoints", every_n_train_steps=1, save_top_k=-1, filename="{step}"
    )
    trainer = {"max_steps": 5, "default_root_dir": str(run), "enable_progress_bar": False}
    with pytest.raises(FloatingPointError, match=r"training loss is nan at step 2.*kept"):
        fit(
            "tiny",
            data={"files": [kang_adata[:120].copy()], "val_fraction": 0.0},
            trainer=trainer,
            callbacks=[_WeightsBecomeNaN(), every_step],
        )
    assert not (run / "scprint.ckpt").exists()
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert saved == ["step=1.ckpt", "step=2.ckpt"]
    assert load(run / "checkpoints" / "step=2.ckpt", device="cpu").model is not None


class _Unsafe:
    def __reduce__(self):
        return (os.system, ("true",))


def test_a_checkpoint_refused_for_an_unsafe_global_names_it(tmp_path):
    """Issue 25: not "truncated or corrupted?"; the code is never run."""
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Unsafe()}}, path)
    with pytest.raises(
        CheckpointError, match=r"pickles a Python object of type posix.system"
    ) as err:
        load(path, device="cpu")
    assert "corrupted" not in str(err.value)


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past ``limit`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_during_embed_is_one_line_and_keeps_the_output(
    tiny_checkpoint, kang_file, tmp_path
):
    """Issue 25: HDF5 never writes to the disk itself (it crashed closing a file it could not
    flush); the write fails in one line, the previous output is intact, no temporary is left."""
    cells = tmp_path / "cells.h5ad"
    ad.read_h5ad(kang_file)[:64].copy().write_h5ad(cells)
    out = tmp_path / "embedded.h5ad"
    write_anndata(ad.read_h5ad(cells), out)  # the previous output
    before = out.read_bytes()
    command = [sys.executable, "-m", "scprint.cli", "-q", "embed", "--ckpt", str(tiny_checkpoint)]
    command += ["--adata", str(cells), "--out", str(out), "--device", "cpu"]
    full = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(len(before) // 3),
    )
    assert full.returncode == 1, full.stderr[-2000:]
    assert "Traceback" not in full.stderr, full.stderr[-2000:]
    last = full.stderr.strip().splitlines()[-1]
    assert "could not write" in last and "File too large" in last, last
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.h5ad", "embedded.h5ad"]
