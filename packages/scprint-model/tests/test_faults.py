"""Faults in the tasks' writers and input checks (issue 14), on a slice of the real Kang counts.

- the task writers never delete what they did not write (``--out keep.zarr`` on a user's folder);
- a writer killed mid-write (real subprocess, SIGKILL) leaves the previous output intact and its
  temporary is cleaned by the next write;
- infinite / NaN counts and duplicated ``var_names`` are clear errors before any compute.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from grnndata import atomic
from grnndata.atomic import OutputExistsError
from scprint.tasks import _input, write_anndata


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
