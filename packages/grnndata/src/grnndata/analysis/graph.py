"""Centralities and communities on sparse networks (rows = regulators, columns = targets).

Nothing here densifies the network: degrees and strengths are sparse reductions, PageRank and
eigenvector centrality are power iterations with sparse matrix-vector products. Weighted measures
use the absolute edge weight (an inhibition counts as much as an activation of the same size).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._matrix import GRN_KEY, canonical_network
from ..convert import as_network

log = logging.getLogger(__name__)

CENTRALITIES: tuple[str, ...] = (
    "degree",
    "in_degree",
    "out_degree",
    "in_strength",
    "out_strength",
    "pagerank",
    "eigenvector",
)

__all__ = ["CENTRALITIES", "centrality", "communities", "network_and_genes"]


def network_and_genes(
    network: anndata.AnnData | Any, genes: Sequence[str] | None = None, *, key: str = GRN_KEY
) -> tuple[sp.csr_matrix, pd.Index]:
    """A validated CSR float32 network (rows = regulators, columns = targets) and its gene names.

    ``network`` is any AnnData with its network in ``varp[key]`` (a
    :class:`~grnndata.GRNAnnData` or a plain one; its ``var_names`` are the genes), any other
    form :func:`grnndata.as_network` accepts, or a square matrix, with ``genes`` naming its
    rows/columns (default ``"0"``, ``"1"``, ...).
    """
    if genes is None and not isinstance(network, anndata.AnnData | pd.DataFrame):
        shape = getattr(network, "shape", None)
        if shape is None or len(shape) != 2:
            raise ValueError(
                "expected an AnnData with varp['GRN'] or a square 2-D matrix, got "
                f"{type(network).__name__}"
            )
        genes = [str(i) for i in range(shape[0])]
    converted = as_network(network, genes, sparse=True, key=key)
    return canonical_network(converted.matrix, converted.n_genes), converted.genes


def centrality(
    network: anndata.AnnData | Any,
    genes: Sequence[str] | None = None,
    kinds: Sequence[str] = CENTRALITIES,
    *,
    alpha: float = 0.85,
    max_iter: int = 1000,
    tol: float = 1e-6,
    key: str = GRN_KEY,
) -> pd.DataFrame:
    """Per-gene centralities of a directed, weighted network, without densifying it.

    Parameters
    ----------
    network
        An AnnData with its network in ``varp[key]`` (any AnnData, e.g. a
        :class:`~grnndata.GRNAnnData`) or a square matrix, rows = regulators, columns = targets.
    genes
        Names for a bare matrix's rows/columns.
    kinds
        Any of ``degree`` (in + out edge count), ``in_degree`` (regulators of the gene),
        ``out_degree`` (targets of the gene), ``in_strength`` / ``out_strength`` (sum of absolute
        weights of incoming / outgoing edges), ``pagerank`` (damping ``alpha``, dangling genes
        jump uniformly; the same definition as ``networkx.pagerank``), ``eigenvector`` (in-edge
        eigenvector centrality by the shifted power iteration of
        ``networkx.eigenvector_centrality``, L2-normalised).
    max_iter, tol
        Power-iteration limits: stop when the L1 change is below ``n_genes * tol``.
    key
        The ``varp`` key of an AnnData's network (default ``"GRN"``).

    Returns
    -------
    DataFrame indexed by gene, one column per requested kind.
    """
    unknown = [k for k in kinds if k not in CENTRALITIES]
    if unknown:
        raise ValueError(f"unknown centrality kind(s) {unknown}; expected any of {CENTRALITIES}")
    matrix, names = network_and_genes(network, genes, key=key)
    weights = abs(matrix)
    out_degree = np.diff(matrix.indptr).astype(np.int64)
    in_degree = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.int64)
    columns: dict[str, np.ndarray] = {}
    for kind in kinds:
        if kind == "degree":
            columns[kind] = in_degree + out_degree
        elif kind == "in_degree":
            columns[kind] = in_degree
        elif kind == "out_degree":
            columns[kind] = out_degree
        elif kind == "in_strength":
            columns[kind] = np.asarray(weights.sum(axis=0), dtype=np.float64).ravel()
        elif kind == "out_strength":
            columns[kind] = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel()
        elif kind == "pagerank":
            columns[kind] = _pagerank(weights, alpha=alpha, max_iter=max_iter, tol=tol)
        else:
            columns[kind] = _eigenvector(weights, max_iter=max_iter, tol=tol)
    return pd.DataFrame(columns, index=names)


def _pagerank(weights: sp.csr_matrix, *, alpha: float, max_iter: int, tol: float) -> np.ndarray:
    """PageRank of the row-stochastic walk on ``weights`` (dangling rows jump uniformly)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = weights.shape[0]
    if n == 0:
        return np.empty(0)
    out = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel()
    dangling = out == 0
    inverse = np.divide(1.0, out, out=np.zeros_like(out), where=~dangling)
    transition_t = (sp.diags(inverse) @ weights.astype(np.float64)).T.tocsr()
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        last = x
        x = alpha * (transition_t @ last + last[dangling].sum() / n) + (1 - alpha) / n
        if np.abs(x - last).sum() < n * tol:
            return x
    raise ValueError(
        f"PageRank did not converge in {max_iter} iterations (tol={tol}); raise max_iter"
    )


def _eigenvector(weights: sp.csr_matrix, *, max_iter: int, tol: float) -> np.ndarray:
    """In-edge eigenvector centrality via ``x <- x + W^T x`` normalised (networkx's iteration)."""
    n = weights.shape[0]
    if n == 0:
        return np.empty(0)
    transpose = weights.T.tocsr().astype(np.float64)
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        last = x
        x = last + transpose @ last
        norm = np.linalg.norm(x) or 1.0
        x = x / norm
        if np.abs(x - last).sum() < n * tol:
            return x
    raise ValueError(
        f"eigenvector centrality did not converge in {max_iter} iterations (tol={tol}); raise max_iter"
    )


def communities(
    network: anndata.AnnData | Any,
    genes: Sequence[str] | None = None,
    *,
    resolution: float = 1.0,
    seed: int = 0,
    min_weight: float | None = None,
    key: str = GRN_KEY,
) -> pd.Series:
    """Louvain communities of the directed network (absolute weights, directed modularity).

    ``network`` is as for :func:`centrality` (an AnnData with its network in ``varp[key]``, or
    a square matrix with ``genes``). Uses ``networkx.community.louvain_communities`` with a
    fixed ``seed`` (deterministic). Edges with ``|weight| < min_weight`` are ignored.

    Returns
    -------
    Series indexed by gene: community number, 0 for the largest community, 1 for the next ...
    """
    import networkx as nx

    matrix, names = network_and_genes(network, genes, key=key)
    weights = abs(matrix).tocoo()
    keep = slice(None) if min_weight is None else weights.data >= min_weight
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(names)))
    graph.add_weighted_edges_from(
        zip(weights.row[keep].tolist(), weights.col[keep].tolist(), weights.data[keep].tolist())
    )
    found = nx.community.louvain_communities(
        graph, weight="weight", resolution=resolution, seed=seed
    )
    found = sorted(found, key=lambda c: (-len(c), min(c)))
    labels = np.empty(len(names), dtype=np.int64)
    for number, members in enumerate(found):
        labels[list(members)] = number
    return pd.Series(labels, index=names, name="community")
