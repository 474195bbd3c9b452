"""Finite scalar quantisation (Mentzer et al. 2023, arXiv:2309.15505), the class-token bottleneck.

A class token ``(B, d)`` is projected to ``n`` numbers, each bounded and rounded to one of its
``levels`` values (straight-through gradient), and projected back to ``d``. scPRINT uses two
levels per dimension (``n`` bits). The bound uses ``tan`` of the even-level offset, as the
original code does.
"""

from __future__ import annotations

import torch
from torch import nn


def round_ste(z: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient."""
    return z + (z.round() - z).detach()


class FSQ(nn.Module):
    """``project_out(quantise(project_in(z)))`` with ``levels`` values per code dimension."""

    def __init__(self, levels: list[int], dim: int) -> None:
        super().__init__()
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int32), persistent=False)
        self.dim = dim
        self.codebook_dim = len(levels)
        projected = dim != self.codebook_dim
        self.project_in = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()

    def bound(self, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        half_l = (self._levels - 1) * (1 - eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).tan()
        return (z + shift).tanh() * half_l - offset

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Quantised codes in ``[-1, 1]``, same shape as ``z``."""
        return round_ste(self.bound(z)) / (self._levels // 2)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, dim)`` tokens -> ``(B, n)`` codes before rounding (``project_in``; scPRINT-2's
        classifiers and embeddings read these)."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"FSQ expects (..., {self.dim}) tokens, got {tuple(z.shape)}")
        return self.project_in(z)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` codes (rounded here) -> ``(B, dim)`` tokens."""
        return self.project_out(self.quantize(code))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, dim)`` -> quantised ``(B, dim)``."""
        return self.decode(self.encode(z))
