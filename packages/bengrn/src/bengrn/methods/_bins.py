"""Quantile bins of the regulators, computed once and shared by every target and tree.

Histogram-binned trees (as LightGBM and scikit-learn's ``HistGradientBoostingRegressor``) replace
each regulator's values by a small integer, its bin, and search splits over per-bin sums instead
of over sorted samples: a node's best split on a feature costs one pass over its samples plus one
over the bins, whatever the number of distinct values. The bins are computed once per regulator
(they do not depend on the target) and reused by every target and every tree.

Binning (:func:`bin_features`): a regulator with at most ``max_bins`` distinct values (ties as
:func:`bengrn.methods._forest.feature_ranks`: closer than ``1e-7``) keeps one bin per value, and
binned splits are then the exact splits. Otherwise the distinct values, in order, are cut greedily
into at most ``max_bins`` bins of about equal sample counts, recomputed after each bin (LightGBM's
rule): a value holding more samples than a bin's share (the zeros of a sparse single-cell gene)
gets a bin of its own and the other values share the remaining bins, instead of the quantiles
collapsing onto it. Bins are monotone in the values: bin ``b`` holds values below those of bin
``b + 1``, so "bin ``<= b``" is a threshold split on the raw values.

For sparse regulators the bins also keep, per regulator, the samples outside bin 0 (the smallest
value) in a CSR-like index: a node's histogram is then built from those samples only, bin 0 being
the node's total minus the others, which costs the regulator's non-zero count instead of the
node's size.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from bengrn.methods._forest import feature_ranks

__all__ = ["Bins", "bin_features", "bins_nbytes"]


class Bins(NamedTuple):
    """Binned regulators, shared by every target and tree.

    ``codes``: ``(n_features, n_samples)`` C-contiguous ``uint8`` (``uint16`` above 256 bins), the
    bin of each sample; ``n_bins``: ``(n_features,)`` int64 bins used per feature; ``nz_ptr``:
    ``(n_features + 1,)`` int64, ``nz_idx`` int32 and ``nz_code`` (``codes``' dtype): feature
    ``f``'s samples outside bin 0 are ``nz_idx[nz_ptr[f]:nz_ptr[f + 1]]`` (ascending), their bins
    ``nz_code[...]``.
    """

    codes: np.ndarray
    n_bins: np.ndarray
    nz_ptr: np.ndarray
    nz_idx: np.ndarray
    nz_code: np.ndarray


@nb.njit(cache=True)
def _greedy_bins(R, counts, max_bins, bin_of_rank, n_bins):  # pragma: no cover - compiled
    """Per feature: count the samples of each dense rank, then map ranks to bins greedily."""
    n_features, n_samples = R.shape
    for f in range(n_features):
        n_ranks = 0
        for s in range(n_samples):
            r = R[f, s]
            counts[r] += 1
            if r + 1 > n_ranks:
                n_ranks = r + 1
        if n_ranks <= max_bins:
            for r in range(n_ranks):
                bin_of_rank[f, r] = r
            n_bins[f] = n_ranks
        else:
            b = 0
            in_bin = 0
            assigned = 0
            share = n_samples / max_bins
            for r in range(n_ranks):
                c = counts[r]
                # close the current bin before r when r would end past the bin's share, or when
                # each remaining value can have a bin of its own
                if in_bin > 0 and b + 1 < max_bins:
                    if in_bin + 0.5 * c > share or n_ranks - r <= max_bins - b - 1:
                        b += 1
                        in_bin = 0
                        share = (n_samples - assigned) / (max_bins - b)
                bin_of_rank[f, r] = b
                in_bin += c
                assigned += c
            n_bins[f] = b + 1
        for r in range(n_ranks):
            counts[r] = 0


@nb.njit(cache=True)
def _codes(R, bin_of_rank, codes):  # pragma: no cover - compiled
    n_features, n_samples = R.shape
    nnz = 0
    for f in range(n_features):
        for s in range(n_samples):
            b = bin_of_rank[f, R[f, s]]
            codes[f, s] = b
            if b != 0:
                nnz += 1
    return nnz


@nb.njit(cache=True)
def _nonzero_index(codes, nz_ptr, nz_idx, nz_code):  # pragma: no cover - compiled
    n_features, n_samples = codes.shape
    k = 0
    for f in range(n_features):
        nz_ptr[f] = k
        for s in range(n_samples):
            if codes[f, s] != 0:
                nz_idx[k] = s
                nz_code[k] = codes[f, s]
                k += 1
    nz_ptr[n_features] = k


def bin_features(X: np.ndarray, max_bins: int = 255) -> Bins:
    """Quantile bins of each column of ``X`` (see the module docstring).

    Parameters
    ----------
    X
        ``(n_samples, n_features)`` values (e.g. cells x regulators).
    max_bins
        Most bins per feature, 2 to 65,536.

    Returns
    -------
    :class:`Bins`, rows = features.
    """
    if isinstance(max_bins, bool) or not isinstance(max_bins, (int, np.integer)):
        raise ValueError(f"max_bins must be an integer from 2 to 65536; got {max_bins!r}")
    if not 2 <= max_bins <= 65536:
        raise ValueError(f"max_bins must be an integer from 2 to 65536; got {max_bins}")
    ranks = feature_ranks(X)
    n_features, n_samples = ranks.shape
    dtype = np.uint8 if max_bins <= 256 else np.uint16
    n_ranks = int(ranks.max(initial=0)) + 1
    bin_of_rank = np.zeros((n_features, n_ranks), dtype=dtype)
    n_bins = np.zeros(n_features, dtype=np.int64)
    _greedy_bins(ranks, np.zeros(n_ranks, dtype=np.int64), int(max_bins), bin_of_rank, n_bins)
    codes = np.empty((n_features, n_samples), dtype=dtype)
    nnz = _codes(ranks, bin_of_rank, codes)
    del ranks
    nz_ptr = np.empty(n_features + 1, dtype=np.int64)
    nz_idx = np.empty(nnz, dtype=np.int32)
    nz_code = np.empty(nnz, dtype=dtype)
    _nonzero_index(codes, nz_ptr, nz_idx, nz_code)
    return Bins(codes, n_bins, nz_ptr, nz_idx, nz_code)


def bins_nbytes(bins: Bins) -> int:
    """Bytes held by ``bins`` (the binned regulator matrix every target shares)."""
    return int(sum(a.nbytes for a in bins))
