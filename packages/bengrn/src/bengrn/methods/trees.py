"""Tree-ensemble network inference: GENIE3 (random forests) and GRNBoost2 (gradient boosting).

For each target gene ``j``, a regressor predicts its expression (scaled to unit variance) from the
candidate regulators (``j`` itself excluded); the regressor's feature importances become the
weights of the edges ``regulator -> j``. Each target's ensemble is seeded from ``(seed, j)`` (via
:class:`numpy.random.SeedSequence`), so results do not depend on ``n_jobs`` or on the order in
which targets run.

GENIE3 runs by default on the compiled random forest of :mod:`bengrn.methods._forest` (the same
algorithm and settings as scikit-learn's ``RandomForestRegressor``, targets on threads);
``backend="sklearn"`` and GRNBoost2 fit scikit-learn estimators in joblib processes, targets sent
in batches of 64 with the expression matrix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from tqdm.auto import tqdm

from bengrn.methods._common import expression_matrix, make_network, regulator_indices

__all__ = ["genie3", "grnboost2"]


def _target_seed(seed: int, target: int) -> int:
    return int(np.random.SeedSequence([seed, target]).generate_state(1)[0])


def _forest_importances(model: Any) -> np.ndarray:
    """GENIE3's importances: unnormalised impurity decrease, averaged over the trees."""
    return np.mean(
        [tree.tree_.compute_feature_importances(normalize=False) for tree in model.estimators_],
        axis=0,
    )


