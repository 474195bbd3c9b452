"""Graph-regularised refinement of label logits ("GRIT", the original scPRINT-2's
``utils.graph_refinement``), used by :class:`scprint.tasks.Embedder` with ``refine=True``.

Neighbouring cells likely share a label. Given the logits ``P0`` ``(n_cells, n_labels)`` of the
cells and a graph ``A`` over them (symmetrised as ``(A + A^T) / 2``), the refined logits solve

    argmin_P ||P - P0||_F^2 + lambda * Tr(P^T L P),   L = D - A (the graph Laplacian),

in closed form ``P = (I + lambda L)^-1 P0`` (one sparse factorisation, all labels at once); each
cell's refined label is the arg-max of its row. ``use_laplacian=False`` puts ``A`` in place of
``L``, as the original allows.

The graph is ``obsp["connectivities"]`` when the AnnData has one (``scanpy.pp.neighbors``), else
the UMAP connectivities of each cell's ``n_neighbors`` nearest cells (itself included, as scanpy
counts them) in the PCA of log-normalised counts that :mod:`scprint.data.neighbours` computes,
the representation the original's task uses (``X_pca``). They follow UMAP's fuzzy simplicial set
(local connectivity 1, a per-cell bandwidth whose memberships sum to ``log2(k)``, fuzzy union);
scanpy's own search is approximate on large data, so its graph can differ in near ties.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from scprint.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["N_NEIGHBORS", "refine_logits", "umap_connectivities", "cell_graph"]

#: Neighbours per cell of the graph built when ``obsp`` holds none (the original's default).
N_NEIGHBORS = 15


def refine_logits(
    logits: np.ndarray,
    connectivities: sp.spmatrix | np.ndarray,
    lambda_reg: float = 0.1,
    use_laplacian: bool = True,
) -> np.ndarray:
    """Refined logits ``(I + lambda_reg L)^-1 logits`` (module docstring), float64 ``(n, k)``.

    ``logits`` ``(n_cells, n_labels)``; ``connectivities`` ``(n_cells, n_cells)`` non-negative
    edge weights (symmetrised here); ``lambda_reg > 0`` the strength of the smoothing.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise InputError(f"logits must be (n_cells, n_labels), got shape {logits.shape}")
    if not lambda_reg > 0:
        raise InputError(f"lambda_reg must be positive (e.g. 0.1), got {lambda_reg!r}")
    graph = sp.csr_matrix(connectivities, dtype=np.float64)
    n_cells = logits.shape[0]
    if graph.shape != (n_cells, n_cells):
        raise InputError(
            f"the cell graph is {graph.shape} but there are {n_cells} cells; expected "
            f"({n_cells}, {n_cells})"
        )
    graph = (graph + graph.T) / 2
    if use_laplacian:
        degrees = np.asarray(graph.sum(axis=1)).ravel()
        operator = sp.diags(degrees, format="csr") - graph
    else:
        operator = graph
    system = sp.identity(n_cells, format="csr") + lambda_reg * operator
    refined = spsolve(sp.csc_matrix(system), logits)
    return np.asarray(refined, dtype=np.float64).reshape(n_cells, logits.shape[1])


def _bandwidths(distances: np.ndarray, n_iter: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """UMAP's ``smooth_knn_dist``: per cell ``rho`` (distance to the nearest other cell) and
    ``sigma`` with ``sum_j exp(-(d_j - rho) / sigma) = log2(k)`` over its ``k`` neighbours
    (``distances`` ``(n, k)``, the cell itself first at 0), by bisection."""
    n, k = distances.shape
    target = np.log2(k)
    others = np.where(distances > 0, distances, np.inf)
    rho = np.min(others, axis=1)
    rho[~np.isfinite(rho)] = 0.0
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    mid = np.ones(n)
    for _ in range(n_iter):
        gaps = np.maximum(distances[:, 1:] - rho[:, None], 0.0)
        total = np.exp(-gaps / mid[:, None]).sum(axis=1)
        above = total > target
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
        mid = np.where(np.isfinite(hi), (lo + hi) / 2, mid * 2)
    mean_distance = distances.mean()
    row_means = distances.mean(axis=1)
    floor = 1e-3 * np.where(rho > 0, row_means, mean_distance)
    return rho, np.maximum(mid, floor)


def umap_connectivities(indices: np.ndarray, distances: np.ndarray) -> sp.csr_matrix:
    """UMAP connectivities ``(n, n)`` from each cell's ``k`` nearest cells ``(n, k)`` (the cell
    itself first at distance 0): membership ``exp(-(d - rho) / sigma)`` per directed edge, then
    the fuzzy union ``A + A^T - A * A^T``."""
    n, k = indices.shape
    rho, sigma = _bandwidths(distances)
    weights = np.exp(-np.maximum(distances - rho[:, None], 0.0) / sigma[:, None])
    weights[indices == np.arange(n)[:, None]] = 0.0
    rows = np.repeat(np.arange(n), k)
    directed = sp.csr_matrix((weights.ravel(), (rows, indices.ravel())), shape=(n, n))
    directed.eliminate_zeros()
    product = directed.multiply(directed.T)
    return sp.csr_matrix(directed + directed.T - product)


def cell_graph(
    adata: ad.AnnData, key: str = "connectivities", n_neighbors: int = N_NEIGHBORS
) -> tuple[sp.csr_matrix, str]:
    """The graph over ``adata``'s cells used for refinement, and where it came from:
    ``obsp[key]`` when present, else :func:`umap_connectivities` of the ``n_neighbors`` nearest
    cells (itself included) in the PCA of :func:`scprint.data.neighbours.pca_scores`."""
    if key in adata.obsp:
        graph = sp.csr_matrix(adata.obsp[key])
        if graph.shape != (adata.n_obs, adata.n_obs):
            raise InputError(f"obsp[{key!r}] is {graph.shape}, not cells x cells")
        return graph, f"obsp[{key!r}]"
    if adata.n_obs < 2:
        raise InputError("refining labels over a cell graph needs at least 2 cells")
    from sklearn.neighbors import NearestNeighbors

    from scprint.data.neighbours import pca_scores

    k = min(n_neighbors, adata.n_obs)
    scores = pca_scores(adata.X)
    distances, indices = NearestNeighbors(n_neighbors=k).fit(scores).kneighbors(scores)
    # the cell itself first (an identical cell may tie with it)
    rows = np.arange(adata.n_obs)
    self_at = (indices == rows[:, None]).argmax(axis=1)
    has_self = (indices == rows[:, None]).any(axis=1)
    swap = has_self & (self_at > 0)
    indices[swap, self_at[swap]] = indices[swap, 0]
    indices[:, 0] = rows
    distances[:, 0] = 0.0
    source = f"UMAP connectivities of the {k} nearest cells in a PCA of log1p(counts per 10,000)"
    return umap_connectivities(indices, distances), source
