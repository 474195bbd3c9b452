"""The pre-LayerNorm transformer of scPRINT, attention through :func:`scprint.kernels.attention`.

Block ``i`` (the original's simpler-flash ``Block`` with ``prenorm=True``) carries a residual
stream next to the branch output, so that dropout, residual add and LayerNorm happen together::

    residual = dropout(branch) + residual        # branch: previous block's MLP output (or input)
    branch   = attention(norm1(residual))
    residual = dropout(branch) + residual
    branch   = mlp(norm2(residual))

and after the last block ``norm(dropout(branch) + residual)``. In eval mode this is the usual
``x + attention(LN(x))``, ``x + MLP(LN(x))`` stack. Attention supports grouped-query heads
(``n_heads_kv`` key/value heads shared by ``n_heads / n_heads_kv`` query heads each).
"""

from __future__ import annotations

import torch
from torch import nn

from scprint.kernels import attention


class MHA(nn.Module):
    """Multi-head self-attention with a fused ``Wqkv`` projection (grouped-query when ``n_heads_kv < n_heads``)."""

    def __init__(self, d_model: int, n_heads: int, n_heads_kv: int | None = None) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.n_heads_kv = n_heads if n_heads_kv is None else n_heads_kv
        self.head_dim = d_model // n_heads
        self.Wqkv = nn.Linear(d_model, self.head_dim * (n_heads + 2 * self.n_heads_kv))
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` ``(B, S, d)``; ``bias`` additive ``(B, 1, 1, S)`` (``-inf`` masks a key) or ``None``.

        Returns the output ``(B, S, d)`` and ``(q, k)``, each ``(B, n_heads, S, head_dim)``
        (keys repeated over the query heads that share them).
        """
        batch, seq, _ = x.shape
        qkv = self.Wqkv(x)
        split = self.n_heads * self.head_dim
        q = qkv[..., :split].view(batch, seq, self.n_heads, self.head_dim)
        kv = qkv[..., split:].view(batch, seq, 2, self.n_heads_kv, self.head_dim)
        k, v = kv.unbind(dim=2)
        if self.n_heads_kv != self.n_heads:
            group = self.n_heads // self.n_heads_kv
            k = k.repeat_interleave(group, dim=2)
            v = v.repeat_interleave(group, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = attention(q, k, v, bias=None if bias is None else bias.to(q.dtype))
        y = y.transpose(1, 2).reshape(batch, seq, self.n_heads * self.head_dim)
        return self.out_proj(y), (q, k)


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` with hidden width ``mlp_ratio * d``."""

    def __init__(self, d_model: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(d_model * mlp_ratio)
        self.fc1 = nn.Linear(d_model, hidden)
        self.activation = nn.GELU()
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class Block(nn.Module):
    """One pre-LN block on ``(branch, residual)`` (see the module docstring)."""

    def __init__(
        self, d_model: int, n_heads: int, n_heads_kv: int | None, mlp_ratio: float, dropout: float
    ) -> None:
        super().__init__()
        self.mixer = MHA(d_model, n_heads, n_heads_kv)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.mlp = Mlp(d_model, mlp_ratio)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)

    def forward(
        self, branch: torch.Tensor, residual: torch.Tensor | None, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        dropped = self.dropout1(branch)
        residual = dropped if residual is None else dropped + residual
        branch, qk = self.mixer(self.norm1(residual), bias)
        residual = self.dropout2(branch) + residual
        return self.mlp(self.norm2(residual)), residual, qk


class Transformer(nn.Module):
    """A stack of :class:`Block` and a final LayerNorm."""

    def __init__(
        self,
        d_model: int,
        n_layers: int,
        n_heads: int,
        n_heads_kv: int | None = None,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, n_heads_kv, mlp_ratio, dropout) for _ in range(n_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(
        self, x: torch.Tensor, padding: torch.Tensor | None = None, return_qk: bool = False
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Encode a sequence.

        Args:
            x: ``(B, S, d)`` tokens.
            padding: ``(B, S)`` bool, True at padded positions (never attended to), or ``None``.
            return_qk: also return each layer's ``(q, k)``, each ``(B, n_heads, S, head_dim)``.

        Returns:
            ``(B, S, d)`` and the per-layer ``(q, k)`` list, or ``None``.
        """
        bias = None
        if padding is not None and bool(padding.any()):
            bias = torch.zeros(padding.shape, dtype=x.dtype, device=x.device)
            bias = bias.masked_fill(padding, float("-inf"))[:, None, None, :]
        qks: list[tuple[torch.Tensor, torch.Tensor]] = []
        branch, residual = x, None
        for block in self.blocks:
            branch, residual, qk = block(branch, residual, bias)
            if return_qk:
                qks.append(qk)
        residual = self.dropout(branch) + residual
        return self.norm(residual), (qks if return_qk else None)