def _target_problem(
    X: np.ndarray, reg_idx: np.ndarray, j: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Target ``j``'s regression: its expression scaled to unit variance (float64, ``(n_cells,)``)
    and the positions in ``reg_idx`` of its candidate regulators (``j`` itself left out).
    ``None`` when the target is constant or has no candidate."""
    y = X[:, j].astype(np.float64)
    sd = y.std()
    keep = np.arange(len(reg_idx))
    pos = np.searchsorted(reg_idx, j)
    if pos < len(reg_idx) and reg_idx[pos] == j:
        keep = np.delete(keep, pos)
    if sd == 0 or len(keep) == 0:
        return None
    return y / sd, keep


def _fit_batch(
    X: np.ndarray,
    reg_idx: np.ndarray,
    targets: np.ndarray,
    kind: str,
    options: dict[str, Any],
    seed: int,
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    X_regs = np.asfortranarray(X[:, reg_idx])
    out = []
    for j in targets:
        problem = _target_problem(X, reg_idx, int(j))
        if problem is None:
            continue
        y, keep = problem
        features = X_regs if len(keep) == len(reg_idx) else X_regs[:, keep]
        cols = reg_idx[keep]
        rs = _target_seed(seed, int(j))
        if kind == "genie3":
            model = RandomForestRegressor(random_state=rs, n_jobs=1, **options).fit(features, y)
            importances = _forest_importances(model)
        else:
            model = GradientBoostingRegressor(random_state=rs, **options).fit(features, y)
            importances = model.feature_importances_ * model.n_estimators_
        out.append((int(j), cols, importances.astype(np.float32)))
    return out


def _genie3_compiled(
    adata: ad.AnnData,
    n_trees: int,
    max_features: str | float | int,
    regulators: Sequence[str] | None,
    n_jobs: int,
    seed: int,
    transform: str,
    params: dict[str, Any],
) -> Any:
    """GENIE3 on :func:`bengrn.methods._forest.forest_importances`, one thread per target."""
    from bengrn.methods._forest import feature_ranks, forest_importances, resolve_max_features

    genes = pd.Index(adata.var_names.astype(str))
    X = expression_matrix(adata, transform)
    reg_idx = regulator_indices(genes, regulators)
    resolve_max_features(max_features, len(reg_idx))  # a bad value fails here, not in a thread
    ranks = feature_ranks(X[:, reg_idx])
    weights = np.zeros((len(reg_idx), len(genes)), dtype=np.float32)

    def one_target(j: int) -> None:
        problem = _target_problem(X, reg_idx, j)
        if problem is None:
            return
        y, keep = problem
        weights[keep, j] = forest_importances(
            ranks,
            keep,
            y,
            n_trees=n_trees,
            max_features=resolve_max_features(max_features, len(keep)),
            seed=_target_seed(seed, j),
        )

    threads = max(1, min(effective_n_jobs(n_jobs), os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(max_workers=threads) as pool,
        tqdm(total=len(genes), desc="genie3", unit="target") as bar,
    ):
        for _ in pool.map(one_target, range(len(genes))):
            bar.update(1)
    return make_network(reg_idx, weights, genes, "genie3", params)


def _infer(
    adata: ad.AnnData,
    kind: str,
    options: dict[str, Any],
    regulators: Sequence[str] | None,
    n_jobs: int,
    seed: int,
    transform: str,
    params: dict[str, Any],
    batch_size: int = 64,
) -> Any:
    genes = pd.Index(adata.var_names.astype(str))
    X = expression_matrix(adata, transform)
    reg_idx = regulator_indices(genes, regulators)
    targets = np.arange(len(genes))
    batches = [targets[i : i + batch_size] for i in range(0, len(targets), batch_size)]
    weights = np.zeros((len(reg_idx), len(genes)), dtype=np.float32)
    row_of = np.full(len(genes), -1)
    row_of[reg_idx] = np.arange(len(reg_idx))
    jobs = (delayed(_fit_batch)(X, reg_idx, b, kind, options, seed) for b in batches)
    runner = Parallel(n_jobs=n_jobs, return_as="generator", max_nbytes=None)
    try:
        with tqdm(total=len(targets), desc=kind, unit="target") as bar:
            for batch, result in zip(batches, runner(jobs)):
                for j, cols, importances in result:
                    weights[row_of[cols], j] = importances
                bar.update(len(batch))
    finally:
        if n_jobs != 1:  # stop the worker processes now rather than leave them idling
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(wait=True, kill_workers=True)
    return make_network(reg_idx, weights, genes, kind, params)


def genie3(
    adata: ad.AnnData,
    *,
    n_trees: int = 100,
    max_features: str | float | int = "sqrt",
    regulators: Sequence[str] | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    transform: str = "log1p",
    backend: str = "compiled",
) -> Any:
    """GENIE3 (Huynh-Thu et al. 2010): a random forest per target gene.

    Parameters
    ----------
    adata
        Cells x genes expression (counts; see ``transform``).
    n_trees
        Trees per target gene.
    max_features
        Candidate regulators tried at each split (``"sqrt"`` as in GENIE3, a fraction, or a count).
    regulators
        Candidate regulators (e.g. TFs); ``None`` = every gene.
    n_jobs
        Target genes fitted in parallel (threads for the compiled backend, processes for
        scikit-learn); ``-1`` = all cores.
    seed
        Base seed; target ``j`` uses a seed derived from ``(seed, j)``.
    transform
        ``"log1p"`` (library-size scaling + log1p) or ``"none"``.
    backend
        ``"compiled"`` (default): the numba random forest of :mod:`bengrn.methods._forest`, the
        algorithm and settings of scikit-learn's ``RandomForestRegressor`` (bootstrap, fully grown
        squared-error trees, ``max_features`` candidates per split), several times faster.
        ``"sklearn"``: scikit-learn's ``RandomForestRegressor`` itself. The two draw different
        random numbers, so their networks agree as two seeds of one method do.

    Returns
    -------
    GRNAnnData over ``adata``'s genes, rows = regulators, columns = targets, weight = importance
    (unnormalised impurity decrease of the unit-variance target, averaged over trees).
    """
    if backend not in ("compiled", "sklearn"):
        raise ValueError(f"backend must be 'compiled' or 'sklearn'; got {backend!r}")
    if not isinstance(n_trees, (int, np.integer)) or n_trees < 1:
        raise ValueError(f"n_trees must be a positive integer; got {n_trees!r}")
    params = dict(
        n_trees=n_trees,
        max_features=max_features,
        n_jobs=n_jobs,
        seed=seed,
        transform=transform,
        backend=backend,
    )
    if backend == "compiled":
        return _genie3_compiled(
            adata, n_trees, max_features, regulators, n_jobs, seed, transform, params
        )
    options = {"n_estimators": n_trees, "max_features": max_features}
    return _infer(adata, "genie3", options, regulators, n_jobs, seed, transform, params)


def grnboost2(
    adata: ad.AnnData,
    *,
    n_estimators: int = 500,
    learning_rate: float = 0.01,
    max_features: float = 0.1,
    subsample: float = 0.9,
    max_depth: int = 3,
    early_stopping_rounds: int = 25,
    regulators: Sequence[str] | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    transform: str = "log1p",
) -> Any:
    """GRNBoost2 (Moerman et al. 2019) with scikit-learn gradient boosting and early stopping.

    Stochastic gradient boosting of shallow trees per target (arboreto's defaults: learning rate
    0.01, 10% of regulators per split, 90% subsampling, depth 3); training stops when the score on
    a 10% validation split has not improved for ``early_stopping_rounds`` rounds. Edge weight =
    feature importance x number of boosting rounds. Other parameters as in :func:`genie3`.
    """
    params = dict(
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        max_features=max_features,
        subsample=subsample,
        max_depth=max_depth,
        early_stopping_rounds=early_stopping_rounds,
        n_jobs=n_jobs,
        seed=seed,
        transform=transform,
    )
    options = {
        "n_estimators": n_estimators,
        "learning_rate": learning_rate,
        "max_features": max_features,
        "subsample": subsample,
        "max_depth": max_depth,
        "n_iter_no_change": early_stopping_rounds,
        "validation_fraction": 0.1,
    }
    return _infer(adata, "grnboost2", options, regulators, n_jobs, seed, transform, params)
