"""Random-forest regression importances for GENIE3, compiled with numba.

This is the algorithm of scikit-learn's ``RandomForestRegressor`` with its defaults (bootstrap
samples of size ``n``, fully grown CART trees, squared-error criterion, ``max_features``
candidates per split drawn without replacement, with scikit-learn's rule for constant features:
a draw that hits a feature constant in the node counts as a visit, and the search goes on past
``max_features`` until one non-constant feature is found), specialised to what GENIE3 needs, the
unnormalised impurity-decrease importances, and organised for speed:

* A split only depends on the order of a feature's values, so each feature is replaced once by
  its dense rank (``uint16``/``uint32``, values closer than ``1e-7`` tied, as scikit-learn's
  ``FEATURE_THRESHOLD``). The partitions, impurities and importances are those of the raw values.
* Single-cell features are mostly at their minimum (zero counts): samples at rank 0 are summed
  in one pass and only the others are sorted.
* Binned fits (``splits="hist"``, :mod:`bengrn.methods._bins`): a feature's thresholds in a node
  come from a histogram of the node's bins (weight and weight x response per bin, the latter
  computed once per tree), whose non-empty bins are marked in a bitmap and visited in order by
  their trailing zeros: a feature costs the node's samples plus its non-empty bins, never a sweep
  over every bin, so histograms beat sorting down to the smallest nodes. Histogram subtraction
  (a child's histogram = its parent's minus its sibling's, as LightGBM) does not apply: every node
  draws its own ``max_features`` candidates, so a child rarely needs a feature its parent built.
  A node of two samples stops drawing at its first non-constant candidate: every such candidate
  separates the two samples alike, with the same decrease, so scikit-learn's loop would keep it
  whatever it drew next (same split, same importance; only the later draws differ).
* Nothing is stored but the importances: no tree objects, no per-tree Python calls. One call
  fits every tree of one target, with the GIL released, so targets run on threads.

Randomness comes from numba's legacy ``np.random`` generator (a Mersenne Twister per thread,
inlined; a ``np.random.Generator`` passed in made the whole fit 30% slower), seeded at the start
of each target: results do not depend on the number of threads or on the order in which targets
run, but they are not the numbers scikit-learn would draw (``genie3(..., backend="sklearn")`` runs
scikit-learn itself).
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

__all__ = [
    "feature_ranks",
    "forest_importances",
    "resolve_max_features",
    "split_matrix",
]

FEATURE_THRESHOLD = 1e-7  # scikit-learn's: feature values closer than this are tied
_EPSILON = float(np.finfo(np.float64).eps)  # scikit-learn's: a node this pure is a leaf
_LOW32 = np.int64(0xFFFFFFFF)
_ONE = np.uint64(1)
_SIX = np.uint64(6)
_MASK63 = np.uint64(63)


def feature_ranks(X: np.ndarray) -> np.ndarray:
    """Dense ranks of each column of ``X``.

    Parameters
    ----------
    X
        ``(n_samples, n_features)`` values.

    Returns
    -------
    ``(n_features, n_samples)`` C-contiguous ``uint16`` (``uint32`` when a column has more than
    65,535 distinct values): 0 for each column's smallest value, +1 at each larger distinct value;
    values closer than ``1e-7`` to the previous one share its rank.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples x features); got shape {X.shape}")
    order = np.argsort(X, axis=0, kind="stable")
    ordered = np.take_along_axis(X, order, axis=0).astype(np.float64)
    steps = np.diff(ordered, axis=0) > FEATURE_THRESHOLD
    ranks_sorted = np.zeros(X.shape, dtype=np.int64)
    np.cumsum(steps, axis=0, out=ranks_sorted[1:])
    ranks = np.empty(X.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, ranks_sorted, axis=0)
    dtype = np.uint16 if ranks_sorted[-1].max(initial=0) < 2**16 else np.uint32
    return np.ascontiguousarray(ranks.T, dtype=dtype)


