"""Tree-ensemble network inference: GENIE3 (random forests) and GRNBoost2 (gradient boosting).

For each target gene ``j``, a regressor predicts its expression from the candidate regulators
(``j`` itself excluded); the regressor's feature importances become the weights of the edges
``regulator -> j``. Each target's ensemble is seeded from ``(seed, j)`` (via
:class:`numpy.random.SeedSequence`), so results do not depend on ``n_jobs``, on the scheduler or on
the order in which targets run.

Both methods run by default on compiled tree builders (:mod:`bengrn.methods._forest`,
:mod:`bengrn.methods._boosting`: scikit-learn's algorithms, targets on threads) with
histogram-binned splits (``splits="hist"``): each regulator is cut once into at most ``max_bins``
quantile bins (:mod:`bengrn.methods._bins`), shared by every target and tree, and splits are
searched over per-bin sums; ``splits="exact"`` searches every distinct value as scikit-learn does.
The only data a worker holds besides the expression matrix is that binned regulator matrix
(1 byte per cell and regulator, plus an index of its non-zero bins), logged at the start;
``backend="sklearn"`` fits scikit-learn's estimators in joblib processes, targets sent in batches
of 64 with the expression matrix. With ``client=`` (a ``dask.distributed.Client``, extra
``bengrn[dask]``) the targets run on a dask cluster instead: the regression problem (expression,
ranks, settings) is scattered once and fetched by each worker, targets go out in batches, each
batch's importances are written into the network as it completes, and a batch whose worker is
lost is rescheduled on another worker (same seeds, same result); see :mod:`bengrn.methods._dask`
for lost scattered data and clusters left without workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from tqdm.auto import tqdm

from bengrn.methods._common import expression_matrix, make_network, regulator_indices

__all__ = ["genie3", "grnboost2"]

log = logging.getLogger(__name__)

_BACKENDS = ("compiled", "sklearn")
_SPLITS = ("hist", "exact")
_BATCH_SIZE = 64  # targets per task (joblib processes, dask)


def _target_seed(seed: int, target: int) -> int:
    return int(np.random.SeedSequence([seed, target]).generate_state(1)[0])


def _forest_importances(model: Any) -> np.ndarray:
    """GENIE3's importances: unnormalised impurity decrease, averaged over the trees."""
    return np.mean(
        [tree.tree_.compute_feature_importances(normalize=False) for tree in model.estimators_],
        axis=0,
    )


