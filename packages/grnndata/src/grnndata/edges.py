"""Edge lists <-> sparse networks, fully vectorised (rows = regulators, columns = targets).

:func:`edges_to_matrix` maps a long-form table of ``(regulator, target, weight)`` rows onto a
square CSR matrix over a fixed gene list; :func:`matrix_to_edges` turns a CSR matrix back into a
tidy table, optionally keeping only the strongest edges. Neither loops over edges in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._matrix import examples

log = logging.getLogger(__name__)

Duplicates = Literal["max", "absmax", "min", "sum", "mean", "first", "last", "error"]
DUPLICATE_RULES: tuple[str, ...] = (
    "max",
    "absmax",
    "min",
    "sum",
    "mean",
    "first",
    "last",
    "error",
)

__all__ = [
    "DUPLICATE_RULES",
    "EdgeMapping",
    "edges_to_matrix",
    "gene_codes",
    "matrix_to_edges",
    "merge_duplicate_edges",
]


@dataclass(frozen=True)
class EdgeMapping:
    """What :func:`edges_to_matrix` did with the input rows.

    Attributes
    ----------
    matrix
        ``csr_matrix`` float32 ``(n_genes, n_genes)``, rows = regulators, columns = targets.
    n_input
        Rows in the input table.
    n_unknown
        Rows dropped because the regulator or the target is not among the genes.
    unknown_genes
        The distinct names not found among the genes (regulators and targets), in input order.
    n_duplicates
        Rows merged into another row with the same (regulator, target) pair.
    """

    matrix: sp.csr_matrix
    n_input: int
    n_unknown: int
    unknown_genes: list[str]
    n_duplicates: int


def gene_codes(names: pd.Series | np.ndarray | Sequence[str], genes: pd.Index) -> np.ndarray:
    """Positions of ``names`` in the unique index ``genes`` (``-1`` where absent), vectorised.

    Categorical input is mapped through its categories only, which is much faster for the
    typical edge list where a few thousand genes repeat over millions of rows.
    """
    series = names if isinstance(names, pd.Series) else pd.Series(np.asarray(names, dtype=object))
    if isinstance(series.dtype, pd.CategoricalDtype):
        category_codes = genes.get_indexer(series.cat.categories.astype(str))
        codes = series.cat.codes.to_numpy()
        out = np.where(codes >= 0, category_codes[np.maximum(codes, 0)], -1)
        return out.astype(np.int64, copy=False)
    return genes.get_indexer(series.to_numpy()).astype(np.int64, copy=False)


def edges_to_matrix(
    genes: pd.Index,
    regulators: pd.Series | np.ndarray,
    targets: pd.Series | np.ndarray,
    weights: np.ndarray | None = None,
    *,
    duplicates: Duplicates = "max",
    strict: bool = False,
    unknown_level: int = logging.WARNING,
) -> EdgeMapping:
    """Build a regulators x targets CSR matrix over ``genes`` from parallel edge arrays.

    Parameters
    ----------
    genes
        Unique gene names; position ``i`` is row ``i`` (as regulator) and column ``i`` (as target).
    regulators, targets
        Gene names of each edge's source (row) and target (column), same length.
    weights
        Edge weights (finite numbers); ``None`` gives every edge weight 1.
    duplicates
        How rows with the same (regulator, target) pair are merged: ``"max"`` / ``"min"`` (largest
        / smallest signed weight), ``"absmax"`` (largest magnitude, sign kept; a tie between
        ``w`` and ``-w`` keeps ``w``), ``"sum"``, ``"mean"``, ``"first"`` / ``"last"`` (in input
        row order), or ``"error"`` (raise ``ValueError``).
    strict
        If true, any unknown regulator or target raises ``ValueError``; otherwise those rows are
        dropped and reported (count and examples) at ``unknown_level`` (a warning by default).
    unknown_level
        ``logging`` level of that report (INFO where dropping edges is the point, e.g. restricting
        a table to some genes).

    Notes
    -----
    Edges whose merged weight is exactly 0 are not stored (a zero weight is not an edge).
    """
    if duplicates not in DUPLICATE_RULES:
        raise ValueError(
            f"duplicates={duplicates!r} is not a rule; expected one of {DUPLICATE_RULES}"
        )
    n_input = len(regulators)
    if len(targets) != n_input:
        raise ValueError(f"regulators ({n_input}) and targets ({len(targets)}) differ in length")
    if n_input == 0:
        log.warning("the edge table is empty: the network has no edges")
    _check_name_types(genes, regulators, "regulators")
    _check_name_types(genes, targets, "targets")
    values = np.ones(n_input, dtype=np.float32) if weights is None else _float32_weights(weights)
    if values.shape != (n_input,):
        raise ValueError(f"weights has shape {values.shape}; expected ({n_input},), one per edge")
    rows = gene_codes(regulators, genes)
    cols = gene_codes(targets, genes)
    known = (rows >= 0) & (cols >= 0)
    n_unknown = int(n_input - known.sum())
    unknown_genes: list[str] = []
    if n_unknown:
        missing = pd.unique(
            np.concatenate(
                [
                    np.asarray(regulators, dtype=object)[rows < 0],
                    np.asarray(targets, dtype=object)[cols < 0],
                ]
            )
        )
        unknown_genes = [str(g) for g in missing]
        message = (
            f"{n_unknown} of {n_input} edges name {len(unknown_genes)} gene(s) absent from the "
            f"{len(genes)} network genes, e.g. {examples(unknown_genes)}"
        )
        not_text = [g for g in missing if not isinstance(g, str)]
        if not_text:
            message += (
                f"; {len(not_text)} of those are not strings (e.g. {not_text[0]!r} of type "
                f"{type(not_text[0]).__name__}) while the genes are strings: the types differ "
                "(convert the edge table's gene columns with .astype(str) or map ids to names)"
            )
        if strict:
            raise ValueError(message + "; pass strict=False to drop those edges")
        log.log(unknown_level, "%s; those edges were dropped", message)
        rows, cols, values = rows[known], cols[known], values[known]
    matrix, n_duplicates = merge_duplicate_edges(rows, cols, values, len(genes), duplicates)
    return EdgeMapping(matrix, n_input, n_unknown, unknown_genes, n_duplicates)


def _check_name_types(genes: pd.Index, names: pd.Series | np.ndarray, what: str) -> None:
    """Raise when edge endpoints are numbers while the genes are names (they can never match)."""
    dtype = names.dtype if hasattr(names, "dtype") else np.asarray(names).dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if np.dtype(dtype).kind not in "biuf" or len(names) == 0:
        return
    gene_kinds = {type(g).__name__ for g in genes[:1000]}
    if gene_kinds <= {"str"}:
        first = np.asarray(names)[0]
        raise ValueError(
            f"the {what} are numbers ({np.dtype(dtype)}, e.g. {first!r}) but the network genes are "
            f"strings (e.g. {examples(genes[:3])}): the types differ, so no edge could match. Map "
            "the ids to gene names first, or convert them with .astype(str) if the genes are "
            "numeric ids stored as text"
        )


_FLOAT32_TINY = float(np.finfo(np.float32).smallest_subnormal)


def _float32_weights(weights: np.ndarray) -> np.ndarray:
    """``weights`` as float32: finite numbers required; values that overflow float32 raise, values
    that underflow to 0 (no longer an edge) are reported with a warning."""
    original = np.asarray(weights)
    if original.dtype.kind not in "biuf":
        raise ValueError(f"weights have dtype {original.dtype}; expected numbers")
    if original.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(original))
        if bad.size:
            raise ValueError(
                f"{bad.size} edge weight(s) are NaN or inf, e.g. at rows {examples(bad.tolist())}; "
                "weights must be finite (drop or fill them first)"
            )
    with np.errstate(over="ignore", under="ignore"):
        values = original.astype(np.float32, copy=False)
    if values is original:
        return values
    overflow = np.flatnonzero(~np.isfinite(values))
    if overflow.size:
        raise ValueError(
            f"{overflow.size} edge weight(s) exceed float32's range (+/-3.4e38) in which networks "
            f"are stored, e.g. {float(original[overflow[0]])!r} at row {int(overflow[0])}; "
            "rescale the weights"
        )
    underflow = np.flatnonzero((values == 0) & (original != 0))
    if underflow.size:
        log.warning(
            "%d edge weight(s) are non-zero but smaller in magnitude than float32's smallest value "
            "(%.1e) and become 0, i.e. no edge; e.g. %r at row %d. Rescale the weights to keep them",
            underflow.size,
            _FLOAT32_TINY,
            float(original[underflow[0]]),
            int(underflow[0]),
        )
    return values


def _pair_order(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Stable order of edges by (row, col): two 16-bit radix sorts when ``n <= 65536``."""
    if n <= 1 << 16:
        by_col = np.argsort(cols.astype(np.uint16), kind="stable")
        return by_col[np.argsort(rows[by_col].astype(np.uint16), kind="stable")]
    return np.argsort(rows.astype(np.int64) * n + cols, kind="stable")