def resolve_max_features(max_features: str | float | int | None, n_features: int) -> int:
    """Candidates per split, with scikit-learn's conventions.

    ``"sqrt"`` and ``"log2"`` of ``n_features``, a float = that fraction, an int = that number,
    ``None`` or ``"all"`` = all; always at least 1 and at most ``n_features``.
    """
    if max_features is None or max_features == "all":
        k = n_features
    elif max_features == "sqrt":
        k = int(math.sqrt(n_features))
    elif max_features == "log2":
        k = int(math.log2(n_features)) if n_features > 0 else 0
    elif isinstance(max_features, (bool, np.bool_)):
        raise ValueError(
            f"max_features must be 'sqrt', 'log2', a number or None; got {max_features!r}"
        )
    elif isinstance(max_features, (int, np.integer)):
        if max_features < 1:
            raise ValueError(f"max_features must be >= 1 when an integer; got {max_features}")
        k = int(max_features)
    elif isinstance(max_features, (float, np.floating)):
        if not 0.0 < max_features <= 1.0:
            raise ValueError(f"max_features must be in (0, 1] when a fraction; got {max_features}")
        k = int(max_features * n_features)
    else:
        raise ValueError(
            f"max_features must be 'sqrt', 'log2', a number or None; got {max_features!r}"
        )
    return max(1, min(k, n_features))


@nb.njit(cache=True, nogil=True)
def _sort_prefix(keys, m):  # pragma: no cover - compiled
    """Sort ``keys[:m]`` in place (insertion sort for short runs)."""
    if m <= 16:
        for i in range(1, m):
            k = keys[i]
            j = i - 1
            while j >= 0 and keys[j] > k:
                keys[j + 1] = keys[j]
                j -= 1
            keys[j + 1] = k
    else:
        keys[:m].sort()


@nb.njit(cache=True, nogil=True, inline="always")
def _node_sums(samples, w, y, lo, hi):  # pragma: no cover - compiled
    """Weight, weighted sum and weighted sum of squares of ``y`` over ``samples[lo:hi]``."""
    W = 0.0
    S = 0.0
    Q = 0.0
    for q in range(lo, hi):
        s = samples[q]
        W += w[s]
        S += w[s] * y[s]
        Q += w[s] * y[s] * y[s]
    return W, S, Q


@nb.njit(cache=True, nogil=True, inline="always")
def _push(st_int, st_flt, top, start, end, depth, n_constant, W, S, Q):  # pragma: no cover
    """Put a node on the stack at ``top``; returns the new top."""
    st_int[top, 0] = start
    st_int[top, 1] = end
    st_int[top, 2] = depth
    st_int[top, 3] = n_constant
    st_flt[top, 0] = W
    st_flt[top, 1] = S
    st_flt[top, 2] = Q
    return top + 1


#: Histogram state of a binned fit, passed through the compiled tree builders: ``binned`` (off =
#: the exact path, the other fields unused), ``pos_min`` (the fewest samples outside bin 0 among
#: the candidate features: only nodes larger than that read ``pos``), the sparse index of
#: :class:`bengrn.methods._bins.Bins` (``nz_ptr``, ``nz_idx``, ``nz_code``), ``pos``
#: (``(n_samples,)``: each sample's position in ``samples``, -1 when it is not in the tree),
#: ``wy`` (``(n_samples,)``: weight x response of the tree being grown, :func:`_set_weighted`),
#: and the histogram ``hist_w``/``hist_s`` (per bin: weight, weighted sum) with ``hist_bits``,
#: the bitmap of its non-empty bins (64 bins a word), kept empty between uses.
_HistBuffers = namedtuple(
    "_HistBuffers", "binned pos_min nz_ptr nz_idx nz_code pos wy hist_w hist_s hist_bits"
)


@nb.njit(cache=True, nogil=True)
def _hist_buffers(  # pragma: no cover - compiled
    binned, pos_min, nz_ptr, nz_idx, nz_code, n_samples, n_bins
):
    size = n_bins if binned else 1
    n = n_samples if binned else 1
    return _HistBuffers(
        binned, pos_min, nz_ptr, nz_idx, nz_code,
        np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float64),
        np.zeros(size, dtype=np.float64), np.zeros(size, dtype=np.float64),
        np.zeros((size + 63) // 64, dtype=np.uint64),
    )  # fmt: skip


@nb.njit(cache=True, nogil=True, inline="always")
def _set_weighted(hb, w, y, n):  # pragma: no cover - compiled
    """``hb.wy = w * y`` (binned fits; once per tree, the histograms' summands)."""
    if hb.binned:
        for s in range(n):
            hb.wy[s] = w[s] * y[s]


@nb.njit(cache=True, nogil=True, inline="always")
def _set_positions(hb, samples, start, end):  # pragma: no cover - compiled
    """Record the positions of ``samples[start:end]`` (binned fits, nodes whose descendants may
    read them: larger than ``hb.pos_min``)."""
    if hb.binned and end - start > hb.pos_min:
        for q in range(start, end):
            hb.pos[samples[q]] = q


