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

from grnndata import GRNAnnData, GRNStoreError, open_zarr, read_zarr
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
    import gzip

    import pandas as pd

    with atomic_path(tmp_path / "table.csv.gz", "csv") as tmp:  # pandas infers gzip from the name
        pd.DataFrame({"a": [1, 2]}).to_csv(tmp, index=False)
    assert gzip.decompress((tmp_path / "table.csv.gz").read_bytes()) == b"a\n1\n2\n"
    write_text(tmp_path / "table.csv.gz", "replaced", "csv")  # a compressed table is a table
    with pytest.raises(ValueError, match="Out of range float"):
        write_json(tmp_path / "nan.json", {"x": float("nan")}, allow_nan=False)
    assert not (tmp_path / "nan.json").exists()
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.csv", "sub", "table.csv.gz"]


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


def test_the_fallback_swap_without_rename_exchange_replaces_cleanly(
    small_grn, tmp_path, monkeypatch
):
    import grnndata.atomic

    monkeypatch.setattr(grnndata.atomic, "_exchange", lambda a, b: False)
    store = tmp_path / "net.zarr"
    small_grn.write_zarr(store)
    doubled = small_grn.copy()
    doubled.grn = doubled.grn * 2
    doubled.write_zarr(store)
    assert (read_zarr(store).grn != doubled.grn).nnz == 0
    assert _leftovers(tmp_path) == []


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
    import grnndata.io.zarr as io
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


_KILL_POINTS = ("while_writing", "after_exchange", "between_renames")


def test_a_killed_writer_leaves_one_complete_version(two_versions, tmp_path):
    """One writer per kill point, run side by side, each over its own copy of version 1."""
    folder, old, new = two_versions
    targets = {point: tmp_path / point / "net.zarr" for point in _KILL_POINTS}
    for target in targets.values():
        old.write_zarr(target)
    procs = {point: _writer(folder / "new.zarr", targets[point], point) for point in _KILL_POINTS}
    for point, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, (point, err)
    for point, target in targets.items():
        assert _leftovers(target.parent), f"{point}: the killed writer left no temporary"
        if point == "between_renames":
            assert not target.exists()  # the fallback's window: only the backup holds the store
        back = read_zarr(target)  # the reader restores the backup of a dead writer
        assert _same_network(back, new if point == "after_exchange" else old), point
        old.write_zarr(target)  # the next write removes the dead writer's temporaries
        assert _leftovers(target.parent) == [], point
        assert _same_network(read_zarr(target), old)


def test_writers_killed_at_random_times_never_lose_the_store(two_versions, tmp_path):
    folder, old, new = two_versions
    delays = np.random.default_rng(14).uniform(0.0, 0.5, size=2)
    targets = [tmp_path / f"run{i}" / "net.zarr" for i in range(len(delays))]
    for target in targets:
        old.write_zarr(target)
    procs = [_writer(folder / "new.zarr", target, "loop") for target in targets]
    for proc, delay in zip(procs, delays):
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(delay))
        os.kill(proc.pid, signal.SIGKILL)
    for proc, target in zip(procs, targets):
        proc.wait(timeout=60)
        assert recover(target) is None  # with RENAME_EXCHANGE the path always exists
        back = read_zarr(target)
        assert _same_network(back, old) or _same_network(back, new)
        old.write_zarr(target)
        assert _leftovers(target.parent) == []


_SLOW_WRITER = """
import sys, time
from grnndata.atomic import atomic_path
with atomic_path(sys.argv[1], "json") as tmp:
    tmp.write_text('{"version": "slow"}')
    print("ready", flush=True)
    time.sleep(120)
"""


def test_a_live_writers_temporary_is_kept_and_a_dead_ones_removed(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"version": 1})
    slow = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SLOW_WRITER), str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert slow.stdout.readline().strip() == "ready"
        live = _leftovers(tmp_path)
        assert len(live) == 1 and f"-{slow.pid}-" in live[0]
        write_json(target, {"version": 2})  # another writer: must not delete the live temporary
        assert _leftovers(tmp_path) == live
    finally:
        slow.kill()
        slow.wait(timeout=30)
    write_json(target, {"version": 3})  # its writer is dead now: removed
    assert _leftovers(tmp_path) == []
    assert target.read_text().count('"version": 3') == 1


