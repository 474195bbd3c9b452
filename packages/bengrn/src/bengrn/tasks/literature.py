"""Literature ground truth: OmniPath transcriptional interactions and its CollecTRI / DoRothEA subsets.

Genes are matched by symbol (``gene_column`` of :meth:`Task.run` picks a ``var`` column when the
network is keyed by other identifiers). The truth's genes are the genes OmniPath names; the
universe is their overlap with the network; each source is scored with every gene as a candidate
regulator and with regulators restricted to the human TF list.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import pandas as pd

from bengrn import datasets
from bengrn.tasks.base import Task, VariantScore, score_variant
from bengrn.tasks.mccalla import McCallaExpression
from grnndata import Network

__all__ = ["LiteratureTask"]


class LiteratureTask(McCallaExpression, Task):
    """Compare to OmniPath (``sources``: some of ``"omnipath"``, ``"collectri"``, ``"dorothea"``).

    ``tf_only``: which regulator restrictions to score (``False`` = all genes, ``True`` = human TFs).
    The expression set handed to methods is McCalla hESC (Chen), human symbols, with its TF list
    as candidate regulators (as in :class:`~bengrn.tasks.McCallaTask`, so a benchmark run infers
    one network for both); ``n_genes`` keeps only its most expressed genes (plus TFs).
    """

    name = "literature"

    def __init__(
        self,
        sources: Sequence[str] = ("omnipath", "collectri", "dorothea"),
        tf_only: Sequence[bool] = (False, True),
        n_genes: int | None = None,
        expression: str = "hESC-chen",
    ):
        subsets = {"omnipath": "all", "collectri": "collectri", "dorothea": "dorothea"}
        bad = [s for s in sources if s not in subsets]
        if bad:
            raise ValueError(f"unknown literature sources {bad}; expected some of {list(subsets)}")
        self.sources = {s: subsets[s] for s in sources}
        self.tf_only = tuple(tf_only)
        self.n_genes = n_genes
        self.expression_key = expression

    @cached_property
    def _tfs(self) -> list[str]:
        return datasets.load_tfs("human")

    @cached_property
    def _truths(self) -> dict[str, pd.DataFrame]:
        return {name: datasets.load_omnipath(subset) for name, subset in self.sources.items()}

    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        out = []
        for name, truth in self._truths.items():
            for tf_only in self.tf_only:
                out.append(
                    score_variant(
                        f"{name}{'-tfs' if tf_only else ''}",
                        network,
                        truth,
                        regulators=self._tfs if tf_only else None,
                        universe=(
                            f"network genes named in {name}; regulators = "
                            f"{'human TFs' if tf_only else 'all genes'}; no self-loops"
                        ),
                    )
                )
        return out