@nb.njit(cache=True, nogil=True, inline="always")
def _best_split(  # pragma: no cover - compiled
    R, feats, y, w, samples, start, end, W, S, n_known, max_features, features, known, keys, hb
):
    """Best split of the node ``samples[start:end]`` (weight ``W``, weighted sum ``S``).

    scikit-learn's feature-drawing loop, with the features known to be constant in the node
    (``features[:n_known]``) tracked as scikit-learn does. Returns ``(feature, rank, next_rank,
    n_constant)``: the best split sends ranks ``<= rank`` left (``next_rank`` is the smallest rank
    of the node above it), ``feature = -1`` when no feature splits the node; ``n_constant`` is the
    new count of known constants (recorded in ``known``) for the children.

    ``hb`` is the histogram state of binned features (:class:`_HistBuffers`); with ``hb.binned``
    off (the exact path) every feature's node values are sorted, otherwise a feature's candidate
    thresholds come from a histogram of the node's bins (:func:`_histogram`) whose non-empty bins
    are visited through its bitmap: a feature costs the node's samples (or the feature's samples
    outside bin 0) plus its non-empty bins, never a sweep over every bin.
    """
    p = feats.shape[0]
    best_proxy = -np.inf
    best_f = -1
    best_thr = 0
    best_next = 0
    f_i = p
    n_visited = 0
    n_found = 0
    n_drawn = 0
    n_total = n_known
    # two samples: every non-constant feature splits them the same way, with the same proxy, so
    # the first one drawn wins whatever is drawn after it (binned fits stop drawing there, and
    # compare the two samples' bins instead of building histograms)
    first_wins = hb.binned and end - start == 2
    while f_i > n_total and (n_visited < max_features or n_visited <= n_found + n_drawn):
        n_visited += 1
        f_j = np.random.randint(n_drawn, f_i - n_found)  # noqa: NPY002 (see module doc)
        if f_j < n_known:  # a feature already known to be constant here
            tmp = features[n_drawn]
            features[n_drawn] = features[f_j]
            features[f_j] = tmp
            n_drawn += 1
            continue
        f_j += n_found
        feature = features[f_j]
        row = feats[feature]
        if first_wins:  # two samples: their two bins decide, no histogram needed
            a = np.int64(R[row, samples[start]])
            b = np.int64(R[row, samples[start + 1]])
            if a != b:
                best_f = feature
                best_thr = min(a, b)
                best_next = max(a, b)
                break
            constant = True
        elif hb.binned:
            _histogram(R, row, w, samples, start, end, W, S, hb)
            constant = _histogram_is_constant(hb.hist_bits)
        else:
            w0 = 0.0
            s0 = 0.0
            n0 = 0
            m = 0
            for q in range(start, end):
                s = samples[q]
                r = R[row, s]
                if r == 0:
                    w0 += w[s]
                    s0 += w[s] * y[s]
                    n0 += 1
                else:
                    keys[m] = (np.int64(r) << 32) | np.int64(s)
                    m += 1
            if m > 0:
                _sort_prefix(keys, m)
            constant = m == 0 or (n0 == 0 and (keys[0] >> 32) == (keys[m - 1] >> 32))
        if constant:
            if hb.binned and not first_wins:
                _histogram_scan(hb, W, S, -np.inf)  # empties the histogram
            tmp = features[f_j]
            features[f_j] = features[n_total]
            features[n_total] = tmp
            n_found += 1
            n_total += 1
            continue
        f_i -= 1
        tmp = features[f_i]
        features[f_i] = features[f_j]
        features[f_j] = tmp
        if hb.binned:
            proxy, thr, nxt = _histogram_scan(hb, W, S, best_proxy)
            if proxy > best_proxy:
                best_proxy = proxy
                best_f = feature
                best_thr = thr
                best_next = nxt
            continue
        # scan the thresholds between consecutive distinct ranks
        wl = w0
        sl = s0
        prev = np.int64(0) if n0 > 0 else np.int64(-1)
        for t in range(m):
            r = keys[t] >> 32
            if r != prev and prev >= 0:
                sr = S - sl
                proxy = sl * sl / wl + sr * sr / (W - wl)
                if proxy > best_proxy:
                    best_proxy = proxy
                    best_f = feature
                    best_thr = prev
                    best_next = r
            s = keys[t] & _LOW32
            wl += w[s]
            sl += w[s] * y[s]
            prev = r
    # restore the known constants (their order matters to the siblings), record the new ones
    for k in range(n_known):
        features[k] = known[k]
    for k in range(n_known, n_total):
        known[k] = features[k]
    return best_f, best_thr, best_next, n_total


