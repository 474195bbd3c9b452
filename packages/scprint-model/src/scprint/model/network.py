"""The network of a config: :class:`ScPrint` for a :class:`ModelConfig`, :class:`ScPrint2` for a
:class:`ScPrint2Config` (what training and our checkpoints build from a stored config)."""

from __future__ import annotations

import torch

from .config import ModelConfig, ScPrint2Config
from .scprint import ScPrint
from .scprint2 import ScPrint2


def build_network(
    config: ModelConfig | ScPrint2Config,
    n_genes: int,
    label_sizes: dict[str, int] | None = None,
    gene_positions: torch.Tensor | None = None,
) -> ScPrint | ScPrint2:
    """An untrained network of ``config`` (arguments as :class:`ScPrint`'s)."""
    if isinstance(config, ScPrint2Config):
        return ScPrint2(config, n_genes, label_sizes, gene_positions=gene_positions)
    if isinstance(config, ModelConfig):
        return ScPrint(config, n_genes, label_sizes, gene_positions=gene_positions)
    raise TypeError(f"config must be a ModelConfig or ScPrint2Config, got {type(config).__name__}")
