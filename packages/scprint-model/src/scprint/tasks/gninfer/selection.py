"""Which cells and which genes a network is inferred on.

Cells: those of one cell type (``obs[cell_type_column] == cell_type``, default all), the
``n_cells`` with the most counts. Genes: a selection on the chosen cells' counts
(:mod:`scprint.tasks.genes`: ``"hvg"``, ``"de"``, ``"expressed"``) among the genes the model
knows, all of them (``"all"``), or a user's list; optionally without the genes no chosen cell expresses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from scprint.checkpoints import Pretrained
from scprint.errors import InputError
from scprint.tasks._input import TaskInput, choose_genes

log = logging.getLogger(__name__)

__all__ = ["ORIGINAL_GENE_SELECTIONS", "select_cells", "select_network_genes"]

#: The original scPRINT's ``how`` spellings of our gene selections.
ORIGINAL_GENE_SELECTIONS: dict[str, str] = {
    "most var within": "hvg",
    "most var across": "de",
    "most expr": "expressed",
}


def select_cells(
    data: TaskInput,
    cell_type_column: str | None,
    cell_type: str | None,
    n_cells: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the chosen cells (sorted) and the group mask ``(n_obs,)`` bool over all cells.

    The group is the cells with ``obs[cell_type_column] == cell_type`` (all cells when the column
    is ``None``); of those, the ``n_cells`` with the most counts are chosen (``None`` = all).
    """
    adata = data.adata
    if cell_type_column is None:
        group = np.ones(adata.n_obs, dtype=bool)
    else:
        if cell_type_column not in adata.obs:
            raise InputError(
                f"obs has no column {cell_type_column!r}; available: {list(adata.obs.columns)}"
            )
        values = adata.obs[cell_type_column].astype(str).to_numpy()
        group = values == str(cell_type)
        if not group.any():
            present = sorted(pd.unique(values))[:10]
            raise InputError(
                f"cell type {cell_type!r} is absent from obs[{cell_type_column!r}]; "
                f"present values include {present}"
            )
    rows = np.flatnonzero(group)
    if n_cells is not None and rows.size > n_cells:
        totals = np.asarray(data.counts[rows].sum(axis=1)).ravel()
        rows = np.sort(rows[np.argsort(-totals, kind="stable")[:n_cells]])
    return rows, group


def select_network_genes(
    data: TaskInput,
    pretrained: Pretrained,
    rows: np.ndarray,
    group: np.ndarray,
    genes: str | Sequence[str],
    n_genes: int,
    *,
    drop_unexpressed: bool = False,
) -> np.ndarray:
    """Columns of the network's genes (column indices of ``data.adata``).

    ``genes`` is one of :data:`scprint.tasks._input.GENE_CHOICES` (computed on the chosen
    ``rows``; ``"de"`` compares the ``group`` with the other cells) of ``n_genes`` among the
    genes the model knows, or a list of names (``var_names``, or the Ensembl ids / symbols the
    columns were mapped to). ``drop_unexpressed`` leaves out genes without counts in ``rows``.
    """
    columns = choose_genes(data, pretrained.vocab, genes, n_genes, rows=rows, group=group)
    if drop_unexpressed:
        totals = np.asarray(data.counts[rows][:, columns].sum(axis=0)).ravel()
        columns = columns[totals > 0]
        log.info(
            "gninfer: dropped %d selected genes without counts in the cells",
            int((totals == 0).sum()),
        )
    return columns
