"""Our checkpoint format.

Our checkpoint is a Lightning checkpoint (so training resumes from it) with an extra entry
``checkpoint["scprint"]`` holding plain Python values only: format version, package version, model
config, vocabulary (genes, symbols, position bins, organism), label encoders (leaves, coarse
labels, hierarchy, names) and the expression normalisation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..data.ontology import LabelEncoder
from ..data.organisms import genes_by_organism
from ..data.vocabulary import Vocabulary
from ..model import ModelConfig, ScPrint, ScPrint2, ScPrint2Config, build_network, config_from_dict
from .pretrained import Pretrained
from .reader import CheckpointError, load_state_strict

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "scprint"
#: Version of the layout of ``checkpoint["scprint"]`` and of the weights; bump on incompatible change
#: (2: the network became the original scPRINT architecture).
FORMAT_VERSION = 2


def checkpoint_metadata(
    config: ModelConfig | ScPrint2Config,
    vocab: Vocabulary,
    labels: dict[str, LabelEncoder],
    sampling: dict[str, Any],
) -> dict[str, Any]:
    """The ``checkpoint["scprint"]`` entry (plain types only)."""
    return {
        "format": FORMAT_VERSION,
        "version": __version__,
        "config": config.to_dict(),
        "vocab": vocab.to_dict(),
        "labels": {name: encoder.to_dict() for name, encoder in labels.items()},
        "normalisation": config.normalisation,
        "sampling": dict(sampling),
    }


def read_metadata(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The validated ``checkpoint["scprint"]`` entry of a loaded checkpoint."""
    meta = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{str(path)!r} is not an scPRINT checkpoint (no {CHECKPOINT_KEY!r} entry; keys: {sorted(checkpoint)[:8]})"
        )
    found = meta.get("format")
    if found != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {found!r} (written by scprint "
            f"{meta.get('version', '?')}), but scprint {__version__} reads format version {FORMAT_VERSION}"
        )
    return meta


def build_model(
    meta: dict[str, Any],
) -> tuple[ScPrint | ScPrint2, ModelConfig | ScPrint2Config, Vocabulary, dict[str, LabelEncoder]]:
    """An untrained network shaped like the checkpoint (:class:`ScPrint`, or :class:`ScPrint2`
    for a fine-tuned scPRINT-2), with its vocabulary and labels."""
    config = config_from_dict(meta["config"])
    vocab = Vocabulary.from_dict(meta["vocab"])
    labels = {name: LabelEncoder.from_dict(values) for name, values in meta["labels"].items()}
    positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
    model = build_network(
        config, len(vocab), {n: len(e.classes) for n, e in labels.items()}, gene_positions=positions
    )
    return model, config, vocab, labels


def load_ours(checkpoint: dict[str, Any], path: Path) -> Pretrained:
    meta = read_metadata(checkpoint, path)
    model, config, vocab, labels = build_model(meta)
    prefix = "model."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    load_state_strict(model, state, path)
    return Pretrained(
        model=model,
        vocab=vocab,
        labels=labels,
        config=config,
        normalisation=meta["normalisation"],
        version=str(meta["version"]),
        path=path,
        sampling=dict(meta.get("sampling", {})),
        organisms=_organisms(vocab),
    )


def _organisms(vocab: Vocabulary) -> list[str]:
    """The vocabulary's organisms (from its Ensembl prefixes, in vocabulary order), else its own."""
    found = [o for o in genes_by_organism(vocab.genes) if o != "unknown"]
    return found if found and vocab.organism in found else [vocab.organism]
