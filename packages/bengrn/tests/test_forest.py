"""The compiled random forest behind GENIE3: exact against scikit-learn where the result is
deterministic, and the same distribution where it is random."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

from bengrn.methods import genie3
from bengrn.methods._common import expression_matrix
from bengrn.methods._forest import feature_ranks, forest_importances, resolve_max_features


def test_feature_ranks_are_dense_ranks_with_scikit_learns_tie_threshold():
    # synthetic: values chosen to exercise ties, near-ties (< 1e-7 apart) and order
    X = np.array(
        [[0.0, 5.0], [2.0, 5.0], [0.0, 1.0], [1.0, 1.00000001], [2.0, -3.0]], dtype=np.float32
    )
    R = feature_ranks(X)
    assert R.shape == (2, 5) and R.dtype == np.uint16 and R.flags.c_contiguous
    np.testing.assert_array_equal(R[0], [0, 2, 0, 1, 2])
    np.testing.assert_array_equal(R[1], [2, 2, 1, 1, 0])
    with pytest.raises(ValueError, match="must be 2-D"):
        feature_ranks(np.zeros(3))


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_a_deterministic_tree_equals_scikit_learns(depth):
    # synthetic continuous features, every feature tried at each node and no bootstrap: the tree
    # is fully determined, so the importances must match exactly. Nodes stay large (>= ~60
    # samples), where two features never give the same partition; in tiny nodes they can, and
    # then the tie goes to whichever feature was drawn first, which is random in both.
    rng = np.random.default_rng(depth)
    X = rng.normal(size=(1000, 10)).astype(np.float32)
    y = 2 * X[:, 0] + np.sin(3 * X[:, 4]) + X[:, 7] * X[:, 2] + 0.3 * rng.normal(size=1000)
    ours = forest_importances(
        feature_ranks(X), np.arange(10), y, n_trees=1, max_features=10, seed=0,
        bootstrap=False, max_depth=depth,
    )  # fmt: skip
    tree = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(X, y)
    np.testing.assert_allclose(
        ours, tree.tree_.compute_feature_importances(normalize=False), atol=1e-12
    )


def test_only_the_listed_features_are_candidates():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = X[:, 5] + 0.3 * X[:, 1]
    R = feature_ranks(X)
    ours = forest_importances(R, np.array([5, 2, 3]), y, n_trees=3, max_features=3, seed=1)
    tree = DecisionTreeRegressor(random_state=0).fit(X[:, [5, 2, 3]], y)
    assert ours.shape == (3,)
    assert ours[0] > 0.5 * ours.sum()  # feature 5, the only true input offered
    # full trees on distinct values end with pure leaves: importances add up to the variance
    np.testing.assert_allclose(ours.sum(), y.var(), rtol=0.25)
    np.testing.assert_allclose(
        tree.tree_.compute_feature_importances(normalize=False).sum(), y.var()
    )


@pytest.mark.parametrize("spec", ["sqrt", "log2", 0.3, 7, None])
def test_max_features_is_resolved_as_scikit_learn_does(spec):
    X = np.random.default_rng(0).normal(size=(20, 219))
    fitted = RandomForestRegressor(n_estimators=1, max_features=spec).fit(X, X[:, 0])
    assert resolve_max_features(spec, 219) == fitted.estimators_[0].max_features_


def test_bad_parameters_are_refused(hesc_expression):
    with pytest.raises(ValueError, match="max_features must be in"):
        resolve_max_features(1.5, 10)
    with pytest.raises(ValueError, match="backend must be"):
        genie3(hesc_expression, backend="xgboost")
    with pytest.raises(ValueError, match="max_features must be 'sqrt'"):
        genie3(hesc_expression, max_features="half")
    with pytest.raises(ValueError, match="n_trees must be a positive integer"):
        genie3(hesc_expression, n_trees=0)


def test_forest_matches_scikit_learns_random_forest_on_real_data(hesc_task, hesc_expression):
    """Real hESC expression (mostly zeros, many ties): our forest and scikit-learn's agree with
    each other as closely as scikit-learn agrees with itself under another seed."""
    X = expression_matrix(hesc_expression)
    regs = np.flatnonzero(hesc_expression.var_names.isin(hesc_task.regulators()))
    targets = np.setdiff1d(np.arange(X.shape[1]), regs)[:30]
    R = feature_ranks(X[:, regs])
    k = resolve_max_features("sqrt", len(regs))
    ours, sk_a, sk_b = [], [], []
    for j in targets:
        y = X[:, j].astype(np.float64)
        y /= y.std()
        ours.append(
            forest_importances(R, np.arange(len(regs)), y, n_trees=60, max_features=k, seed=int(j))
        )
        for out, seed in ((sk_a, 1), (sk_b, 2)):
            rf = RandomForestRegressor(n_estimators=60, max_features="sqrt", random_state=seed)
            rf.fit(X[:, regs], y)
            out.append(
                np.mean(
                    [t.tree_.compute_feature_importances(normalize=False) for t in rf.estimators_],
                    axis=0,
                )
            )
    ours, sk_a, sk_b = (np.concatenate(v) for v in (ours, sk_a, sk_b))
    r_ours = np.corrcoef(ours, sk_a)[0, 1]
    r_sklearn = np.corrcoef(sk_b, sk_a)[0, 1]
    # (measured: 0.945 vs 0.945; 7 or 30 candidates per split instead of 14 give 0.935 / 0.936)
    assert r_ours > r_sklearn - 0.02, (r_ours, r_sklearn)
    # the total impurity decrease is a property of the trees' sizes and shapes
    np.testing.assert_allclose(ours.sum(), sk_a.sum(), rtol=0.02)
    assert abs(sk_b.sum() - sk_a.sum()) / sk_a.sum() < 0.02


def test_sklearn_backend_agrees_with_the_compiled_one(hesc_task, hesc_expression):
    small = hesc_expression[:, :120].copy()
    regs = hesc_task.regulators()
    fast = genie3(small, n_trees=30, regulators=regs, seed=0).grn.toarray()
    slow = genie3(small, n_trees=30, regulators=regs, seed=0, backend="sklearn").grn.toarray()
    other = genie3(small, n_trees=30, regulators=regs, seed=1).grn.toarray()
    mask = (fast > 0) | (slow > 0)
    assert mask.sum() > 500
    r_backends = np.corrcoef(fast[mask], slow[mask])[0, 1]
    r_seeds = np.corrcoef(fast[mask], other[mask])[0, 1]
    assert r_backends > r_seeds - 0.05, (r_backends, r_seeds)
    assert not np.array_equal(fast, slow)
