"""Each cell's nearest neighbour cells, for scPRINT-2's ``metacell`` expression encoder.

The encoder reads, next to a cell's own expression, the same genes in its ``K = 6`` nearest
cells with their distances (:mod:`scprint.model.metacell`). The neighbours are found as the
original's tasks find them (scdataloader's ``Preprocessor(do_postp=True)``, then
``scanpy.pp.neighbors(adata, use_rep="X_pca")``, then ``SimpleAnnDataset(get_knn_cells=True)``):

1. counts scaled to 10,000 per cell, then ``log1p``, over all genes;
2. PCA of that matrix, centred, with 50 components (``n_cells // 20`` for 1,000 cells or fewer),
   computed by ARPACK without densifying the matrix;
3. Euclidean distances in PCA space; each cell's ``K`` nearest *other* cells, nearest first,
   with their distances.

When ``adata.obsp["distances"]`` is present (scanpy's neighbour graph, e.g. from
``sc.pp.neighbors``) its stored edges are used instead, the ``K`` shortest per cell, exactly as the
original reads them. Our own search is exact (scanpy switches to approximate search above 4,096
cells), so on large data the neighbours can differ from a scanpy graph's in a few near ties.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds

log = logging.getLogger(__name__)

__all__ = [
    "N_NEIGHBOURS",
    "Neighbours",
    "nearest_cells",
    "neighbours_from_graph",
    "neighbours_of",
    "pca",
    "pca_scores",
]

#: Neighbours per cell (fixed in the original's data set class).
N_NEIGHBOURS = 6
#: Target total of the counts per cell before ``log1p``.
TARGET_SUM = 1e4


@dataclass(frozen=True)
class Neighbours:
    """``indices`` ``(n_cells, K)`` int64 rows of the AnnData, nearest first; ``distances``
    ``(n_cells, K)`` float32 Euclidean distances in PCA space (or the graph's stored values)."""

    indices: np.ndarray
    distances: np.ndarray

    @property
    def k(self) -> int:
        """Neighbours per cell."""
        return self.indices.shape[1]


def _log_normalised(counts: sp.csr_matrix) -> sp.csr_matrix:
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = TARGET_SUM / np.where(totals > 0, totals, 1.0)
    scaled = sp.diags(scale.astype(np.float64)) @ counts.astype(np.float64)
    scaled = sp.csr_matrix(scaled)
    scaled.data = np.log1p(scaled.data)
    return scaled


def pca(matrix: sp.csr_matrix, n_components: int, seed: int = 0) -> np.ndarray:
    """Scores ``(n_cells, n_components)`` of the centred ``matrix`` (cells x genes), by ARPACK on
    an implicitly centred operator (the matrix stays sparse), largest component first."""
    n_cells, n_genes = matrix.shape
    mean = np.asarray(matrix.mean(axis=0)).ravel()
    ones = np.ones(n_cells)

    def matvec(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).ravel()
        return matrix @ x - ones * (mean @ x)

    def rmatvec(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y).ravel()
        return matrix.T @ y - mean * y.sum()

    operator = LinearOperator((n_cells, n_genes), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
    start = np.random.default_rng(seed).uniform(-1, 1, min(n_cells, n_genes))
    u, s, _ = svds(operator, k=n_components, solver="arpack", v0=start)
    order = np.argsort(-s)
    return (u[:, order] * s[order]).astype(np.float64)


def pca_scores(counts: sp.spmatrix | np.ndarray) -> np.ndarray:
    """The space neighbours are searched in: ``(n_cells, n_components)`` PCA scores of the
    log-normalised counts (module docstring, steps 1-2)."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    n_cells = counts.shape[0]
    n_components = 50 if n_cells > 1000 else max(1, n_cells // 20)
    n_components = min(n_components, min(counts.shape) - 1)
    return pca(_log_normalised(counts), n_components)


def nearest_cells(counts: sp.spmatrix | np.ndarray, k: int = N_NEIGHBOURS) -> Neighbours:
    """The ``k`` nearest other cells of each cell (module docstring, steps 1-3).

    Args:
        counts: ``(n_cells, n_genes)`` raw counts.
        k: neighbours per cell; at most ``n_cells - 1``.

    Raises ``ValueError`` when there are not more than ``k`` cells.
    """
    from sklearn.neighbors import NearestNeighbors

    n_cells = counts.shape[0]
    if n_cells <= k:
        raise ValueError(
            f"finding {k} neighbours per cell needs more than {k} cells, got {n_cells}"
        )
    scores = pca_scores(counts)
    search = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(scores)
    distances, indices = search.kneighbors(scores)
    keep = np.ones_like(indices, dtype=bool)
    rows = np.arange(n_cells)
    is_self = indices == rows[:, None]
    # drop the cell itself (first, unless an identical cell ties with it), else the farthest
    keep[rows, np.where(is_self.any(1), is_self.argmax(1), k)] = False
    return Neighbours(
        indices=indices[keep].reshape(n_cells, k).astype(np.int64),
        distances=distances[keep].reshape(n_cells, k).astype(np.float32),
    )


def neighbours_from_graph(graph: sp.spmatrix, k: int = N_NEIGHBOURS) -> Neighbours:
    """The ``k`` shortest stored edges of each row of a distance graph (scanpy's
    ``obsp["distances"]``), nearest first, as the original reads it.

    Raises ``ValueError`` naming a cell that has fewer than ``k`` stored neighbours.
    """
    graph = sp.csr_matrix(graph)
    n_cells = graph.shape[0]
    counts = np.diff(graph.indptr)
    short = np.flatnonzero(counts < k)
    if short.size:
        raise ValueError(
            f"obsp['distances'] stores {int(counts[short[0]])} neighbours for cell {int(short[0])} "
            f"but scPRINT-2 reads {k}; recompute it with sc.pp.neighbors(n_neighbors>={k + 1}) or "
            "delete it to let scprint find the neighbours"
        )
    indices = np.zeros((n_cells, k), dtype=np.int64)
    distances = np.zeros((n_cells, k), dtype=np.float32)
    for row in range(n_cells):
        start, stop = graph.indptr[row], graph.indptr[row + 1]
        values, columns = graph.data[start:stop], graph.indices[start:stop]
        order = np.lexsort((columns, values))[:k]
        indices[row], distances[row] = columns[order], values[order]
    return Neighbours(indices=indices, distances=distances)


def neighbours_of(adata: ad.AnnData, k: int = N_NEIGHBOURS) -> tuple[Neighbours | None, str]:
    """The neighbours of every cell of an AnnData (raw counts in ``X``) and where they came from.

    ``obsp["distances"]`` when present (:func:`neighbours_from_graph`), else
    :func:`nearest_cells` on ``X``. An AnnData of ``k`` cells or fewer gives each cell all the
    others (``None`` for a single cell: the encoder then reads no neighbours).
    """
    if "distances" in adata.obsp:
        return neighbours_from_graph(adata.obsp["distances"], k), "obsp['distances']"
    if adata.n_obs <= k:
        if adata.n_obs < 2:
            return None, "none (a single cell)"
        k = adata.n_obs - 1
        log.warning("only %d cells: each cell's %d neighbours are all the others", adata.n_obs, k)
    source = f"the {k} nearest cells in a PCA of log1p(counts per 10,000)"
    return nearest_cells(adata.X, k), source
