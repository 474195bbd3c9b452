"""Which genes of a cell enter the model's context, and batches for inference.

Per cell: up to ``max_len`` *expressed* genes chosen at random (by default with probability
proportional to their count, which lets small contexts see the informative, highly expressed
genes; uniformly with ``"random"``); the remaining places are filled
with random unexpressed genes of the dataset (``pad_with_unexpressed=True``) or left as padding
(``-1``). Gene order carries no information (the model has no sequence-position encoding). At
inference a fixed gene list for all cells is also supported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from .source import CellSource
from .vocabulary import Vocabulary

#: Ways of choosing the expressed genes of a context (see :func:`sample_context`).
SAMPLING_METHODS = ("random", "weighted")


def sample_context(
    counts: sp.csr_matrix | np.ndarray,
    vocab_index: np.ndarray,
    max_len: int,
    rng: np.random.Generator,
    pad_with_unexpressed: bool = True,
    method: str = "weighted",
) -> tuple[np.ndarray, np.ndarray]:
    """Choose each cell's context genes.

    Args:
        counts: ``(cells, genes)`` counts over a dataset's vocabulary genes.
        vocab_index: ``(genes,)`` vocabulary index of each column.
        max_len: context length.
        rng: random generator.
        pad_with_unexpressed: fill places left after the expressed genes with unexpressed genes.
        method: how expressed genes are chosen when a cell has more than ``max_len``:
            ``"weighted"`` (default: without replacement with probability proportional to the
            count, so highly expressed genes are usually in the context) or ``"random"``
            (uniformly among the expressed genes).

    Returns:
        ``gene_ids`` ``(cells, max_len)`` int64 (``-1`` = padding) and ``counts`` ``(cells, max_len)``
        float32 of those genes.
    """
    dense = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
    dense = dense.astype(np.float32, copy=False)
    n_cells, n_genes = dense.shape
    if method not in SAMPLING_METHODS:
        raise ValueError(f"gene sampling method must be one of {SAMPLING_METHODS}, got {method!r}")
    expressed = dense > 0
    uniform = rng.random((n_cells, n_genes), dtype=np.float32)
    if method == "weighted":
        # Efraimidis-Spirakis: the top-k of u ** (1 / count) is a weighted sample without replacement
        with np.errstate(divide="ignore"):
            uniform = np.where(expressed, uniform ** (1.0 / np.maximum(dense, 1.0)), uniform)
    score = uniform + 2.0 * expressed
    if not pad_with_unexpressed:
        score[~expressed] = -1.0
    k = min(max_len, n_genes)
    chosen = (
        np.argpartition(-score, k - 1, axis=1)[:, :k]
        if k < n_genes
        else np.tile(np.arange(n_genes), (n_cells, 1))
    )
    rows = np.arange(n_cells)[:, None]
    gene_ids = np.full((n_cells, max_len), -1, dtype=np.int64)
    values = np.zeros((n_cells, max_len), dtype=np.float32)
    gene_ids[:, :k] = vocab_index[chosen]
    values[:, :k] = dense[rows, chosen]
    if not pad_with_unexpressed:
        gene_ids[:, :k][score[rows, chosen] < 0] = -1
    return gene_ids, values


def make_inference_batches(
    adata: ad.AnnData | str | Path,
    vocab: Vocabulary,
    genes: Sequence[str] | None = None,
    max_len: int = 512,
    batch_size: int = 64,
    seed: int = 0,
    pad_with_unexpressed: bool = True,
    gene_sampling: str = "weighted",
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of model inputs for every cell of ``adata``, in order.

    Args:
        adata: raw counts in ``X`` (AnnData or a path to ``.h5ad``/``.zarr``).
        vocab: the model vocabulary.
        genes: a fixed gene list (Ensembl ids or symbols) used for every cell, or ``None`` to
            sample up to ``max_len`` expressed genes per cell.
        max_len: context length when sampling (ignored with ``genes``).
        batch_size: cells per batch.
        seed: seed of the per-cell sampling.
        pad_with_unexpressed: see :func:`sample_context`.
        gene_sampling: ``"weighted"`` or ``"random"`` (see :func:`sample_context`); use what the
            model was trained with (``Pretrained.sampling["gene_sampling"]``).

    Yields:
        ``{"gene_ids": (B, L) long, "counts": (B, L) float32, "depth": (B,) float32 total counts,
        "cell_index": (B,) long row of adata}``. When sampling, ``L`` is the longest context of
        the batch's cells (at most ``max_len``; :func:`trim_padding`), not ``max_len``.

    Raises:
        ValueError: non-integer counts, empty cells, too small overlap with the vocabulary, or
        genes of ``genes`` missing from the vocabulary or from ``adata``.
    """
    if batch_size < 1 or max_len < 1:
        raise ValueError(f"batch_size and max_len must be positive, got {batch_size} and {max_len}")
    if gene_sampling not in SAMPLING_METHODS:
        raise ValueError(f"gene_sampling must be one of {SAMPLING_METHODS}, got {gene_sampling!r}")
    source = CellSource(adata)
    source.bind(vocab)
    fixed_columns = None
    if genes is not None:
        fixed_columns = _fixed_columns(genes, vocab, source)
    rng = np.random.default_rng(seed)
    for start in range(0, source.n_cells, batch_size):
        rows = np.arange(start, min(start + batch_size, source.n_cells))
        block = source.rows(rows)
        if fixed_columns is None:
            gene_ids, counts = trim_padding(
                *sample_context(
                    block, source.vocab_index, max_len, rng, pad_with_unexpressed, gene_sampling
                )
            )
        else:
            counts = block[:, fixed_columns].toarray().astype(np.float32)
            gene_ids = np.broadcast_to(source.vocab_index[fixed_columns], counts.shape).copy()
        yield {
            "gene_ids": torch.from_numpy(gene_ids),
            "counts": torch.from_numpy(counts),
            "depth": torch.from_numpy(source.depth[rows]),
            "cell_index": torch.from_numpy(rows),
        }


