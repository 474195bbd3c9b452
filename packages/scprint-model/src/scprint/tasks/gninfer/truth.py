"""A known network (ground truth) over the genes of an inferred one: what head selection
(``head_aggregation="ridge"``) and ``filtration="known"`` read.

The conversion is grnndata's (:func:`grnndata.as_network`); this module only chooses which names
the truth uses (the genes' ids or their symbols).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from grnndata import as_network
from scprint.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["GroundTruth", "ground_truth_matrix"]

#: A known network: an edge table (regulator, target), a square DataFrame or an AnnData with
#: ``varp["GRN"]`` (any form :func:`grnndata.as_network` reads).
GroundTruth = pd.DataFrame | ad.AnnData


def ground_truth_matrix(
    truth: GroundTruth, genes: Sequence[str], symbols: Sequence[str] | None = None
) -> np.ndarray:
    """A boolean ``(n_genes, n_genes)`` matrix of true edges (rows = regulators) over ``genes``.

    ``truth`` is an edge table (``regulator``/``target`` or ``source``/``target`` columns, or
    its first two columns), a square DataFrame or an AnnData with ``varp["GRN"]`` (rows =
    regulators). Its names are matched to ``genes``, or to ``symbols`` (e.g. gene symbols of
    Ensembl-keyed data) when that matches more edges. Self-loops are left out. Raises
    ``ValueError`` when no true edge falls among ``genes``.
    """
    best: np.ndarray | None = None
    for names in (genes, symbols):
        if names is None or len(set(names)) != len(names):
            continue  # repeated symbols cannot name a network's rows
        matrix = as_network(truth, names, weighted=False, name="ground truth").matrix
        matrix = np.asarray(matrix.todense() if hasattr(matrix, "todense") else matrix, bool)
        np.fill_diagonal(matrix, False)
        if best is None or matrix.sum() > best.sum():
            best = matrix
    if best is None or not best.any():
        raise InputError(
            f"none of the ground-truth edges links two of the {len(genes)} selected genes "
            f"(selected genes look like {list(genes[:3])}; the truth must name them by id or "
            "symbol)"
        )
    log.info("ground truth: %d edges among the selected genes", int(best.sum()))
    return best
