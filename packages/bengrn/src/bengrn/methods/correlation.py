"""Correlation baselines: absolute Pearson / Spearman correlation, streamed over cells.

The expression (dense, or sparse with millions of cells) is read ``cell_block`` cells at a time;
each block is normalised (``transform``) and its sums, sums of squares and regulator x gene
cross-products are added to float64 accumulators. Working memory is therefore one block plus
``n_regulators x n_genes`` float64 (the accumulator), never ``n_cells x n_genes``; a sparse block
stays sparse (its cross-product costs its non-zeros, not its size). The correlation is then

``r[a, b] = (C[a, b] - n m[a] m[b]) / sqrt((Q[a] - n m[a]^2) (Q[b] - n m[b]^2))``

with sums shifted by each gene's first-block mean for numerical stability (a shift changes no
correlation). Spearman is Pearson of each gene's ranks (ties averaged), shifted so that a zero
ranks 0: sparse data stay sparse. With ``top_k`` only each regulator's ``top_k`` strongest
targets are kept (``None`` keeps every non-zero correlation). Genes with zero variance get
weight 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from tqdm.auto import tqdm

from bengrn.methods._common import (
    _check_transform,
    library_target,
    make_network,
    regulator_indices,
    top_k_rows,
    transform_cells,
)

__all__ = ["pearson", "spearman"]


def _blocks(
    X: np.ndarray | sp.spmatrix, transform: str, cell_block: int
) -> Iterator[np.ndarray | sp.csr_matrix]:
    """``X`` (cells x genes) normalised, ``cell_block`` cells at a time (float32)."""
    if sp.issparse(X):
        X = sp.csr_matrix(X)
    totals, target = library_target(X) if transform == "log1p" else (None, 1.0)
    for start in range(0, X.shape[0], cell_block):
        stop = min(start + cell_block, X.shape[0])
        yield transform_cells(
            X[start:stop], None if totals is None else totals[start:stop], target, transform
        )


def _shifted_ranks(X: np.ndarray | sp.spmatrix) -> np.ndarray | sp.csr_matrix:
    """Each column's average ranks minus the rank a zero would have: Pearson of these is
    Spearman's rho, and a sparse matrix stays sparse (its zeros rank 0)."""
    if not sp.issparse(X):
        return stats.rankdata(X, axis=0).astype(np.float64)
    csc = sp.csc_matrix(X, dtype=np.float64, copy=True)
    csc.eliminate_zeros()
    n = csc.shape[0]
    for j in range(csc.shape[1]):
        values = csc.data[csc.indptr[j] : csc.indptr[j + 1]]
        if len(values) == 0:
            continue
        n_zero = n - len(values)
        n_negative = int((values < 0).sum())
        ranks = stats.rankdata(values)  # among the non-zeros
        ranks[values > 0] += n_zero
        values[:] = ranks - (n_negative + (n_zero + 1) / 2)
    return csc.tocsr()


def _abs_correlation(
    adata: ad.AnnData,
    name: str,
    regulators: Sequence[str] | None,
    top_k: int | None,
    block_size: int,
    cell_block: int,
    transform: str,
    params: dict[str, Any],
) -> Any:
    _check_transform(transform)
    if not isinstance(cell_block, (int, np.integer)) or cell_block < 1:
        raise ValueError(f"cell_block must be a positive number of cells; got {cell_block!r}")
    genes = pd.Index(adata.var_names.astype(str))
    reg_idx = regulator_indices(genes, regulators)
    X = adata.X
    if name == "spearman":  # ranks of the normalised values over all cells
        X = _shifted_ranks(sp.vstack(list(_blocks(X, transform, cell_block))) if sp.issparse(X)
                           else np.vstack(list(_blocks(X, transform, cell_block))))  # fmt: skip
        blocks = (X[i : i + cell_block] for i in range(0, X.shape[0], cell_block))
    else:
        blocks = _blocks(X, transform, cell_block)
    n_genes = len(genes)
    n = 0
    shift = None
    sums = np.zeros(n_genes)
    squares = np.zeros(n_genes)
    cross = np.zeros((len(reg_idx), n_genes))
    for block in tqdm(blocks, desc=name, unit="block", total=-(-adata.n_obs // cell_block)):
        if shift is None:  # the first block's means: a shift that keeps the sums small
            shift = np.asarray(block.mean(axis=0), dtype=np.float64).ravel()
            if sp.issparse(block):
                shift[:] = 0.0  # keep sparse blocks sparse; their values are >= 0 and small
        m = block.shape[0]
        n += m
        if sp.issparse(block):
            block = block.astype(np.float64)
            sums += np.asarray(block.sum(axis=0)).ravel()
            squares += np.asarray(block.multiply(block).sum(axis=0)).ravel()
            regs = block if len(reg_idx) == n_genes else block[:, reg_idx]
            cross += (regs.T @ block).toarray()
        else:
            block = block.astype(np.float64) - shift
            sums += block.sum(axis=0)
            squares += np.einsum("ij,ij->j", block, block)
            cross += block[:, reg_idx].T @ block
    mean = sums / n
    sd = np.sqrt(np.maximum(squares - n * mean * mean, 0.0))
    constant = sd <= 1e-7 * np.maximum(np.sqrt(squares), 1e-300)
    sd[constant] = 1.0
    out = []
    for start in range(0, len(reg_idx), block_size):
        rows = reg_idx[start : start + block_size]
        block = cross[start : start + len(rows)] - n * np.outer(mean[rows], mean)
        block /= np.outer(sd[rows], sd)
        block[:, constant] = 0.0
        block[constant[rows]] = 0.0
        block = np.abs(block).astype(np.float32)
        block[np.arange(len(rows)), rows] = 0
        out.append(top_k_rows(block, top_k))
    return make_network(reg_idx, sp.vstack(out).tocsr(), genes, name, params)


def pearson(
    adata: ad.AnnData,
    *,
    regulators: Sequence[str] | None = None,
    top_k: int | None = None,
    block_size: int = 512,
    cell_block: int = 65536,
    transform: str = "log1p",
) -> Any:
    """|Pearson correlation| between each candidate regulator and every gene.

    ``regulators``: candidate regulators (``None`` = all genes); ``top_k``: keep each regulator's
    ``top_k`` strongest targets; ``block_size``: regulators per output block; ``cell_block``:
    cells read per step (dense or sparse ``adata.X``; memory ~ ``n_regulators x n_genes``
    float64 plus one block); ``transform``: as in :func:`bengrn.methods.genie3`. Returns a
    GRNAnnData, rows = regulators, columns = targets.
    """
    params = dict(top_k=top_k, block_size=block_size, cell_block=cell_block, transform=transform)
    return _abs_correlation(
        adata, "pearson", regulators, top_k, block_size, cell_block, transform, params
    )


def spearman(
    adata: ad.AnnData,
    *,
    regulators: Sequence[str] | None = None,
    top_k: int | None = None,
    block_size: int = 512,
    cell_block: int = 65536,
    transform: str = "log1p",
) -> Any:
    """|Spearman correlation| (Pearson of per-gene ranks, ties averaged); same parameters as
    :func:`pearson` (the ranks need the normalised matrix once, sparse when ``adata.X`` is)."""
    params = dict(top_k=top_k, block_size=block_size, cell_block=cell_block, transform=transform)
    return _abs_correlation(
        adata, "spearman", regulators, top_k, block_size, cell_block, transform, params
    )
