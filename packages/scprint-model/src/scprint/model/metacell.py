"""scPRINT-2's ``metacell`` expression encoder: a gene's expression in the cell and its neighbours.

For each context gene of a cell, the encoder reads the cell's own (normalised) expression and
that of the same gene in ``K`` nearest-neighbour cells, each with the neighbour's distance, and
returns one ``(d,)`` expression token (a DeepSets aggregation, the original's ``EasyExprGNN``)::

    self      = MLP_self(x)                                   (d,)   x: the cell's expression
    neighbour = sum_k MLP_neighbour([x_k, distance_k])        (d,)   over the K neighbours
    token     = MLP_shared([self, neighbour])                 (d,)

``MLP_self`` and ``MLP_neighbour`` are ``Linear, (LayerNorm, ReLU, Dropout, Linear) x (n-1)`` with
two layers; ``MLP_shared`` is ``(Linear, LayerNorm, ReLU, Dropout) x (layers-1), Linear`` from
``2d`` to ``d``. Without neighbours the neighbour half is zeros (the original's behaviour). Pure
torch (the original's module imports torch-geometric but uses none of it). Names are the
original's, so its weights load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


def _branch(width_in: int, width: int, layers: int, dropout: float) -> nn.ModuleList:
    modules = nn.ModuleList([nn.Linear(width_in, width)])
    for _ in range(layers - 1):
        modules.extend(
            [nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width)]
        )
    return modules


class NeighbourExpressionEncoder(nn.Module):
    """Expression tokens from a cell's and its neighbours' expression (module docstring).

    Args:
        d_model: width of the output token ``d`` (each half of the shared input is ``d``).
        shared_layers: layers of ``MLP_shared`` (the original's ``expr_encoder_layers``).
        dropout: dropout probability.
    """

    #: layers of the self and neighbour branches (fixed in the original)
    BRANCH_LAYERS = 2

    def __init__(self, d_model: int, shared_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.neighbors_layers = _branch(2, d_model, self.BRANCH_LAYERS, dropout)
        self.self_layers = _branch(1, d_model, self.BRANCH_LAYERS, dropout)
        self.shared_layers = nn.ModuleList()
        for _ in range(shared_layers - 1):
            self.shared_layers.extend(
                [
                    nn.Linear(2 * d_model, 2 * d_model),
                    nn.LayerNorm(2 * d_model),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                ]
            )
        self.shared_layers.append(nn.Linear(2 * d_model, d_model))

    def forward(
        self,
        expression: torch.Tensor,
        neighbours: torch.Tensor | None = None,
        distances: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Expression tokens ``(B, L, d)``.

        Args:
            expression: ``(B, L)`` normalised expression of the cell's context genes.
            neighbours: ``(B, K, L)`` normalised expression of the same genes in ``K`` neighbour
                cells, or ``None``.
            distances: ``(B, K)`` distance of each neighbour (with ``neighbours``).
            mask: ``(B, L)`` bool, True where the expression is hidden (zero output).
        """
        x = expression.unsqueeze(-1)
        for layer in self.self_layers:
            x = layer(x)
        if neighbours is None:
            pooled = x.new_zeros(*expression.shape, self.d_model)
        else:
            if distances is None:
                raise ValueError("neighbour expression needs the neighbours' distances (B, K)")
            edge = distances[:, None, :].expand(-1, expression.shape[1], -1)
            h = torch.stack([neighbours.transpose(1, 2), edge.to(neighbours.dtype)], dim=-1)
            for layer in self.neighbors_layers:
                h = layer(h)
            pooled = h.sum(-2)
        x = torch.cat([x, pooled], dim=-1)
        for layer in self.shared_layers:
            x = layer(x)
        if mask is not None:
            x = x.masked_fill(mask.unsqueeze(-1), 0.0)
        return x
