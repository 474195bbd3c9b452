"""Genome-wide Perturb-seq (Replogle et al. 2022, K562): knockdown -> readout effects as truth.

An edge ``perturbed gene -> readout gene`` is true when its BH-adjusted p-value is below
``max_pvalue`` (0.05). The universe's regulators are the perturbed genes present in the network,
its targets every gene of the table present in the network (Ensembl gene IDs, as in the published
files); self-loops (a gene's effect on its own readout, i.e. the knockdown itself) are excluded.
Methods infer from the non-targeting control cells.

The published files (about 10 GB) cannot be obtained on machines without internet: pass their
paths (``truth_path``, ``cells_path``) or let :func:`bengrn.datasets.fetch` download them
(figshare files 38349308 and 35773219) into the cache.
"""

from __future__ import annotations

import os
from functools import cached_property

import anndata as ad
import pandas as pd

from bengrn import datasets
from bengrn.tasks.base import Task, VariantScore, score_variant
from grnndata import Network

__all__ = ["PerturbSeqTask"]


class PerturbSeqTask(Task):
    """Genome-wide Perturb-seq truth (see the module docstring)."""

    name = "perturbseq"

    def __init__(
        self,
        truth_path: str | os.PathLike | None = None,
        cells_path: str | os.PathLike | None = None,
        max_pvalue: float = 0.05,
    ):
        self.truth_path = truth_path
        self.cells_path = cells_path
        self.max_pvalue = max_pvalue

    @cached_property
    def _truth(self) -> datasets.PerturbSeqTruth:
        return datasets.load_perturbseq_truth(path=self.truth_path, max_pvalue=self.max_pvalue)

    def expression(self, unit: str | None = None) -> ad.AnnData:
        return datasets.load_perturbseq_control(path=self.cells_path)

    def regulators(self, unit: str | None = None) -> list[str]:
        return list(self._truth.perturbed_genes)

    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        truth = self._truth
        genes = pd.Index(truth.readout_genes).union(pd.Index(truth.perturbed_genes))
        return [
            score_variant(
                f"padj<{self.max_pvalue:g}",
                network,
                truth.edges,
                truth_genes=genes,
                regulators=truth.perturbed_genes,
                universe=(
                    f"perturbed genes -> readout genes present in the network "
                    f"({len(truth.perturbed_genes)} perturbed, {len(truth.readout_genes)} readouts)"
                ),
            )
        ]
