"""Built-in methods: correct values on real data, seeds, candidate regulators, the plug-in resolver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bengrn.methods import (
    BUILTIN,
    ExternalCommand,
    MethodUnavailableError,
    available_methods,
    genie3,
    grnboost2,
    pearson,
    random_network,
    resolve_method,
    spearman,
)
from bengrn.methods._common import expression_matrix


def test_pearson_and_spearman_equal_numpy_and_scipy(beeline_ll):
    adata, _ = beeline_ll
    X = expression_matrix(adata)
    expected = np.abs(np.corrcoef(X, rowvar=False))
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(pearson(adata, block_size=5).grn.toarray(), expected, atol=1e-5)
    rho = np.abs(stats.spearmanr(X).statistic)
    np.fill_diagonal(rho, 0)
    np.testing.assert_allclose(spearman(adata).grn.toarray(), rho, atol=1e-5)


def test_correlation_top_k_keeps_each_regulators_strongest_targets(beeline_ll):
    adata, _ = beeline_ll
    full = pearson(adata).grn.toarray()
    top = pearson(adata, top_k=3).grn.toarray()
    assert ((top > 0).sum(axis=1) == 3).all()
    np.testing.assert_allclose(np.sort(top, axis=1)[:, -3:], np.sort(full, axis=1)[:, -3:])


def test_candidate_regulators_restrict_the_rows(beeline_ll):
    adata, _ = beeline_ll
    regs = list(adata.var_names[:4])
    grn = genie3(adata, n_trees=5, regulators=regs)
    out_edges = np.asarray((grn.grn != 0).sum(axis=1)).ravel()
    assert (out_edges[:4] > 0).all() and (out_edges[4:] == 0).all()
    with pytest.raises(ValueError, match="none of the 1 candidate regulators"):
        pearson(adata, regulators=["NOT_A_GENE"])


def test_genie3_is_reproducible_and_independent_of_n_jobs(beeline_ll):
    adata, _ = beeline_ll
    one = genie3(adata, n_trees=8, seed=3, n_jobs=1).grn.toarray()
    two = genie3(adata, n_trees=8, seed=3, n_jobs=2).grn.toarray()
    other = genie3(adata, n_trees=8, seed=4, n_jobs=1).grn.toarray()
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, other)
    assert np.all(np.diag(one) == 0)


def test_tree_methods_and_random_find_the_dyn_ll_network_better_than_chance(beeline_ll):
    from bengrn.metrics import score

    adata, edges = beeline_ll
    ratios = {
        "genie3": score(genie3(adata, n_trees=20), edges)["auprc_ratio"],
        "grnboost2": score(grnboost2(adata, n_estimators=100), edges)["auprc_ratio"],
        "random": score(random_network(adata, seed=1), edges)["auprc_ratio"],
    }
    assert ratios["genie3"] > 2 * ratios["random"]
    assert ratios["grnboost2"] > 2 * ratios["random"]


def test_random_network_depends_only_on_the_seed(beeline_ll):
    adata, _ = beeline_ll
    a = random_network(adata, seed=7).grn.toarray()
    np.testing.assert_array_equal(a, random_network(adata, seed=7).grn.toarray())
    assert not np.array_equal(a, random_network(adata, seed=8).grn.toarray())


def test_resolver_handles_names_plugins_and_commands():
    assert resolve_method("pearson") == ("pearson", BUILTIN["pearson"])
    name, fn = resolve_method("tests.plugin_methods:mean_product")
    assert name == "mean_product" and callable(fn)
    name, fn = resolve_method("tool=cmd:python write.py {input} {output}")
    assert name == "tool" and isinstance(fn, ExternalCommand)
    with pytest.raises(MethodUnavailableError, match="not a built-in"):
        resolve_method("genie4")
    with pytest.raises(MethodUnavailableError, match="cannot import module"):
        resolve_method("no_such_module_xyz:infer")
    assert set(BUILTIN) <= set(available_methods())


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_streamed_correlation_on_sparse_cells_equals_the_dense_computation(data_dir, method):
    import anndata as ad
    import scipy.sparse as sp

    # real sparse UMI counts: PBMC 3k, its first 150 genes
    adata = ad.read_h5ad(data_dir / "scrna" / "pbmc3k_2k_hvg.h5ad")[:, :150].copy()
    adata.X = sp.csr_matrix(adata.X)
    assert adata.X.nnz < 0.5 * np.prod(adata.shape)  # mostly zeros: the sparse path matters
    X = expression_matrix(adata)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "pearson":
            expected = np.abs(np.corrcoef(X, rowvar=False))
        else:
            expected = np.abs(stats.spearmanr(X).statistic)
    expected = np.nan_to_num(expected)  # constant genes: weight 0
    np.fill_diagonal(expected, 0)
    fn = pearson if method == "pearson" else spearman
    dense = adata.copy()
    dense.X = adata.X.toarray()
    for data in (adata, dense):
        streamed = fn(data, cell_block=301).grn.toarray()  # 9 blocks of cells, the last short
        np.testing.assert_allclose(streamed, expected, atol=1e-6)


def test_streamed_pearson_memory_is_bounded_by_genes_not_cells():
    import tracemalloc

    import anndata as ad
    import scipy.sparse as sp

    # synthetic counts (memory test only): 300,000 cells x 40 genes, 5% non-zero
    rng = np.random.default_rng(0)
    X = sp.random(300_000, 40, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    X.data = np.ceil(X.data * 10)
    adata = ad.AnnData(X)
    adata.var_names = [f"g{i}" for i in range(40)]
    tracemalloc.start()
    grn = pearson(adata, cell_block=20_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dense_float64 = 300_000 * 40 * 8
    assert peak < dense_float64 / 4, f"peak {peak / 1e6:.1f} MB"
    assert grn.grn.nnz > 0