@dataclass(frozen=True)
class _Regressions:
    """One method's per-target regressions: everything a worker needs, shipped once.

    ``X``: ``(n_cells, n_genes)`` float32 expression; ``reg_idx``: sorted candidate-regulator
    columns; ``ranks``/``levels``: the compiled exact backend's rank encoding of
    ``X[:, reg_idx]``; ``bins``: the compiled histogram backend's binned ``X[:, reg_idx]``.
    """

    kind: str  # "genie3" | "grnboost2"
    backend: str  # "compiled" | "sklearn"
    X: np.ndarray
    reg_idx: np.ndarray
    options: dict[str, Any]
    seed: int
    ranks: np.ndarray | None = None
    levels: tuple[np.ndarray, np.ndarray] | None = None
    bins: Any = None

    def target(self, j: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Target ``j``'s response (float64 ``(n_cells,)``; scaled to unit variance for GENIE3,
        raw for GRNBoost2 as in arboreto) and the positions in ``reg_idx`` of its candidate
        regulators (``j`` left out). ``None`` when the target is constant or has no candidate."""
        y = self.X[:, j].astype(np.float64)
        sd = y.std()
        keep = np.arange(len(self.reg_idx))
        pos = np.searchsorted(self.reg_idx, j)
        if pos < len(self.reg_idx) and self.reg_idx[pos] == j:
            keep = np.delete(keep, pos)
        if sd == 0 or len(keep) == 0:
            return None
        return (y / sd if self.kind == "genie3" else y), keep

    def fit(self, j: int) -> np.ndarray | None:
        """Importances ``(n_regulators,)`` float32 of target ``j`` (0 for ``j`` itself)."""
        from bengrn.methods._forest import resolve_max_features

        problem = self.target(j)
        if problem is None:
            return None
        y, keep = problem
        seed = _target_seed(self.seed, j)
        o = self.options
        out = np.zeros(len(self.reg_idx), dtype=np.float32)
        if self.backend == "compiled":
            max_features = resolve_max_features(o["max_features"], len(keep))
            matrix = self.ranks if self.bins is None else self.bins
            if self.kind == "genie3":
                from bengrn.methods._forest import forest_importances

                out[keep] = forest_importances(
                    matrix, keep, y, n_trees=o["n_trees"], max_features=max_features, seed=seed
                )
            else:
                from bengrn.methods._boosting import boosting_importances

                out[keep], _ = boosting_importances(
                    matrix, self.levels, keep, y, max_features=max_features, seed=seed,
                    n_estimators=o["n_estimators"], learning_rate=o["learning_rate"],
                    subsample=o["subsample"], max_depth=o["max_depth"],
                    window=o["early_stopping_rounds"],
                )  # fmt: skip
            return out
        features = self.X[:, self.reg_idx[keep]]
        if self.kind == "genie3":
            from sklearn.ensemble import RandomForestRegressor

            model = RandomForestRegressor(
                n_estimators=o["n_trees"], max_features=o["max_features"], random_state=seed,
                n_jobs=1,
            ).fit(features, y)  # fmt: skip
            out[keep] = _forest_importances(model)
        else:
            out[keep], _ = sklearn_grnboost2_importances(features, y, seed=seed, **o)
        return out

    def fit_batch(self, targets: Iterable[int]) -> list[tuple[int, np.ndarray]]:
        """``(target, importances)`` for each non-constant target of ``targets``."""
        out = []
        for j in targets:
            importances = self.fit(int(j))
            if importances is not None:
                out.append((int(j), importances))
        return out


def sklearn_grnboost2_importances(
    features: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    n_estimators: int = 5000,
    learning_rate: float = 0.01,
    max_features: float | int | str = 0.1,
    subsample: float = 0.9,
    max_depth: int = 3,
    early_stopping_rounds: int = 25,
) -> tuple[np.ndarray, int]:
    """arboreto's GRNBoost2 regression on scikit-learn: ``GradientBoostingRegressor`` with
    arboreto's out-of-bag early-stopping monitor (only when ``subsample < 1``, as arboreto).

    ``features``: ``(n_cells, p)``; ``y``: ``(n_cells,)``. Returns ``((p,) importances, stages)``
    with importance = ``feature_importances_`` x stages fitted (arboreto's edge weight).
    """
    from sklearn.ensemble import GradientBoostingRegressor

    from bengrn.methods._boosting import OOBEarlyStop

    model = GradientBoostingRegressor(
        learning_rate=learning_rate, n_estimators=n_estimators, max_features=max_features,
        subsample=subsample, max_depth=max_depth, random_state=seed,
    )  # fmt: skip
    monitor = OOBEarlyStop(early_stopping_rounds) if subsample < 1.0 else None
    model.fit(features, y, monitor=monitor)
    n_stages = len(model.estimators_)
    return model.feature_importances_ * n_stages, n_stages


def _target_indices(genes: pd.Index, targets: Sequence[str]) -> np.ndarray:
    """Sorted positions of ``targets`` in ``genes``; every target must be a gene."""
    names = pd.Index([str(t) for t in targets]).unique()
    idx = genes.get_indexer(names)
    if len(idx) == 0 or (idx < 0).any():
        missing = list(names[idx < 0][:5]) if len(idx) else []
        raise ValueError(
            f"targets must be genes of the expression set; got {len(targets)} targets, not found: "
            f"{missing} (genes are e.g. {list(genes[:5])})"
        )
    return np.sort(idx)


def _fit_batch(problem: _Regressions, targets: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return problem.fit_batch(targets)


def _run(
    problem: _Regressions,
    targets: np.ndarray,
    n_genes: int,
    n_jobs: int,
    client: Any,
    batch_size: int,
) -> np.ndarray:
    """``(n_regulators, n_genes)`` float32 importances of the ``targets`` columns (others 0), on
    threads (compiled), joblib processes (scikit-learn) or a dask cluster (``client``)."""
    weights = np.zeros((len(problem.reg_idx), n_genes), dtype=np.float32)
    n_targets = len(targets)
    batches = [targets[i : i + batch_size] for i in range(0, n_targets, batch_size)]
    with tqdm(total=n_targets, desc=problem.kind, unit="target") as bar:
        if client is not None:
            from bengrn.methods._dask import map_batches

            results: Iterable[tuple[np.ndarray, list]] = map_batches(
                client, _fit_batch, problem, batches
            )
        elif problem.backend == "compiled":
            threads = max(1, min(effective_n_jobs(n_jobs), os.cpu_count() or 1))
            pool = ThreadPoolExecutor(max_workers=threads)
            single = [targets[i : i + 1] for i in range(n_targets)]
            results = zip(single, pool.map(problem.fit_batch, single))
            batches = single
        else:
            runner = Parallel(n_jobs=n_jobs, return_as="generator", max_nbytes=None)
            results = zip(batches, runner(delayed(_fit_batch)(problem, b) for b in batches))
        try:
            for batch, result in results:
                for j, importances in result:
                    weights[:, j] = importances
                bar.update(len(batch))
        finally:
            if client is None and problem.backend == "compiled":
                pool.shutdown(wait=True, cancel_futures=True)
            elif client is None and n_jobs != 1:  # stop the worker processes now
                from joblib.externals.loky import get_reusable_executor

                get_reusable_executor().shutdown(wait=True, kill_workers=True)
    return weights


def _resolve_splits(backend: str, splits: str | None, max_bins: int) -> str:
    """``splits`` for ``backend`` (``None`` = ``"hist"`` compiled, ``"exact"`` scikit-learn)."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be 'compiled' or 'sklearn'; got {backend!r}")
    if splits is None:
        splits = "hist" if backend == "compiled" else "exact"
    if splits not in _SPLITS:
        raise ValueError(f"splits must be 'hist' or 'exact'; got {splits!r}")
    if backend == "sklearn" and splits != "exact":
        raise ValueError(
            "backend='sklearn' runs scikit-learn's exact splits; use splits='exact' (or leave it "
            f"unset) with it, or backend='compiled' for splits={splits!r}"
        )
    if isinstance(max_bins, bool) or not isinstance(max_bins, (int, np.integer)):
        raise ValueError(f"max_bins must be an integer from 2 to 256; got {max_bins!r}")
    if not 2 <= max_bins <= 256:
        raise ValueError(f"max_bins must be an integer from 2 to 256; got {max_bins}")
    return splits


