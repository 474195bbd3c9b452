"""Property tests (hypothesis) on synthetic networks: edge-list and storage round trips and
slicing consistency. Synthetic data: random sparse matrices and gene names drawn by hypothesis."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grnndata import GRNAnnData, from_edges, open_zarr, read_h5ad, read_zarr

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def networks(draw, max_genes: int = 12) -> GRNAnnData:
    """A random synthetic network with 1..max_genes genes and finite non-zero weights."""
    n = draw(st.integers(1, max_genes))
    weights = draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(-1e3, 1e3, allow_nan=False, width=32)),
            min_size=n * n,
            max_size=n * n,
        )
    )
    genes = [f"G{i}" for i in draw(st.permutations(range(n)))]
    return GRNAnnData.from_matrix(np.asarray(weights, np.float32).reshape(n, n), genes)


@SETTINGS
@given(networks())
def test_edges_round_trip_through_from_edges(grn):
    frame = grn.edges()
    assert len(frame) == grn.n_edges
    back = from_edges(list(grn.var_names), frame, weight="weight", strict=True, duplicates="error")
    assert (back.grn != grn.grn).nnz == 0


@SETTINGS
@given(networks(), st.data())
def test_gene_slicing_equals_dense_indexing(grn, data):
    n = grn.n_vars
    picked = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    genes = list(grn.var_names[picked])
    dense = grn.grn.toarray()
    np.testing.assert_array_equal(grn.get(genes).grn.toarray(), dense[np.ix_(picked, picked)])
    np.testing.assert_array_equal(grn[:, picked].grn.toarray(), dense[np.ix_(picked, picked)])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.integers(1, 64))
def test_storage_round_trips_and_lazy_reads(grn, chunk_size):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        grn.write_zarr(root / "g.zarr", chunk_size=chunk_size, index_chunk_size=65 - chunk_size)
        grn.write_h5ad(root / "g.h5ad")
        for back in (read_zarr(root / "g.zarr"), read_h5ad(root / "g.h5ad")):
            assert list(back.var_names) == list(grn.var_names)
            assert (back.grn != grn.grn).nnz == 0
        lazy = open_zarr(root / "g.zarr")
        for gene in grn.var_names[:3]:
            pd.testing.assert_series_equal(lazy.targets(gene), grn.targets(gene))
            pd.testing.assert_series_equal(lazy.regulators(gene), grn.regulators(gene))
        genes = list(grn.var_names[::-1])
        assert (lazy.get(genes).grn != grn.get(genes).grn).nnz == 0


@SETTINGS
@given(networks())
def test_per_regulator_top_k_keeps_each_rows_largest(grn):
    dense = grn.grn.toarray()
    frame = grn.edges(per_regulator_top_k=2)
    for gene, group in frame.groupby("regulator", observed=True):
        row = dense[grn.var_names.get_loc(gene)]
        largest = np.sort(row[row != 0])[::-1][:2]
        np.testing.assert_array_equal(np.sort(group["weight"].to_numpy())[::-1], largest)


def test_sparse_input_formats_are_equivalent():
    """Synthetic: the same matrix as COO, CSC, CSR or dense gives one network."""
    matrix = sp.random(30, 30, density=0.2, random_state=3, dtype=np.float32)
    genes = [f"G{i}" for i in range(30)]
    reference = GRNAnnData.from_matrix(matrix.tocsr(), genes).grn
    for variant in (
        matrix.tocoo(),
        matrix.tocsc(),
        matrix.toarray(),
        np.asmatrix(matrix.toarray()),
    ):
        assert (GRNAnnData.from_matrix(variant, genes).grn != reference).nnz == 0
