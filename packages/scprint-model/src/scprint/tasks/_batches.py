"""Streaming an AnnData's cells through a task's model in batches, with a progress bar."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anndata as ad
import torch
from tqdm.auto import tqdm

from scprint.checkpoints import Pretrained
from scprint.tasks._input import GeneMatch, model_view, resolve_gene_list, var_names_to_vocab
from scprint.tasks._model import model_device

__all__ = ["iter_model_batches"]


def iter_model_batches(
    adata: ad.AnnData,
    pretrained: Pretrained,
    match: GeneMatch,
    *,
    genes: Sequence[str] | None,
    max_len: int | None,
    batch_size: int,
    description: str,
) -> Iterator[dict[str, torch.Tensor]]:
    """Stream ``adata`` through the model's batching, on the model's device, with a progress bar.

    ``match`` is the gene mapping of ``adata`` (``prepare(...).match``, or its :meth:`GeneMatch.subset`
    for some columns). ``genes`` is ``None`` (up to ``max_len`` genes per cell, expressed ones
    first, default the model's training context length) or a fixed list of ``var_names`` that
    every cell gets, in that order. Each batch is a dict of tensors:
    ``gene_ids`` (B, L) vocabulary indices (-1 = padding), ``counts`` (B, L), ``depth`` (B,) and
    ``cell_index`` (B,) rows of ``adata``.
    """
    from scprint.data import make_inference_batches

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = model_device(pretrained)
    vocab = pretrained.vocab
    view = model_view(adata, match, vocab)
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
    total = -(-adata.n_obs // batch_size)
    for batch in tqdm(batches, total=total, desc=description, unit="batch", leave=False):
        yield {
            key: (value.to(device) if isinstance(value, torch.Tensor) else torch.as_tensor(value))
            for key, value in batch.items()
        }
