"""The benchmark tasks, one interface: ``task.run(grn) -> TaskResult``; ``BenGRN(grn).run(...)``.

Registered names (:func:`get_task`): ``literature``, ``mccalla-hesc``, ``mccalla-mesc``,
``perturbseq``, ``enrichment``, ``beeline-synthetic``, ``beeline-curated``,
``beeline-curated-dropout50``, and ``custom`` (your own truth: :class:`CustomTask`, also
built from a YAML task file). Options are passed to the task's constructor, e.g.
``get_task("mccalla-hesc", n_genes=1000)`` or ``get_task("custom", truth=..., expression=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pandas as pd

from bengrn.tasks.base import Task, TaskResult, VariantScore
from bengrn.tasks.beeline import BeelineTask
from bengrn.tasks.custom import CustomTask, TaskFileError
from bengrn.tasks.enrichment import EnrichmentTask
from bengrn.tasks.literature import LiteratureTask
from bengrn.tasks.mccalla import McCallaTask
from bengrn.tasks.perturbseq import PerturbSeqTask

__all__ = [
    "TASKS",
    "BeelineTask",
    "BenGRN",
    "CustomTask",
    "EnrichmentTask",
    "LiteratureTask",
    "McCallaTask",
    "PerturbSeqTask",
    "Task",
    "TaskFileError",
    "TaskResult",
    "VariantScore",
    "get_task",
]

log = logging.getLogger(__name__)

TASKS: dict[str, Callable[..., Task]] = {
    "literature": LiteratureTask,
    "mccalla-hesc": partial(McCallaTask, cell="hESC"),
    "mccalla-mesc": partial(McCallaTask, cell="mESC"),
    "perturbseq": PerturbSeqTask,
    "enrichment": EnrichmentTask,
    "beeline-synthetic": partial(BeelineTask, kind="synthetic"),
    "beeline-curated": partial(BeelineTask, kind="curated"),
    "beeline-curated-dropout50": partial(BeelineTask, kind="curated-dropout50"),
    "custom": CustomTask,
}


def get_task(name: str, **options: Any) -> Task:
    """A task by registered name, built with ``options``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name](**options)


class BenGRN:
    """Score one network on several tasks.

    Parameters
    ----------
    grn
        A GRNAnnData (network in ``varp["GRN"]``, rows = regulators, columns = targets).
    gene_column
        ``var`` column with the identifiers the truths use (default ``var_names``).
    key
        ``varp`` key of the network (default ``"GRN"``; another key reads a network a tool
        stored in place, see :func:`bengrn.metrics.network_in_varp`).
    """

    def __init__(self, grn: Any, gene_column: str | None = None, key: str = "GRN"):
        self.grn = grn
        self.gene_column = gene_column
        self.key = key

    def run(
        self,
        tasks: Sequence[str | Task] = ("literature", "mccalla-hesc", "enrichment"),
        unit: str | None = None,
    ) -> pd.DataFrame:
        """Tidy DataFrame, one row per task x variant (see :meth:`TaskResult.to_frame`)."""
        frames = []
        for task in tasks:
            task_obj = get_task(task) if isinstance(task, str) else task
            result = task_obj.run(self.grn, unit=unit, gene_column=self.gene_column, key=self.key)
            frames.append(result.to_frame())
        return pd.concat(frames, ignore_index=True)
