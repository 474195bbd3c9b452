"""Stochastic gradient boosting importances for GRNBoost2, compiled with numba.

This is arboreto's GRNBoost2 regression (Moerman et al. 2019, arboreto 0.1.6): scikit-learn's
``GradientBoostingRegressor`` with squared error, ``learning_rate=0.01``, up to 5,000 stages,
``subsample=0.9``, ``max_features=0.1``, depth-3 trees, stopped by arboreto's
``EarlyStopMonitor``: after stage ``i >= window - 1``, stop when the mean of the last ``window``
out-of-bag improvements is negative. The importances are scikit-learn's ``feature_importances_``
(impurity decrease per tree divided by the tree's in-bag weight, summed over the trees, normalised
to sum 1) multiplied by the number of stages fitted, as arboreto's ``to_feature_importances`` does.

Each stage, as scikit-learn computes it:

* ``n_inbag = int(subsample * n)`` samples drawn without replacement by selection sampling
  (scikit-learn's ``_random_sample_mask``); the out-of-bag ones weigh 0 in the tree.
* An exact depth-first CART tree on the residuals ``y - prediction`` (``friedman_mse``, whose best
  split within a node is the squared-error one), ``max_features`` candidates drawn per node with
  scikit-learn's rule for constant features (:func:`bengrn.methods._forest._best_split`).
* Every sample (in-bag or not) is routed with scikit-learn's threshold, the midpoint of the two
  raw values around the split, and its prediction moves by ``learning_rate`` x its leaf's mean.
* ``oob_improvement[i] = oob_score[i - 1] - oob_score[i]`` (``i = 0``: the first out-of-bag set's
  loss before the stage), ``oob_score`` = mean squared error of that stage's out-of-bag samples:
  the definition of scikit-learn >= 1.3, which is what arboreto 0.1.6 computes when installed
  today (scikit-learn < 1.3 measured both losses on the current out-of-bag set).

Splits are exact (every distinct value is a threshold) on the dense ranks of
:func:`bengrn.methods._forest.feature_ranks`. Random draws come from numba's per-thread Mersenne
Twister seeded per target, so results do not depend on threads or scheduling but are not the
numbers scikit-learn draws (``grnboost2(..., backend="sklearn")`` runs scikit-learn itself).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from bengrn.methods._forest import (
    _EPSILON,
    _best_split,
    _hist_buffers,
    _node_sums,
    _pos_min,
    _set_positions,
    _set_weighted,
    _split_node,
    split_matrix,
)

__all__ = ["OOBEarlyStop", "boosting_importances", "oob_says_stop", "rank_levels"]


@nb.njit(cache=True)
def _rank_levels(R, X, offsets, levels):  # pragma: no cover - compiled
    levels[:] = np.inf
    for f in range(R.shape[0]):
        base = offsets[f]
        for s in range(R.shape[1]):
            k = base + R[f, s]
            if X[s, f] < levels[k]:
                levels[k] = X[s, f]


def rank_levels(X: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The raw value of each rank of :func:`~bengrn.methods._forest.feature_ranks`.

    Parameters
    ----------
    X
        ``(n_samples, n_features)`` values the ranks were computed from.
    ranks
        ``(n_features, n_samples)`` dense ranks of ``X``'s columns.

    Returns
    -------
    ``offsets`` ``(n_features + 1,)`` int64 and ``levels`` float32: feature ``f``'s rank ``r`` has
    the value ``levels[offsets[f] + r]`` (the smallest of the values sharing that rank).
    """
    X = np.asarray(X, dtype=np.float32)
    if ranks.shape != X.shape[::-1]:
        raise ValueError(f"ranks must be X transposed; got {ranks.shape} for X {X.shape}")
    counts = ranks.max(axis=1).astype(np.int64) + 1 if ranks.size else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    levels = np.empty(int(offsets[-1]), dtype=np.float32)
    _rank_levels(ranks, X, offsets, levels)
    return offsets, levels


@nb.njit(cache=True, nogil=True)
def oob_says_stop(oob_improvement: np.ndarray, stage: int, window: int) -> bool:  # pragma: no cover
    """arboreto's ``EarlyStopMonitor`` rule: after ``stage`` (0-based), stop when ``stage >=
    window - 1`` and the mean of ``oob_improvement[stage - window + 1 : stage + 1]`` is < 0."""
    if stage < window - 1:
        return False
    total = 0.0
    for k in range(stage - window + 1, stage + 1):
        total += oob_improvement[k]
    return total / window < 0


class OOBEarlyStop:
    """arboreto's early-stopping monitor for ``GradientBoostingRegressor.fit(monitor=...)``:
    :func:`oob_says_stop` on the regressor's ``oob_improvement_``."""

    def __init__(self, window: int = 25) -> None:
        if window < 1:
            raise ValueError(f"the early-stopping window must be >= 1 stage; got {window}")
        self.window = int(window)

    def __call__(self, stage: int, regressor: object, _locals: object) -> bool:
        return bool(oob_says_stop(regressor.oob_improvement_, stage, self.window))


