"""Correlation baselines: absolute Pearson / Spearman correlation, computed in blocks of regulators.

The ``(n_regulators, n_genes)`` correlation matrix is built ``block_size`` regulators at a time
from the standardised expression, so peak memory is ``n_cells x n_genes`` floats plus one block;
with ``top_k`` only each regulator's ``top_k`` strongest targets are kept, so 20,000 genes fit in
memory (``top_k=None`` keeps every non-zero correlation). Genes with zero variance get weight 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from tqdm.auto import tqdm

from bengrn.methods._common import expression_matrix, make_network, regulator_indices, top_k_rows

__all__ = ["pearson", "spearman"]


def _standardise(X: np.ndarray) -> np.ndarray:
    X = X - X.mean(axis=0, keepdims=True)
    norm = np.sqrt((X * X).sum(axis=0, keepdims=True))
    np.divide(X, norm, out=X, where=norm > 0)
    X[:, norm.ravel() == 0] = 0
    return X


def _abs_correlation(
    adata: ad.AnnData,
    X: np.ndarray,
    name: str,
    regulators: Sequence[str] | None,
    top_k: int | None,
    block_size: int,
    params: dict[str, Any],
) -> Any:
    genes = pd.Index(adata.var_names.astype(str))
    reg_idx = regulator_indices(genes, regulators)
    Z = _standardise(X.astype(np.float32))
    blocks = []
    for start in tqdm(range(0, len(reg_idx), block_size), desc=name, unit="block"):
        rows = reg_idx[start : start + block_size]
        block = np.abs(Z[:, rows].T @ Z)
        block[np.arange(len(rows)), rows] = 0
        blocks.append(top_k_rows(block, top_k))
    return make_network(reg_idx, sp.vstack(blocks).tocsr(), genes, name, params)


def pearson(
    adata: ad.AnnData,
    *,
    regulators: Sequence[str] | None = None,
    top_k: int | None = None,
    block_size: int = 512,
    transform: str = "log1p",
) -> Any:
    """|Pearson correlation| between each candidate regulator and every gene.

    ``regulators``: candidate regulators (``None`` = all genes); ``top_k``: keep each regulator's
    ``top_k`` strongest targets; ``block_size``: regulators per block; ``transform``: as in
    :func:`bengrn.methods.genie3`. Returns a GRNAnnData, rows = regulators, columns = targets.
    """
    params = dict(top_k=top_k, block_size=block_size, transform=transform)
    X = expression_matrix(adata, transform)
    return _abs_correlation(adata, X, "pearson", regulators, top_k, block_size, params)


def spearman(
    adata: ad.AnnData,
    *,
    regulators: Sequence[str] | None = None,
    top_k: int | None = None,
    block_size: int = 512,
    transform: str = "log1p",
) -> Any:
    """|Spearman correlation| (Pearson of per-gene ranks, ties averaged); same parameters as
    :func:`pearson`."""
    params = dict(top_k=top_k, block_size=block_size, transform=transform)
    X = stats.rankdata(expression_matrix(adata, transform), axis=0).astype(np.float32)
    return _abs_correlation(adata, X, "spearman", regulators, top_k, block_size, params)
