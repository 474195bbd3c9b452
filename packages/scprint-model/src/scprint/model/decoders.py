"""Read-outs: the ZINB expression decoder and the label classifiers.

ZINB decoder. Each output gene token gives three numbers: a composition logit ``l_i``, a log
dispersion and a dropout logit. One extra logit ``l_rest`` read from the base cell token stands for
all the genes of the cell that are *not* in the context. The mean count of gene ``i`` at depth ``D``
is ``D * exp(l_i) / (exp(l_rest) + sum_j exp(l_j))`` (softmax over the context genes plus the
rest), so the means of the context genes sum to at most ``D`` whatever the context size.
"""

from __future__ import annotations

import torch
from torch import nn


class ZinbDecoder(nn.Module):
    """Zero-inflated negative binomial parameters for each context gene."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.genes = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 3))
        self.rest = nn.Linear(d_model, 1)

    def forward(
        self,
        gene_tokens: torch.Tensor,
        base_token: torch.Tensor,
        padding: torch.Tensor,
        depth: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Decode expression.

        Args:
            gene_tokens: ``(batch, genes, d)`` output gene tokens.
            base_token: ``(batch, d)`` output base cell token.
            padding: ``(batch, genes)`` bool, True at padded positions.
            depth: ``(batch,)`` total counts at which the means are expressed.

        Returns:
            ``{"mean", "dispersion", "dropout_logit"}``, each ``(batch, genes)`` float32; ``mean``
            in counts (0 at padding), ``dispersion`` the inverse dispersion ``theta > 0``.
        """
        composition, log_dispersion, dropout_logit = self.genes(gene_tokens).float().unbind(-1)
        composition = composition.masked_fill(padding, float("-inf"))
        rest = self.rest(base_token).float()
        share = torch.softmax(torch.cat([composition, rest], dim=1), dim=1)[:, :-1]
        return {
            "mean": share * depth.to(share.dtype).unsqueeze(1),
            "dispersion": torch.exp(log_dispersion.clamp(-10.0, 10.0)),
            "dropout_logit": dropout_logit,
        }


class Classifier(nn.Module):
    """Logits over the leaf labels of one label class, read from that class's output token."""

    def __init__(self, d_model: int, n_labels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, n_labels)
        )

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        """``token`` ``(batch, d)`` -> ``(batch, n_labels)`` float32 logits."""
        return self.mlp(token).float()