@nb.njit(cache=True, nogil=True, inline="always")
def _histogram(R, row, w, samples, start, end, W, S, hb):  # pragma: no cover - compiled
    """Weight and weighted sum (``hb.wy``) per bin of feature ``row`` over the node
    ``samples[start:end]``, added to ``hb``'s (empty) histogram, the non-empty bins marked in
    ``hb.hist_bits``. Sparse features are read from their samples outside bin 0 (those whose
    position ``hb.pos`` lies in the node), bin 0 being the node's totals minus the rest."""
    n_node = end - start
    first = hb.nz_ptr[row]
    last = hb.nz_ptr[row + 1]
    bits = hb.hist_bits
    if last - first < n_node:
        w_rest = 0.0
        s_rest = 0.0
        n_rest = 0
        for k in range(first, last):
            s = hb.nz_idx[k]
            q = hb.pos[s]
            if q >= start and q < end:
                c = np.uint64(hb.nz_code[k])
                b = np.int64(c)
                hb.hist_w[b] += w[s]
                hb.hist_s[b] += hb.wy[s]
                bits[c >> _SIX] |= _ONE << (c & _MASK63)
                w_rest += w[s]
                s_rest += hb.wy[s]
                n_rest += 1
        if n_rest < n_node:
            hb.hist_w[0] = W - w_rest
            hb.hist_s[0] = S - s_rest
            bits[0] |= _ONE
    else:
        for q in range(start, end):
            s = samples[q]
            c = np.uint64(R[row, s])
            b = np.int64(c)
            hb.hist_w[b] += w[s]
            hb.hist_s[b] += hb.wy[s]
            bits[c >> _SIX] |= _ONE << (c & _MASK63)


@nb.njit(cache=True, nogil=True, inline="always")
def _histogram_is_constant(bits):  # pragma: no cover - compiled
    """Whether the histogram bitmap ``bits`` has at most one non-empty bin."""
    seen = False
    for i in range(bits.shape[0]):
        x = bits[i]
        if x != 0:
            if seen or (x & (x - _ONE)) != 0:
                return False
            seen = True
    return True


@nb.njit(cache=True, nogil=True, inline="always")
def _histogram_scan(hb, W, S, best_proxy):  # pragma: no cover - compiled
    """Scan the thresholds between consecutive non-empty bins of ``hb``'s histogram (node weight
    ``W``, weighted sum ``S``), emptying it. Returns ``(proxy, bin, next_bin)`` of the best
    threshold whose proxy (``SL^2 / WL + SR^2 / WR``) exceeds ``best_proxy`` (``proxy =
    best_proxy`` when none does): bins ``<= bin`` go left, ``next_bin`` is the next non-empty."""
    bits = hb.hist_bits
    wl = 0.0
    sl = 0.0
    prev = np.int64(-1)
    thr = np.int64(0)
    nxt = np.int64(0)
    for i in range(bits.shape[0]):
        x = bits[i]
        while x != 0:
            b = (i << 6) + np.int64(trailing_zeros(x))
            if prev >= 0:
                # proxy = SL^2 / WL + SR^2 / WR > best_proxy, without dividing
                sr = S - sl
                wr = W - wl
                den = wl * wr
                num = sl * sl * wr + sr * sr * wl
                if num > best_proxy * den:
                    best_proxy = num / den
                    thr = prev
                    nxt = b
            wl += hb.hist_w[b]
            sl += hb.hist_s[b]
            prev = b
            hb.hist_w[b] = 0.0
            hb.hist_s[b] = 0.0
            x &= x - _ONE
        bits[i] = 0
    return best_proxy, thr, nxt


@nb.njit(cache=True, nogil=True, inline="always")
def _partition(R, row, samples, start, end, thr):  # pragma: no cover - compiled
    """Move the samples of ``samples[start:end]`` with ``R[row] <= thr`` first; returns the
    position of the first one above."""
    i = start
    j = end
    while i < j:
        if R[row, samples[i]] <= thr:
            i += 1
        else:
            j -= 1
            tmp = samples[i]
            samples[i] = samples[j]
            samples[j] = tmp
    return i


