"""Input tokens: what each gene of a cell, and the cell itself, becomes before the transformer.

A gene token is the sum of three vectors (all ``(batch, genes, d_model)``):

- **identity**: a learned embedding of the gene's vocabulary index (optionally initialised from a
  table such as protein-language-model vectors, frozen or trainable);
- **expression**: an MLP on the normalised count (``log1p(counts)`` or the fraction of the counts
  of the genes in the context);
- **genomic position**: a sinusoidal encoding of the gene's position bin (genes close on the same
  chromosome share a bin); genes of unknown position get zeros.

The cell tokens prepended to the genes are a learned *base* token, a *depth* token (MLP on
``log2(1 + total counts)``) and one learned token per label class (e.g. ``cell_type``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def normalise_counts(counts: torch.Tensor, padding: torch.Tensor, method: str) -> torch.Tensor:
    """Expression input of the encoder.

    Args:
        counts: ``(batch, genes)`` raw counts (padded positions are ignored).
        padding: ``(batch, genes)`` bool, True at padded positions.
        method: ``"log1p"`` -> ``log(1 + counts)``; ``"fraction"`` -> counts divided by the total
            counts of the non-padded genes of the cell (0 for a cell with no counts).

    Returns:
        ``(batch, genes)`` float, zero at padded positions.
    """
    counts = counts.masked_fill(padding, 0.0)
    if method == "log1p":
        return torch.log1p(counts)
    if method == "fraction":
        return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)
    raise ValueError(f"normalisation must be 'log1p' or 'fraction', got {method!r}")


class GeneIdentity(nn.Module):
    """Gene-identity embedding ``(n_genes, dim)``, projected to ``d_model`` when ``dim != d_model``."""

    def __init__(
        self,
        n_genes: int,
        d_model: int,
        dim: int | None = None,
        init: torch.Tensor | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        dim = dim or (init.shape[1] if init is not None else d_model)
        self.table = nn.Embedding(n_genes, dim)
        nn.init.normal_(self.table.weight, std=1.0)
        if init is not None:
            if init.shape != (n_genes, dim):
                raise ValueError(
                    f"gene embedding initialisation must have shape (n_genes, dim) = {(n_genes, dim)}, "
                    f"got {tuple(init.shape)}"
                )
            with torch.no_grad():
                self.table.weight.copy_(init)
        self.table.weight.requires_grad_(not freeze)
        self.project = nn.Identity() if dim == d_model else nn.Linear(dim, d_model, bias=False)

    def forward(self, gene_index: torch.Tensor) -> torch.Tensor:
        """``gene_index`` ``(batch, genes)`` long, valid indices -> ``(batch, genes, d_model)``."""
        return self.project(self.table(gene_index))


class ExpressionEncoder(nn.Module):
    """MLP from one normalised expression value to a ``d_model`` vector (LayerNorm-ed, unit scale)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(1, d_model), nn.GELU(), nn.Linear(d_model, d_model), nn.LayerNorm(d_model)
        )

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` ``(batch, genes)`` -> ``(batch, genes, d_model)``."""
        return self.mlp(values.unsqueeze(-1))


def sinusoidal_encoding(position: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoidal encoding of integer positions (Vaswani et al. 2017); negative positions -> zeros.

    Args:
        position: ``(...)`` long position bins, ``-1`` for unknown.
        d_model: encoding width (even or odd).

    Returns:
        ``(..., d_model)`` float32.
    """
    half = (d_model + 1) // 2
    frequency = torch.exp(
        torch.arange(half, device=position.device, dtype=torch.float32)
        * (-math.log(10000.0) / half)
    )
    angle = position.clamp_min(0).to(torch.float32).unsqueeze(-1) * frequency
    encoding = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)[..., :d_model]
    return encoding * (position >= 0).unsqueeze(-1).to(encoding.dtype)


class CellTokens(nn.Module):
    """The prepended cell tokens: base, depth, then one per label class.

    Output ``(batch, 2 + n_classes, d_model)``.
    """

    def __init__(self, d_model: int, n_classes: int) -> None:
        super().__init__()
        self.base = nn.Parameter(torch.randn(1, 1, d_model))
        self.classes = nn.Parameter(torch.randn(1, n_classes, d_model))
        self.depth = nn.Sequential(
            nn.Linear(1, d_model), nn.GELU(), nn.Linear(d_model, d_model), nn.LayerNorm(d_model)
        )

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        """``depth`` ``(batch,)`` total counts of each cell -> ``(batch, 2 + n_classes, d_model)``."""
        batch = depth.shape[0]
        depth_token = self.depth(torch.log2(1.0 + depth.to(torch.float32)).unsqueeze(-1)).unsqueeze(
            1
        )
        return torch.cat(
            [self.base.expand(batch, -1, -1), depth_token, self.classes.expand(batch, -1, -1)],
            dim=1,
        )
