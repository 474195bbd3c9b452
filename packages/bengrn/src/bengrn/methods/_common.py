"""Helpers shared by the built-in methods: the expression matrix, regulators, the output object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "expression_matrix",
    "library_target",
    "make_network",
    "regulator_indices",
    "top_k_rows",
    "transform_cells",
]


def _check_transform(transform: str) -> None:
    if transform not in ("log1p", "none"):
        raise ValueError(f"transform must be 'log1p' or 'none'; got {transform!r}")


def library_target(X: np.ndarray | sp.spmatrix) -> tuple[np.ndarray, float]:
    """Per-cell totals ``(n_cells,)`` float32 and the median of the positive ones (1 if none):
    the library sizes of the ``"log1p"`` transform."""
    totals = np.asarray(X.sum(axis=1), dtype=np.float32).ravel()
    target = float(np.median(totals[totals > 0])) if (totals > 0).any() else 1.0
    return totals, target


def transform_cells(
    block: np.ndarray | sp.spmatrix, totals: np.ndarray, target: float, transform: str
) -> np.ndarray | sp.csr_matrix:
    """``block`` (cells x genes) as float32 after ``transform`` (see :func:`expression_matrix`),
    with library sizes from :func:`library_target` over all cells; sparse stays sparse (CSR)."""
    if sp.issparse(block):
        block = sp.csr_matrix(block, dtype=np.float32, copy=True)
        if transform == "log1p":
            # the dense path's float32 operations, in the same order (equal values, equal ties)
            cell_totals = np.repeat(totals, np.diff(block.indptr))
            np.divide(
                block.data * np.float32(target), cell_totals, out=block.data,
                where=cell_totals > 0,
            )  # fmt: skip
            np.log1p(block.data, out=block.data)
        if not np.isfinite(block.data).all():
            raise ValueError("the expression matrix contains NaN or infinite values")
        return block
    X = np.asarray(block, dtype=np.float32)
    if X is block:
        X = X.copy()
    if not np.isfinite(X).all():
        raise ValueError("the expression matrix contains NaN or infinite values")
    if transform == "log1p":
        totals = totals[:, None]
        np.divide(X * np.float32(target), totals, out=X, where=totals > 0)
        np.log1p(X, out=X)
    return X


def expression_matrix(adata: ad.AnnData, transform: str = "log1p") -> np.ndarray:
    """Dense float32 ``(n_cells, n_genes)`` expression for inference.

    ``transform``: ``"log1p"`` (scale each cell to the median total, then ``log1p``; what the
    built-in methods use by default) or ``"none"`` (``X`` as given).
    """
    _check_transform(transform)
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    X = np.asarray(X, dtype=np.float32)
    totals, target = library_target(X) if transform == "log1p" else (None, 1.0)
    return transform_cells(X, totals, target, transform)


def regulator_indices(genes: pd.Index, regulators: Sequence[str] | None) -> np.ndarray:
    """Positions of the candidate regulators in ``genes`` (all genes when ``None``)."""
    if regulators is None:
        return np.arange(len(genes))
    idx = genes.get_indexer(pd.Index([str(r) for r in regulators]).unique())
    idx = np.sort(idx[idx >= 0])
    if len(idx) == 0:
        raise ValueError(
            f"none of the {len(regulators)} candidate regulators (e.g. {list(regulators)[:5]}) is "
            f"a gene of the expression set (e.g. {list(genes[:5])})"
        )
    return idx


def make_network(
    rows: np.ndarray,
    block: np.ndarray | sp.spmatrix,
    genes: pd.Index,
    method: str,
    params: dict[str, Any],
) -> Any:
    """A GRNAnnData over ``genes`` whose regulator rows ``rows`` hold ``block`` (the rest empty)."""
    from grnndata import GRNAnnData

    block = sp.csr_matrix(block, dtype=np.float32)
    n = len(genes)
    order = np.argsort(rows, kind="stable")
    sub = block[order]
    counts_sorted = np.zeros(n, dtype=np.int64)
    counts_sorted[rows[order]] = np.diff(sub.indptr)
    full = sp.csr_matrix(
        (sub.data, sub.indices, np.concatenate([[0], np.cumsum(counts_sorted)])), shape=(n, n)
    )
    full.setdiag(0)
    full.eliminate_zeros()
    grn = GRNAnnData.from_matrix(full, list(genes))
    grn.set_metadata(method, parameters=params)
    return grn


def top_k_rows(block: np.ndarray, k: int | None) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row of a dense non-negative block (all if ``None``)."""
    if k is None or k >= block.shape[1]:
        return sp.csr_matrix(block)
    keep = np.argpartition(-block, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(block.shape[0]), k)
    vals = np.take_along_axis(block, keep, axis=1).ravel()
    return sp.csr_matrix((vals, (rows, keep.ravel())), shape=block.shape)