@nb.njit(cache=True, nogil=True, inline="always")
def _split_rank(levels, base, lo_rank, hi_rank):  # pragma: no cover - compiled
    """Largest rank routed left by scikit-learn's threshold between ranks ``lo_rank`` and
    ``hi_rank`` (the midpoint of their values, or the lower value if the midpoint rounds up)."""
    lo_v = np.float64(levels[base + lo_rank])
    hi_v = np.float64(levels[base + hi_rank])
    thr = lo_v / 2.0 + hi_v / 2.0
    if thr == hi_v or thr == np.inf or thr == -np.inf:
        thr = lo_v
    a = lo_rank  # levels[base + a] <= thr, levels[base + b] > thr
    b = hi_rank
    while b - a > 1:
        c = (a + b) // 2
        if np.float64(levels[base + c]) <= thr:
            a = c
        else:
            b = c
    return a


@nb.njit(cache=True, nogil=True)
def _boost_target(  # pragma: no cover - compiled
    R, feats, offsets, levels, y, n_estimators, learning_rate, max_features, n_inbag, max_depth,
    window, seed, out, binned, pos_min, nz_ptr, nz_idx, nz_code, n_bins,
):  # fmt: skip
    """Fit one target's boosting; ``out`` receives the importances; returns the stage count.
    Binned (``binned``): ``R`` holds bins, splits route bins ``<=`` the split's bin left."""
    np.random.seed(seed)  # noqa: NPY002 - numba's per-thread generator
    n = y.shape[0]
    p = feats.shape[0]
    hb = _hist_buffers(binned, pos_min, nz_ptr, nz_idx, nz_code, n, n_bins)
    do_oob = n_inbag < n
    pred = np.empty(n, dtype=np.float64)
    pred[:] = y.mean()
    resid = np.empty(n, dtype=np.float64)
    w = np.empty(n, dtype=np.float64)
    samples = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.int64)
    features = np.empty(p, dtype=np.int64)
    known = np.empty(p, dtype=np.int64)
    imp = np.zeros(p, dtype=np.float64)
    max_nodes = 2 ** (max_depth + 1)
    node_row = np.empty(max_nodes, dtype=np.int64)
    node_thr = np.empty(max_nodes, dtype=np.int64)
    node_left = np.empty(max_nodes, dtype=np.int64)
    node_value = np.empty(max_nodes, dtype=np.float64)
    st_int = np.empty((max_nodes, 5), dtype=np.int64)
    st_flt = np.empty((max_nodes, 3), dtype=np.float64)
    oob_improvement = np.zeros(n_estimators, dtype=np.float64)
    out[:] = 0.0
    previous = 0.0
    n_stages = 0
    for stage in range(n_estimators):
        # scikit-learn's _random_sample_mask: selection sampling of n_inbag samples
        n_bagged = 0
        n_root = 0
        for s in range(n):
            if np.random.random() * (n - s) < n_inbag - n_bagged:  # noqa: NPY002
                w[s] = 1.0
                samples[n_root] = s
                n_root += 1
                n_bagged += 1
            else:
                w[s] = 0.0
        if do_oob and stage == 0:
            previous = 0.0
            for s in range(n):
                if w[s] == 0.0:
                    previous += (y[s] - pred[s]) ** 2
            previous /= n - n_inbag
        for s in range(n):
            resid[s] = y[s] - pred[s]
        _set_weighted(hb, w, resid, n)
        if binned and n_root > pos_min:
            hb.pos[:] = -1
            _set_positions(hb, samples, 0, n_root)
        for k in range(p):
            features[k] = k
        imp[:] = 0.0
        # one depth-first tree on the in-bag residuals, its nodes recorded for prediction
        W, S, Q = _node_sums(samples, w, resid, 0, n_root)
        w_root = W
        st_int[0, 0] = 0
        st_int[0, 1] = n_root
        st_int[0, 2] = 0
        st_int[0, 3] = 0
        st_int[0, 4] = 0
        st_flt[0, 0] = W
        st_flt[0, 1] = S
        st_flt[0, 2] = Q
        top = 1
        n_nodes = 1
        while top > 0:
            top -= 1
            start = st_int[top, 0]
            end = st_int[top, 1]
            depth = st_int[top, 2]
            n_known = st_int[top, 3]
            node = st_int[top, 4]
            W = st_flt[top, 0]
            S = st_flt[top, 1]
            Q = st_flt[top, 2]
            mean = S / W
            impurity = Q / W - mean * mean
            node_row[node] = -1
            node_value[node] = mean
            if end - start < 2 or impurity <= _EPSILON or depth >= max_depth:
                continue
            best_f, best_thr, best_next, n_total = _best_split(
                R, feats, resid, w, samples, start, end, W, S, n_known, max_features, features,
                known, keys, hb,
            )  # fmt: skip
            if best_f < 0:
                continue
            row = feats[best_f]
            mid, WL, SL, QL, WR, SR, QR = _split_node(
                R, row, samples, start, end, best_thr, w, resid, hb
            )
            _set_positions(hb, samples, start, end)
            ml = SL / WL
            mr = SR / WR
            imp[best_f] += W * impurity - WL * (QL / WL - ml * ml) - WR * (QR / WR - mr * mr)
            node_row[node] = row
            if binned:
                node_thr[node] = best_thr
            else:
                node_thr[node] = _split_rank(levels, offsets[row], best_thr, best_next)
            node_left[node] = n_nodes
            left = n_nodes
            right = n_nodes + 1
            n_nodes += 2
            for child, c_start, c_end, cW, cS, cQ in (
                (right, mid, end, WR, SR, QR),
                (left, start, mid, WL, SL, QL),
            ):
                st_int[top, 0] = c_start
                st_int[top, 1] = c_end
                st_int[top, 2] = depth + 1
                st_int[top, 3] = n_total
                st_int[top, 4] = child
                st_flt[top, 0] = cW
                st_flt[top, 1] = cS
                st_flt[top, 2] = cQ
                top += 1
        for k in range(p):
            out[k] += imp[k] / w_root
        # every sample moves by learning_rate x its leaf's value
        for s in range(n):
            node = 0
            while node_row[node] >= 0:
                if R[node_row[node], s] <= node_thr[node]:
                    node = node_left[node]
                else:
                    node = node_left[node] + 1
            pred[s] += learning_rate * node_value[node]
        n_stages = stage + 1
        if do_oob:
            score = 0.0
            for s in range(n):
                if w[s] == 0.0:
                    score += (y[s] - pred[s]) ** 2
            score /= n - n_inbag
            oob_improvement[stage] = previous - score
            previous = score
            if oob_says_stop(oob_improvement, stage, window):
                break
    total = 0.0
    for k in range(p):
        total += out[k]
    if total > 0:
        for k in range(p):
            out[k] = out[k] / total * n_stages
    return n_stages