def trim_padding(gene_ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A batch padded to its longest cell: each row's genes first (their order kept), padding
    (``-1``) after them, and the columns cut to the most genes any row holds.

    ``gene_ids`` and ``counts`` are ``(cells, L)``; the result is ``(cells, L')`` with
    ``L' <= L``. Padding is never attended to, so the model's outputs for the genes are unchanged;
    the forward pass only gets cheaper.
    """
    valid = gene_ids >= 0
    if valid.all():
        return gene_ids, counts
    width = max(int(valid.sum(axis=1).max()), 1)
    order = np.argsort(~valid, axis=1, kind="stable")
    gene_ids = np.take_along_axis(gene_ids, order[:, :width], axis=1)
    counts = np.take_along_axis(counts, order[:, :width], axis=1)
    return np.ascontiguousarray(gene_ids), np.ascontiguousarray(counts)


def _fixed_columns(genes: Sequence[str], vocab: Vocabulary, source: CellSource) -> np.ndarray:
    """Columns of the matched matrix holding ``genes`` (in the given order)."""
    if len(genes) == 0:
        raise ValueError("genes must name at least one gene, got an empty list")
    wanted = vocab.index_of(list(genes))
    missing = [g for g, i in zip(genes, wanted) if i < 0]
    if missing:
        raise ValueError(
            f"{len(missing)} genes are not in the model vocabulary, e.g. {missing[:3]}"
        )
    position = {int(v): j for j, v in enumerate(source.vocab_index)}
    absent = [g for g, i in zip(genes, wanted) if int(i) not in position]
    if absent:
        raise ValueError(
            f"{len(absent)} genes are not in the dataset {source.name!r}, e.g. {absent[:3]}"
        )
    return np.array([position[int(i)] for i in wanted], dtype=np.int64)
