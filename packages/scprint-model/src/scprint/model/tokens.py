"""Input tokens: gene identity, expression, genomic position, and the cell tokens.

A context gene's token is ``identity + expression + position``; each cell also gets ``1 +
n_classes`` learned cell tokens (a base token and one per label class) and, unless the depth is
read by the decoder, a depth token. Module and attribute names are the original scPRINT's, so
its checkpoints load weight for weight.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def reduce_gene_table(table: torch.Tensor, d_model: int) -> torch.Tensor:
    """Reduce a precomputed ``(n_genes, dim)`` gene table (e.g. protein-language-model vectors) to
    ``(n_genes, d_model)`` by adaptive average pooling along the features, as the original does."""
    if table.dim() != 2:
        raise ValueError(f"a gene table must be (n_genes, dim), got shape {tuple(table.shape)}")
    return nn.AdaptiveAvgPool1d(d_model)(table.float())


def normalise_counts(counts: torch.Tensor, normalisation: str) -> torch.Tensor:
    """Expression input ``(B, L)`` from raw counts ``(B, L)`` (padding holds zeros).

    ``"sum"``: counts over the total counts of the context; ``"log"``: ``log2(1 + counts)``.
    """
    if normalisation == "sum":
        total = counts.sum(1, keepdim=True)
        return counts / torch.where(total > 0, total, torch.ones_like(total))
    if normalisation == "log":
        return torch.log2(1 + counts)
    raise ValueError(f"unknown normalisation {normalisation!r}; expected 'sum' or 'log'")


class GeneEncoder(nn.Module):
    """Gene identity: one learned (or precomputed, then frozen) vector per vocabulary gene."""

    def __init__(
        self, n_genes: int, d_model: int, weights: torch.Tensor | None = None, freeze: bool = False
    ) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(n_genes, d_model, _freeze=freeze and weights is not None)
        if weights is not None:
            if tuple(weights.shape) != (n_genes, d_model):
                raise ValueError(
                    f"gene table must be (n_genes, d_model) = ({n_genes}, {d_model}), got {tuple(weights.shape)}"
                )
            with torch.no_grad():
                self.embeddings.weight.copy_(weights)

    def forward(self, gene_ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` vocabulary indices -> ``(B, L, d)``."""
        return self.embeddings(gene_ids)


class PositionalEncoding(nn.Module):
    """Sinusoidal encoding of each gene's genomic position bin, tabulated per vocabulary gene.

    Row ``g`` of the buffer ``pe`` ``(n_genes, 1, d)`` is the sinusoid of position ``p - 1`` for
    the gene's bin ``p`` (the original's indexing: bin 0 takes the last row of a table of
    ``max(bins)`` positions); genes of unknown position (``p < 0``) get zeros.
    """

    def __init__(self, d_model: int, positions: torch.Tensor, maxval: float = 10000.0) -> None:
        super().__init__()
        positions = positions.long()
        max_len = max(int(positions.max()), 1)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(maxval) / d_model))
        table = torch.zeros(max_len, 1, d_model)
        table[:, 0, 0::2] = torch.sin(position * div_term)
        table[:, 0, 1::2] = torch.cos(position * div_term)
        pe = table[positions.clamp_min(0) - 1]
        pe[positions < 0] = 0.0
        self.register_buffer("pe", pe)

    @classmethod
    def from_table(cls, table: torch.Tensor) -> PositionalEncoding:
        """An encoding whose per-gene table ``pe`` ``(n_genes, 1, d)`` is given as it is (the
        scPRINT-2 checkpoints store it; their gene positions are not in the checkpoint)."""
        if table.dim() != 3 or table.shape[1] != 1:
            raise ValueError(f"a position table must be (n_genes, 1, d), got {tuple(table.shape)}")
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.register_buffer("pe", table.float().clone())
        return module

    def forward(self, gene_ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` vocabulary indices -> ``(B, L, d)``."""
        return self.pe[:, 0][gene_ids]


class ContinuousValueEncoder(nn.Module):
    """A scalar (normalised expression, or log depth) -> ``d`` by an MLP.

    ``Linear(1, d)`` then ``layers - 1`` times ``LayerNorm, ReLU, Dropout, Linear(d, d)``; inputs
    are clamped to ``[0, max_value]``; masked positions give zeros.
    """

    def __init__(
        self, d_model: int, dropout: float = 0.1, max_value: int = 100_000, layers: int = 1
    ) -> None:
        super().__init__()
        self.max_value = max_value
        self.encoder = nn.ModuleList([nn.Linear(1, d_model)])
        for _ in range(layers - 1):
            self.encoder.extend(
                [nn.LayerNorm(d_model), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_model, d_model)]
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(...)`` -> ``(..., d)``; ``mask`` ``(...)`` bool, True = hidden (zero output)."""
        x = torch.clamp(x.unsqueeze(-1), min=0, max=self.max_value)
        for layer in self.encoder:
            x = layer(x)
        if mask is not None:
            x = x.masked_fill(mask.unsqueeze(-1), 0.0)
        return x


class CategoryValueEncoder(nn.Module):
    """Learned tokens indexed by category (the base and label-class cell tokens)."""

    def __init__(self, n_categories: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_categories, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x.long())
