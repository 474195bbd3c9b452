"""Faults: writers killed mid-write (real subprocesses, SIGKILL), outputs that are not ours,
stale temporaries, missing chunk files in written stores, bad inputs (issue 14).

The networks are real (Kang PBMC x OmniPath); the kill points are made deterministic by a
subprocess that patches one step of the writer to SIGKILL itself, plus kills at random times.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from grnndata import GRNAnnData, read_zarr
from grnndata.atomic import (
    OutputExistsError,
    atomic_path,
    check_output_path,
    recover,
    write_json,
    write_text,
)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def small_grn(kang_grn) -> GRNAnnData:
    """300 genes of the real Kang x OmniPath network, with their expression (600 cells)."""
    degree = (
        np.asarray((kang_grn.grn != 0).sum(0)).ravel()
        + np.asarray((kang_grn.grn != 0).sum(1)).ravel()
    )
    genes = list(kang_grn.var_names[np.argsort(-degree, kind="stable")[:300]])
    return kang_grn[:, genes].copy()


# --------------------------------------------------------------------------- not ours: refused
def test_a_users_folder_is_never_replaced(small_grn, tmp_path):
    keep = tmp_path / "keep.zarr"
    keep.mkdir()
    (keep / "thesis.txt").write_text("three years of work")
    with pytest.raises(OutputExistsError, match="not a zarr store.*refusing"):
        small_grn.write_zarr(keep)
    with pytest.raises(OutputExistsError, match="not a zarr store"):
        check_output_path(keep, "zarr")
    assert (keep / "thesis.txt").read_text() == "three years of work"
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_a_foreign_path(small_grn, tmp_path):
    keep = tmp_path / "net.zarr"
    keep.mkdir()
    (keep / "notes.txt").write_text("x")
    small_grn.write_zarr(keep, overwrite=True)
    assert not (keep / "notes.txt").exists()
    assert read_zarr(keep).grn.nnz == small_grn.grn.nnz


def test_h5ad_writer_refuses_a_file_that_is_not_hdf5(small_grn, tmp_path):
    notes = tmp_path / "net.h5ad"
    notes.write_text("not an h5ad")
    with pytest.raises(OutputExistsError, match="not an HDF5"):
        small_grn.write_h5ad(notes)
    assert notes.read_text() == "not an h5ad"
    small_grn.write_h5ad(tmp_path / "ok.h5ad")
    small_grn.write_h5ad(tmp_path / "ok.h5ad")  # an h5ad is replaced
    folder = tmp_path / "dir.h5ad"
    folder.mkdir()
    (folder / "f").write_text("x")
    with pytest.raises(OutputExistsError, match="is a folder"):
        small_grn.write_h5ad(folder)


def test_output_paths_are_checked_before_computing(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_output_path(tmp_path / "a_file" / "out.zarr", "zarr")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(OutputExistsError, match="not a JSON file"):
        check_output_path(tmp_path / "m.json", "json")
    (tmp_path / "empty.zarr").mkdir()
    assert check_output_path(tmp_path / "empty.zarr", "zarr") == tmp_path / "empty.zarr"
    with pytest.raises(ValueError, match="unknown output kind 'parquet'"):
        check_output_path(tmp_path / "x.parquet", "parquet")


def test_text_and_json_writers_replace_their_own_kind_only(tmp_path):
    path = write_json(tmp_path / "sub" / "m.json", {"auprc": 0.25})
    assert path.read_text().startswith("{")
    write_json(path, {"auprc": 0.5})
    assert '"auprc": 0.5' in path.read_text()
    png = tmp_path / "fig.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(OutputExistsError, match="not a text"):
        write_text(png, "a,b\n1,2\n", "csv")
    with pytest.raises(ValueError, match="Out of range float"):
        write_json(tmp_path / "nan.json", {"x": float("nan")}, allow_nan=False)
    assert not (tmp_path / "nan.json").exists()
    assert _leftovers(tmp_path) == []


def test_a_failing_writer_leaves_the_old_version_and_no_temporary(small_grn, tmp_path):
    store = tmp_path / "net.zarr"
    small_grn.write_zarr(store)
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    with pytest.raises(RuntimeError, match="boom"), atomic_path(store, "zarr") as tmp:
        tmp.mkdir()
        (tmp / "zarr.json").write_text("{}")
        raise RuntimeError("boom")
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before
    assert _leftovers(tmp_path) == []
    with pytest.raises(TypeError, match="should be a directory"), atomic_path(store, "zarr") as tmp:
        tmp.write_text("a file where a store was expected")
    assert read_zarr(store).grn.nnz == small_grn.grn.nnz


# --------------------------------------------------------------------------- killed writers
_WRITER = """
import os, signal, sys
import anndata, numpy as np
import grnndata, grnndata.atomic as atomic
grn = grnndata.read_zarr(sys.argv[1])
point = sys.argv[3]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "while_writing":
    import grnndata.io as io
    io.write_elem_original = io.write_elem
    calls = []
    def write_elem(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # expression and metadata written, network not yet
            die()
        return io.write_elem_original(*args, **kwargs)
    io.write_elem = write_elem
elif point == "after_exchange":
    atomic._remove = die  # the swap happened; the old version sits in the temporary
elif point == "between_renames":
    atomic._exchange = lambda a, b: False  # a file system without RENAME_EXCHANGE
    rename = os.rename
    def rename_then_die(src, dst):
        rename(src, dst)
        if ".bak-" in str(dst):
            die()
    atomic.os.rename = rename_then_die
elif point == "loop":
    print("ready", flush=True)
    while True:
        grn.write_zarr(sys.argv[2])
grn.write_zarr(sys.argv[2])
"""


def _writer(source: Path, target: Path, point: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WRITER), str(source), str(target), point],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def two_versions(small_grn, tmp_path_factory) -> tuple[Path, GRNAnnData, GRNAnnData]:
    """A store holding version 1 of a network (written here) and version 2 to write over it."""
    folder = tmp_path_factory.mktemp("versions")
    old = small_grn.copy()
    new = small_grn.copy()
    new.grn = new.grn * 2
    new.write_zarr(folder / "new.zarr")
    return folder, old, new


def _same_network(a: GRNAnnData, b: GRNAnnData) -> bool:
    return a.grn.shape == b.grn.shape and (a.grn != b.grn).nnz == 0


@pytest.mark.parametrize("point", ["while_writing", "after_exchange", "between_renames"])
def test_a_killed_writer_leaves_one_complete_version(two_versions, tmp_path, point):
    folder, old, new = two_versions
    target = tmp_path / "net.zarr"
    old.write_zarr(target)
    proc = _writer(folder / "new.zarr", target, point)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert _leftovers(tmp_path), "the killed writer should have left its temporary behind"
    if point == "between_renames":
        assert not target.exists()  # the fallback's window: only the backup holds the store
    back = read_zarr(target)  # the reader restores the backup of a dead writer
    expected = new if point == "after_exchange" else old
    assert _same_network(back, expected)
    old.write_zarr(target)  # the next write removes the dead writer's temporaries
    assert _leftovers(tmp_path) == []
    assert _same_network(read_zarr(target), old)


def test_writers_killed_at_random_times_never_lose_the_store(two_versions, tmp_path):
    folder, old, new = two_versions
    target = tmp_path / "net.zarr"
    old.write_zarr(target)
    rng = np.random.default_rng(14)
    for delay in rng.uniform(0.0, 0.4, size=3):
        proc = _writer(folder / "new.zarr", target, "loop")
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(delay))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        recovered = recover(target)
        assert recovered is None  # with RENAME_EXCHANGE the path always exists
        back = read_zarr(target)
        assert _same_network(back, old) or _same_network(back, new)
    old.write_zarr(target)
    assert _leftovers(tmp_path) == []
