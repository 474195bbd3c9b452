"""Attention accumulation: the model's attention over the network's genes, averaged over cells.

Only gene positions take part unless ``cell_tokens=True``: the cell-token positions are sliced
off the queries and keys before the softmax, so each query gene's attention is renormalised over
the selected genes. ``"fast"`` averages queries and keys over cells, then takes one softmax;
``"exact"`` sums the per-cell maps (the fused kernel :func:`scprint.kernels.attention_to_network`,
or dense PyTorch maps for ``preprocess="none"`` / ``cell_tokens=True``) and divides by the cells
holding each gene pair.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import torch

from scprint.checkpoints import Pretrained
from scprint.tasks._batches import iter_model_batches, model_inputs
from scprint.tasks._input import GeneMatch
from scprint.tasks._model import model_device
from scprint.tasks.options import GNINFER_DENOISE_DEPTH_FACTOR

log = logging.getLogger(__name__)

__all__ = [
    "AGGREGATIONS",
    "ATTENTION_BUDGET_BYTES",
    "DENOISE_DEPTH_FACTOR",
    "FORWARD_MODES",
    "PREPROCESSING",
    "attention_maps",
]

AGGREGATIONS: tuple[str, ...] = ("fast", "exact")
#: Most bytes of float32 attention scores one forward pass may hold (cells x heads x seq x seq);
#: the batch is shrunk below ``batch_size`` when the gene context is long.
ATTENTION_BUDGET_BYTES = 1 << 30
PREPROCESSING: tuple[str, ...] = ("softmax", "none")
FORWARD_MODES: tuple[str, ...] = ("none", "denoise")
#: Depth multiplier of ``forward_mode="denoise"`` (:data:`scprint.tasks.options.GNINFER_DENOISE_DEPTH_FACTOR`).
DENOISE_DEPTH_FACTOR = GNINFER_DENOISE_DEPTH_FACTOR


def _normalise(scores: torch.Tensor, preprocess: str) -> torch.Tensor:
    return torch.softmax(scores, dim=-1) if preprocess == "softmax" else scores


def attention_maps(
    pretrained: Pretrained,
    cells: ad.AnnData,
    match: GeneMatch,
    gene_names: Sequence[str],
    vocab_ids: np.ndarray,
    *,
    layers: Sequence[int],
    heads: Sequence[int],
    aggregation: str = "fast",
    preprocess: str = "softmax",
    forward_mode: str = "none",
    cell_tokens: bool = False,
    batch_size: int = 16,
    chunk_size: int | None = None,
    mean_heads: bool = False,
) -> np.ndarray:
    """Cell-averaged attention maps ``(len(layers) * len(heads), n_keys, n_keys)``, rows = query.

    ``cells`` (``match`` their gene match) are read with exactly the columns ``gene_names``
    (``var_names``), whose vocabulary indices are ``vocab_ids`` ``(n_genes,)``. ``n_keys`` is
    ``n_genes``, or ``n_cell_tokens + n_genes`` (cell tokens first) with ``cell_tokens=True``.
    Heads are ordered layer-major. ``aggregation``, ``preprocess`` and ``forward_mode`` are
    described in :mod:`scprint.tasks.gninfer`; ``batch_size`` is shrunk so that one forward
    pass holds at most :data:`ATTENTION_BUDGET_BYTES` of scores; ``chunk_size`` is the query
    chunk of the exact kernel. ``mean_heads=True`` returns only their mean over the heads,
    ``(1, n_keys, n_keys)``, accumulated as it goes: one ``n_keys x n_keys`` float32 sum instead
    of one per head (5,000 genes: 100 MB instead of 3.2 GB for 8 layers x 4 heads).
    """
    from scprint.kernels import attention_to_network

    model = pretrained.model
    device = model_device(pretrained)
    n_genes = len(vocab_ids)
    lookup = torch.full((len(pretrained.vocab),), -1, dtype=torch.long, device=device)
    lookup[torch.as_tensor(vocab_ids, device=device)] = torch.arange(n_genes, device=device)
    n_cell_tokens = model.qk_cell_tokens  # cell tokens leading the q/k sequences
    first = 0 if cell_tokens else n_cell_tokens
    n_keys = n_genes + n_cell_tokens - first
    heads = heads
    n_out = len(layers) * len(heads)
    n_maps = 1 if mean_heads else n_out
    per_map = 1.0 / n_out if mean_heads else 1.0  # weight of one head's map in its output map
    use_kernel = aggregation == "exact" and not cell_tokens
    use_kernel = use_kernel and preprocess == "softmax"
    if aggregation == "fast":
        head_dim = model.config.head_dim
        q_sum = torch.zeros(len(layers), len(heads), n_keys + 1, head_dim, device=device)
        k_sum = torch.zeros_like(q_sum)
        key_cells = torch.zeros(n_keys + 1, device=device)
    else:
        summed = torch.zeros(n_maps, n_keys, n_keys, device=device)
        pair_counts = torch.zeros(n_keys, n_keys, device=device)
    scale = None
    per_cell = model.config.n_heads * (n_genes + n_cell_tokens) ** 2 * 4
    cells_per_batch = max(1, min(batch_size, ATTENTION_BUDGET_BYTES // per_cell))
    if cells_per_batch < batch_size:
        log.info(
            "gninfer: %d cells per batch to keep attention maps within budget", cells_per_batch
        )
    with torch.inference_mode():
        for batch in iter_model_batches(
            cells,
            pretrained,
            match,
            genes=list(gene_names),
            max_len=n_genes,
            batch_size=cells_per_batch,
            description="gninfer",
        ):
            gene_ids = batch["gene_ids"]
            local = torch.where(gene_ids >= 0, lookup[gene_ids.clamp(min=0)], -1)
            if cell_tokens:
                cell_slots = torch.arange(n_cell_tokens, device=device).expand(len(local), -1)
                local = torch.cat(
                    [cell_slots, torch.where(local >= 0, local + n_cell_tokens, -1)], 1
                )
            depth = batch["depth"]
            if forward_mode == "denoise":
                depth = depth * DENOISE_DEPTH_FACTOR
            out = model(**{**model_inputs(batch), "depth": depth}, return_qk=True)
            if out.qk is None:
                raise RuntimeError("the model returned no queries/keys although return_qk=True")
            slot = torch.where(local >= 0, local, n_keys)
            for li, layer in enumerate(layers):
                q, k = out.qk[layer]
                q = q[:, heads, first:].float()
                k = k[:, heads, first:].float()
                scale = q.shape[-1] ** -0.5
                if aggregation == "fast":
                    flat_q = q.permute(1, 0, 2, 3).reshape(len(heads), -1, q.shape[-1])
                    flat_k = k.permute(1, 0, 2, 3).reshape(len(heads), -1, k.shape[-1])
                    q_sum[li].index_add_(1, slot.reshape(-1), flat_q)
                    k_sum[li].index_add_(1, slot.reshape(-1), flat_k)
                else:
                    if use_kernel:
                        maps, pairs = attention_to_network(
                            q, k, local, n_keys, heads=None, chunk_size=chunk_size
                        )
                    else:
                        maps, pairs = _dense_maps(q, k, slot, n_keys, scale, preprocess)
                    if mean_heads:
                        summed[0] += maps.sum(0) * per_map
                    else:
                        summed[li * len(heads) : (li + 1) * len(heads)] += maps
                    if li == 0:
                        pair_counts += pairs
            if aggregation == "fast":
                flat = slot.reshape(-1)
                key_cells.index_add_(0, flat, torch.ones_like(flat, dtype=key_cells.dtype))
    if aggregation == "fast":
        denominator = key_cells[:n_keys].clamp(min=1)[None, None, :, None]
        q_mean = q_sum[:, :, :n_keys] / denominator
        k_mean = k_sum[:, :, :n_keys] / denominator
        if mean_heads:  # one layer's maps at a time
            maps = torch.zeros(1, n_keys, n_keys, device=device)
            for li in range(len(layers)):
                scores = q_mean[li] @ k_mean[li].transpose(-1, -2) * scale
                maps[0] += _normalise(scores, preprocess).sum(0) * per_map
        else:
            scores = q_mean @ k_mean.transpose(-1, -2) * scale
            maps = _normalise(scores, preprocess).reshape(n_out, n_keys, n_keys)
    else:
        maps = summed.div_(pair_counts.clamp(min=1))
    return maps.cpu().numpy().astype(np.float32, copy=False)


def _dense_maps(
    q: torch.Tensor,
    k: torch.Tensor,
    slot: torch.Tensor,
    n_keys: int,
    scale: float,
    preprocess: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell maps summed into ``(heads, n_keys, n_keys)`` and the cells per pair (torch).

    ``slot`` ``(B, L)`` is each position's key index (``n_keys`` = not a selected key).
    Padding positions (slot ``n_keys``) are masked out of the softmax.
    """
    valid = slot < n_keys
    scores = q @ k.transpose(-1, -2) * scale
    if preprocess == "softmax":
        scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    maps = _normalise(scores, preprocess) * valid[:, None, :, None] * valid[:, None, None, :]
    batch, n_heads, length, _ = maps.shape
    index = (slot.clamp(max=n_keys)[:, :, None] * (n_keys + 1) + slot[:, None, :]).reshape(
        batch, -1
    )
    out = torch.zeros(n_heads, (n_keys + 1) ** 2, device=q.device)
    out.index_add_(1, index.reshape(-1), maps.permute(1, 0, 2, 3).reshape(n_heads, -1))
    pairs = torch.zeros((n_keys + 1) ** 2, device=q.device)
    pairs.index_add_(
        0, index.reshape(-1), (valid[:, :, None] & valid[:, None, :]).reshape(-1).float()
    )
    out = out.reshape(n_heads, n_keys + 1, n_keys + 1)[:, :n_keys, :n_keys]
    pairs = pairs.reshape(n_keys + 1, n_keys + 1)[:n_keys, :n_keys]
    return out, pairs
