"""Storage: zarr and h5ad round trips, compatibility with plain anndata and original grnndata
files, atomic writes, corrupted stores, and lazy partial reads (real Kang x OmniPath data)."""

from __future__ import annotations

import json
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import grnndata
from grnndata import GRNAnnData, GRNStoreError, open_zarr, read_h5ad, read_zarr
from grnndata.testing import counting_store, stored_bytes


def assert_same(a: GRNAnnData, b: GRNAnnData) -> None:
    assert type(b) is GRNAnnData
    assert list(a.var_names) == list(b.var_names)
    assert list(a.obs_names) == list(b.obs_names)
    assert (a.grn != b.grn).nnz == 0
    assert b.grn.dtype == np.float32
    assert (sp.csr_matrix(a.X) != sp.csr_matrix(b.X)).nnz == 0
    assert a.obs.equals(b.obs)
    assert a.var.equals(b.var)
    assert a.grn_metadata == b.grn_metadata


@pytest.fixture(scope="module")
def kang_zarr(kang_grn, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "kang.zarr"
    kang_grn.write_zarr(path, chunk_size=512)
    return path


def test_zarr_round_trip_is_exact_and_readable_by_plain_anndata(kang_grn, kang_zarr):
    assert_same(kang_grn, read_zarr(kang_zarr))
    plain = anndata.read_zarr(kang_zarr)
    assert type(plain) is anndata.AnnData
    assert (plain.varp["GRN"] != kang_grn.grn).nnz == 0


def test_h5ad_round_trip_is_exact(kang_grn, tmp_path):
    path = tmp_path / "kang.h5ad"
    kang_grn.write_h5ad(path)
    assert_same(kang_grn, read_h5ad(path))
    assert (anndata.read_h5ad(path).varp["GRN"] != kang_grn.grn).nnz == 0
    assert [p.name for p in tmp_path.iterdir()] == ["kang.h5ad"]


def test_stacks_round_trip(kang_grn, tmp_path):
    sub = kang_grn.get(list(kang_grn.var_names[:30]))
    stack = np.stack([sub.grn.toarray(), -sub.grn.toarray(), np.eye(30)], axis=2)
    stacked = GRNAnnData.from_matrix(stack, list(sub.var_names))
    stacked.write_zarr(tmp_path / "s.zarr")
    stacked.write_h5ad(tmp_path / "s.h5ad")
    for back in (read_zarr(tmp_path / "s.zarr"), read_h5ad(tmp_path / "s.h5ad")):
        np.testing.assert_array_equal(back.grn_stack, stack.astype(np.float32))
    lazy = open_zarr(tmp_path / "s.zarr")
    np.testing.assert_array_equal(lazy.get([sub.var_names[2]]).grn_stack, stack[[2]][:, [2]])
    with pytest.raises(ValueError, match="stack of 3"):
        lazy.targets(sub.var_names[0])


def test_files_from_plain_anndata_and_original_grnndata_load(kang_small, kang_grn, tmp_path):
    # original grnndata 1.x wrote an AnnData (subclass) to h5ad with a dense varp["GRN"]
    original = kang_small.copy()
    original.varp["GRN"] = kang_grn.grn.toarray()
    original.write_h5ad(tmp_path / "original.h5ad")
    loaded = read_h5ad(tmp_path / "original.h5ad")
    assert (loaded.grn != kang_grn.grn).nnz == 0
    plain = kang_small.copy()
    plain.varp["GRN"] = kang_grn.grn
    plain.write_zarr(tmp_path / "plain.zarr")
    assert (read_zarr(tmp_path / "plain.zarr").grn != kang_grn.grn).nnz == 0
    lazy = open_zarr(tmp_path / "plain.zarr")
    gene = kang_grn.edges(top_k=1)["target"].astype(str).iloc[0]
    assert lazy.regulators(gene).equals(kang_grn.regulators(gene))


def test_h5ad_without_a_network_is_a_clear_error(kang_small, tmp_path):
    kang_small.write_h5ad(tmp_path / "plain.h5ad")
    with pytest.raises(
        GRNStoreError, match=r"has no network in varp\['GRN'\] \(its varp keys: \[\]\)"
    ):
        read_h5ad(tmp_path / "plain.h5ad")
    with pytest.raises(FileNotFoundError):
        read_h5ad(tmp_path / "missing.h5ad")
    (tmp_path / "broken.h5ad").write_bytes((tmp_path / "plain.h5ad").read_bytes()[:2000])
    with pytest.raises(GRNStoreError, match="truncated or corrupted"):
        read_h5ad(tmp_path / "broken.h5ad")


def test_overwriting_replaces_and_refuses_non_stores(kang_grn, tmp_path):
    path = tmp_path / "net.zarr"
    kang_grn.write_zarr(path)
    smaller = kang_grn.get(list(kang_grn.var_names[:100]))
    smaller.write_zarr(path)
    assert read_zarr(path).n_vars == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.zarr"]
    folder = tmp_path / "my_results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a zarr store"):
        kang_grn.write_zarr(folder)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_a_crash_mid_write_leaves_the_previous_file_intact(kang_grn, tmp_path, monkeypatch):
    zarr_path, h5ad_path = tmp_path / "net.zarr", tmp_path / "net.h5ad"
    kang_grn.write_zarr(zarr_path)
    kang_grn.write_h5ad(h5ad_path)
    other = kang_grn.get(list(kang_grn.var_names[:50]))

    real_write_elem = grnndata.io.zarr.write_elem

    def crash_on_network(group, key, value, **kwargs):
        if key == "GRN":
            real_write_elem(group, key, value, **kwargs)
            raise OSError("disk full (simulated)")
        return real_write_elem(group, key, value, **kwargs)

    monkeypatch.setattr(grnndata.io.zarr, "write_elem", crash_on_network)
    with pytest.raises(OSError, match="simulated"):
        other.write_zarr(zarr_path)

    def crash_h5ad(adata, filename, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(grnndata.io.h5ad, "write_anndata_h5ad", crash_h5ad)
    with pytest.raises(OSError, match="simulated"):
        other.write_h5ad(h5ad_path)
    monkeypatch.undo()
    assert_same(kang_grn, read_zarr(zarr_path))
    assert_same(kang_grn, read_h5ad(h5ad_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.h5ad", "net.zarr"]


def _chunk_files(array_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in array_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "zarr.json"
    )


def test_corrupted_or_truncated_stores_are_detected(kang_grn, tmp_path):
    import shutil

    source = tmp_path / "good.zarr"  # format 2: one file per chunk
    kang_grn.write_zarr(source, chunk_size=256, index_chunk_size=256, zarr_format=2)
    network = Path("varp") / "GRN"
    index = network / "grnndata_column_index"
    cases = {
        "missing_index_data_chunk": lambda p: _chunk_files(p / index / "data")[1].unlink(),
        "missing_index_indices_chunk": lambda p: _chunk_files(p / index / "indices")[2].unlink(),
        "truncated_index_chunk": lambda p: _chunk_files(p / index / "data")[0].write_bytes(
            b"\x00\x01"
        ),
        "missing_row_data_chunk": lambda p: _chunk_files(p / network / "data")[3].unlink(),
        "missing_array": lambda p: shutil.rmtree(p / network / "indptr"),
    }
    for name, damage in cases.items():
        path = tmp_path / f"{name}.zarr"
        shutil.copytree(source, path)
        damage(path)
        with pytest.raises(GRNStoreError, match="corrupted|truncated|no network"):
            read_zarr(path)
    with pytest.raises(FileNotFoundError):
        read_zarr(tmp_path / "nothing.zarr")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(GRNStoreError):
        open_zarr(tmp_path / "empty_dir")


def test_lazy_queries_equal_the_loaded_network(kang_grn, kang_zarr):
    lazy = open_zarr(kang_zarr)
    assert list(lazy.var_names) == list(kang_grn.var_names)
    assert lazy.nnz == kang_grn.n_edges
    hubs = kang_grn.edges(top_k=40)
    for gene in hubs["regulator"].astype(str).unique()[:5]:
        assert lazy.targets(gene).equals(kang_grn.targets(gene))
    for gene in hubs["target"].astype(str).unique()[:5]:
        assert lazy.regulators(gene).equals(kang_grn.regulators(gene))
    rng = np.random.default_rng(0)
    genes = list(rng.choice(kang_grn.var_names, 100, replace=False))
    genes[:3] = list(hubs["regulator"].astype(str).unique()[:3])
    genes = list(dict.fromkeys(genes))
    sub, expected = lazy.get(genes), kang_grn.get(genes)
    assert list(sub.var_names) == genes
    assert (sub.grn != expected.grn).nnz == 0
    assert sub.var.equals(expected.var)
    assert sub.grn_metadata["method"] == "omnipath"
    assert_same(kang_grn, lazy.load())
    with pytest.raises(KeyError, match="NOT_A_GENE"):
        lazy.targets("NOT_A_GENE")


def test_lazy_queries_read_a_small_fraction_of_the_store(omnipath_grn, tmp_path):
    path = tmp_path / "omnipath.zarr"
    omnipath_grn.write_zarr(path, chunk_size=1024, index_chunk_size=1024)
    network_bytes = stored_bytes(path / "varp" / "GRN")
    store = counting_store(path)
    lazy = open_zarr(store)
    hub = omnipath_grn.edges(top_k=1)
    for query, gene in (
        (lazy.targets, hub["regulator"].iloc[0]),
        (lazy.regulators, hub["target"].iloc[0]),
    ):
        before = store.bytes_read
        result = query(str(gene))
        assert len(result) > 0
        assert store.bytes_read - before < 0.05 * network_bytes


def test_lazy_reads_of_a_damaged_store_raise_instead_of_dropping_edges(kang_grn, tmp_path):
    path = tmp_path / "damaged.zarr"  # format 2: one file per chunk
    kang_grn.write_zarr(path, chunk_size=256, zarr_format=2)
    lazy = open_zarr(path)  # opened intact, damaged afterwards
    _chunk_files(path / "varp" / "GRN" / "data")[1].unlink()  # edges 256..511 now read as 0
    indptr = kang_grn.grn.indptr
    row = int(np.flatnonzero((indptr[:-1] < 512) & (indptr[1:] > 256))[0])
    with pytest.raises(
        GRNStoreError, match="array 'varp/GRN/data': its chunk object '1' is missing"
    ):
        lazy.targets(kang_grn.var_names[row])
    with pytest.raises(GRNStoreError, match=r"array 'varp/GRN/data': 1 of its \d+ chunk.*e.g. '1'"):
        open_zarr(path)  # opening checks the chunks against the manifest
    _chunk_files(path / "varp" / "GRN" / "indices")[0].write_bytes(b"\x00\x01")  # undecodable
    with pytest.raises(
        GRNStoreError, match="'varp/GRN/indices', chunk object '0' fails its checksum"
    ):
        lazy.targets(kang_grn.var_names[int(np.flatnonzero(indptr[1:] > 0)[0])])
    untouched = int(np.flatnonzero(indptr[1:] > 1024)[0]) + 1
    assert lazy.targets(kang_grn.var_names[untouched]).equals(
        kang_grn.targets(kang_grn.var_names[untouched])
    )


@pytest.mark.skipif(not grnndata.io.zarr.ZARR3, reason="zarr format 3 needs zarr>=3")
def test_zarr_format_3_sharded_store_round_trips_and_reads_lazily(kang_grn, tmp_path):
    path = tmp_path / "kang_v3.zarr"
    kang_grn.write_zarr(path, chunk_size=256, index_chunk_size=1024, zarr_format=3)
    assert (path / "zarr.json").exists()
    assert_same(kang_grn, read_zarr(path))
    assert (anndata.read_zarr(path).varp["GRN"] != kang_grn.grn).nnz == 0
    lazy = open_zarr(path)
    hub = kang_grn.edges(top_k=1)
    regulator, target = str(hub["regulator"].iloc[0]), str(hub["target"].iloc[0])
    assert lazy.targets(regulator).equals(kang_grn.targets(regulator))
    assert lazy.regulators(target).equals(kang_grn.regulators(target))
    with pytest.raises(ValueError, match="must be 2 or 3"):
        kang_grn.write_zarr(tmp_path / "bad.zarr", zarr_format=4)


def test_the_default_store_is_sharded_zarr_v3_with_one_file_per_network_array(kang_grn, tmp_path):
    path = tmp_path / "default.zarr"
    kang_grn.write_zarr(path)
    assert json.loads((path / "zarr.json").read_text())["zarr_format"] == 3
    for array in ("indices", "data", "grnndata_column_index/indices"):
        meta = json.loads((path / "varp" / "GRN" / array / "zarr.json").read_text())
        assert meta["codecs"][0]["name"] == "sharding_indexed"
        inner = meta["codecs"][0]["configuration"]["chunk_shape"]
        assert inner == [grnndata.io.DEFAULT_CHUNK_SIZE[3]], array
        assert len(_chunk_files(path / "varp" / "GRN" / array)) == 1
    assert_same(kang_grn, read_zarr(path))
    assert (anndata.read_zarr(path).varp["GRN"] != kang_grn.grn).nnz == 0  # plain anndata


def test_a_damaged_shard_is_detected_by_full_and_lazy_reads(kang_grn, tmp_path, monkeypatch):
    monkeypatch.setattr(grnndata.io.zarr, "SHARD_ELEMENTS", 1024)  # several shards per array
    path = tmp_path / "sharded.zarr"
    kang_grn.write_zarr(path, chunk_size=256, index_chunk_size=256)
    shards = _chunk_files(path / "varp" / "GRN" / "data")
    assert len(shards) == -(-kang_grn.n_edges // 1024)
    lazy = open_zarr(path)  # opened intact, damaged afterwards
    shards[1].unlink()  # edges 1024..2047 now read as 0
    indptr = kang_grn.grn.indptr
    row = int(np.flatnonzero((indptr[:-1] < 2048) & (indptr[1:] > 1024))[0])
    with pytest.raises(GRNStoreError, match="array 'varp/GRN/data': its chunk object 'c/1' is"):
        lazy.targets(kang_grn.var_names[row])
    with pytest.raises(GRNStoreError, match=rf"array 'varp/GRN/data': 1 of its {len(shards)}"):
        open_zarr(path)
    with pytest.raises(GRNStoreError, match="varp/GRN/data"):
        read_zarr(path)
    kang_grn.write_zarr(path, chunk_size=256, index_chunk_size=256)  # intact again
    index_shard = _chunk_files(path / "varp" / "GRN" / "grnndata_column_index" / "indices")[0]
    index_shard.write_bytes(index_shard.read_bytes()[:-100])  # truncated: its index is gone
    with pytest.raises(GRNStoreError, match="grnndata_column_index/indices"):
        open_zarr(path)


def test_any_anndata_with_its_network_under_any_varp_key_is_read(kang_grn, tmp_path):
    """The convention: a network in varp[key] of any AnnData (key="GRN" by default); readers,
    conversion and analysis take key=, and a missing key names the keys varp has."""
    from grnndata.analysis import centrality, compare

    plain = anndata.AnnData(X=kang_grn.X, obs=kang_grn.obs, var=kang_grn.var)
    plain.varp["scprint_grn"] = kang_grn.grn
    plain.write_h5ad(tmp_path / "plain.h5ad")
    plain.write_zarr(tmp_path / "plain.zarr")
    readers = {
        "h5ad": lambda **kw: read_h5ad(tmp_path / "plain.h5ad", **kw),
        "zarr": lambda **kw: read_zarr(tmp_path / "plain.zarr", **kw),
        "lazy": lambda **kw: open_zarr(tmp_path / "plain.zarr", **kw).load(),
    }
    for name, read in readers.items():
        with pytest.raises(
            GRNStoreError, match=r"no network in varp\['GRN'\] \(its varp keys: \['scprint_grn'\]\)"
        ):
            read()
        back = read(key="scprint_grn")
        assert (back.grn != kang_grn.grn).nnz == 0, name
        assert list(back.varp) == ["GRN"] and back.n_obs == kang_grn.n_obs
    lazy = open_zarr(tmp_path / "plain.zarr", key="scprint_grn")
    hub = kang_grn.edges(top_k=1)
    regulator, target = str(hub["regulator"].iloc[0]), str(hub["target"].iloc[0])
    assert lazy.targets(regulator).equals(kang_grn.targets(regulator))
    assert lazy.regulators(target).equals(kang_grn.regulators(target))  # no column index: a scan
    assert (lazy.degrees()["n_targets"].to_numpy() == np.diff(kang_grn.grn.indptr)).all()
    expected = centrality(kang_grn)
    pd.testing.assert_frame_equal(centrality(plain, key="scprint_grn"), expected)
    assert (grnndata.as_network(plain, key="scprint_grn").matrix != kang_grn.grn).nnz == 0
    assert GRNAnnData.from_adata(plain, key="scprint_grn").n_edges == kang_grn.n_edges
    assert compare(plain, plain, key="scprint_grn")["jaccard"] == 1.0
    with pytest.raises(ValueError, match=r"varp\['nope'\] \(its varp keys: \['GRN'\]\)"):
        compare(kang_grn, kang_grn, key="nope")


def test_narrow_sparse_indices_are_read_as_int32(kang_grn, kang_zarr):
    """zarr v3 stores hold sparse indices as uint16 (half the bytes); scipy warns on those
    (Python 3.13's newest scipy): readers give int32."""
    import warnings

    back = read_zarr(kang_zarr)
    assert back.X.indices.dtype == np.int32 and back.grn.indices.dtype == np.int32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (sp.csr_matrix(back.X) != sp.csr_matrix(kang_grn.X)).nnz == 0
