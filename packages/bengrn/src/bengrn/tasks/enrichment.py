"""Enrichment self-assessment: no edge-level truth, only whether the network's structure makes sense.

Three checks, each with grnndata's analysis functions:

* **TF enrichment among central genes**: the ``n_top`` most central genes (``centrality`` kind,
  default ``pagerank``, driven by incoming edges, so a network whose regulators are all TFs does
  not trivially put TFs on top, as ``out_strength`` would) are
  tested for over-representation of transcription factors (hypergeometric; universe = the
  network's genes);
* **cell-type markers among central genes**: the same top genes against every marker set of the
  GMT (hypergeometric, Benjamini-Hochberg FDR); reports how many sets pass FDR < 0.05 and the best;
* **ENCODE ChIP targets**: for each TF of the network with an ENCODE ChIP set (cell lines merged),
  are its ChIP targets ranked high among its predicted targets (Mann-Whitney, preranked)? Reports
  the share of tested TFs with Benjamini-Hochberg FDR < 0.05 across TFs.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from bengrn import datasets
from bengrn.tasks.base import Task, VariantScore
from bengrn.tasks.mccalla import McCallaExpression
from grnndata import Network

__all__ = ["EnrichmentTask"]


class EnrichmentTask(McCallaExpression, Task):
    """Self-assessment of a human network keyed by gene symbols (see the module docstring).

    Parameters
    ----------
    n_top
        How many of the most central genes are tested.
    centrality
        A :func:`grnndata.analysis.centrality` kind (``pagerank``, ``out_strength``, ...).
    fdr
        Significance level for the marker sets and the ChIP test.
    n_genes, expression
        The expression set handed to methods (McCalla hESC Chen by default, ``n_genes`` most
        expressed genes plus TFs; its TFs are the candidate regulators).
    """

    name = "enrichment"

    def __init__(
        self,
        n_top: int = 100,
        centrality: str = "pagerank",
        fdr: float = 0.05,
        n_genes: int | None = None,
        expression: str = "hESC-chen",
    ):
        if n_top < 1:
            raise ValueError(f"n_top must be >= 1; got {n_top}")
        self.n_top = n_top
        self.centrality = centrality
        self.fdr = fdr
        self.n_genes = n_genes
        self.expression_key = expression

    @cached_property
    def _tfs(self) -> list[str]:
        return datasets.load_tfs("human")

    @cached_property
    def _chip_sets(self) -> dict[str, list[str]]:
        merged: dict[str, set[str]] = {}
        for key, targets in datasets.load_encode_chip_targets().items():
            merged.setdefault(key.split(" ")[0], set()).update(targets)
        return {tf: sorted(t) for tf, t in merged.items()}

    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        import time

        from grnndata.analysis import centrality, hypergeometric_enrichment, preranked_enrichment

        start = time.perf_counter()
        matrix = sp.csr_matrix(network.matrix, dtype=np.float32)
        genes = network.genes
        central = centrality(matrix, genes=list(genes), kinds=(self.centrality,))[self.centrality]
        top = central.sort_values(ascending=False, kind="stable").index[: self.n_top]
        tf_test = hypergeometric_enrichment(list(top), {"TFs": self._tfs}, universe=list(genes))
        markers = hypergeometric_enrichment(
            list(top), datasets.load_markers(), universe=list(genes)
        )
        n_markers = int((markers["fdr"] < self.fdr).sum()) if len(markers) else 0
        pvalues, tested = [], []
        present = pd.Index(genes)
        for tf, targets in self._chip_sets.items():
            row = present.get_indexer([tf])[0]
            if row < 0 or matrix[row].nnz == 0:
                continue
            weights = np.abs(matrix[row].toarray().ravel())
            ranking = pd.Series(np.delete(weights, row), index=present.delete(row))
            result = preranked_enrichment(ranking, {tf: targets}, max_size=len(ranking) - 1)
            if len(result):
                pvalues.append(float(result["pvalue"].iloc[0]))
                tested.append(tf)
        fdrs = stats.false_discovery_control(np.asarray(pvalues)) if pvalues else np.array([])
        metrics = {
            "tf_enrichment_odds_ratio": float(tf_test["odds_ratio"].iloc[0])
            if len(tf_test)
            else np.nan,
            "tf_enrichment_pvalue": float(tf_test["pvalue"].iloc[0]) if len(tf_test) else np.nan,
            "tf_in_top": int(tf_test["overlap"].iloc[0]) if len(tf_test) else 0,
            "marker_sets_significant": n_markers,
            "marker_best_set": str(markers["set"].iloc[0]) if len(markers) else "",
            "marker_best_fdr": float(markers["fdr"].iloc[0]) if len(markers) else np.nan,
            "chip_tfs_tested": len(tested),
            "chip_tfs_enriched_share": float(np.mean(fdrs < self.fdr)) if len(fdrs) else np.nan,
            "_seconds": time.perf_counter() - start,
        }
        return [
            VariantScore(
                variant="self-assessment",
                metrics=metrics,
                curve=None,
                n_genes_overlap=len(genes),
                n_true_edges=0,
                universe=f"top {self.n_top} genes by {self.centrality} among {len(genes)} network genes",
            )
        ]