@nb.njit(cache=True, nogil=True, inline="always")
def _split_node(R, row, samples, start, end, thr, w, y, hb):  # pragma: no cover - compiled
    """:func:`_partition` and the children's :func:`_node_sums`: ``(mid, WL, SL, QL, WR, SR,
    QR)``. Binned fits do it in one branchless pass (each sample is summed into its side as the
    partition settles it: the same terms, summed in another order), the exact path as before."""
    if not hb.binned:
        mid = _partition(R, row, samples, start, end, thr)
        WL, SL, QL = _node_sums(samples, w, y, start, mid)
        WR, SR, QR = _node_sums(samples, w, y, mid, end)
        return mid, WL, SL, QL, WR, SR, QR
    # branchless (Lomuto): [start, i) goes left, [i, q) right; each sample swapped with the
    # first right one and counted left or right by a 0/1 factor, no mispredicted branch
    WL = SL = QL = WR = SR = QR = 0.0
    i = start
    for q in range(start, end):
        s = samples[q]
        samples[q] = samples[i]
        samples[i] = s
        left = R[row, s] <= thr
        fl = np.float64(left)
        fr = 1.0 - fl
        ws = w[s]
        wy = hb.wy[s]
        wyy = wy * y[s]
        WL += fl * ws
        SL += fl * wy
        QL += fl * wyy
        WR += fr * ws
        SR += fr * wy
        QR += fr * wyy
        i += np.int64(left)
    return i, WL, SL, QL, WR, SR, QR


@nb.njit(cache=True, nogil=True)
def _grow_tree(  # pragma: no cover - compiled
    R, feats, y, w, samples, n_root, max_features, max_depth, imp, features, known, keys,
    st_int, st_flt, hb,
):  # fmt: skip
    """Grow one tree depth-first on ``samples[:n_root]`` (weights ``w``), adding each split's
    weighted impurity decrease to ``imp`` (indexed like ``feats``). Returns the root weight.
    ``hb``: the histogram state (:data:`_HistBuffers`), positions of ``samples[:n_root]`` set."""
    W, S, Q = _node_sums(samples, w, y, 0, n_root)
    w_root = W
    top = _push(st_int, st_flt, 0, 0, n_root, 0, 0, W, S, Q)
    while top > 0:
        top -= 1
        start = st_int[top, 0]
        end = st_int[top, 1]
        depth = st_int[top, 2]
        n_known = st_int[top, 3]
        W = st_flt[top, 0]
        S = st_flt[top, 1]
        Q = st_flt[top, 2]
        mean = S / W
        impurity = Q / W - mean * mean
        if end - start < 2 or impurity <= _EPSILON or (max_depth >= 0 and depth >= max_depth):
            continue
        best_f, best_thr, _, n_total = _best_split(
            R, feats, y, w, samples, start, end, W, S, n_known, max_features, features, known,
            keys, hb,
        )  # fmt: skip
        if best_f < 0:
            continue
        # partition on the best split and account for its impurity decrease
        mid, WL, SL, QL, WR, SR, QR = _split_node(
            R, feats[best_f], samples, start, end, best_thr, w, y, hb
        )
        _set_positions(hb, samples, start, end)
        ml = SL / WL
        mr = SR / WR
        imp[best_f] += W * impurity - WL * (QL / WL - ml * ml) - WR * (QR / WR - mr * mr)
        # right pushed first: the left child is grown first, as in scikit-learn
        top = _push(st_int, st_flt, top, mid, end, depth + 1, n_total, WR, SR, QR)
        top = _push(st_int, st_flt, top, start, mid, depth + 1, n_total, WL, SL, QL)
    return w_root


@nb.njit(cache=True, nogil=True)
def _target_importances(  # pragma: no cover - compiled
    R, feats, y, n_trees, max_features, max_depth, bootstrap, seed, out, binned, pos_min, nz_ptr,
    nz_idx, nz_code, n_bins,
):  # fmt: skip
    """Mean over ``n_trees`` trees of each feature's impurity decrease / root weight."""
    np.random.seed(seed)  # noqa: NPY002 - numba's per-thread generator
    n = y.shape[0]
    p = feats.shape[0]
    hb = _hist_buffers(binned, pos_min, nz_ptr, nz_idx, nz_code, n, n_bins)
    w = np.empty(n, dtype=np.float64)
    samples = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.int64)
    features = np.empty(p, dtype=np.int64)
    known = np.empty(p, dtype=np.int64)
    imp = np.empty(p, dtype=np.float64)
    st_int = np.empty((n + 2, 4), dtype=np.int64)
    st_flt = np.empty((n + 2, 3), dtype=np.float64)
    out[:] = 0.0
    for _ in range(n_trees):
        if bootstrap:
            w[:] = 0.0
            for _i in range(n):
                w[np.random.randint(0, n)] += 1.0  # noqa: NPY002
        else:
            w[:] = 1.0
        n_root = 0
        for i in range(n):
            if w[i] > 0:
                samples[n_root] = i
                n_root += 1
        if binned and n_root > pos_min:
            hb.pos[:] = -1
            _set_positions(hb, samples, 0, n_root)
        _set_weighted(hb, w, y, n)
        for k in range(p):
            features[k] = k
        imp[:] = 0.0
        w_root = _grow_tree(
            R, feats, y, w, samples, n_root, max_features, max_depth, imp, features, known, keys,
            st_int, st_flt, hb,
        )  # fmt: skip
        for k in range(p):
            out[k] += imp[k] / w_root
    for k in range(p):
        out[k] /= n_trees


