"""BEELINE BoolODE simulations (synthetic and curated networks) as exact ground truths.

One unit per simulated network: its expression (2,000 cells) is what methods infer from, and its
reference network is the truth over its genes (every gene is a candidate regulator; self-loops
excluded). Scored with the same metrics as every other task.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import anndata as ad
import pandas as pd

from bengrn import datasets
from bengrn.tasks.base import Task, VariantScore, score_variant
from grnndata import Network

__all__ = ["BeelineTask"]

SYNTHETIC = ("dyn-BF", "dyn-BFC", "dyn-CY", "dyn-LI", "dyn-LL", "dyn-TF")
CURATED = ("GSD", "HSC", "VSC", "mCAD")


class BeelineTask(Task):
    """BEELINE simulations. ``kind``: ``"synthetic"``, ``"curated"`` or ``"curated-dropout50"``;
    ``networks``: a subset of that kind's networks (default: all)."""

    def __init__(self, kind: str = "synthetic", networks: Sequence[str] | None = None):
        choices = {"synthetic": SYNTHETIC, "curated": CURATED, "curated-dropout50": CURATED}
        if kind not in choices:
            raise ValueError(f"kind must be one of {list(choices)}; got {kind!r}")
        networks = tuple(networks or choices[kind])
        bad = [n for n in networks if n not in choices[kind]]
        if bad:
            raise ValueError(
                f"unknown BEELINE {kind} networks {bad}; expected some of {choices[kind]}"
            )
        self.kind = kind
        self.networks = networks
        self.name = f"beeline-{kind}"

    def units(self) -> list[str]:
        return list(self.networks)

    def _dataset(self, unit: str) -> str:
        base = "synthetic" if self.kind == "synthetic" else "curated"
        suffix = "-dropout50" if self.kind == "curated-dropout50" else ""
        return f"beeline-{base}-{unit}{suffix}"

    @cache  # noqa: B019 - a task object lives for one benchmark run
    def _load(self, unit: str) -> tuple[ad.AnnData, pd.DataFrame]:
        return datasets.load_beeline(self._dataset(unit))

    def expression(self, unit: str | None = None) -> ad.AnnData:
        return self._load(self._unit(unit))[0]

    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        adata, edges = self._load(unit)
        return [
            score_variant(
                unit,
                network,
                edges,
                truth_genes=adata.var_names,
                universe=f"all ordered pairs of the {adata.n_vars} simulated genes; no self-loops",
            )
        ]