def boosting_importances(
    ranks: Any,
    levels: tuple[np.ndarray, np.ndarray] | None,
    features: np.ndarray,
    y: np.ndarray,
    *,
    n_estimators: int = 5000,
    learning_rate: float = 0.01,
    max_features: int,
    subsample: float = 0.9,
    max_depth: int = 3,
    window: int = 25,
    seed: int,
) -> tuple[np.ndarray, int]:
    """GRNBoost2 importances of one target (see the module docstring for the algorithm).

    Parameters
    ----------
    ranks
        ``(n_all_features, n_samples)`` from :func:`~bengrn.methods._forest.feature_ranks`
        (exact splits, at scikit-learn's midpoint thresholds), or the
        :class:`bengrn.methods._bins.Bins` of the same features (histogram splits: a split
        sends the samples of bins ``<=`` its bin left).
    levels
        ``(offsets, levels)`` from :func:`rank_levels` for the same ranks; ``None`` with bins.
    features
        ``(p,)`` rows of ``ranks`` that are this target's candidate regulators.
    y
        ``(n_samples,)`` target values (float64, not rescaled: arboreto fits the raw values).
    n_estimators, learning_rate, subsample, max_depth
        As scikit-learn's ``GradientBoostingRegressor``; ``max_features`` is a resolved count
        (:func:`~bengrn.methods._forest.resolve_max_features`).
    window
        Early-stopping window (stages) of :func:`oob_says_stop`; only used when ``subsample < 1``
        (without out-of-bag samples every stage is fitted, as in arboreto).
    seed
        Seed of this target's random draws.

    Returns
    -------
    ``((p,) float64 importances, stages fitted)``: importance = normalised impurity decrease x
    stages (arboreto's edge weight).
    """
    R, binned, nz_ptr, nz_idx, nz_code, n_bins = split_matrix(ranks)
    if R.ndim != 2 or y.ndim != 1 or R.shape[1] != y.shape[0]:
        raise ValueError(
            f"ranks must be (features, samples) and y (samples,); got {R.shape} and {y.shape}"
        )
    if binned:
        levels = (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.float32))
    elif levels is None:
        raise ValueError("exact splits (ranks) need the rank levels of rank_levels(X, ranks)")
    if n_estimators < 1 or max_depth < 1 or window < 1:
        raise ValueError(
            f"n_estimators, max_depth and the window must be >= 1; got {n_estimators}, "
            f"{max_depth}, {window}"
        )
    if not 0.0 < subsample <= 1.0:
        raise ValueError(f"subsample must be in (0, 1]; got {subsample}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
    out = np.zeros(len(features), dtype=np.float64)
    if len(features) == 0:
        return out, 0
    n = y.shape[0]
    n_stages = _boost_target(
        R,
        np.ascontiguousarray(features, dtype=np.int64),
        levels[0],
        levels[1],
        np.ascontiguousarray(y, dtype=np.float64),
        int(n_estimators),
        float(learning_rate),
        int(max_features),
        max(1, int(subsample * n)),
        int(max_depth),
        int(window),
        int(seed) % 2**32,
        out,
        binned,
        _pos_min(nz_ptr, features) if binned else 0,
        nz_ptr,
        nz_idx,
        nz_code,
        n_bins,
    )
    return out, int(n_stages)
