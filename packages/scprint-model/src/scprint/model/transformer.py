"""Pre-LayerNorm transformer encoder whose attention goes through :func:`scprint.kernels.attention`."""

from __future__ import annotations

import torch
from torch import nn

from scprint.kernels import attention


class SelfAttention(nn.Module):
    """Multi-head self-attention; can hand back its queries and keys for network inference."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` ``(batch, seq, d)``; ``bias`` additive, ``(batch, 1, 1, seq)``.

        Returns the output ``(batch, seq, d)`` and ``(q, k)``, each ``(batch, heads, seq, head_dim)``.
        """
        batch, seq, d_model = x.shape
        q, k, v = (
            self.qkv(x)
            .view(batch, seq, 3, self.n_heads, d_model // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        y = attention(q, k, v, bias=None if bias is None else bias.to(q.dtype))
        y = y.transpose(1, 2).reshape(batch, seq, d_model)
        return self.dropout(self.out(y)), (q, k)


class Block(nn.Module):
    """``x + attention(LN(x))`` then ``x + MLP(LN(x))`` with a GELU MLP of width ``mlp_ratio * d``."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, n_heads, dropout)
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Linear(mlp_ratio * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        update, qk = self.attention(self.norm_attention(x), bias)
        x = x + update
        return x + self.mlp(self.norm_mlp(x)), qk


class Transformer(nn.Module):
    """A stack of :class:`Block` followed by a final LayerNorm."""

    def __init__(
        self, d_model: int, n_layers: int, n_heads: int, mlp_ratio: int, dropout: float
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, mlp_ratio, dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, x: torch.Tensor, padding: torch.Tensor, return_qk: bool = False
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Encode a sequence.

        Args:
            x: ``(batch, seq, d)`` tokens.
            padding: ``(batch, seq)`` bool, True at padded positions (never attended to).
            return_qk: also return each layer's ``(q, k)``, each ``(batch, heads, seq, head_dim)``.

        Returns:
            ``(batch, seq, d)`` and the per-layer ``(q, k)`` list or ``None``.
        """
        bias = None
        if bool(padding.any()):
            bias = torch.zeros(padding.shape, dtype=x.dtype, device=x.device)
            bias = bias.masked_fill(padding, float("-inf"))[:, None, None, :]
        qks: list[tuple[torch.Tensor, torch.Tensor]] = []
        for block in self.blocks:
            x, qk = block(x, bias)
            if return_qk:
                qks.append(qk)
        return self.norm(x), (qks if return_qk else None)