def _infer(
    adata: ad.AnnData,
    kind: str,
    backend: str,
    splits: str,
    max_bins: int,
    options: dict[str, Any],
    regulators: Sequence[str] | None,
    targets: Sequence[str] | None,
    n_jobs: int,
    seed: int,
    transform: str,
    client: Any,
    params: dict[str, Any],
) -> Any:
    from bengrn.methods._forest import feature_ranks, resolve_max_features

    genes = pd.Index(adata.var_names.astype(str))
    X = expression_matrix(adata, transform)
    reg_idx = regulator_indices(genes, regulators)
    resolve_max_features(options["max_features"], len(reg_idx))  # fails here, not in a worker
    target_idx = np.arange(len(genes)) if targets is None else _target_indices(genes, targets)
    ranks = levels = bins = None
    if backend == "compiled" and splits == "hist":
        from bengrn.methods._bins import bin_features, bins_nbytes

        bins = bin_features(X[:, reg_idx], max_bins)
        log.info(
            "%s: %d regulators x %d cells binned (at most %d bins): %.1f MB shared by every "
            "target, plus the %.1f MB expression matrix",
            kind, len(reg_idx), X.shape[0], max_bins, bins_nbytes(bins) / 2**20, X.nbytes / 2**20,
        )  # fmt: skip
    elif backend == "compiled":
        regs = X[:, reg_idx]
        ranks = feature_ranks(regs)
        if kind == "grnboost2":
            from bengrn.methods._boosting import rank_levels

            levels = rank_levels(regs, ranks)
    problem = _Regressions(kind, backend, X, reg_idx, options, seed, ranks, levels, bins)
    weights = _run(problem, target_idx, len(genes), n_jobs, client, _BATCH_SIZE)
    return make_network(reg_idx, weights, genes, kind, params)


