"""Analysis: centralities against networkx, communities, enrichment against scipy's reference
tests and known biology (Kang NK cells vs cell-type markers), compare and merge (real data)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from grnndata import GRNAnnData, from_edges
from grnndata.analysis import (
    benjamini_hochberg,
    centrality,
    communities,
    compare,
    hypergeometric_enrichment,
    merge,
    preranked_enrichment,
    read_gmt,
)


@pytest.fixture(scope="module")
def nk_score(kang) -> pd.Series:
    """log fold change of mean counts, NK cells vs all other Kang cells."""
    nk = (kang.obs["cell_type"] == "NK cells").to_numpy()
    inside = np.asarray(kang.X[nk].mean(axis=0)).ravel()
    outside = np.asarray(kang.X[~nk].mean(axis=0)).ravel()
    return pd.Series(np.log1p(inside) - np.log1p(outside), index=kang.var_names)


def test_read_gmt_reads_every_line_and_renames_repeated_names(markers_path):
    lines = [line for line in markers_path.read_text().splitlines() if line.strip()]
    sets = read_gmt(markers_path)
    assert len(sets) == len(lines)
    first = lines[0].split("\t")
    assert sets[first[0]] == list(dict.fromkeys(g for g in first[2:] if g))
    assert "Mast cells (Immune system)" in sets and "Mast cells" not in sets
    merged = read_gmt(markers_path, duplicate_names="merge")
    assert len(merged) < len(sets)
    with pytest.raises(ValueError, match="appear on several lines"):
        read_gmt(markers_path, duplicate_names="error")


def test_read_gmt_rejects_a_malformed_line(tmp_path):
    path = tmp_path / "bad.gmt"
    path.write_text("setA\tdesc\tG1\tG2\nbroken-line-without-tabs\n")
    with pytest.raises(ValueError, match="bad.gmt:2"):
        read_gmt(path)


def test_hypergeometric_matches_fisher_exact_and_finds_nk_markers(nk_score, markers, kang):
    query = list(nk_score.sort_values(ascending=False).index[:50])
    result = hypergeometric_enrichment(query, markers, kang.var_names)
    assert result.loc[0, "set"] == "Natural killer cells"
    assert (np.diff(result["pvalue"]) >= 0).all()
    universe = set(kang.var_names)
    for _, row in result.head(10).iterrows():
        members = {g for g in markers[row["set"]] if g in universe}
        k, n_set, n_query = row["overlap"], len(members), len(query)
        assert row["set_size"] == n_set
        assert k == len(members & set(query))
        table = [[k, n_query - k], [n_set - k, len(universe) - n_set - n_query + k]]
        odds, p = stats.fisher_exact(table, alternative="greater")
        assert row["pvalue"] == pytest.approx(p, rel=1e-9)
        assert row["odds_ratio"] == pytest.approx(odds, rel=1e-9)
    np.testing.assert_allclose(
        result["fdr"], stats.false_discovery_control(result["pvalue"].to_numpy()), rtol=1e-12
    )


def test_benjamini_hochberg_equals_scipy_and_validates():
    p = np.random.default_rng(1).uniform(size=200) ** 3  # synthetic p-values
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg(np.array([0.1, 1.5]))


def test_preranked_matches_mann_whitney_and_ranks_nk_first(nk_score, markers):
    result = preranked_enrichment(nk_score, markers, min_size=5)
    assert result.loc[0, "set"] == "Natural killer cells"
    assert result.loc[0, "fdr"] < 0.01
    assert result.loc[0, "auc"] > 0.9
    index = set(nk_score.index)
    for _, row in result.head(6).iterrows():
        members = [g for g in dict.fromkeys(markers[row["set"]]) if g in index]
        inside = nk_score[members].to_numpy()
        outside = nk_score.drop(members).to_numpy()
        ref = stats.mannwhitneyu(inside, outside, alternative="greater", method="asymptotic")
        assert row["statistic"] == pytest.approx(ref.statistic)
        assert row["pvalue"] == pytest.approx(ref.pvalue, rel=1e-6)
    two_sided = preranked_enrichment(nk_score, markers, alternative="two-sided")
    row = two_sided.set_index("set").loc["Natural killer cells"]
    members = [g for g in dict.fromkeys(markers["Natural killer cells"]) if g in index]
    ref = stats.mannwhitneyu(
        nk_score[members], nk_score.drop(members), alternative="two-sided", method="asymptotic"
    )
    assert row["pvalue"] == pytest.approx(ref.pvalue, rel=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        preranked_enrichment(nk_score.where(nk_score.index != "NKG7"), markers)


def test_centralities_match_networkx(kang_grn):
    graph = kang_grn.to_networkx()
    table = centrality(kang_grn)
    assert list(table.index) == list(kang_grn.var_names)
    degree = pd.Series(dict(graph.degree()))
    in_strength = pd.Series(dict(graph.in_degree(weight="weight")))
    assert (table["degree"] == degree[table.index]).all()
    np.testing.assert_allclose(table["in_strength"], in_strength[table.index])
    pagerank = pd.Series(nx.pagerank(graph, weight="weight"))
    np.testing.assert_allclose(table["pagerank"], pagerank[table.index], atol=1e-5)
    eigen = pd.Series(nx.eigenvector_centrality(graph, weight="weight", max_iter=1000))
    np.testing.assert_allclose(table["eigenvector"], eigen[table.index], atol=1e-5)


def test_analysis_takes_any_anndata_with_a_network(kang_grn, kang_small):
    plain = kang_small.copy()  # a plain AnnData (not a GRNAnnData) with varp["GRN"]
    plain.varp["GRN"] = kang_grn.grn
    assert not isinstance(plain, GRNAnnData)
    pd.testing.assert_frame_equal(centrality(plain), centrality(kang_grn))
    assert compare(plain, kang_grn)["jaccard"] == 1.0
    merged = merge([plain, kang_grn], reduce="max")
    assert (merged.grn != kang_grn.grn).nnz == 0


def test_core_does_not_import_analysis():
    import ast
    import inspect

    import grnndata.core

    tree = ast.parse(inspect.getsource(grnndata.core))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert imported and not [name for name in imported if "analysis" in name]


def test_centrality_of_a_bare_matrix_uses_absolute_weights():
    matrix = sp.csr_matrix(np.array([[0, -2.0, 0], [0, 0, 3.0], [1.0, 0, 0]]))  # synthetic
    table = centrality(matrix, genes=["A", "B", "C"], kinds=("out_strength", "in_degree"))
    assert table.loc["A", "out_strength"] == 2.0
    assert list(table["in_degree"]) == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown centrality"):
        centrality(matrix, kinds=("betweenness",))


def test_communities_recover_planted_blocks():
    """Synthetic: two dense 10-gene blocks joined by one weak edge."""
    rng = np.random.default_rng(0)
    block = (rng.uniform(size=(10, 10)) < 0.6).astype(float)
    matrix = sp.block_diag([block, block.T]).tolil()
    matrix[0, 15] = 0.1
    labels = communities(matrix.tocsr(), genes=[f"g{i}" for i in range(20)], seed=0)
    assert labels.iloc[:10].nunique() == 1 and labels.iloc[10:].nunique() == 1
    assert labels.iloc[0] != labels.iloc[10]


def test_communities_of_a_real_network_have_positive_modularity(kang_grn):
    hubs = kang_grn.edges(top_k=600)
    genes = list(pd.unique(np.r_[hubs["regulator"].astype(str), hubs["target"].astype(str)]))
    sub = kang_grn.get(genes)
    labels = communities(sub, seed=0)
    assert labels.index.equals(sub.var_names)
    again = communities(sub, seed=0)
    assert labels.equals(again)
    graph = sub.to_networkx()
    parts = [set(group.index) for _, group in labels.groupby(labels)]
    assert nx.community.modularity(graph, parts, weight="weight") > 0.1


def test_compare_counts_shared_edges_like_sets(omnipath_tf, kang_small):
    collectri = omnipath_tf[omnipath_tf["sources"].str.contains("CollecTRI")]
    dorothea = omnipath_tf[omnipath_tf["sources"].str.contains("DoRothEA")]
    a = from_edges(kang_small.var_names, collectri, "source", "target")
    b = from_edges(kang_small.var_names, dorothea, "source", "target")
    result = compare(a, b)
    pairs_a = set(zip(a.edges()["regulator"].astype(str), a.edges()["target"].astype(str)))
    pairs_b = set(zip(b.edges()["regulator"].astype(str), b.edges()["target"].astype(str)))
    assert result["n_shared_edges"] == len(pairs_a & pairs_b)
    assert result["jaccard"] == pytest.approx(len(pairs_a & pairs_b) / len(pairs_a | pairs_b))
    assert compare(a, a)["jaccard"] == 1.0
    top = compare(a, b, top_k=100)
    assert top["n_edges_a"] == 100


def test_merge_on_the_union_of_genes(omnipath_tf, kang_small):
    genes = list(kang_small.var_names)
    first = from_edges(genes[:1500], omnipath_tf, "source", "target", "n_sources")
    second = from_edges(genes[1000:], omnipath_tf, "source", "target", "n_sources")
    merged = merge([first, second], how="union", reduce="max", names=["first", "second"])
    assert list(merged.var_names) == genes
    full = from_edges(genes, omnipath_tf, "source", "target", "n_sources")
    covered = full.edges()
    in_first = covered["regulator"].isin(genes[:1500]) & covered["target"].isin(genes[:1500])
    in_second = covered["regulator"].isin(genes[1000:]) & covered["target"].isin(genes[1000:])
    assert merged.n_edges == int((in_first | in_second).sum())
    counted = merge([first, second], reduce="count")
    both = int((in_first & in_second).sum())
    assert int((counted.grn.data == 2).sum()) == both
    assert merged.grn_metadata["parameters"]["names"] == ["first", "second"]
    inter = merge([first, second], how="intersection")
    assert list(inter.var_names) == genes[1000:1500]
    with pytest.raises(ValueError, match="reduce="):
        merge([first, second], reduce="median")
    with pytest.raises(ValueError, match=r"grns\[1\].*no network in varp\['GRN'\]"):
        merge([first, kang_small])
    with pytest.raises(TypeError, match=r"grns\[1\] is a DataFrame; expected an AnnData"):
        merge([first, omnipath_tf])
    assert isinstance(merged, GRNAnnData)
