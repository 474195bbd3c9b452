"""PyTorch backends (any device, used on CPU): attention via SDPA, networks in bounded-memory chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Temporary-memory budget of the chunked PyTorch code paths, in float32 elements (64 MiB).
CHUNK_BUDGET_ELEMENTS = 2**24


def attention_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    return_lse: bool,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``scaled_dot_product_attention`` (the bias is cast to ``q.dtype``, as SDPA requires).

    With ``return_lse`` the log-sum-exp is computed separately, over query chunks so that at
    most :data:`CHUNK_BUDGET_ELEMENTS` scores exist at once; it is differentiable.
    """
    mask = None if bias is None else bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if not return_lse:
        return out
    batch, n_heads, seq_q, _ = q.shape
    seq_k = k.shape[2]
    rows_per_chunk = max(1, CHUNK_BUDGET_ELEMENTS // (batch * n_heads * seq_k))
    bias4 = None if bias is None else (bias if bias.dim() == 4 else bias.unsqueeze(0))
    pieces = []
    for start in range(0, seq_q, rows_per_chunk):
        stop = min(seq_q, start + rows_per_chunk)
        scores = (q[:, :, start:stop].float() * scale) @ k.float().transpose(-1, -2)
        if bias4 is not None:
            scores = scores + (bias4 if bias4.shape[2] == 1 else bias4[:, :, start:stop]).float()
        pieces.append(torch.logsumexp(scores, dim=-1))
    return out, torch.cat(pieces, dim=-1)


def attention_to_network_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    gene_ids: torch.Tensor,
    n_genes: int,
    scale: float,
    head_index: torch.Tensor,
    sum_heads: bool,
    chunk_size: int | None,
) -> torch.Tensor:
    """Summed attention maps ``(n_out, n_genes, n_genes)`` float32, one cell and query chunk at a time.

    Padding positions are dropped, each chunk's ``(heads, chunk, n_present)`` probabilities are
    computed in float32 and added with ``index_add_`` (duplicates accumulate, deterministic).
    ``chunk_size``: query positions per step; ``None`` picks the largest chunk within
    :data:`CHUNK_BUDGET_ELEMENTS`.
    """
    batch, _, seq, _ = q.shape
    n_selected = head_index.numel()
    n_out = 1 if sum_heads else n_selected
    out = torch.zeros(n_out, n_genes * n_genes, device=q.device, dtype=torch.float32)
    for cell in range(batch):
        positions = (gene_ids[cell] >= 0).nonzero().squeeze(1)
        n_present = positions.numel()
        if n_present == 0:
            continue
        genes = gene_ids[cell, positions]
        queries = q[cell, head_index][:, positions].float() * scale
        keys = k[cell, head_index][:, positions].float()
        # Per query row: n_selected scores + one int64 index (2 floats) + one summed value.
        step = chunk_size or max(1, CHUNK_BUDGET_ELEMENTS // ((n_selected + 3) * n_present))
        for start in range(0, n_present, step):
            stop = min(n_present, start + step)
            maps = torch.softmax(queries[:, start:stop] @ keys.transpose(-1, -2), dim=-1)
            if sum_heads:
                maps = maps.mean(dim=0, keepdim=True)
            flat_index = (genes[start:stop, None] * n_genes + genes[None, :]).reshape(-1)
            out.index_add_(1, flat_index, maps.reshape(n_out, -1))
    return out.reshape(n_out, n_genes, n_genes)