def genie3(
    adata: ad.AnnData,
    *,
    n_trees: int = 100,
    max_features: str | float | int = "sqrt",
    regulators: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    transform: str = "log1p",
    backend: str = "compiled",
    splits: str | None = None,
    max_bins: int = 255,
    client: Any = None,
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
    targets
        Target genes to fit (arboreto's ``target_genes``); ``None`` = every gene. The other
        genes' columns stay 0; each fitted column equals the full run's.
    n_jobs
        Target genes fitted in parallel (threads for the compiled backend, processes for
        scikit-learn); ``-1`` = all cores. Ignored with ``client``.
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
    splits
        ``"hist"`` (default of the compiled backend): splits over quantile bins of the regulators
        (:mod:`bengrn.methods._bins`), computed once and shared by every target and tree; a
        regulator with at most ``max_bins`` distinct values gets exact splits.
        ``"exact"`` (the only choice, and the default, of ``backend="sklearn"``): every distinct
        value is a threshold, as scikit-learn.
    max_bins
        Most bins per regulator with ``splits="hist"`` (2 to 256).
    client
        A ``dask.distributed.Client``: fit the targets on its cluster (extra ``bengrn[dask]``);
        the network is identical to the one computed locally with the same seed.

    Returns
    -------
    GRNAnnData over ``adata``'s genes, rows = regulators, columns = targets, weight = importance
    (unnormalised impurity decrease of the unit-variance target, averaged over trees).
    """
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
    splits = _resolve_splits(backend, splits, max_bins)
    params.update(splits=splits, max_bins=int(max_bins))
    options = {"n_trees": int(n_trees), "max_features": max_features}
    return _infer(
        adata,
        "genie3",
        backend,
        splits,
        int(max_bins),
        options,
        regulators,
        targets,
        n_jobs,
        seed,
        transform,
        client,
        params,
    )


def grnboost2(
    adata: ad.AnnData,
    *,
    n_estimators: int = 5000,
    learning_rate: float = 0.01,
    max_features: float | int | str = 0.1,
    subsample: float = 0.9,
    max_depth: int = 3,
    early_stopping_rounds: int = 25,
    regulators: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    n_jobs: int = 1,
    seed: int = 0,
    transform: str = "log1p",
    backend: str = "compiled",
    splits: str | None = None,
    max_bins: int = 255,
    client: Any = None,
) -> Any:
    """GRNBoost2 (Moerman et al. 2019) as arboreto 0.1.6 computes it.

    Per target, stochastic gradient boosting of depth-``max_depth`` trees on the raw (not
    rescaled) target expression with arboreto's settings (learning rate 0.01, up to 5,000 stages,
    10% of regulators tried per split, 90% of cells per stage), stopped by arboreto's out-of-bag
    monitor: after stage ``i >= early_stopping_rounds - 1``, stop when the mean out-of-bag
    improvement of the last ``early_stopping_rounds`` stages is negative. Edge weight =
    scikit-learn's normalised feature importance x stages fitted (arboreto's ``importance``).

    ``backend``: ``"compiled"`` (default; :mod:`bengrn.methods._boosting`, the same algorithm,
    numba, targets on threads; with ``splits="hist"``, the default, over quantile bins of the
    regulators, ``splits="exact"`` over every distinct value, ``max_bins`` as in :func:`genie3`)
    or ``"sklearn"`` (scikit-learn's
    ``GradientBoostingRegressor`` with the same monitor: what arboreto runs). Note that
    scikit-learn 1.3 changed ``oob_improvement_`` (it now compares the out-of-bag losses of two
    different subsamples), so arboreto's stopping point depends on the scikit-learn version; both
    backends follow the definition of scikit-learn >= 1.3. Other parameters as in
    :func:`genie3`.
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
        backend=backend,
    )
    for name, value in (
        ("n_estimators", n_estimators),
        ("max_depth", max_depth),
        ("early_stopping_rounds", early_stopping_rounds),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if not 0.0 < subsample <= 1.0:
        raise ValueError(f"subsample must be in (0, 1]; got {subsample!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}")
    splits = _resolve_splits(backend, splits, max_bins)
    params.update(splits=splits, max_bins=int(max_bins))
    options = {
        "n_estimators": int(n_estimators),
        "learning_rate": float(learning_rate),
        "max_features": max_features,
        "subsample": float(subsample),
        "max_depth": int(max_depth),
        "early_stopping_rounds": int(early_stopping_rounds),
    }
    return _infer(
        adata,
        "grnboost2",
        backend,
        splits,
        int(max_bins),
        options,
        regulators,
        targets,
        n_jobs,
        seed,
        transform,
        client,
        params,
    )