# --------------------------------------------------------------------------- process identity
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_process_start_time_tells_a_running_process_from_a_gone_one():
    from grnndata.atomic import process_start_time

    uptime = float(Path("/proc/uptime").read_text().split()[0])
    mine = process_start_time(os.getpid())
    assert mine is not None and 0 <= mine <= uptime
    assert process_start_time(os.getpid()) == mine  # stable: (pid, start) names a process
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start_time(child.pid)
        assert started is not None and mine <= started
        child.kill()
        deadline = time.monotonic() + 10
        while process_start_time(child.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_start_time(child.pid) is None  # exited, not yet reaped: a zombie
    finally:
        child.kill()
        child.wait(timeout=30)
    assert process_start_time(child.pid) is None  # reaped: no such process
    assert process_start_time(2**22 + 12345) is None  # beyond pid_max


# --------------------------------------------------------------------------- missing chunks
def _chunk_objects(array_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in array_dir.rglob("*")
        if p.is_file() and p.name not in (".zarray", ".zattrs", "zarr.json")
    )


@pytest.fixture(scope="module")
def full_store(small_grn, tmp_path_factory) -> Path:
    """A grnndata store with expression, obs, var, a layer and the network."""
    grn = small_grn.copy()
    grn.layers["counts"] = grn.X.copy()
    path = tmp_path_factory.mktemp("full") / "full.zarr"
    grn.write_zarr(path, chunk_size=256, index_chunk_size=256)
    return path


@pytest.mark.parametrize(
    "array",
    [
        "X/data",
        "X/indptr",
        "obs/cell_type/codes",
        "var/_index",
        "layers/counts/indices",
        "varp/GRN/indptr",
        "varp/GRN/indices",
        "varp/GRN/grnndata_column_index/data",
    ],
)
def test_a_missing_chunk_in_any_array_is_an_error_naming_it(full_store, tmp_path, array):
    import shutil

    path = tmp_path / "damaged.zarr"
    shutil.copytree(full_store, path)
    if (path / array / "values").is_dir():  # pandas 3 strings: anndata writes values + mask
        array = f"{array}/values"
    chunks = _chunk_objects(path / array)
    assert chunks, f"{array} has no chunk files"
    chunks[len(chunks) // 2].unlink()
    with pytest.raises(GRNStoreError, match=rf"array '{array}': 1 of its {len(chunks)} chunk"):
        read_zarr(path)
    if array.startswith(("var/", "varp/")):
        with pytest.raises(GRNStoreError, match=rf"array '{array}'"):
            open_zarr(path)
    else:  # the lazy reader never reads expression: it opens, and its queries are right
        assert open_zarr(path).n_vars == 300


def test_a_damaged_chunk_of_the_same_size_fails_the_checksum(full_store, tmp_path):
    import shutil

    path = tmp_path / "flipped.zarr"
    shutil.copytree(full_store, path)
    chunk = _chunk_objects(path / "X" / "data")[0]
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    with pytest.raises(GRNStoreError, match="array 'X/data', chunk object .* fails its checksum"):
        read_zarr(path)


def _plain_store(grn: GRNAnnData, path: Path, chunk: int) -> None:
    """``grn`` written by plain anndata (no grnndata manifest), 1-D arrays in ``chunk``-chunks."""
    import anndata
    import zarr
    from anndata.io import write_elem

    plain = anndata.AnnData(X=grn.X, var=grn.var, varp={"GRN": grn.grn})
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_elem(root, "/", plain, dataset_kwargs={"chunks": (chunk,)})


def test_plain_anndata_stores_are_checked_for_missing_sparse_chunks(small_grn, tmp_path):
    path = tmp_path / "plain.zarr"
    _plain_store(small_grn, path, 64)
    back = read_zarr(path)  # intact: read as before
    assert (back.grn != small_grn.grn).nnz == 0
    import shutil

    for array, reader in (
        ("X/data", read_zarr),
        ("varp/GRN/indices", read_zarr),
        ("varp/GRN/indptr", open_zarr),
    ):
        damaged = tmp_path / f"{array.replace('/', '_')}.zarr"
        shutil.copytree(path, damaged)
        _chunk_objects(damaged / array)[1].unlink()
        with pytest.raises(GRNStoreError, match=rf"chunk\(s\) of {array} are missing"):
            reader(damaged)


def test_leading_all_zero_indptr_chunks_that_zarr_skips_are_not_an_error(small_grn, tmp_path):
    """zarr does not store all-zero chunks: genes without targets first give a legit gap."""
    out_degree = np.asarray((small_grn.grn != 0).sum(1)).ravel()
    order = np.argsort(out_degree, kind="stable")  # non-regulators first
    assert (out_degree[order[:130]] == 0).all()
    reordered = small_grn[:, list(small_grn.var_names[order])].copy()
    path = tmp_path / "leading.zarr"
    _plain_store(reordered, path, 64)
    assert not (path / "varp" / "GRN" / "indptr" / "0").exists()
    assert (read_zarr(path).grn != reordered.grn).nnz == 0
    hub = str(reordered.edges(top_k=1)["regulator"].iloc[0])
    assert open_zarr(path).targets(hub).equals(reordered.targets(hub))


# --------------------------------------------------------------------------- lazy handles
def test_a_lazy_handle_raises_once_its_store_is_replaced(two_versions, tmp_path):
    import anndata

    _, old, new = two_versions
    path = tmp_path / "net.zarr"
    old.write_zarr(path)
    hub = str(old.edges(top_k=1)["regulator"].iloc[0])
    lazy = open_zarr(path)
    assert lazy.targets(hub).equals(old.targets(hub))
    new.write_zarr(path)
    for query in (lambda: lazy.targets(hub), lambda: lazy.get([hub]), lazy.load):
        with pytest.raises(GRNStoreError, match="was replaced .* since it was opened"):
            query()
    assert open_zarr(path).targets(hub).equals(new.targets(hub))
    lazy = open_zarr(path)
    anndata.AnnData(X=old.X, var=old.var, varp={"GRN": old.grn}).write_zarr(path)  # in place
    with pytest.raises(GRNStoreError, match="was replaced"):
        lazy.regulators(hub)


# --------------------------------------------------------------------------- writers validate
def test_writers_refuse_a_network_they_could_not_read_back(small_grn, tmp_path):
    import scipy.sparse as sp

    bad = small_grn.copy()
    matrix = bad.grn.copy()
    matrix.data[3] = np.nan
    bad.varp["GRN"] = matrix  # direct assignment skips the check of .grn = ...
    for write, name in ((bad.write_zarr, "nan.zarr"), (bad.write_h5ad, "nan.h5ad")):
        with pytest.raises(ValueError, match=r"non-finite weight\(s\) \(NaN or inf\)"):
            write(tmp_path / name)
    duplicated = small_grn.copy()
    duplicated.varp["GRN"] = sp.csr_matrix(duplicated.grn)
    names = duplicated.var_names.to_numpy().copy()
    names[1] = names[0]
    duplicated.var.index = names
    with pytest.raises(ValueError, match="must be unique"):
        duplicated.write_zarr(tmp_path / "dup.zarr")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- inputs
def test_integer_gene_ids_against_names_say_the_types_differ(omnipath_tf, caplog):
    import pandas as pd

    from grnndata import from_edges

    genes = sorted(set(omnipath_tf["source"]).union(omnipath_tf["target"]))[:500]
    ids = pd.DataFrame({"source": np.arange(10), "target": np.arange(10, 20)})
    with pytest.raises(ValueError, match="are numbers .* the types differ"):
        from_edges(genes, ids, source="source", target="target")
    mixed = omnipath_tf.head(50)[["source", "target"]].astype(object)
    mixed.loc[0, "source"] = 7157
    with caplog.at_level("WARNING", logger="grnndata.edges"):
        from_edges(genes, mixed, source="source", target="target")
    assert "7157 of type int" in caplog.text and "the types differ" in caplog.text


def test_weights_beyond_float32_warn_or_fail_instead_of_vanishing(omnipath_tf, caplog):
    from grnndata import from_edges

    edges = omnipath_tf.head(200)[["source", "target"]].copy()
    genes = sorted(set(edges["source"]).union(edges["target"]))
    edges["weight"] = 1.0
    edges.loc[5, "weight"] = 1e-50
    with caplog.at_level("WARNING", logger="grnndata.edges"):
        grn = from_edges(genes, edges, source="source", target="target", weight="weight")
    assert "1 edge weight(s) are non-zero but smaller" in caplog.text and "1e-50" in caplog.text
    assert grn.n_edges < len(edges.drop_duplicates(["source", "target"]))
    edges.loc[5, "weight"] = 1e39
    with pytest.raises(ValueError, match="exceed float32's range.*1e\\+39"):
        from_edges(genes, edges, source="source", target="target", weight="weight")
    caplog.clear()
    with caplog.at_level("WARNING", logger="grnndata.edges"):
        empty = from_edges(genes, edges.iloc[:0], source="source", target="target")
    assert empty.n_edges == 0 and "the edge table is empty" in caplog.text


# --------------------------------------------------------------------------- damaged chunks: bit flips
def _flip(path: Path, offset: int, bit: int = 0) -> bytes:
    """Flip one bit of the file ``path`` at ``offset``; returns the original bytes."""
    raw = path.read_bytes()
    damaged = bytearray(raw)
    damaged[offset] ^= 1 << bit
    path.write_bytes(bytes(damaged))
    return raw


def _first_chunk_span(array_dir: Path) -> tuple[Path, int, int, int]:
    """(shard file, offset, size, number of chunks) of the first chunk of a sharded 1-D array,
    from the shard's index (zarr v3 sharding: ``n`` pairs of uint64 offset / size, then a
    CRC-32C, at the end)."""
    import json

    meta = json.loads((array_dir / "zarr.json").read_text())
    sharding = meta["codecs"][0]["configuration"]
    n_chunks = meta["chunk_grid"]["configuration"]["chunk_shape"][0] // sharding["chunk_shape"][0]
    shard = _chunk_objects(array_dir)[0]
    raw = shard.read_bytes()
    index = np.frombuffer(raw[-(16 * n_chunks + 4) : -4], dtype="<u8").reshape(n_chunks, 2)
    return shard, int(index[0, 0]), int(index[0, 1]), int((index[:, 1] > 0).sum())


@pytest.fixture(scope="module")
def first_genes(small_grn) -> dict[str, str]:
    """A regulator whose edges are in the first chunk of the CSR arrays, a target in the first
    chunk of the column index."""
    csr, csc = small_grn.grn, small_grn.grn.tocsc()
    return {
        "regulator": str(small_grn.var_names[int(np.flatnonzero(np.diff(csr.indptr))[0])]),
        "target": str(small_grn.var_names[int(np.flatnonzero(np.diff(csc.indptr))[0])]),
    }


_NETWORK_ARRAYS = {  # array -> the query that decompresses its first chunk
    "varp/GRN/data": "targets",
    "varp/GRN/indices": "targets",
    "varp/GRN/indptr": "targets",
    "varp/GRN/grnndata_column_index/data": "regulators",
    "varp/GRN/grnndata_column_index/indices": "regulators",
    "varp/GRN/grnndata_column_index/indptr": "regulators",
}


@pytest.mark.parametrize("array", sorted(_NETWORK_ARRAYS))
def test_a_flipped_bit_in_a_network_chunk_fails_the_lazy_read_naming_the_array(
    full_store, first_genes, tmp_path, array
):
    """Issue 25: a one-bit flip in a shard of varp/GRN/data, indices, indptr or the column index
    gave a changed weight (or a bare Blosc RuntimeError) to a lazy read."""
    import shutil

    path = tmp_path / "flipped.zarr"
    shutil.copytree(full_store, path)
    query = _NETWORK_ARRAYS[array]
    gene = first_genes["regulator" if query == "targets" else "target"]
    shard, offset, size, n_chunks = _first_chunk_span(path / array)
    assert n_chunks > 1  # the shard holds several chunks: the query reads part of it
    lazy = open_zarr(path)
    original = _flip(shard, offset + size // 2, bit=3)  # inside the first chunk
    with pytest.raises(GRNStoreError, match=rf"array '{array}': a chunk .*fails its CRC-32C"):
        getattr(lazy, query)(gene)
    shard.write_bytes(original)
    assert getattr(lazy, query)(gene).size > 0  # restored: read again
    _flip(shard, len(original) - 10)  # inside the shard's index
    with pytest.raises(GRNStoreError, match=rf"array '{array}'"):
        getattr(open_zarr(path), query)(gene)
    with pytest.raises(GRNStoreError, match=rf"array '{array}'.*checksum"):
        read_zarr(path)


def test_every_bit_flip_in_the_gene_names_is_caught(full_store, small_grn, tmp_path):
    """Issue 25: 22 of 60 flips in var/_index silently renamed genes (CD96 -> CDO6)."""
    import shutil

    path = tmp_path / "names.zarr"
    shutil.copytree(full_store, path)
    index_dir = path / "var" / "_index"
    if (index_dir / "values").is_dir():  # pandas 3 strings: anndata writes values + mask
        index_dir = index_dir / "values"
    (chunk,) = _chunk_objects(index_dir)
    size = chunk.stat().st_size
    rng = np.random.default_rng(25)
    for trial, (offset, bit) in enumerate(zip(rng.integers(0, size, 60), rng.integers(0, 8, 60))):
        original = _flip(chunk, int(offset), int(bit))
        with pytest.raises(GRNStoreError, match=r"array 'var/_index.*fails its checksum"):
            open_zarr(path)
        if trial % 10 == 0:
            with pytest.raises(GRNStoreError, match=r"array 'var/_index.*checksum"):
                read_zarr(path)
        chunk.write_bytes(original)
    assert list(open_zarr(path).var_names) == list(small_grn.var_names)


def test_an_undecodable_chunk_of_a_store_without_checksums_names_its_array(small_grn, tmp_path):
    """Stores of plain anndata have no checksums: a chunk the decoder refuses is still one
    GRNStoreError naming the array (it was a bare RuntimeError from Blosc)."""
    path = tmp_path / "plain.zarr"
    _plain_store(small_grn, path, 64)
    indptr = _chunk_objects(path / "varp" / "GRN" / "indptr")[1]
    indptr.write_bytes(indptr.read_bytes()[:20])  # a truncated compressed chunk
    for reader in (open_zarr, read_zarr):
        with pytest.raises(GRNStoreError, match=r"reading array 'varp/GRN/indptr' failed"):
            reader(path)


def _as_format_1(path: Path) -> None:
    """Rewrite the manifest of the store ``path`` as the previous format wrote it: no
    per-object checksums, no list of arrays whose chunks carry a CRC-32C, and each array's
    CRC-32 chaining its objects' bytes."""
    import zlib

    import zarr

    root = zarr.open_group(str(path), mode="r+")
    manifest = dict(root.attrs["grnndata"])
    manifest["format"] = 1
    del manifest["checksummed_chunks"]
    for name, (n_objects, n_bytes, _) in manifest["arrays"].items():
        attrs = root[name].attrs.asdict()
        attrs.pop("grnndata_objects", None)
        root[name].attrs.clear()
        root[name].attrs.update(attrs)
        chained = 0
        for chunk in sorted(
            _chunk_objects(path / name), key=lambda p: p.relative_to(path).as_posix()
        ):
            chained = zlib.crc32(chunk.read_bytes(), zlib.crc32(chunk.name.encode(), chained))
        manifest["arrays"][name] = [n_objects, n_bytes, chained]
    root.attrs["grnndata"] = manifest


def test_stores_of_the_previous_manifest_format_are_still_checked(
    full_store, small_grn, tmp_path, caplog
):
    """Format 1 (no per-object checksums): arrays of one object are still checked when read,
    verify_zarr checks every array whole, a lazy handle warns about the arrays it cannot check."""
    import shutil

    from grnndata import verify_zarr

    path = tmp_path / "format1.zarr"
    shutil.copytree(full_store, path)
    _as_format_1(path)
    assert verify_zarr(path)["manifest_format"] == 1
    assert open_zarr(path).n_vars == 300
    (chunk,) = _chunk_objects(path / "var" / "_index")
    _flip(chunk, 5)
    with pytest.raises(GRNStoreError, match="array 'var/_index[^']*'.*fails its checksum"):
        open_zarr(path)
    with pytest.raises(GRNStoreError, match="array 'var/_index[^']*'.*different checksum"):
        verify_zarr(path)
    chunked = tmp_path / "format1_v2.zarr"  # one object per chunk: not checked one by one
    small_grn.write_zarr(chunked, chunk_size=256, zarr_format=2)
    _as_format_1(chunked)
    with caplog.at_level("WARNING", logger="grnndata.io.lazy"):
        assert open_zarr(chunked).n_vars == 300
    assert "written by an earlier grnndata" in caplog.text and "grnndata convert" in caplog.text


# --------------------------------------------------------------------------- readers racing writers
def test_a_store_replaced_during_a_lazy_query_says_replaced_not_corrupted(two_versions, tmp_path):
    """Issue 25: a reader racing a writer reported "corrupted" instead of "replaced"."""
    import zarr

    from grnndata.atomic import replace_path

    _, old, new = two_versions
    path, staged = tmp_path / "net.zarr", tmp_path / "staged.zarr"
    old.write_zarr(path)
    new.write_zarr(staged)
    hub = str(old.edges(top_k=1)["regulator"].iloc[0])

    class SwapOnFirstEdgeRead(zarr.storage.WrapperStore):
        """Swaps the new version in (a directory exchange, as a writer does) just before the
        first read of the network's edges."""

        async def get(self, key, prototype, byte_range=None):
            if key.startswith("varp/GRN/indices/c") and staged.exists():
                replace_path(staged, path)
            return await self._store.get(key, prototype, byte_range)

        async def getsize(self, key):
            return await self._store.getsize(key)

    lazy = open_zarr(SwapOnFirstEdgeRead(zarr.storage.LocalStore(str(path), read_only=True)))
    with pytest.raises(GRNStoreError, match="was replaced by a writer while it was being read"):
        lazy.targets(hub)
    assert open_zarr(path).targets(hub).equals(new.targets(hub))


def test_a_store_replaced_during_read_zarr_says_replaced(two_versions, tmp_path, monkeypatch):
    import grnndata.io.zarr as zarr_io
    from grnndata.atomic import replace_path

    _, old, new = two_versions
    path, staged = tmp_path / "net.zarr", tmp_path / "staged.zarr"
    old.write_zarr(path)
    new.write_zarr(staged)
    read = zarr_io.read_dispatched

    def swap_then_read(*args, **kwargs):  # the manifest was read; the data is read after
        replace_path(staged, path)
        return read(*args, **kwargs)

    monkeypatch.setattr(zarr_io, "read_dispatched", swap_then_read)
    with pytest.raises(GRNStoreError, match="was replaced by a writer while it was being read"):
        read_zarr(path)


def test_readers_racing_a_writer_see_one_version_or_replaced_never_corrupted(
    two_versions, tmp_path
):
    """Real processes: a writer rewrites the store in a loop while this process reads it."""
    folder, old, new = two_versions
    path = tmp_path / "net.zarr"
    old.write_zarr(path)
    hub = str(old.edges(top_k=1)["regulator"].iloc[0])
    expected = {"old": old.targets(hub), "new": new.targets(hub)}
    writer = _writer(folder / "new.zarr", path, "loop")
    outcomes: dict[str, int] = {"old": 0, "new": 0, "replaced": 0}
    try:
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                got = open_zarr(path).targets(hub)
                version = "new" if got.equals(expected["new"]) else "old"
                assert got.equals(expected[version])
                outcomes[version] += 1
                back = read_zarr(path)
                assert _same_network(back, new) or _same_network(back, old)
            except GRNStoreError as err:
                assert "was replaced" in str(err), str(err)
                assert "corrupted" not in str(err), str(err)
                outcomes["replaced"] += 1
    finally:
        writer.kill()
        writer.wait(timeout=60)
    assert outcomes["old"] + outcomes["new"] > 0, outcomes


def test_a_damaged_checksum_table_is_itself_detected(full_store, tmp_path):
    """The per-object CRC-32s live in each array's attributes; the manifest guards them."""
    import shutil

    import zarr

    path = tmp_path / "table.zarr"
    shutil.copytree(full_store, path)
    array = zarr.open_group(str(path), mode="r+")["varp/GRN/indices"]
    table = dict(array.attrs["grnndata_objects"])
    key = next(iter(table))
    table[key] ^= 1
    array.attrs["grnndata_objects"] = table
    for reader in (open_zarr, read_zarr):
        with pytest.raises(GRNStoreError, match="checksums recorded with array 'varp/GRN/indices'"):
            reader(path)
