"""A small variational auto-encoder on one cell token: scPRINT-2's compressor of 8 or more dimensions.

A class token ``(B, d)`` goes through ``encoder`` (``Linear(d, 128)``, ``Linear(128, n)``, each
followed by LayerNorm, ReLU and dropout) to ``h`` ``(B, n)``; ``fc_mu`` and ``fc_var`` give the mean
and log-variance (clamped at -10) of an ``n``-dimensional Gaussian; ``decoder`` (``Linear(n,
128)``, LayerNorm, ReLU, dropout, ``Linear(128, d)``) maps a latent back to a token. Module names
are the original's (``VAEDecoder(d, layers=[128, n])``), so its weights load unchanged.

The original draws the latent ``z = mu + eps * exp(log_var / 2)`` on every call, in evaluation as
in training; :meth:`VAECompressor.forward` does the same when ``sample=True`` (same draws from
torch's global generator), and decodes ``z = mu`` otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

#: Hidden width of the compressor's encoder and decoder (fixed in the original).
VAE_HIDDEN = 128


def _mlp(widths: list[int], dropout: float, last_plain: bool) -> nn.Sequential:
    """``Linear, LayerNorm, ReLU, Dropout`` per step; the last step only ``Linear`` if ``last_plain``."""
    layers = nn.Sequential()
    steps = list(zip(widths[:-1], widths[1:]))
    for i, (width_in, width_out) in enumerate(steps):
        layers.append(nn.Linear(width_in, width_out))
        if not (last_plain and i == len(steps) - 1):
            layers.extend([nn.LayerNorm(width_out), nn.ReLU(), nn.Dropout(dropout)])
    return layers


def kl_divergence(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(log_var)) || N(0, 1))`` summed over the latent, averaged over the batch."""
    return (-0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp(), dim=1)).mean()


class VAECompressor(nn.Module):
    """Token ``(B, d)`` <-> latent ``(B, n)`` (see the module docstring)."""

    def __init__(self, d_model: int, latent_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp([d_model, VAE_HIDDEN, latent_dim], dropout, last_plain=False)
        self.fc_mu = nn.Linear(latent_dim, latent_dim)
        self.fc_var = nn.Linear(latent_dim, latent_dim)
        self.decoder = _mlp([latent_dim, VAE_HIDDEN, d_model], dropout, last_plain=True)

    def encode(self, token: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, d)`` -> ``(hidden, mu, log_var)``, each ``(B, n)``."""
        hidden = self.encoder(token)
        return hidden, self.fc_mu(hidden), torch.clamp(self.fc_var(hidden), min=-10)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` latent -> ``(B, d)`` token."""
        return self.decoder(latent)

    def forward(
        self, token: torch.Tensor, sample: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, d)`` -> ``(decoded (B, d), mu, log_var, hidden)``; ``sample``: decode a draw."""
        hidden, mu, log_var = self.encode(token)
        latent = mu
        if sample:
            std = torch.exp(0.5 * log_var)
            latent = mu + torch.randn_like(std) * std
        return self.decode(latent), mu, log_var, hidden
