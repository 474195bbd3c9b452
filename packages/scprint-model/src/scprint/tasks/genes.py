"""Gene selection on raw counts, without scanpy: highly variable, differentially expressed, most expressed.

All functions take a cells x genes count matrix (CSR, dense or anything scipy can convert) and
return column indices, best first. They work on log-normalised values
``log1p(counts / total_counts * 1e4)`` computed here, vectorised over genes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from scprint.errors import InputError

__all__ = [
    "GENE_SELECTIONS",
    "differentially_expressed_genes",
    "highly_variable_genes",
    "log_normalise",
    "most_expressed_genes",
    "select_genes",
]

#: Names accepted by :func:`select_genes` (besides an explicit list of columns).
GENE_SELECTIONS: tuple[str, ...] = ("hvg", "de", "expressed")


def log_normalise(counts: sp.spmatrix | np.ndarray, target_sum: float = 1e4) -> sp.csr_matrix:
    """``log1p(counts / total * target_sum)`` per cell, as float64 CSR (cells x genes).

    Cells with zero total counts stay zero.
    """
    matrix = sp.csr_matrix(counts, dtype=np.float64)
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals), where=totals > 0)
    matrix = sp.diags(scale) @ matrix
    matrix = sp.csr_matrix(matrix)
    matrix.data = np.log1p(matrix.data)
    return matrix


def _mean_var(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and (population) variance of a cells x genes sparse matrix."""
    n = matrix.shape[0]
    mean = np.asarray(matrix.sum(axis=0)).ravel() / n
    mean_sq = np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel() / n
    return mean, np.maximum(mean_sq - mean**2, 0.0)


def _check_n_top(n_top: int, n_genes: int) -> int:
    if not isinstance(n_top, int | np.integer) or n_top < 1:
        raise InputError(f"the number of genes to select must be a positive integer, got {n_top!r}")
    return int(min(n_top, n_genes))


def highly_variable_genes(
    counts: sp.spmatrix | np.ndarray, n_top: int, n_bins: int = 20
) -> np.ndarray:
    """The ``n_top`` most variable genes, by mean-binned normalised dispersion (Seurat-style).

    On log-normalised values, per gene: ``dispersion = log(var / mean)``; genes are put in
    ``n_bins`` equal-width bins of mean expression and the dispersion is z-scored within its
    bin (a bin with one gene gets z = 1, as in Seurat). Genes never expressed are never chosen.
    Returns column indices, most variable first; at most the number of expressed genes.
    """
    matrix = log_normalise(counts)
    n_top = _check_n_top(n_top, matrix.shape[1])
    mean, var = _mean_var(matrix)
    expressed = mean > 0
    dispersion = np.full(mean.shape, -np.inf)
    dispersion[expressed] = np.log(np.maximum(var[expressed], 1e-12) / mean[expressed])
    edges = np.linspace(mean[expressed].min(), mean[expressed].max(), n_bins + 1)
    bins = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, n_bins - 1)
    bins = np.where(expressed, bins, n_bins)
    count = np.bincount(bins, minlength=n_bins + 1).astype(np.float64)
    disp_finite = np.where(expressed, dispersion, 0.0)
    bin_mean = np.bincount(bins, weights=disp_finite, minlength=n_bins + 1) / np.maximum(count, 1)
    bin_sq = np.bincount(bins, weights=disp_finite**2, minlength=n_bins + 1) / np.maximum(count, 1)
    bin_std = np.sqrt(np.maximum(bin_sq - bin_mean**2, 0.0) * count / np.maximum(count - 1, 1))
    std = bin_std[bins]
    z = np.where(std > 0, (disp_finite - bin_mean[bins]) / np.where(std > 0, std, 1.0), 0.0)
    z = np.where(count[bins] == 1, 1.0, z)
    z = np.where(expressed, z, -np.inf)
    order = np.argsort(-z, kind="stable")
    return order[: min(n_top, int(expressed.sum()))]


def differentially_expressed_genes(
    counts: sp.spmatrix | np.ndarray, in_group: np.ndarray, n_top: int
) -> np.ndarray:
    """The ``n_top`` genes most up-regulated in ``in_group`` cells versus the rest (Welch t-test).

    ``in_group`` is a boolean mask over cells. On log-normalised values, per gene,
    ``t = (mean_in - mean_out) / sqrt(var_in / n_in + var_out / n_out)`` (sample variances); genes
    are ranked by decreasing t (a vectorised stand-in for scanpy's ``rank_genes_groups`` t-test).
    Raises ``ValueError`` when either group has fewer than two cells.
    """
    in_group = np.asarray(in_group, dtype=bool)
    matrix = log_normalise(counts)
    if in_group.shape != (matrix.shape[0],):
        raise InputError(
            f"in_group must be a boolean mask of length {matrix.shape[0]}, got shape {in_group.shape}"
        )
    n_in, n_out = int(in_group.sum()), int((~in_group).sum())
    if n_in < 2 or n_out < 2:
        raise InputError(
            f"differential expression needs at least 2 cells in the group and 2 outside it, "
            f"got {n_in} and {n_out}"
        )
    n_top = _check_n_top(n_top, matrix.shape[1])
    mean_in, var_in = _mean_var(matrix[in_group])
    mean_out, var_out = _mean_var(matrix[~in_group])
    var_in *= n_in / (n_in - 1)
    var_out *= n_out / (n_out - 1)
    se = np.sqrt(var_in / n_in + var_out / n_out)
    diff = mean_in - mean_out
    t = np.divide(diff, se, out=np.where(diff > 0, np.inf, 0.0), where=se > 0)
    return np.argsort(-t, kind="stable")[:n_top]


def most_expressed_genes(counts: sp.spmatrix | np.ndarray, n_top: int) -> np.ndarray:
    """The ``n_top`` genes of highest mean log-normalised expression (never-expressed genes excluded)."""
    matrix = log_normalise(counts)
    n_top = _check_n_top(n_top, matrix.shape[1])
    mean, _ = _mean_var(matrix)
    order = np.argsort(-mean, kind="stable")
    return order[: min(n_top, int((mean > 0).sum()))]


def select_genes(
    counts: sp.spmatrix | np.ndarray,
    method: str | Sequence[int],
    n_top: int,
    *,
    candidates: np.ndarray | None = None,
    in_group: np.ndarray | None = None,
) -> np.ndarray:
    """Columns chosen by ``method``: ``"hvg"``, ``"de"`` (needs ``in_group``), ``"expressed"``.

    ``counts`` are the cells to select on (cells x genes). ``candidates`` restricts the choice to
    these column indices (e.g. genes the model knows); the result is in column indices of
    ``counts``, best first. For ``"de"`` the rows of ``counts`` are all cells and ``in_group``
    marks the group.
    """
    matrix = sp.csr_matrix(counts)
    columns = np.arange(matrix.shape[1]) if candidates is None else np.asarray(candidates)
    sub = matrix[:, columns]
    if method == "hvg":
        local = highly_variable_genes(sub, n_top)
    elif method == "de":
        if in_group is None:
            raise InputError("gene selection 'de' needs a group of cells to compare with the rest")
        local = differentially_expressed_genes(sub, in_group, n_top)
    elif method == "expressed":
        local = most_expressed_genes(sub, n_top)
    else:
        raise InputError(
            f"gene selection must be one of {GENE_SELECTIONS} or a gene list, got {method!r}"
        )
    return columns[local]
