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

Cross-attention to a *context* sequence (keys and values from it, not normalised) comes in the
two layouts of the original releases; without a context it is skipped, as the originals do:

* scPRINT-1 (``cross_attention=True``, simpler-flash 1.0): each layer is a pair of blocks, a
  cross-attention block then a self-attention block;
* scPRINT-2 (``context_dim=...``, simpler-flash 1.3): each block has a cross-attention sub-layer
  between its first LayerNorm and its self-attention, with its own residual add and LayerNorm
  (``norm3``); the context may be narrower or wider than the sequence (``context_dim``)::

      residual = dropout(branch) + residual
      x        = norm1(residual)
      residual = dropout(cross_attention(x, context)) + residual
      branch   = attention(norm3(residual))        # then the MLP as above
"""

from __future__ import annotations

import torch
from torch import nn

from scprint.kernels import attention


class MHA(nn.Module):
    """Multi-head attention: self-attention with a fused ``Wqkv`` projection, or cross-attention
    (``Wq`` on the sequence, ``Wkv`` on a context of width ``context_dim``, default ``d_model``);
    grouped-query when ``n_heads_kv < n_heads``."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_heads_kv: int | None = None,
        cross: bool = False,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.n_heads_kv = n_heads if n_heads_kv is None else n_heads_kv
        self.head_dim = d_model // n_heads
        self.cross = cross
        if cross:
            self.Wq = nn.Linear(d_model, d_model)
            self.Wkv = nn.Linear(context_dim or d_model, 2 * self.head_dim * self.n_heads_kv)
        else:
            self.Wqkv = nn.Linear(d_model, self.head_dim * (n_heads + 2 * self.n_heads_kv))
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        context: torch.Tensor | None = None,
        queries: int | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` ``(B, S, d)``; ``bias`` additive ``(B, 1, 1, S_keys)`` (``-inf`` masks a key) or
        ``None``; ``context`` ``(B, S_keys, d)`` the keys' and values' source for cross-attention;
        ``queries``: attend from the first ``queries`` positions of ``x`` only (keys and values
        still from all of them; self-attention), ``S' = queries``, else ``S' = S``.

        Returns the output ``(B, S', d)`` and ``(q, k)``, ``q`` ``(B, n_heads, S', head_dim)``,
        ``k`` ``(B, n_heads, S_keys, head_dim)`` (keys repeated over the query heads that share
        them).
        """
        batch, seq, _ = x.shape
        if self.cross:
            if context is None:
                raise ValueError("a cross-attention block needs a context sequence")
            if queries is not None:
                raise ValueError("queries= is for self-attention (slice x for cross-attention)")
            q = self.Wq(x).view(batch, seq, self.n_heads, self.head_dim)
            kv = self.Wkv(context).view(batch, context.shape[1], 2, self.n_heads_kv, self.head_dim)
        else:
            qkv = self.Wqkv(x)
            split = self.n_heads * self.head_dim
            kv = qkv[..., split:].view(batch, seq, 2, self.n_heads_kv, self.head_dim)
            if queries is not None:
                qkv, seq = qkv[:, :queries], queries
            q = qkv[..., :split].view(batch, seq, self.n_heads, self.head_dim)
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
    """One pre-LN block on ``(branch, residual)`` (see the module docstring).

    ``cross=True``: the mixer is a cross-attention (scPRINT-1 layout); ``context_dim``: the block
    also has a cross-attention sub-layer ``cross_attn`` reading a context of that width
    (scPRINT-2 layout).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_heads_kv: int | None,
        mlp_ratio: float,
        dropout: float,
        cross: bool = False,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.mixer = MHA(d_model, n_heads, n_heads_kv, cross)
        self.cross_attn = None
        if context_dim is not None:
            self.cross_attn = MHA(d_model, n_heads, n_heads_kv, cross=True, context_dim=context_dim)
            self.dropout3 = nn.Dropout(dropout)
            self.norm3 = nn.LayerNorm(d_model, eps=1e-6)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.mlp = Mlp(d_model, mlp_ratio)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)

    def forward(
        self,
        branch: torch.Tensor,
        residual: torch.Tensor | None,
        bias: torch.Tensor | None,
        context: torch.Tensor | None = None,
        context_bias: torch.Tensor | None = None,
        queries: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One block on ``(B, S, d)`` streams. ``queries``: only the first ``queries`` positions
        come out, ``(B, queries, d)`` (a self-attention block: they attend to all ``S``; the
        out-projection and MLP run on them alone), what a last block feeding only some read-outs
        needs."""
        dropped = self.dropout1(branch)
        residual = dropped if residual is None else dropped + residual
        x = self.norm1(residual)
        if self.cross_attn is not None and context is not None:
            attended, _ = self.cross_attn(x, context_bias, context)
            residual = self.dropout3(attended) + residual
            x = self.norm3(residual)
        branch, qk = self.mixer(x, bias, context if self.mixer.cross else None, queries)
        if queries is not None:
            residual = residual[:, :queries]
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
        cross_attention: bool = False,
        context_dim: int | None = None,
    ) -> None:
        super().__init__()
        if cross_attention and context_dim is not None:
            raise ValueError("choose one cross-attention layout: cross_attention or context_dim")
        self.cross_attention = cross_attention or context_dim is not None
        kinds = [True, False] if cross_attention else [False]
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, n_heads_kv, mlp_ratio, dropout, cross, context_dim)
            for _ in range(n_layers)
            for cross in kinds
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(
        self,
        x: torch.Tensor,
        padding: torch.Tensor | None = None,
        return_qk: bool = False,
        context: torch.Tensor | None = None,
        context_padding: torch.Tensor | None = None,
        outputs: int | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        """Encode a sequence.

        Args:
            x: ``(B, S, d)`` tokens.
            padding: ``(B, S)`` bool, True at padded positions (never attended to), or ``None``.
            return_qk: also return each self-attention layer's ``(q, k)``, each
                ``(B, n_heads, S, head_dim)``.
            context: ``(B, S_c, d_c)`` keys/values of the cross-attention (only for a transformer
                built with ``cross_attention`` or ``context_dim``; without it cross-attention is
                skipped).
            context_padding: ``(B, S_c)`` bool padding of ``context``.
            outputs: return only the first ``outputs`` positions, ``(B, outputs, d)``, equal to
                those of the full output: the last block (a self-attention block) computes
                queries, out-projection, MLP and the final norm for them alone (keys and values
                still from every position), e.g. when only the cell tokens are read out.

        Returns:
            ``(B, S, d)`` (``(B, outputs, d)``) and the per-layer ``(q, k)`` list, or ``None``.
        """
        if context is not None and not self.cross_attention:
            raise ValueError("context is only for a transformer with cross-attention blocks")
        if outputs is not None:
            if return_qk:
                raise ValueError("return_qk needs every position's queries; drop outputs=")
            if self.blocks[-1].mixer.cross or not 0 < outputs <= x.shape[1]:
                raise ValueError(
                    f"outputs must be in 1..{x.shape[1]} (the sequence length) and the last "
                    f"block a self-attention block, got {outputs}"
                )
        bias = _padding_bias(padding, x.dtype)
        context_bias = _padding_bias(context_padding, x.dtype)
        qks: list[tuple[torch.Tensor, torch.Tensor]] = []
        branch, residual = x, None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if block.mixer.cross:
                if context is None:
                    continue
                branch, residual, _ = block(branch, residual, context_bias, context)
                continue
            queries = outputs if i == last else None
            branch, residual, qk = block(branch, residual, bias, context, context_bias, queries)
            if return_qk:
                qks.append(qk)
        residual = self.dropout(branch) + residual
        return self.norm(residual), (qks if return_qk else None)


def _padding_bias(padding: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``(B, 1, 1, S)`` additive bias, ``-inf`` at padded keys; ``None`` without padding."""
    if padding is None or not bool(padding.any()):
        return None
    bias = torch.zeros(padding.shape, dtype=dtype, device=padding.device)
    return bias.masked_fill(padding, float("-inf"))[:, None, None, :]
