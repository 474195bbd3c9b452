"""A known network (ground truth) over the genes of an inferred one: what head selection
(``head_aggregation="ridge"``) and ``filtration="known"`` read.

The conversions between edge tables and matrices are grnndata's (:func:`grnndata.from_edges`,
:meth:`grnndata.GRNAnnData.edges`); this module only finds which names the truth uses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from grnndata import GRNAnnData, from_edges

log = logging.getLogger(__name__)

__all__ = ["GroundTruth", "ground_truth_matrix"]

#: A known network: an edge table (regulator, target) or an AnnData with ``varp["GRN"]``.
GroundTruth = pd.DataFrame | ad.AnnData


def _truth_edges(truth: GroundTruth) -> pd.DataFrame:
    """The truth as an edge table with string columns ``regulator`` and ``target``."""
    if isinstance(truth, ad.AnnData):
        if "GRN" not in truth.varp:
            raise ValueError("the ground-truth AnnData holds no network in varp['GRN']")
        edges = GRNAnnData.from_adata(truth).edges()
        edges = edges.loc[edges["weight"] != 0, ["regulator", "target"]]
    elif isinstance(truth, pd.DataFrame):
        if {"regulator", "target"} <= set(truth.columns):
            edges = truth[["regulator", "target"]]
        elif {"source", "target"} <= set(truth.columns):
            edges = truth[["source", "target"]]
        elif truth.shape[1] >= 2:
            edges = truth.iloc[:, :2]
        else:
            raise ValueError(
                f"ground-truth DataFrame needs two columns (regulator, target), got {list(truth.columns)}"
            )
        edges = edges.set_axis(["regulator", "target"], axis=1)
    else:
        raise TypeError(
            "ground truth must be a DataFrame of edges (regulator, target) or a GRNAnnData, "
            f"got {type(truth).__name__}"
        )
    return edges.astype(str)


def ground_truth_matrix(
    truth: GroundTruth, genes: Sequence[str], symbols: Sequence[str] | None = None
) -> np.ndarray:
    """A boolean ``(n_genes, n_genes)`` matrix of true edges (rows = regulators) over ``genes``.

    ``truth`` is a DataFrame whose first two columns (or ``regulator``/``target``, or
    ``source``/``target``) name the regulator and target of each edge, or a GRNAnnData
    (``.grn`` rows = regulators, ``var_names`` = genes). Names are matched to ``genes`` first,
    then to ``symbols`` (e.g. gene symbols of Ensembl-keyed data) when that matches more edges.
    Self-loops are left out. Raises ``ValueError`` when no true edge falls among ``genes``.
    """
    edges = _truth_edges(truth)
    best: tuple[list[str], np.ndarray] | None = None
    for names in (genes, symbols):
        if names is None:
            continue
        names = [str(n) for n in names]
        index = pd.Index(names)
        ok = (
            edges["regulator"].isin(index)
            & edges["target"].isin(index)
            & (edges["regulator"] != edges["target"])
        ).to_numpy()
        if best is None or ok.sum() > best[1].sum():
            best = (names, ok)
    if best is None or not best[1].any():
        raise ValueError(
            f"none of the {len(edges)} ground-truth edges links two of the {len(genes)} selected "
            f"genes (truth genes look like {edges['regulator'].iloc[0] if len(edges) else None!r}, "
            f"selected genes like {genes[0]!r})"
        )
    names, ok = best
    matrix = from_edges(names, edges.loc[ok], strict=True).grn.toarray() != 0
    log.info("ground truth: %d of %d edges among the selected genes", int(matrix.sum()), len(edges))
    return matrix