def merge_duplicate_edges(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int, rule: str
) -> tuple[sp.csr_matrix, int]:
    """CSR float32 ``(n, n)`` from edge arrays, merging repeated (row, col) pairs with ``rule``.

    ``rule`` is one of :data:`DUPLICATE_RULES`; ``first``/``last`` follow the input order. One
    stable sort by (row, col), then one ``reduceat``. Returns the matrix (sorted indices, no
    stored zeros) and the number of input edges merged into another.
    """
    if rule not in DUPLICATE_RULES:
        raise ValueError(f"duplicates={rule!r} is not a rule; expected one of {DUPLICATE_RULES}")
    order = _pair_order(rows, cols, n)
    rows, cols, values = rows[order], cols[order], values[order]
    new_pair = np.empty(rows.size, dtype=bool)
    new_pair[:1] = True
    np.not_equal(rows[1:], rows[:-1], out=new_pair[1:])
    new_pair[1:] |= cols[1:] != cols[:-1]
    starts = np.flatnonzero(new_pair)
    n_duplicates = int(rows.size - starts.size)
    if n_duplicates == 0:
        merged = values
    elif rule == "error":
        counts = np.diff(np.r_[starts, rows.size])
        first = starts[counts > 1][:5]
        pairs = [(int(rows[i]), int(cols[i])) for i in first]
        raise ValueError(
            f"{n_duplicates} duplicated edge(s) (same regulator and target), e.g. "
            f"(row, col) {pairs}; choose duplicates='max', 'sum', 'mean', 'first' ..."
        )
    elif rule == "max":
        merged = np.maximum.reduceat(values, starts)
    elif rule == "min":
        merged = np.minimum.reduceat(values, starts)
    elif rule == "absmax":
        largest = np.maximum.reduceat(values, starts)
        smallest = np.minimum.reduceat(values, starts)
        merged = np.where(-smallest > largest, smallest, largest)
    elif rule == "sum":
        merged = np.add.reduceat(values.astype(np.float64), starts)
    elif rule == "mean":
        counts = np.diff(np.r_[starts, rows.size])
        merged = np.add.reduceat(values.astype(np.float64), starts) / counts
    elif rule == "first":
        merged = values[starts]
    else:  # "last"
        merged = values[np.r_[starts[1:], rows.size] - 1]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[starts], minlength=n), out=indptr[1:])
    index_dtype = np.int32 if max(n, starts.size) < np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix(
        (
            np.asarray(merged, dtype=np.float32),
            cols[starts].astype(index_dtype),
            indptr.astype(index_dtype),
        ),
        shape=(n, n),
    )
    matrix.eliminate_zeros()
    return matrix, n_duplicates


