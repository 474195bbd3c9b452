"""The task interface: score a network, return a :class:`TaskResult`.

A task owns its ground truth(s) and one or more **units**: an expression set that methods infer
a network from (with optional candidate regulators), scored against one or more **variants** of
the truth. Most tasks have a single unit; BEELINE has one per simulated network.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from grnndata import Network, as_network

__all__ = ["Task", "TaskResult", "VariantScore", "network_by_column", "top_genes"]

log = logging.getLogger(__name__)


@dataclass
class VariantScore:
    """Metrics of one network against one variant of a task's truth.

    ``curve`` is the precision-recall curve (threshold, precision, recall) or ``None`` for tasks
    without edge-level truth; ``universe`` describes the candidate edges in words.
    """

    variant: str
    metrics: dict[str, Any]
    curve: pd.DataFrame | None
    n_genes_overlap: int
    n_true_edges: int
    universe: str


@dataclass
class TaskResult:
    """Everything one task measured on one network (one row per variant in :meth:`to_frame`)."""

    task: str
    unit: str
    variants: list[VariantScore]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """Metrics of the first (main) variant."""
        return self.variants[0].metrics

    @property
    def curve(self) -> pd.DataFrame | None:
        """PR curve of the first (main) variant."""
        return self.variants[0].curve

    @property
    def n_genes_overlap(self) -> int:
        return self.variants[0].n_genes_overlap

    @property
    def n_true_edges(self) -> int:
        return self.variants[0].n_true_edges

    @property
    def universe(self) -> str:
        return self.variants[0].universe

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per variant with task, unit, variant, metrics and counts."""
        rows = []
        for v in self.variants:
            row = {"task": self.task, "unit": self.unit, "variant": v.variant}
            row.update({k: val for k, val in v.metrics.items() if np.isscalar(val)})
            row.update(
                n_genes_overlap=v.n_genes_overlap,
                n_true_edges=v.n_true_edges,
                universe=v.universe,
                score_seconds=self.timings.get(v.variant, np.nan),
            )
            rows.append(row)
        return pd.DataFrame(rows)


class Task(ABC):
    """A benchmark task. Subclasses set :attr:`name` and implement the abstract methods."""

    name: str = ""

    def units(self) -> list[str]:
        """Names of the task's units (expression set + truth); most tasks have one."""
        return ["default"]

    @abstractmethod
    def expression(self, unit: str | None = None) -> ad.AnnData:
        """The expression set (cells x genes, counts) methods infer the unit's network from."""

    def regulators(self, unit: str | None = None) -> list[str] | None:
        """Candidate regulators handed to methods (e.g. the dataset's TFs), or ``None`` (all)."""
        return None

    def expression_id(self, unit: str | None = None) -> str:
        """Identifies the unit's expression set: units of different tasks with the same id share
        the inferred networks in a benchmark run (default: unique to this task and unit)."""
        return f"{self.name}/{self._unit(unit)}"

    def fingerprint(self) -> str:
        """Identifies the task's definition when it can change between runs with the same name
        (a user's truth file): a rerun redoes results recorded under another fingerprint.
        Registered tasks are fixed: ``""``."""
        return ""

    @abstractmethod
    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        """Score the network on every variant of ``unit``."""

    def _unit(self, unit: str | None) -> str:
        units = self.units()
        if unit is None:
            if len(units) > 1:
                raise ValueError(
                    f"task {self.name!r} has {len(units)} units ({units[:5]}...); "
                    "pass unit= to say which one the network belongs to"
                )
            return units[0]
        if unit not in units:
            raise ValueError(f"task {self.name!r} has no unit {unit!r}; units: {units}")
        return unit

    def run(
        self,
        grn: Any,
        unit: str | None = None,
        gene_column: str | None = None,
        key: str = "GRN",
    ) -> TaskResult:
        """Score ``grn`` (a GRNAnnData / AnnData with the network in ``varp[key]``, or a
        :class:`grnndata.Network`; rows = regulators) on the task.

        ``gene_column``: a ``var`` column holding the gene identifiers the truth uses (default:
        ``var_names``). ``key``: the ``varp`` key of the network (default ``"GRN"``; another
        key reads a network a tool stored in place, see :func:`bengrn.metrics.network_in_varp`).
        The edge universe is the task's,
        restricted to the network's genes: genes the network lacks are left out (the universe
        text of each variant says how many). ``bengrn run`` instead scores every method's
        network over the whole expression set (see :mod:`bengrn.runner`).
        """
        unit = self._unit(unit)
        network = network_by_column(grn, gene_column, key)
        start = time.perf_counter()
        scores = self._score(network, unit)
        total = time.perf_counter() - start
        timings = {"total": total}
        for s in scores:
            timings[s.variant] = s.metrics.pop("_seconds", np.nan)
        log.info("task %s (%s): %d variant(s) in %.2fs", self.name, unit, len(scores), total)
        return TaskResult(self.name, unit, scores, timings)


