"""The universe's scores, sorted in blocks, answering "how many edges score at least t?".

:mod:`bengrn.metrics` needs, for every distinct score of a true edge, how many edges of the
universe score at least that much (and strictly more). Sorting all pairs with an argsort would need
index arrays as large as the network; instead the |scores| are sorted by value in blocks of rows
(:func:`dense_index`; a compiled LSD radix sort of the float bit patterns, :func:`sort_scores`, on a
few threads), and :class:`ScoreIndex` answers the counts with one linear merge per block.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba as nb
import numpy as np

__all__ = ["ScoreIndex", "dense_index", "sort_scores"]

_ROWS_PER_BLOCK_ELEMENTS = 16_000_000


@nb.njit(cache=True, nogil=True)
def _merge_counts(block: np.ndarray, thresholds: np.ndarray, n_lt: np.ndarray, n_le: np.ndarray):
    """Add ``#(block < t)`` to ``n_lt`` and ``#(block <= t)`` to ``n_le`` for every threshold.

    ``block`` sorted ascending, ``thresholds`` strictly ascending: one linear merge of the two.
    """
    j = 0
    n = block.shape[0]
    for i in range(thresholds.shape[0]):
        t = thresholds[i]
        while j < n and block[j] < t:
            j += 1
        n_lt[i] += j
        while j < n and block[j] <= t:
            j += 1
        n_le[i] += j


class ScoreIndex:
    """Sorted blocks of the universe's scores, answering ``#(score >= t)`` for any ``t >= 0``.

    ``blocks`` are sorted 1-D arrays of scores ``>= 0``; ``n_zeros`` corrects the count of zeros:
    universe pairs scored 0 that no block stores, minus excluded pairs (self-loops) that a block
    stores as 0 (so it may be negative). Counts at ``t > 0`` only read the blocks.
    """

    def __init__(self, blocks: list[np.ndarray], n_zeros: int):
        self.blocks = blocks
        self.n_zeros = int(n_zeros)

    def count_ge(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        out = np.zeros(t.shape, dtype=np.int64)
        for block in self.blocks:
            out += len(block) - np.searchsorted(block, t.astype(block.dtype), side="left")
        out += np.where(t <= 0, self.n_zeros, 0)
        return out

    def count_gt(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        out = np.zeros(t.shape, dtype=np.int64)
        for block in self.blocks:
            out += len(block) - np.searchsorted(block, t.astype(block.dtype), side="right")
        out += np.where(t < 0, self.n_zeros, 0)
        return out

    def count_ge_gt(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(#(score >= t), #(score > t))`` for strictly ascending ``thresholds >= 0``.

        One linear merge per block, so the cost is the blocks' size plus the number of
        thresholds per block, not thresholds x log(block size).
        """
        n_lt = np.zeros(len(thresholds), dtype=np.int64)
        n_le = np.zeros(len(thresholds), dtype=np.int64)
        total = 0
        for block in self.blocks:
            _merge_counts(block, thresholds.astype(block.dtype), n_lt, n_le)
            total += len(block)
        zeros_ge = np.where(thresholds <= 0, self.n_zeros, 0)
        return total - n_lt + zeros_ge, total - n_le

    def max_score(self) -> float:
        return float(max((b[-1] for b in self.blocks if len(b)), default=0.0))

    def kth_largest(self, k: int) -> float:
        """The k-th largest score (1-based), found by bisection on float bit patterns."""
        dtype = np.float64 if any(b.dtype == np.float64 for b in self.blocks) else np.float32
        itype = np.uint64 if dtype == np.float64 else np.uint32
        hi_val = self.max_score()
        lo, hi = 0, int(np.array(max(hi_val, 0.0), dtype=dtype).view(itype))
        # largest bit pattern b with count_ge(value(b)) >= k; count_ge(0) >= k always holds here.
        while lo < hi:
            mid = (lo + hi + 1) // 2
            value = np.array(mid, dtype=itype).view(dtype)
            if self.count_ge(np.array([value]))[0] >= k:
                lo = mid
            else:
                hi = mid - 1
        return float(np.array(lo, dtype=itype).view(dtype))