def matrix_to_edges(
    matrix: sp.csr_matrix,
    genes: pd.Index,
    *,
    min_weight: float | None = None,
    top_k: int | None = None,
    per_regulator_top_k: int | None = None,
) -> pd.DataFrame:
    """Tidy edge table of a regulators x targets CSR matrix.

    Parameters
    ----------
    matrix
        ``(n_genes, n_genes)`` CSR, rows = regulators, columns = targets.
    genes
        Names of rows/columns.
    min_weight
        Keep edges with ``weight >= min_weight``.
    top_k
        Keep the ``top_k`` largest-weight edges overall (after ``min_weight``).
    per_regulator_top_k
        Keep each regulator's ``per_regulator_top_k`` largest-weight outgoing edges (applied
        before ``top_k``).

    Returns
    -------
    DataFrame with columns ``regulator``, ``target`` (categoricals over ``genes``) and ``weight``
    (float32), sorted by decreasing weight; ties keep (regulator, target) matrix order.
    """
    for name, k in (("top_k", top_k), ("per_regulator_top_k", per_regulator_top_k)):
        if k is not None and (not isinstance(k, int | np.integer) or k < 0):
            raise ValueError(f"{name} must be a non-negative integer, got {k!r}")
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), counts)
    cols = matrix.indices.astype(np.int64, copy=False)
    weights = matrix.data
    if min_weight is not None:
        keep = weights >= min_weight
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
    if per_regulator_top_k is not None:
        order = np.lexsort((-weights.astype(np.float64), rows))
        rows, cols, weights = rows[order], cols[order], weights[order]
        group_start = np.r_[0, np.flatnonzero(rows[1:] != rows[:-1]) + 1]
        lengths = np.diff(np.r_[group_start, rows.size])
        rank = np.arange(rows.size) - np.repeat(group_start, lengths)
        keep = rank < per_regulator_top_k
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
        back = np.lexsort((cols, rows))
        rows, cols, weights = rows[back], cols[back], weights[back]
    order = np.argsort(-weights.astype(np.float64), kind="stable")
    if top_k is not None:
        order = order[:top_k]
    categories = pd.Index(genes, dtype=object)
    return pd.DataFrame(
        {
            "regulator": pd.Categorical.from_codes(rows[order], categories=categories),
            "target": pd.Categorical.from_codes(cols[order], categories=categories),
            "weight": weights[order].astype(np.float32, copy=False),
        }
    )
