"""Helpers shared by the built-in methods: the expression matrix, regulators, the output object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["expression_matrix", "make_network", "regulator_indices", "top_k_rows"]


def expression_matrix(adata: ad.AnnData, transform: str = "log1p") -> np.ndarray:
    """Dense float32 ``(n_cells, n_genes)`` expression for inference.

    ``transform``: ``"log1p"`` (scale each cell to the median total, then ``log1p``; what the
    built-in methods use by default) or ``"none"`` (``X`` as given).
    """
    if transform not in ("log1p", "none"):
        raise ValueError(f"transform must be 'log1p' or 'none'; got {transform!r}")
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    X = X.astype(np.float32, copy=True)
    if not np.isfinite(X).all():
        raise ValueError("the expression matrix contains NaN or infinite values")
    if transform == "log1p":
        totals = X.sum(axis=1, keepdims=True)
        target = float(np.median(totals[totals > 0])) if (totals > 0).any() else 1.0
        np.divide(X * target, totals, out=X, where=totals > 0)
        np.log1p(X, out=X)
    return X


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