def split_matrix(matrix: Any) -> tuple:
    """The compiled builders' view of a feature matrix: ``ranks`` (:func:`feature_ranks`, exact
    splits) or :class:`bengrn.methods._bins.Bins` (histogram splits). Returns ``(R, binned,
    nz_ptr, nz_idx, nz_code, n_bins)`` (empty sparse index for ranks)."""
    if hasattr(matrix, "codes"):
        R = matrix.codes
        n_bins = int(matrix.n_bins.max(initial=1))
        return R, True, matrix.nz_ptr, matrix.nz_idx, matrix.nz_code, n_bins
    R = np.ascontiguousarray(matrix)
    empty = np.zeros(R.shape[0] + 1, dtype=np.int64)
    return R, False, empty, np.zeros(0, np.int32), np.zeros(0, R.dtype), 1


def _pos_min(nz_ptr: np.ndarray, features: np.ndarray) -> int:
    """The fewest samples outside bin 0 among ``features`` (see :data:`_HistBuffers`)."""
    return int(np.diff(nz_ptr)[np.asarray(features, dtype=np.int64)].min(initial=2**62))


def forest_importances(
    ranks: Any,
    features: np.ndarray,
    y: np.ndarray,
    *,
    n_trees: int = 100,
    max_features: int,
    seed: int,
    bootstrap: bool = True,
    max_depth: int | None = None,
) -> np.ndarray:
    """GENIE3 importances of one target: a random forest of ``n_trees`` regression trees.

    Parameters
    ----------
    ranks
        ``(n_all_features, n_samples)`` from :func:`feature_ranks` (exact splits), or the
        :class:`bengrn.methods._bins.Bins` of the same features (histogram splits).
    features
        ``(p,)`` rows of ``ranks`` that are the candidate regulators of this target.
    y
        ``(n_samples,)`` target values (float64).
    n_trees, max_features, bootstrap, max_depth
        As scikit-learn's ``n_estimators``, ``max_features`` (a resolved count, see
        :func:`resolve_max_features`), ``bootstrap`` and ``max_depth`` (``None`` = fully grown).
    seed
        Seed of this target's random draws (bootstrap samples and split candidates).

    Returns
    -------
    ``(p,)`` float64: for each candidate, its impurity decrease summed over the splits on it,
    weighted by the node's sample weight and divided by the root's, averaged over the trees
    (scikit-learn's ``compute_feature_importances(normalize=False)`` averaged over the forest).
    """
    R, binned, nz_ptr, nz_idx, nz_code, n_bins = split_matrix(ranks)
    if R.ndim != 2 or y.ndim != 1 or R.shape[1] != y.shape[0]:
        raise ValueError(
            f"ranks must be (features, samples) and y (samples,); got {R.shape} and {y.shape}"
        )
    if n_trees < 1:
        raise ValueError(f"n_trees must be >= 1; got {n_trees}")
    if R.shape[1] >= 2**31:
        raise ValueError(f"at most 2**31 - 1 samples are supported; got {R.shape[1]}")
    out = np.zeros(len(features), dtype=np.float64)
    if len(features) == 0:
        return out
    _target_importances(
        R,
        np.ascontiguousarray(features, dtype=np.int64),
        np.ascontiguousarray(y, dtype=np.float64),
        int(n_trees),
        int(max_features),
        -1 if max_depth is None else int(max_depth),
        bool(bootstrap),
        int(seed) % 2**32,
        out,
        binned,
        _pos_min(nz_ptr, features) if binned else 0,
        nz_ptr,
        nz_idx,
        nz_code,
        n_bins,
    )
    return out
