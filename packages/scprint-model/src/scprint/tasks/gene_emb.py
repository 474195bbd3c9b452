"""Gene embeddings in the context of the cells, per group of cells: :class:`GeneEmbedder`.

As the original ``scprint2`` ``GeneEmbeddingExtractor``: every cell is read over one fixed list
of genes (in one context, with its expression and depth), and the model's output gene
embeddings ``(n_genes, d_model)`` of that cell are averaged, over all cells and over the cells
of each group of an ``obs`` column (a cell type, a condition, a donor, ...). Comparing a gene's
embedding between groups shows how its context changes between them; the per-group matrices are
ready for a gene-gene similarity or a clustering.

The original averages the batch means (equal to the cell mean when every batch has the same
size); here each group's embedding is the plain mean over its cells.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from scprint.errors import InputError
from scprint.tasks._batches import iter_model_batches, model_inputs
from scprint.tasks._input import (
    TaskInput,
    gene_matching_options,
    prepare,
    resolve_gene_list,
    var_names_to_vocab,
)
from scprint.tasks._model import Checkpoint, load_model
from scprint.tasks._output import provenance, store_result
from scprint.tasks.genes import select_genes

log = logging.getLogger(__name__)

__all__ = ["GeneEmbedder"]

#: ``genes`` choices of :class:`GeneEmbedder` besides a list of ``var_names``.
GENE_CHOICES: tuple[str, ...] = ("hvg", "expressed", "all")


class GeneEmbedder:
    """Average the model's output gene embeddings over cells, overall and per group.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load`; scPRINT-1 and
        scPRINT-2 checkpoints).
    genes
        The genes every cell is read over, in one context: ``"hvg"`` (the ``n_genes`` most
        variable the model knows), ``"expressed"`` (the ``n_genes`` of highest mean expression),
        ``"all"`` (every gene of the AnnData the model knows; long contexts cost attention
        memory quadratically) or a list of ``var_names`` (the original's ``genelist``).
    n_genes
        Number of genes for ``"hvg"`` and ``"expressed"``.
    groupby
        An ``obs`` column (e.g. ``"cell_type"``, ``"condition"``): one embedding matrix per
        value, besides the one over all cells. A column of unique values gives per-cell matrices.
    gene_matching
        How the AnnData's genes are matched to the model's: keyword arguments of
        :func:`scprint.tasks._input.prepare` (``organism``, ``gene_column``, ``gene_table``,
        ``orthologs``, ``min_genes``).
    batch_size, device
        Cells per forward pass; ``"auto"`` (GPU if any), ``"cpu"`` or ``"cuda"``.
    precision
        ``"32"`` (float32, default), ``"bf16"`` (bfloat16 autocast) or ``"int8"`` (int8 linear
        layers, CPU only); see :mod:`scprint.tasks._model`. The first batch is checked
        against float32 and the agreement stored in ``uns[key_added]["precision"]``.
    """

    def __init__(
        self,
        ckpt: Checkpoint,
        *,
        genes: str | Sequence[str] = "hvg",
        n_genes: int = 2000,
        groupby: str | None = None,
        gene_matching: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str = "32",
    ) -> None:
        if isinstance(genes, str) and genes not in GENE_CHOICES:
            raise InputError(
                f"genes must be one of {GENE_CHOICES} or a list of var_names, got {genes!r}"
            )
        if not isinstance(n_genes, int | np.integer) or n_genes < 1:
            raise InputError(f"n_genes must be a positive integer, got {n_genes!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.gene_matching = gene_matching_options(gene_matching)
        self.pretrained = load_model(ckpt, device, precision)
        if not isinstance(genes, str) and not len(genes):
            raise InputError(
                "the gene list is empty; give var_names or one of " + str(GENE_CHOICES)
            )
        self.genes = genes if isinstance(genes, str) else [str(g) for g in genes]
        self.n_genes = int(n_genes)
        self.groupby = groupby
        self.batch_size = batch_size

    def _columns(self, data: TaskInput) -> np.ndarray:
        """Columns of the AnnData every cell is read over (sorted for the selections)."""
        if not isinstance(self.genes, str):
            columns = resolve_gene_list(data.adata, self.genes, data.match, self.pretrained.vocab)
            try:
                var_names_to_vocab(data.adata, data.match, columns)
            except ValueError as err:
                raise InputError(str(err)) from None
            return columns
        known = np.sort(data.match.var_indices)
        if self.genes == "all":
            return known
        return np.sort(select_genes(data.counts, self.genes, self.n_genes, candidates=known))

    def gene_embeddings(
        self, data: TaskInput, columns: np.ndarray, groups: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Summed output gene embeddings per group ``(n_groups, len(columns), d)`` float64 and
        cells per group ``(n_groups,)``; ``groups`` ``(n_cells,)`` int64 holds each cell's group."""
        adata = data.adata
        model = self.pretrained.model
        genes = [str(g) for g in adata.var_names[columns]]
        n_groups = int(groups.max()) + 1
        sums: torch.Tensor | None = None
        counts = np.bincount(groups, minlength=n_groups)
        with torch.inference_mode():
            for batch in iter_model_batches(
                adata,
                self.pretrained,
                data.match,
                genes=genes,
                max_len=len(genes),
                batch_size=self.batch_size,
                description="gene embeddings",
            ):
                embeddings = model(**model_inputs(batch)).gene_embeddings.double()
                if sums is None:
                    sums = torch.zeros(
                        (n_groups, *embeddings.shape[1:]),
                        dtype=torch.float64,
                        device=embeddings.device,
                    )
                index = torch.as_tensor(
                    groups[batch["cell_index"].cpu().numpy()], device=embeddings.device
                )
                sums.index_add_(0, index, embeddings)
        return sums.cpu().numpy(), counts

    def __call__(
        self, adata: ad.AnnData, *, key_added: str = "X_scprint_genes", copy: bool = False
    ) -> ad.AnnData | None:
        """Gene embeddings of ``adata``'s chosen genes (cells x genes, raw counts).

        Writes into ``adata`` (``None`` returned) or a returned copy (``copy=True``):
        ``varm[key_added]`` float32 ``(n_vars, d_model)``, each chosen gene's output embedding
        averaged over all cells (NaN rows for the other genes); with ``groupby``,
        ``varm[f"{key_added}_{value}"]`` the same over the cells of each value of
        ``obs[groupby]``; ``var[key_added]`` (bool) marks the chosen genes; ``uns[key_added]``
        the settings, ``groups`` ``{value: {"varm": key, "n_cells": n}}`` and provenance.
        """
        data = prepare(adata, self.pretrained, **self.gene_matching)
        if self.groupby is not None and self.groupby not in adata.obs:
            raise InputError(
                f"obs has no column {self.groupby!r} to group the cells by; available: "
                f"{list(adata.obs.columns)}"
            )
        columns = self._columns(data)
        names: list[str] = []
        groups = np.zeros(adata.n_obs, dtype=np.int64)
        if self.groupby is not None:
            values = adata.obs[self.groupby]
            if values.isna().any():
                raise InputError(
                    f"obs[{self.groupby!r}] has {int(values.isna().sum())} missing values; "
                    "label every cell or drop the unlabelled ones"
                )
            codes, uniques = pd.factorize(values.astype(str), sort=True)
            names = [str(u) for u in uniques]
            groups = codes.astype(np.int64) + 1  # group 0 = all cells, summed below
        sums, counts = self.gene_embeddings(data, columns, groups)
        if self.groupby is not None:
            sums[0] = sums[1:].sum(axis=0)
            counts[0] = counts[1:].sum()
        d = sums.shape[-1]
        varm: dict[str, np.ndarray] = {}
        summary: dict[str, dict[str, Any]] = {}
        for index, name in enumerate([None, *names]):
            matrix = np.full((adata.n_vars, d), np.nan, dtype=np.float32)
            matrix[columns] = (sums[index] / counts[index]).astype(np.float32)
            key = key_added if name is None else f"{key_added}_{name}"
            varm[key] = matrix
            if name is not None:
                summary[name] = {"varm": key, "n_cells": int(counts[index])}
        chosen = np.zeros(adata.n_vars, dtype=bool)
        chosen[columns] = True
        settings = provenance(
            self.pretrained,
            genes=self.genes if isinstance(self.genes, str) else "list",
            n_genes=int(columns.size),
            groupby=self.groupby,
            groups=summary,
            gene_match=data.match.summary(),
        )
        log.info("gene embeddings of %d genes over %d cells", columns.size, adata.n_obs)
        return store_result(
            adata,
            {"varm": varm, "var": {key_added: chosen}},
            settings,
            key_added,
            copy=copy,
        )
