"""Attention kernels: one public function per operation, choosing the backend.

Foundation version: only the PyTorch path of :func:`attention`; the Triton kernels and
``attention_to_network`` are added by the kernels work (same signatures).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["attention"]


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Non-causal multi-head attention.

    q, k, v: ``(batch, heads, seq, head_dim)``; bias: additive, broadcastable to
    ``(batch, heads, seq, seq)``. Returns ``(batch, heads, seq, head_dim)``.
    """
    if backend not in ("auto", "torch"):
        raise ValueError(f"backend must be 'auto' or 'torch' in this build, got {backend!r}")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
