"""Histogram-binned trees (``splits="hist"``, the compiled default): the bins, binned splits
against a brute-force definition on small synthetic data, agreement with scikit-learn on real
data, and the exact path unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from bengrn.methods import genie3, grnboost2
from bengrn.methods._bins import bin_features
from bengrn.methods._boosting import boosting_importances
from bengrn.methods._forest import feature_ranks, forest_importances

EXACT = json.loads((Path(__file__).parent / "data" / "exact_trees_dyn_ll.json").read_text())


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic (labelled as such): count-like features, mostly zeros (the sparse histogram
    path), continuous ones with more distinct values than bins, and few-valued ones."""
    rng = np.random.default_rng(seed)
    sparse = rng.poisson(0.3, size=(n, 3)) * rng.random((n, 3))
    continuous = rng.normal(size=(n, 3))
    few = rng.integers(0, 4, size=(n, 2)).astype(float)
    X = np.hstack([sparse, continuous, few]).astype(np.float32)
    y = 2 * X[:, 0] + np.sin(2 * X[:, 3]) + X[:, 6] * X[:, 4] + 0.3 * rng.normal(size=n)
    return X, y


def _brute_force_tree(codes, y, rows, depth, max_depth, imp, n_root, leaves=None):
    """Greedy CART on bins by definition: every feature, every bin threshold ``<= b``, the split
    with the largest decrease of the sum of squared deviations; adds decrease / n to ``imp`` and
    numbers the leaves in ``leaves`` (per sample)."""
    yy = y[rows]
    sse = ((yy - yy.mean()) ** 2).sum()
    best = (0.0, -1, -1)
    if depth < max_depth and len(rows) >= 2 and sse > 1e-12 * len(rows):
        for f in range(codes.shape[0]):
            c = codes[f, rows]
            for b in np.unique(c)[:-1]:
                left, right = yy[c <= b], yy[c > b]
                gain = sse - ((left - left.mean()) ** 2).sum() - ((right - right.mean()) ** 2).sum()
                if gain > best[0] * (1 + 1e-12) + 1e-12:
                    best = (gain, f, b)
    gain, f, b = best
    if f < 0:
        if leaves is not None:
            leaves[rows] = leaves.max() + 1
        return
    imp[f] += gain / n_root
    goes_left = codes[f, rows] <= b
    _brute_force_tree(codes, y, rows[goes_left], depth + 1, max_depth, imp, n_root, leaves)
    _brute_force_tree(codes, y, rows[~goes_left], depth + 1, max_depth, imp, n_root, leaves)