@nb.njit(cache=True, nogil=True)
def _radix_sort(keys: np.ndarray, scratch: np.ndarray, shifts: np.ndarray, mask: Any) -> bool:
    """LSD radix sort of unsigned integer ``keys`` (one pass per digit ``(key >> shift) & mask``);
    returns ``True`` when the sorted keys ended in ``scratch`` rather than ``keys``."""
    n = keys.shape[0]
    n_buckets = int(mask) + 1
    n_pass = shifts.shape[0]
    counts = np.zeros((n_pass, n_buckets + 1), np.int64)
    for i in range(n):
        key = keys[i]
        for p in range(n_pass):
            counts[p, int((key >> shifts[p]) & mask) + 1] += 1
    src, dst = keys, scratch
    swapped = False
    for p in range(n_pass):
        offsets = counts[p]
        if offsets.max() == n:  # every key has the same digit here
            continue
        for b in range(n_buckets):
            offsets[b + 1] += offsets[b]
        for i in range(n):
            digit = int((src[i] >> shifts[p]) & mask)
            dst[offsets[digit]] = src[i]
            offsets[digit] += 1
        src, dst = dst, src
        swapped = not swapped
    return swapped


def sort_scores(values: np.ndarray) -> np.ndarray:
    """Sort non-negative float32 / float64 scores ascending (in place when possible).

    The bit patterns of non-negative IEEE floats order like the floats, so a radix sort of the
    patterns (linear time, compiled) sorts the scores, several times faster than ``np.sort``.
    """
    if values.dtype == np.float32:
        keys, shifts, mask = (
            values.view(np.uint32),
            np.array([0, 11, 22], np.uint32),
            np.uint32(0x7FF),
        )
    else:
        keys, shifts, mask = (
            values.view(np.uint64),
            np.arange(0, 64, 16, dtype=np.uint64),
            np.uint64(0xFFFF),
        )
    scratch = np.empty_like(keys)
    if _radix_sort(keys, scratch, shifts, mask):
        keys[:] = scratch
    return values


def _n_threads() -> int:
    try:
        return max(1, min(4, len(os.sched_getaffinity(0))))
    except AttributeError:  # not Linux
        return max(1, min(4, os.cpu_count() or 1))


def dense_index(
    matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray, self_loops: np.ndarray
) -> list[np.ndarray]:
    """Sorted |scores| of ``matrix[rows][:, cols]`` in row blocks, self-loops stored as 0.

    Blocks are built on a few threads (the compiled sort releases the GIL).
    """
    n_cols = len(cols)
    step = max(1, _ROWS_PER_BLOCK_ELEMENTS // max(n_cols, 1))
    all_cols = n_cols == matrix.shape[1] and np.array_equal(cols, np.arange(n_cols))
    dtype = np.float64 if matrix.dtype == np.float64 else np.float32
    loop_rows, loop_cols = self_loops

    def build(start: int) -> np.ndarray:
        row_ids = rows[start : start + step]
        contiguous = np.array_equal(row_ids, np.arange(row_ids[0], row_ids[0] + len(row_ids)))
        part = matrix[row_ids[0] : row_ids[-1] + 1] if contiguous else matrix[row_ids]
        if not all_cols:
            part = part[:, cols]
        block = np.abs(part.astype(dtype, copy=False))
        if np.shares_memory(block, matrix):
            block = block.copy()
        sel = (loop_rows >= start) & (loop_rows < start + step)
        block[loop_rows[sel] - start, loop_cols[sel]] = 0
        return sort_scores(block.ravel())

    starts = range(0, len(rows), step)
    if len(starts) == 1:
        return [build(0)]
    with ThreadPoolExecutor(_n_threads()) as pool:
        return list(pool.map(build, starts))
