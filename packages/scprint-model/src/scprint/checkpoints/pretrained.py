"""What :func:`scprint.load` returns: a model with its vocabulary, labels and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.ontology import LabelEncoder
from ..data.organisms import genes_by_organism
from ..data.vocabulary import Vocabulary
from ..model import ModelConfig, ScPrint

__all__ = ["Pretrained"]


@dataclass
class Pretrained:
    """A loaded model and what it needs for inference.

    Attributes:
        model: the network, in eval mode, on its device.
        vocab: the gene vocabulary (inputs must be matched to it).
        labels: label class -> encoder (leaf labels, hierarchy), in class-token order.
        config: the model configuration.
        normalisation: expression normalisation of the model's input (``"sum"``/``"log"``).
        version: scprint version that wrote the checkpoint (``"original 2.x"`` / ``"original 1.x"``
            for the original package's checkpoints).
        path: the checkpoint file.
        sampling: how training contexts were drawn (``max_len``, ``gene_sampling``,
            ``pad_with_unexpressed``, ...); pass the same to :func:`scprint.data.make_inference_batches`.
        organisms: NCBITaxon ids of the organisms whose genes the vocabulary holds.
    """

    model: ScPrint
    vocab: Vocabulary
    labels: dict[str, LabelEncoder]
    config: ModelConfig
    normalisation: str
    version: str
    path: Path
    sampling: dict[str, Any]
    organisms: list[str] = field(default_factory=lambda: ["NCBITaxon:9606"])

    @property
    def is_original(self) -> bool:
        """Whether the checkpoint was written by the original scPRINT package."""
        return self.version.startswith("original")

    def genes_by_organism(self) -> dict[str, list[int]]:
        """Vocabulary indices per organism (from the Ensembl id prefixes)."""
        return genes_by_organism(self.vocab.genes)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device