def test_bins_are_monotone_quantiles_with_exact_bins_for_few_values():
    X, _ = _synthetic(3000, 0)
    bins = bin_features(X, max_bins=32)
    codes = bins.codes
    assert codes.shape == (8, 3000) and codes.dtype == np.uint8
    for f in range(8):
        order = np.argsort(X[:, f], kind="stable")
        assert (np.diff(codes[f, order].astype(int)) >= 0).all()  # bins follow the values
        assert codes[f].max() + 1 == bins.n_bins[f] <= 32
        assert len(np.unique(codes[f])) == bins.n_bins[f]  # no empty bin
    # few distinct values: one bin per value (binned splits are then the exact ones)
    for f in (6, 7):
        assert bins.n_bins[f] == len(np.unique(X[:, f]))
    # the zeros of a sparse feature get a bin of their own; the other values share the rest
    zeros = X[:, 0] == 0
    assert zeros.mean() > 0.5
    assert (codes[0, zeros] == 0).all() and (codes[0, ~zeros] > 0).all()
    assert bins.n_bins[0] == 32
    counts = np.bincount(codes[3], minlength=32)  # a continuous feature: about equal counts
    assert counts.min() > 0.5 * 3000 / 32 and counts.max() < 2 * 3000 / 32
    # the sparse index lists exactly the samples outside bin 0
    for f in range(8):
        members = bins.nz_idx[bins.nz_ptr[f] : bins.nz_ptr[f + 1]]
        np.testing.assert_array_equal(members, np.flatnonzero(codes[f]))
        np.testing.assert_array_equal(bins.nz_code[bins.nz_ptr[f] : bins.nz_ptr[f + 1]],
                                      codes[f, members])  # fmt: skip
    with pytest.raises(ValueError, match="max_bins must be an integer from 2 to 65536"):
        bin_features(X, max_bins=1)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_binned_tree_splits_equal_the_brute_force_best_splits(depth):
    # every feature tried, no bootstrap: each node's split must be the best over all bin
    # thresholds; nodes from 512 down to a few samples, sparse features read both ways (from
    # their samples outside bin 0 in small nodes, from the node's samples in large ones)
    n = 512
    X, y = _synthetic(n, depth)
    bins = bin_features(X, max_bins=16)
    ours = forest_importances(
        bins, np.arange(8), y, n_trees=1, max_features=8, seed=0, bootstrap=False,
        max_depth=depth,
    )  # fmt: skip
    reference = np.zeros(8)
    _brute_force_tree(bins.codes, y, np.arange(n), 0, depth, reference, n)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_binned_tree_splits_equal_the_brute_force_best_splits_on_real_data(
    hesc_task, hesc_expression
):
    # real data: the hESC (Chen) TFs with the most distinct values, counts with many zeros (bin 0
    # of the sparse index) and up to 193 bins (a bitmap of non-empty bins over 4 words, 3 used);
    # every feature tried, no bootstrap, so each
    # node's split must be the best over all bin thresholds, as a brute-force search finds it
    from bengrn.methods._common import expression_matrix

    X = expression_matrix(hesc_expression)
    genes = list(hesc_expression.var_names)
    tfs = [genes.index(g) for g in hesc_task.regulators() if g in genes]
    most_values = np.argsort(-bin_features(X[:, tfs]).n_bins, kind="stable")[:12]
    regs = [tfs[k] for k in most_values]
    bins = bin_features(X[:, regs])
    assert bins.n_bins.max() > 128 and (np.diff(bins.nz_ptr) < X.shape[0] // 2).any()
    target = next(j for j in range(X.shape[1]) if j not in regs and X[:, j].std() > 0)
    y = X[:, target].astype(np.float64)
    ours = forest_importances(
        bins, np.arange(len(regs)), y, n_trees=1, max_features=len(regs), seed=0,
        bootstrap=False, max_depth=4,
    )  # fmt: skip
    reference = np.zeros(len(regs))
    _brute_force_tree(bins.codes, y, np.arange(len(y)), 0, 4, reference, len(y))
    assert (reference > 0).sum() >= 3
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_two_sample_nodes_credit_the_first_non_constant_feature_drawn():
    # synthetic (labelled as such): 2 samples, 5 features that separate them and 3 that do
    # not. Binned fits stop drawing at the first non-constant feature of a 2-sample node (any
    # other would split it the same way, with the same decrease); the credited feature must be
    # a separating one, uniformly over seeds, with the whole decrease, as the exact path (which
    # draws max_features candidates, scikit-learn's loop) credits it
    X = np.array([[0, 1, 2, 3, 4, 5, 5, 5], [2, 3, 4, 5, 6, 5, 5, 5]], dtype=np.float32)
    y = np.array([0.0, 2.0])
    counts = {"hist": np.zeros(8, int), "exact": np.zeros(8, int)}
    for seed in range(300):
        for name, matrix in (("hist", bin_features(X)), ("exact", feature_ranks(X))):
            imp = forest_importances(
                matrix, np.arange(8), y, n_trees=1, max_features=3, seed=seed, bootstrap=False
            )
            assert (imp > 0).sum() == 1 and imp.max() == pytest.approx(1.0)  # var of y = 1
            counts[name] += imp > 0
    for name in ("hist", "exact"):
        assert counts[name][5:].sum() == 0
        assert counts[name][:5].min() > 30 and counts[name][:5].max() < 90, counts


def test_binned_boosting_equals_a_brute_force_booster():
    # no subsampling, every feature tried: stumps on bins fitted by definition, stage by stage
    X, y = _synthetic(600, 7)
    bins = bin_features(X, max_bins=8)
    stages, rate = 30, 0.1
    ours, fitted = boosting_importances(
        bins, None, np.arange(8), y, n_estimators=stages, learning_rate=rate, max_features=8,
        subsample=1.0, max_depth=2, seed=0,
    )  # fmt: skip
    pred = np.full(len(y), y.mean())
    total = np.zeros(8)
    for _ in range(stages):
        resid = y - pred
        imp = np.zeros(8)
        leaves = np.zeros(len(y), dtype=int)
        _brute_force_tree(bins.codes, resid, np.arange(len(y)), 0, 2, imp, len(y), leaves)
        total += imp
        for leaf in np.unique(leaves):  # each leaf moves by rate x its residuals' mean
            pred[leaves == leaf] += rate * resid[leaves == leaf].mean()
    assert fitted == stages
    np.testing.assert_allclose(ours, total / total.sum() * stages, rtol=1e-7, atol=1e-10)


def test_binned_boosting_is_scikit_learns_when_bins_are_exact():
    # synthetic features with fewer distinct values than bins: binned = exact splits, so the
    # deterministic boosting equals scikit-learn's GradientBoostingRegressor
    rng = np.random.default_rng(3)
    X = rng.integers(0, 40, size=(500, 6)).astype(np.float32) / 7
    y = X[:, 0] + np.cos(X[:, 2]) + 0.2 * rng.normal(size=500)
    ours, _ = boosting_importances(
        bin_features(X), None, np.arange(6), y, n_estimators=40, max_features=6, subsample=1.0,
        max_depth=3, seed=0,
    )  # fmt: skip
    reference = GradientBoostingRegressor(
        learning_rate=0.01, n_estimators=40, max_features=6, subsample=1.0, max_depth=3,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    np.testing.assert_allclose(ours, reference.feature_importances_ * 40, rtol=1e-7, atol=1e-10)


def _per_target_correlation(a: np.ndarray, b: np.ndarray) -> float:
    keep = [j for j in range(a.shape[1]) if a[:, j].std() > 0 and b[:, j].std() > 0]
    return float(np.mean([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in keep]))


def test_binned_grnboost2_agrees_with_sklearn_as_sklearn_agrees_with_itself(
    hesc_task, hesc_expression
):
    # real data: hESC (Chen) genes with more distinct values than the bins
    small = hesc_expression[:, :60].copy()
    regs = hesc_task.regulators()
    binned = grnboost2(small, regulators=regs, seed=0, max_bins=16).grn.toarray()
    sk_1 = grnboost2(small, regulators=regs, seed=1, backend="sklearn").grn.toarray()
    sk_2 = grnboost2(small, regulators=regs, seed=2, backend="sklearn").grn.toarray()
    r_binned = _per_target_correlation(binned, sk_1)
    r_seeds = _per_target_correlation(sk_2, sk_1)
    assert r_seeds > 0.5
    assert r_binned > r_seeds - 0.05, (r_binned, r_seeds)


def test_exact_splits_reproduce_the_exact_compiled_networks(beeline_ll):
    # the fixture holds the networks of the compiled trees before binning existed
    adata, _ = beeline_ll
    assert list(adata.var_names) == EXACT["genes"]
    boost = grnboost2(adata, seed=3, splits="exact").grn.toarray()
    forest = genie3(adata, seed=3, n_trees=10, splits="exact").grn.toarray()
    np.testing.assert_allclose(boost, EXACT["grnboost2_seed3"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(forest, EXACT["genie3_seed3_10trees"], rtol=1e-6, atol=1e-9)
    binned = grnboost2(adata, seed=3).grn.toarray()  # the default bins dyn-LL's values
    assert not np.allclose(binned, boost)


def test_split_options_are_checked(beeline_ll):
    adata, _ = beeline_ll
    with pytest.raises(ValueError, match="splits must be 'hist' or 'exact'"):
        genie3(adata, splits="approx")
    with pytest.raises(ValueError, match="backend='sklearn' runs scikit-learn's exact splits"):
        grnboost2(adata, backend="sklearn", splits="hist")
    with pytest.raises(ValueError, match="max_bins must be an integer from 2 to 256"):
        genie3(adata, max_bins=300)
