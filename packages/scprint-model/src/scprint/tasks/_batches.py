"""Streaming an AnnData's cells through a task's model in batches, with a progress bar."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from scprint.checkpoints import Pretrained
from scprint.errors import InputError
from scprint.tasks._input import GeneMatch, model_view, resolve_gene_list, var_names_to_vocab
from scprint.tasks._model import model_device

log = logging.getLogger(__name__)

__all__ = ["iter_model_batches", "model_inputs"]


def model_inputs(
    batch: dict[str, torch.Tensor], genes: slice = slice(None)
) -> dict[str, torch.Tensor]:
    """Keyword arguments of the model's forward pass for ``batch``, genes restricted to ``genes``
    (a slice of the context): ``gene_ids``, ``counts``, ``depth`` and, for models that read
    each cell's neighbours (scPRINT-2 ``metacell``), ``neighbours`` and ``neighbour_distances``."""
    inputs = {
        "gene_ids": batch["gene_ids"][:, genes],
        "counts": batch["counts"][:, genes],
        "depth": batch["depth"],
    }
    if "neighbour_counts" in batch:
        inputs["neighbours"] = batch["neighbour_counts"][:, :, genes]
        inputs["neighbour_distances"] = batch["neighbour_distances"]
    return inputs


class _NeighbourCounts:
    """Counts of each cell's neighbours at a batch's context genes (``metacell`` models)."""

    def __init__(self, adata: ad.AnnData, match: GeneMatch, n_vocab: int) -> None:
        from scprint.data.neighbours import neighbours_of

        self.neighbours, source = neighbours_of(adata)
        log.info("neighbours of each cell (metacell encoder): %s", source)
        if self.neighbours is None:
            return
        self.counts = sp.csr_matrix(adata.X, dtype=np.float32)
        self.column_of = np.full(n_vocab, -1, dtype=np.int64)
        self.column_of[match.vocab_indices] = match.var_indices

    def __call__(
        self, gene_ids: torch.Tensor, cell_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, K, L)`` neighbour counts (0 at padding) and ``(B, K)`` distances."""
        ids = gene_ids.cpu().numpy()
        rows = cell_index.cpu().numpy()
        columns = np.where(ids >= 0, self.column_of[np.clip(ids, 0, None)], -1)
        out = np.zeros((len(rows), self.neighbours.k, ids.shape[1]), dtype=np.float32)
        for b, row in enumerate(rows):
            known = columns[b] >= 0
            block = self.counts[self.neighbours.indices[row]][:, columns[b][known]]
            out[b][:, known] = block.toarray()
        distances = self.neighbours.distances[rows]
        return torch.from_numpy(out), torch.from_numpy(distances)


def iter_model_batches(
    adata: ad.AnnData,
    pretrained: Pretrained,
    match: GeneMatch,
    *,
    genes: Sequence[str] | None,
    max_len: int | None,
    batch_size: int,
    description: str,
    cells: np.ndarray | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Stream ``adata`` through the model's batching, on the model's device, with a progress bar.

    ``match`` is the gene mapping of ``adata`` (``prepare(...).match``, or its :meth:`GeneMatch.subset`
    for some columns). ``genes`` is ``None`` (up to ``max_len`` genes per cell, expressed ones
    first, default the model's training context length) or a fixed list of ``var_names`` that
    every cell gets, in that order. Each batch is a dict of tensors:
    ``gene_ids`` (B, L) vocabulary indices (-1 = padding), ``counts`` (B, L), ``depth`` (B,) and
    ``cell_index`` (B,) rows of ``adata``; for a model that reads each cell's neighbours
    (``model.uses_neighbours``, scPRINT-2 ``metacell``) also ``neighbour_counts`` (B, K, L) and
    ``neighbour_distances`` (B, K) (:mod:`scprint.data.neighbours`). :func:`model_inputs` turns
    a batch into the model's arguments. ``cells`` streams only these rows of ``adata``
    (``cell_index`` still indexes ``adata``; neighbours are found among all of its cells).
    """
    from scprint.data import make_inference_batches

    if batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = model_device(pretrained)
    vocab = pretrained.vocab
    neighbour_counts = None
    if getattr(pretrained.model, "uses_neighbours", False):
        neighbour_counts = _NeighbourCounts(adata, match, len(vocab))
    rows = None if cells is None else np.asarray(cells, dtype=np.int64)
    view = model_view(adata if rows is None else adata[rows], match, vocab)
    vocab_genes = None
    if genes is not None:
        columns = resolve_gene_list(adata, genes, match, vocab)
        vocab_genes = [str(vocab.genes[i]) for i in var_names_to_vocab(adata, match, columns)]
    batches = make_inference_batches(
        view,
        vocab,
        genes=vocab_genes,
        max_len=pretrained.config.max_len if max_len is None else max_len,
        batch_size=batch_size,
    )
    total = -(-view.n_obs // batch_size)
    for batch in tqdm(batches, total=total, desc=description, unit="batch", leave=False):
        if rows is not None:
            batch = {**batch, "cell_index": torch.from_numpy(rows[batch["cell_index"].numpy()])}
        if neighbour_counts is not None and neighbour_counts.neighbours is not None:
            counts, distances = neighbour_counts(batch["gene_ids"], batch["cell_index"])
            batch = {**batch, "neighbour_counts": counts, "neighbour_distances": distances}
        yield {
            key: (value.to(device) if isinstance(value, torch.Tensor) else torch.as_tensor(value))
            for key, value in batch.items()
        }
