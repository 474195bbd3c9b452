"""GRNBoost2 as arboreto 0.1.6 computes it: the early-stopping rule and the scikit-learn backend
against arboreto's own output (a fixture written by ``benchmarks/bengrn/arboreto_fixture.py`` in
the arboreto peer virtualenv), the compiled booster exact against scikit-learn where the result is
deterministic and as close as a second seed where it is random."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from bengrn.methods import grnboost2
from bengrn.methods._boosting import boosting_importances, oob_says_stop, rank_levels
from bengrn.methods._common import expression_matrix
from bengrn.methods._forest import feature_ranks
from bengrn.methods.trees import sklearn_grnboost2_importances

ARBORETO = json.loads(
    (Path(__file__).parent / "data" / "arboreto_grnboost2_dyn_ll.json").read_text()
)


def _first_stop(improvements: list[float], window: int) -> int | None:
    rounds = np.asarray(improvements)
    for stage in range(len(rounds)):
        if oob_says_stop(rounds, stage, window):
            return stage
    return None


def test_early_stopping_rule_stops_where_arboretos_monitor_stopped():
    # arboreto's EarlyStopMonitor ended each fit after n_estimators stages: on the out-of-bag
    # improvements of that fit, our rule must say "stop" first at that stage and never before
    stops = [t["n_estimators"] for t in ARBORETO["targets"]]
    assert min(stops) >= 25 and len(set(stops)) > 5  # a real range of stopping points
    for target in ARBORETO["targets"]:
        assert len(target["oob_improvement"]) == target["n_estimators"]
        assert _first_stop(target["oob_improvement"], 25) == target["n_estimators"] - 1
    # the window matters: a shorter window stops no later
    shorter = [_first_stop(t["oob_improvement"], 5) for t in ARBORETO["targets"]]
    assert all(
        s is not None and s < t["n_estimators"] for s, t in zip(shorter, ARBORETO["targets"])
    )


def test_sklearn_backend_reproduces_arboretos_regressions(beeline_ll):
    adata, _ = beeline_ll
    X = expression_matrix(adata)
    for target in ARBORETO["targets"][:6]:
        j, regs = target["target"], target["regulators"]
        importances, stages = sklearn_grnboost2_importances(
            X[:, regs], X[:, j].astype(np.float64), seed=ARBORETO["seed"]
        )
        assert stages == target["n_estimators"]
        np.testing.assert_allclose(importances, target["importances"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 3])
def test_deterministic_boosting_equals_scikit_learns(depth):
    # synthetic continuous features, no subsampling and every feature tried at each node: the
    # boosting is fully determined, so stages, importances and the routing of every sample (which
    # feeds the next stage's residuals) must match scikit-learn exactly
    rng = np.random.default_rng(depth)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    y = 2 * X[:, 0] + np.sin(3 * X[:, 4]) + X[:, 7] * X[:, 2] + 0.3 * rng.normal(size=400)
    ranks = feature_ranks(X)
    ours, stages = boosting_importances(
        ranks, rank_levels(X, ranks), np.arange(8), y, n_estimators=60, max_features=8,
        subsample=1.0, max_depth=depth, seed=0,
    )  # fmt: skip
    reference = GradientBoostingRegressor(
        learning_rate=0.01, n_estimators=60, max_features=8, subsample=1.0, max_depth=depth,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    assert stages == 60
    np.testing.assert_allclose(ours, reference.feature_importances_ * 60, rtol=1e-9, atol=1e-12)


def test_compiled_agrees_with_sklearn_as_two_sklearn_seeds_do(beeline_ll):
    adata, _ = beeline_ll

    def per_target_correlation(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])]))

    compiled = grnboost2(adata, seed=0).grn.toarray()
    sklearn_0 = grnboost2(adata, seed=0, backend="sklearn").grn.toarray()
    sklearn_1 = grnboost2(adata, seed=1, backend="sklearn").grn.toarray()
    between_seeds = per_target_correlation(sklearn_0, sklearn_1)
    across_backends = per_target_correlation(compiled, sklearn_1)
    assert between_seeds > 0.6
    assert across_backends > between_seeds - 0.1
    # arboreto's weight scale: importances sum to the stages fitted (25 to 5,000) per target
    totals = compiled.sum(axis=0)
    assert ((totals >= 25 - 1e-6) & (totals <= 5000)).all()


def test_grnboost2_bad_parameters_are_refused(beeline_ll):
    adata, _ = beeline_ll
    with pytest.raises(ValueError, match="backend must be"):
        grnboost2(adata, backend="xgboost")
    with pytest.raises(ValueError, match="subsample must be in"):
        grnboost2(adata, subsample=0.0)
    with pytest.raises(ValueError, match="early_stopping_rounds must be a positive integer"):
        grnboost2(adata, early_stopping_rounds=0)
    with pytest.raises(ValueError, match="max_features must be in"):
        grnboost2(adata, max_features=1.5)


def test_a_target_subset_gives_the_full_runs_columns(beeline_ll):
    adata, _ = beeline_ll
    full = grnboost2(adata, seed=4).grn.toarray()
    names = list(adata.var_names[[2, 7, 11]])
    part = grnboost2(adata, seed=4, targets=names[::-1]).grn.toarray()
    np.testing.assert_array_equal(part[:, [2, 7, 11]], full[:, [2, 7, 11]])
    assert (part[:, [2, 7, 11]] > 0).sum() > 10
    others = np.setdiff1d(np.arange(adata.n_vars), [2, 7, 11])
    assert not part[:, others].any()
    with pytest.raises(ValueError, match=r"targets must be genes .* not found: \['nope'\]"):
        grnboost2(adata, targets=[names[0], "nope"])
