"""Drawing a gene's neighbourhood in a network (rows = regulators, columns = targets).

matplotlib is an optional dependency (``pip install 'grnndata[plot]'``); it is imported only when
a function here is called.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anndata
import numpy as np
import pandas as pd

from ._matrix import GRN_KEY
from .convert import as_network
from .core import GRNAnnData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

__all__ = ["plot_subgraph", "subgraph_edges"]

SEED_COLOR = "#d62728"
GENE_COLOR = "#9ecae1"
POSITIVE_COLOR = "#b2182b"
NEGATIVE_COLOR = "#2166ac"


def _matplotlib() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "grnndata.plot needs matplotlib, an optional dependency: pip install 'grnndata[plot]'"
        ) from err
    return plt


def _network(grn: anndata.AnnData, key: str) -> GRNAnnData:
    """``grn`` itself (a GRNAnnData, ``key="GRN"``) or its network as a GRNAnnData without cells."""
    if isinstance(grn, GRNAnnData) and key == GRN_KEY:
        return grn
    if not isinstance(grn, anndata.AnnData):
        raise TypeError(
            f"expected an AnnData with a network in varp[{key!r}] (e.g. a GRNAnnData), got "
            f"{type(grn).__name__}"
        )
    return as_network(grn, sparse=True, key=key).to_grnanndata()


def subgraph_edges(
    grn: anndata.AnnData,
    seed_gene: str,
    max_genes: int = 20,
    top_edges: int = 50,
    *,
    key: str = GRN_KEY,
) -> tuple[list[str], pd.DataFrame]:
    """The genes and edges that :func:`plot_subgraph` draws.

    ``grn`` is any AnnData with its network in ``varp[key]`` (rows = regulators, columns =
    targets; a :class:`~grnndata.GRNAnnData` or a plain one).

    Genes: ``seed_gene`` and its strongest neighbours (targets and regulators ranked by absolute
    weight) up to ``max_genes`` in all. Edges: the ``top_edges`` strongest (absolute weight) among
    those genes, as a DataFrame ``regulator, target, weight``.
    """
    if max_genes < 1 or top_edges < 0:
        raise ValueError(f"max_genes must be >= 1 and top_edges >= 0, got {max_genes}, {top_edges}")
    grn = _network(grn, key)
    if seed_gene not in grn.var_names:
        raise KeyError(
            f"seed gene {seed_gene!r} is not among the {grn.n_vars} genes of the network"
        )
    neighbours = pd.concat([grn.targets(seed_gene), grn.regulators(seed_gene)])
    neighbours = neighbours.drop(seed_gene, errors="ignore")
    strength = neighbours.abs().groupby(level=0).max().sort_values(ascending=False, kind="stable")
    genes = [seed_gene, *strength.index[: max_genes - 1]]
    sub = grn.get(genes).grn.tocoo()
    order = np.lexsort((sub.col, sub.row, -np.abs(sub.data.astype(np.float64))))[:top_edges]
    names = np.asarray(genes, dtype=object)
    edges = pd.DataFrame(
        {
            "regulator": names[sub.row[order]],
            "target": names[sub.col[order]],
            "weight": sub.data[order],
        }
    )
    return genes, edges


def plot_subgraph(
    grn: anndata.AnnData,
    seed_gene: str,
    max_genes: int = 20,
    top_edges: int = 50,
    ax: Axes | None = None,
    *,
    seed: int = 0,
    key: str = GRN_KEY,
) -> Figure:
    """Draw ``seed_gene``'s neighbourhood as a directed, weighted graph.

    ``grn`` is any AnnData with its network in ``varp[key]`` (rows = regulators, columns =
    targets; default ``varp["GRN"]``).

    Arrows go from regulator to target; width grows with absolute weight; red = positive, blue =
    negative weight; the seed gene is drawn larger, in red. Genes and edges are chosen by
    :func:`subgraph_edges`. The layout is a spring layout with a fixed ``seed`` (deterministic).

    Returns the matplotlib Figure (of ``ax`` when given), ready for ``savefig("x.png")``.
    """
    plt = _matplotlib()
    import networkx as nx

    genes, edges = subgraph_edges(grn, seed_gene, max_genes=max_genes, top_edges=top_edges, key=key)
    graph = nx.DiGraph()
    graph.add_nodes_from(genes)
    graph.add_weighted_edges_from(
        zip(edges["regulator"], edges["target"], edges["weight"].astype(float))
    )
    if ax is None:
        figure, ax = plt.subplots(figsize=(6, 6))
    else:
        figure = ax.figure
    positions = nx.spring_layout(graph, seed=seed, weight=None)
    nx.draw_networkx_nodes(
        graph,
        positions,
        nodelist=genes,
        node_color=[SEED_COLOR if g == seed_gene else GENE_COLOR for g in genes],
        node_size=[700 if g == seed_gene else 300 for g in genes],
        ax=ax,
    )
    nx.draw_networkx_labels(graph, positions, font_size=8, ax=ax)
    weights = edges["weight"].to_numpy(dtype=np.float64)
    scale = np.abs(weights).max() if weights.size else 1.0
    nx.draw_networkx_edges(
        graph,
        positions,
        edgelist=list(zip(edges["regulator"], edges["target"])),
        width=(0.5 + 3.0 * np.abs(weights) / scale).tolist(),
        edge_color=[POSITIVE_COLOR if w >= 0 else NEGATIVE_COLOR for w in weights],
        arrows=True,
        arrowstyle="-|>",
        node_size=[700 if g == seed_gene else 300 for g in genes],
        nodelist=genes,
        ax=ax,
    )
    ax.set_title(f"{seed_gene}: {len(genes)} genes, {len(edges)} edges (regulator -> target)")
    ax.set_axis_off()
    return figure
