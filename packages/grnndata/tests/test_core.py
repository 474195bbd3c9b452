"""GRNAnnData: construction, validation, access, slicing and edge lists on real data (Kang PBMC
genes x OmniPath transcriptional edges)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import grnndata
from grnndata import GRNAnnData, from_edges


def _expected_pairs(omnipath_tf: pd.DataFrame, genes: pd.Index, rule: str) -> pd.Series:
    """Independent pandas computation of the merged (regulator, target) -> weight table."""
    known = omnipath_tf[omnipath_tf["source"].isin(genes) & omnipath_tf["target"].isin(genes)]
    merged = known.groupby(["source", "target"])["n_sources"].agg(rule).astype(np.float32)
    return merged[merged != 0]


def test_from_edges_keeps_exactly_the_edges_between_known_genes(kang_grn, omnipath_tf):
    expected = _expected_pairs(omnipath_tf, kang_grn.var_names, "max")
    assert kang_grn.n_edges == len(expected)
    got = kang_grn.edges().set_index(["regulator", "target"])["weight"]
    got.index = got.index.set_levels([lvl.astype(str) for lvl in got.index.levels])
    pd.testing.assert_series_equal(
        got.sort_index(), expected.sort_index(), check_names=False, check_index_type=False
    )
    meta = kang_grn.uns["grn"]
    assert meta["n_edges_input"] == len(omnipath_tf)
    n_known = omnipath_tf["source"].isin(kang_grn.var_names) & omnipath_tf["target"].isin(
        kang_grn.var_names
    )
    assert meta["n_edges_unknown_genes"] == int((~n_known).sum())


@pytest.mark.parametrize("rule", ["sum", "mean", "min", "first", "last"])
def test_duplicate_edges_follow_the_documented_rule(kang_small, omnipath_tf, rule):
    grn = from_edges(
        kang_small.var_names, omnipath_tf, "source", "target", "n_sources", duplicates=rule
    )
    expected = _expected_pairs(omnipath_tf, grn.var_names, rule)
    assert grn.n_edges == len(expected)
    frame = grn.edges()
    got = pd.Series(
        frame["weight"].to_numpy(),
        index=pd.MultiIndex.from_arrays(
            [frame["regulator"].astype(str), frame["target"].astype(str)]
        ),
    )
    np.testing.assert_allclose(got.sort_index().to_numpy(), expected.sort_index().to_numpy())


def test_duplicates_error_rule_names_a_pair(kang_small, omnipath_tf):
    with pytest.raises(ValueError, match="duplicated edge"):
        from_edges(kang_small.var_names, omnipath_tf, "source", "target", duplicates="error")


def test_unknown_genes_are_reported_or_raised(kang_small, omnipath_tf, caplog):
    with pytest.raises(ValueError, match=r"edges name \d+ gene\(s\) absent.*strict=False"):
        from_edges(kang_small.var_names, omnipath_tf, "source", "target", strict=True)
    with caplog.at_level("WARNING", logger="grnndata.edges"):
        from_edges(kang_small.var_names, omnipath_tf.head(500), "source", "target")
    assert f"absent from the {kang_small.n_vars} network genes" in caplog.text


def test_from_edges_rejects_bad_tables(kang_small, omnipath_tf):
    with pytest.raises(KeyError, match="no column"):
        from_edges(kang_small.var_names, omnipath_tf, source="regulator")
    bad = omnipath_tf.head(10).assign(w=np.r_[np.nan, np.ones(9)])
    with pytest.raises(ValueError, match="NaN or inf"):
        from_edges(kang_small.var_names, bad, "source", "target", "w")
    with pytest.raises(ValueError, match="not a rule"):
        from_edges(kang_small.var_names, omnipath_tf, "source", "target", duplicates="median")


def test_from_edges_keeps_the_expression_of_an_anndata(kang_grn, kang_small):
    assert kang_grn.shape == kang_small.shape
    assert (kang_grn.X != kang_small.X).nnz == 0
    assert kang_grn.obs["cell_type"].equals(kang_small.obs["cell_type"])


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.ones((3, 4)), "must be square"),
        (np.ones((5, 5)), r"has shape \(5, 5\) but the object has 4 genes"),
        (np.array([[0, np.inf, 0, 0]] * 4), "non-finite"),
        (sp.csr_matrix(np.array([[np.nan, 0, 0, 0]] * 4)), "non-finite"),
        (np.array([["a"] * 4] * 4), "dtype"),
        (np.ones((4, 4, 2, 1)), "dimension"),
    ],
)
def test_invalid_networks_raise_a_specific_error(matrix, message):
    grn = GRNAnnData.from_matrix(np.eye(4), ["A", "B", "C", "D"])
    with pytest.raises(ValueError, match=message):
        grn.grn = matrix
    with pytest.raises(ValueError, match=message):
        GRNAnnData.from_matrix(matrix, ["A", "B", "C", "D"])


def test_duplicate_gene_names_are_refused():
    with (
        pytest.warns(UserWarning, match="not unique"),
        pytest.raises(ValueError, match=r"1 duplicated, e.g. \['TP53'\]"),
    ):
        GRNAnnData.from_matrix(sp.eye(3), ["TP53", "GATA1", "TP53"])


def test_a_wrong_orientation_is_refused():
    with pytest.raises(ValueError, match="transpose"):
        GRNAnnData(
            var=pd.DataFrame(index=["A", "B"]), uns={"grn": {"orientation": "targets x regulators"}}
        )


def test_non_dict_network_metadata_is_refused():
    with pytest.raises(ValueError, match=r"uns\['grn'\] must be a dict"):
        GRNAnnData(var=pd.DataFrame(index=["A", "B"]), uns={"grn": "scenic"})


def test_from_adata_requires_a_network(kang_small):
    with pytest.raises(ValueError, match=r"no network in varp\['GRN'\] \(its varp keys: \[\]\)"):
        GRNAnnData.from_adata(kang_small)


def test_targets_and_regulators_match_the_matrix(kang_grn):
    dense = kang_grn.grn.tocsc()
    for gene in ("STAT1", "IRF1", "SPI1"):
        j = kang_grn.var_names.get_loc(gene)
        targets = kang_grn.targets(gene)
        row = kang_grn.grn[j]
        assert set(targets.index) == set(kang_grn.var_names[row.indices])
        assert (np.diff(targets.to_numpy()) <= 0).all()
        regs = kang_grn.regulators(gene)
        column = dense[:, j]
        assert set(regs.index) == set(kang_grn.var_names[column.indices])
        np.testing.assert_array_equal(
            np.sort(regs.to_numpy()), np.sort(column.data.astype(np.float32))
        )
    with pytest.raises(KeyError, match="NOT_A_GENE"):
        kang_grn.targets("NOT_A_GENE")


def test_get_keeps_caller_order_and_expression(kang_grn):
    genes = ["STAT1", "IRF1", "SPI1", "CD14", "IRF7", "ISG15"]
    sub = kang_grn.get(genes)
    assert list(sub.var_names) == genes
    positions = kang_grn.var_names.get_indexer(genes)
    np.testing.assert_array_equal(
        sub.grn.toarray(), kang_grn.grn[positions][:, positions].toarray()
    )
    assert (sub.X != kang_grn.X[:, positions]).nnz == 0
    assert sub.n_obs == kang_grn.n_obs
    with pytest.raises(KeyError, match="1 requested gene"):
        kang_grn.get(["STAT1", "NOPE"])
    with pytest.raises(ValueError, match="unique"):
        kang_grn.get(["STAT1", "STAT1"])


def test_slicing_cells_keeps_the_whole_network(kang_grn):
    nk = kang_grn[kang_grn.obs["cell_type"] == "NK cells"]
    assert isinstance(nk, GRNAnnData)
    assert nk.n_obs == int((kang_grn.obs["cell_type"] == "NK cells").sum())
    assert (nk.grn != kang_grn.grn).nnz == 0


def test_slicing_genes_gives_the_sub_network(kang_grn):
    mask = kang_grn.var_names.str.startswith("S")
    sub = kang_grn[:50, mask]
    expected = kang_grn.grn[mask][:, mask]
    assert sub.shape == (50, int(mask.sum()))
    assert (sub.grn != expected).nnz == 0


def test_copy_is_independent(kang_grn):
    copy = kang_grn.copy()
    assert isinstance(copy, GRNAnnData)
    copy.grn = sp.csr_matrix(copy.grn.shape, dtype=np.float32)
    assert copy.n_edges == 0
    assert kang_grn.n_edges > 0


def test_edges_filters(kang_grn):
    every = kang_grn.edges()
    assert list(every.columns) == ["regulator", "target", "weight"]
    assert (np.diff(every["weight"].to_numpy()) <= 0).all()
    strong = kang_grn.edges(min_weight=3)
    assert len(strong) == int((kang_grn.grn.data >= 3).sum())
    top = kang_grn.edges(top_k=25)
    assert len(top) == 25
    np.testing.assert_array_equal(top["weight"].to_numpy(), np.sort(kang_grn.grn.data)[::-1][:25])
    per = kang_grn.edges(per_regulator_top_k=2)
    out_degree = np.diff(kang_grn.grn.indptr)
    assert len(per) == int(np.minimum(out_degree, 2).sum())
    assert per.groupby("regulator", observed=True).size().max() == 2
    with pytest.raises(ValueError, match="non-negative integer"):
        kang_grn.edges(top_k=-1)


def test_set_metadata_records_provenance(kang_grn):
    meta = kang_grn.grn_metadata
    assert meta["method"] == "omnipath"
    assert meta["parameters"] == {"type": "transcriptional", "weight": "n_sources"}
    assert meta["organism"] == "human"
    assert meta["orientation"] == "regulators x targets"
    assert meta["versions"]["grnndata"] == grnndata.__version__
    assert meta["n_edges_input"] > 0
    with pytest.raises(ValueError, match="non-empty string"):
        kang_grn.copy().set_metadata("")
    with pytest.raises(ValueError, match="JSON"):
        kang_grn.copy().set_metadata("x", {"f": object()})


def test_networkx_round_trip(kang_grn):
    sub = kang_grn.get(list(kang_grn.edges(top_k=200)["regulator"].astype(str).unique()))
    graph = sub.to_networkx()
    assert graph.number_of_edges() == sub.n_edges
    back = GRNAnnData.from_networkx(graph)
    assert list(back.var_names) == list(sub.var_names)
    assert (back.grn != sub.grn).nnz == 0
    reference = nx.to_scipy_sparse_array(graph, nodelist=list(sub.var_names), dtype=np.float32)
    assert (sp.csr_matrix(reference) != sub.grn).nnz == 0


def _hub_genes(grn: GRNAnnData, k: int) -> list[str]:
    """The ``k`` genes with most edges (in + out), in decreasing order."""
    degree = np.diff(grn.grn.indptr) + np.bincount(grn.grn.indices, minlength=grn.n_vars)
    return list(grn.var_names[np.argsort(-degree, kind="stable")[:k]])


def test_frame_and_scipy_interop(kang_grn):
    genes = _hub_genes(kang_grn, 5)
    sub = kang_grn.get(genes)
    assert sub.n_edges > 0
    frame = sub.to_frame()
    assert frame.loc[genes[0], genes[1]] == sub.grn[0, 1]
    shuffled = frame.loc[::-1, genes[::-1]]
    back = GRNAnnData.from_frame(shuffled)
    assert back.get(list(sub.var_names)).to_frame().equals(frame)
    assert (sub.to_scipy("coo").tocsr() != sub.grn).nnz == 0
    with pytest.raises(ValueError, match="limited to"):
        kang_grn.to_frame(max_genes=100)
    with pytest.raises(ValueError, match="same genes"):
        GRNAnnData.from_frame(pd.DataFrame(np.eye(2), index=["A", "B"], columns=["A", "C"]))


def test_three_d_stacks_are_kept_and_sliced(kang_grn):
    sub = kang_grn.get(_hub_genes(kang_grn, 4))
    assert sub.n_edges > 0
    stack = np.stack([sub.grn.toarray(), 2 * sub.grn.toarray()], axis=2)
    stacked = GRNAnnData.from_matrix(stack, list(sub.var_names))
    assert stacked.is_stack
    with pytest.raises(ValueError, match="stack of 2"):
        _ = stacked.grn
    second = stacked.select_network(1)
    np.testing.assert_array_equal(second.grn.toarray(), 2 * sub.grn.toarray())
    two = stacked.get([sub.var_names[3], sub.var_names[0]])
    np.testing.assert_array_equal(two.grn_stack, stack[[3, 0]][:, [3, 0]])