def network_by_column(grn: Any, gene_column: str | None = None, key: str = "GRN") -> Network:
    """The network of ``grn`` (in ``varp[key]``) with genes taken from ``var[gene_column]`` (or
    ``var_names``); a :class:`grnndata.Network` is returned as it is.

    Genes whose identifier is missing or repeated keep only their first occurrence (the others
    are dropped from the network, with a log message).
    """
    from bengrn.metrics import network_in_varp

    if isinstance(grn, Network):
        if gene_column is not None:
            raise ValueError("gene_column applies to an AnnData's var; a Network has no var")
        return grn
    network = network_in_varp(grn, key) if key != "GRN" else as_network(grn, name="predicted")
    if gene_column is None:
        return network
    if gene_column not in grn.var:
        raise ValueError(
            f"gene_column {gene_column!r} is not a var column; columns: {list(grn.var.columns)[:10]}"
        )
    column = pd.Series(grn.var[gene_column].to_numpy(), index=grn.var_names.astype(str))
    ids = column.reindex(network.genes).astype("string")
    keep = (ids.notna() & ~ids.duplicated(keep="first")).to_numpy()
    if not keep.all():
        log.info(
            "gene_column %s: dropping %d genes (missing or repeated)", gene_column, (~keep).sum()
        )
    idx = np.flatnonzero(keep)
    matrix = network.matrix[idx][:, idx]
    return Network(matrix, pd.Index(ids[keep].astype(str).to_numpy()))


def top_genes(adata: ad.AnnData, n_genes: int | None, keep: Sequence[str] = ()) -> ad.AnnData:
    """The ``n_genes`` genes with the highest mean expression, plus ``keep`` (if present).

    Deterministic (ties by gene order). ``None`` returns ``adata`` unchanged.
    """
    if n_genes is None or n_genes >= adata.n_vars:
        return adata
    mean = np.asarray(adata.X.mean(axis=0)).ravel()
    order = np.argsort(-mean, kind="stable")[:n_genes]
    chosen = np.zeros(adata.n_vars, dtype=bool)
    chosen[order] = True
    chosen |= adata.var_names.isin(list(keep))
    return adata[:, chosen].copy()


def score_variant(
    variant: str,
    network: Network,
    truth: pd.DataFrame,
    *,
    universe: str,
    return_curve: bool = True,
    **options: Any,
) -> VariantScore:
    """Run :func:`bengrn.metrics.score` and wrap it as a :class:`VariantScore`."""
    from bengrn.metrics import score

    start = time.perf_counter()
    metrics = score(
        network.matrix, truth, predicted_genes=network.genes, return_curve=return_curve, **options
    )
    curve = metrics.pop("curve", None)
    metrics["_seconds"] = time.perf_counter() - start
    truth_genes = options.get("truth_genes")
    if truth_genes is not None:
        n_genes = len(pd.Index(truth_genes).unique())
        if metrics["n_genes_overlap"] < n_genes:
            universe += (
                f"; only the {metrics['n_genes_overlap']} of these {n_genes} genes that the "
                "network has are scored"
            )
    return VariantScore(
        variant=variant,
        metrics=metrics,
        curve=curve,
        n_genes_overlap=metrics["n_genes_overlap"],
        n_true_edges=metrics["n_true_edges"],
        universe=universe,
    )
