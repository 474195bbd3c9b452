"""Comparing and merging networks by gene name (rows = regulators, columns = targets)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import anndata
import numpy as np
import pandas as pd

from .._matrix import GRN_KEY, ORIENTATION
from ..convert import Network, as_network
from ..core import GRNAnnData
from ..edges import merge_duplicate_edges

log = logging.getLogger(__name__)

__all__ = ["compare", "merge"]


def _edge_keys(
    network: Network, genes: pd.Index, top_k: int | None, min_weight: float | None
) -> np.ndarray:
    """Edges of ``network`` (strongest ``top_k``) as integer keys ``row * n + col`` over ``genes``."""
    frame = network.edges(min_weight=min_weight, top_k=top_k)
    rows = genes.get_indexer(frame["regulator"].astype(str))
    cols = genes.get_indexer(frame["target"].astype(str))
    return np.unique(rows.astype(np.int64) * len(genes) + cols)


def _networks(values: Sequence[anndata.AnnData], names: Sequence[str], key: str) -> list[Network]:
    """Each AnnData's ``varp[key]`` with its genes; a clear error for anything else."""
    out = []
    for name, value in zip(names, values):
        if not isinstance(value, anndata.AnnData):
            raise TypeError(
                f"{name} is a {type(value).__name__}; expected an AnnData with a network in "
                f"varp[{key!r}] (e.g. a GRNAnnData)"
            )
        out.append(as_network(value, sparse=True, name=name, key=key))
    return out


def compare(
    a: anndata.AnnData,
    b: anndata.AnnData,
    top_k: int | None = None,
    *,
    min_weight: float | None = None,
    shared_genes_only: bool = True,
    key: str = GRN_KEY,
) -> dict[str, Any]:
    """Overlap of the (strongest) edges of two networks, matched by gene name and direction.

    Parameters
    ----------
    a, b
        AnnData objects with a network in ``varp[key]`` (rows = regulators, columns =
        targets; any AnnData, e.g. a :class:`~grnndata.GRNAnnData`), possibly over different
        genes.
    top_k
        Compare each network's ``top_k`` largest-weight edges (``None``: all edges).
    min_weight
        Ignore edges with ``weight < min_weight`` (applied before ``top_k``).
    shared_genes_only
        Restrict both networks to the genes they share first (default), so that an edge that one
        network could not contain does not count as a disagreement.
    key
        The ``varp`` key of both networks (default ``"GRN"``).

    Returns
    -------
    dict with ``n_shared_genes``, ``n_edges_a``, ``n_edges_b``, ``n_shared_edges``, ``jaccard``
    (shared / union) and ``overlap_coefficient`` (shared / smaller set); ratios are ``nan`` when
    both edge sets are empty.
    """
    net_a, net_b = _networks([a, b], ["a", "b"], key)
    shared = net_a.genes.intersection(net_b.genes, sort=False)
    if shared_genes_only:
        genes = pd.Index(shared)
        net_a = as_network(a, genes, sparse=True, key=key)
        net_b = as_network(b, genes, sparse=True, key=key)
    else:
        genes = net_a.genes.union(net_b.genes, sort=False)
    keys_a = _edge_keys(net_a, genes, top_k, min_weight)
    keys_b = _edge_keys(net_b, genes, top_k, min_weight)
    n_shared = int(np.intersect1d(keys_a, keys_b, assume_unique=True).size)
    n_union = keys_a.size + keys_b.size - n_shared
    smaller = min(keys_a.size, keys_b.size)
    return {
        "n_shared_genes": len(shared),
        "n_edges_a": int(keys_a.size),
        "n_edges_b": int(keys_b.size),
        "n_shared_edges": n_shared,
        "jaccard": n_shared / n_union if n_union else float("nan"),
        "overlap_coefficient": n_shared / smaller if smaller else float("nan"),
    }


def merge(
    grns: Sequence[anndata.AnnData],
    how: Literal["union", "intersection"] = "union",
    reduce: Literal["mean", "sum", "max", "min", "count"] = "mean",
    *,
    names: Sequence[str] | None = None,
    key: str = GRN_KEY,
) -> GRNAnnData:
    """Merge several networks (e.g. one per cell type) into one over their genes.

    Parameters
    ----------
    grns
        AnnData objects with a network in ``varp[key]`` (rows = regulators, columns =
        targets; any AnnData, e.g. a :class:`~grnndata.GRNAnnData`).
    how
        ``"union"``: all genes, in first-seen order (genes of the first network, then new genes of
        the second ...); ``"intersection"``: genes present in every network, in the first
        network's order (edges touching other genes are dropped).
    reduce
        Weight of an edge present in several networks: ``"mean"`` over the networks holding the
        edge, ``"sum"``, ``"max"``, ``"min"`` (signed), or ``"count"`` (number of networks
        holding it).
    names
        Labels of the networks, recorded in ``uns["grn"]["parameters"]``.
    key
        The ``varp`` key of every input's network (default ``"GRN"``); the result holds its
        network in ``varp["GRN"]``.

    Returns
    -------
    :class:`GRNAnnData` without cells (``X`` shape ``(0, n_genes)``), network CSR float32.
    """
    if how not in ("union", "intersection"):
        raise ValueError(f"how={how!r}; expected 'union' or 'intersection'")
    if reduce not in ("mean", "sum", "max", "min", "count"):
        raise ValueError(f"reduce={reduce!r}; expected 'mean', 'sum', 'max', 'min' or 'count'")
    grns = list(grns)
    if not grns:
        raise ValueError("merge needs at least one network")
    networks = _networks(grns, [f"grns[{position}]" for position in range(len(grns))], key)
    if names is not None and len(names) != len(grns):
        raise ValueError(f"{len(names)} names for {len(grns)} networks")
    genes = networks[0].genes
    for network in networks[1:]:
        if how == "union":
            genes = genes.append(network.genes[~network.genes.isin(genes)])
        else:
            genes = genes[genes.isin(network.genes)]
    rows, cols, values = [], [], []
    for network in networks:
        coo = network.matrix.tocoo()
        mapping = genes.get_indexer(network.genes)
        r, c = mapping[coo.row], mapping[coo.col]
        keep = (r >= 0) & (c >= 0)
        rows.append(r[keep].astype(np.int64))
        cols.append(c[keep].astype(np.int64))
        values.append(
            np.ones(int(keep.sum()), np.float32)
            if reduce == "count"
            else coo.data[keep].astype(np.float32)
        )
    rule = "sum" if reduce == "count" else reduce
    matrix, _ = merge_duplicate_edges(
        np.concatenate(rows), np.concatenate(cols), np.concatenate(values), len(genes), rule
    )
    out = GRNAnnData.from_matrix(matrix, list(genes))
    out.set_metadata(
        "merge",
        {
            "how": how,
            "reduce": reduce,
            "n_networks": len(grns),
            "names": [str(n) for n in names] if names is not None else [],
        },
    )
    out.uns["grn"]["orientation"] = ORIENTATION
    return out
