"""Self-contained checkpoints: weights plus everything needed to use them without the training data.

A checkpoint is a Lightning checkpoint (so training resumes from it) with an extra entry
``checkpoint["scprint"]`` holding plain Python values only: format version, package version, model
config, vocabulary (genes, symbols, position bins, organism), label encoders (leaves, coarse
labels, hierarchy, names) and the expression normalisation. :func:`load_pretrained` reads it with
``torch.load(weights_only=True)``, on CPU or GPU, in one call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..data.ontology import LabelEncoder
from ..data.vocabulary import Vocabulary
from ..model import ModelConfig, ScPrint

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "scprint"
#: Version of the layout of ``checkpoint["scprint"]`` and of the weights; bump on incompatible change.
FORMAT_VERSION = 1


@dataclass
class Pretrained:
    """A loaded model and what it needs for inference.

    Attributes:
        model: the network, in eval mode, on its device.
        vocab: the gene vocabulary (inputs must be matched to it).
        labels: label class -> encoder (leaf labels, hierarchy), in class-token order.
        config: the model configuration.
        normalisation: expression normalisation the model was trained with (``"log1p"``/``"fraction"``).
        version: scprint version that wrote the checkpoint.
        path: the checkpoint file.
        sampling: how training contexts were drawn (``max_len``, ``gene_sampling``,
            ``pad_with_unexpressed``, ...); pass the same to :func:`scprint.data.make_inference_batches`.
    """

    model: ScPrint
    vocab: Vocabulary
    labels: dict[str, LabelEncoder]
    config: ModelConfig
    normalisation: str
    version: str
    path: Path
    sampling: dict[str, Any]

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device


def checkpoint_metadata(
    config: ModelConfig,
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
        raise ValueError(
            f"{str(path)!r} is not an scPRINT checkpoint (no {CHECKPOINT_KEY!r} entry; keys: {sorted(checkpoint)[:8]})"
        )
    found = meta.get("format")
    if found != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {found!r} (written by scprint "
            f"{meta.get('version', '?')}), but scprint {__version__} reads format version {FORMAT_VERSION}"
        )
    return meta


def build_model(
    meta: dict[str, Any],
) -> tuple[ScPrint, ModelConfig, Vocabulary, dict[str, LabelEncoder]]:
    """An untrained :class:`ScPrint` shaped like the checkpoint, with its vocabulary and labels."""
    config = ModelConfig.from_dict(meta["config"])
    vocab = Vocabulary.from_dict(meta["vocab"])
    labels = {name: LabelEncoder.from_dict(values) for name, values in meta["labels"].items()}
    positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
    model = ScPrint(
        config, len(vocab), {n: len(e.classes) for n, e in labels.items()}, gene_positions=positions
    )
    return model, config, vocab, labels


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA GPU when there is one, else the CPU; otherwise ``torch.device(device)``.

    Raises ``ValueError`` when a CUDA device is asked for on a machine without one.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except RuntimeError as err:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
            ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(resolved)!r} was asked for but no CUDA GPU is available")
    return resolved


def load_pretrained(path: str | Path, device: str | torch.device = "auto") -> Pretrained:
    """Load a checkpoint written by :func:`scprint.training.fit` for inference.

    Args:
        path: checkpoint file.
        device: ``"auto"`` (GPU when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an scPRINT checkpoint, or an incompatible format version (both named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    meta = read_metadata(checkpoint, path)
    model, config, vocab, labels = build_model(meta)
    prefix = "model."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    model.load_state_dict(state)
    model.to(resolve_device(device)).eval()
    log.info(
        "loaded %s (scprint %s, %d genes, labels %s)",
        path,
        meta["version"],
        len(vocab),
        list(labels),
    )
    return Pretrained(
        model=model,
        vocab=vocab,
        labels=labels,
        config=config,
        normalisation=meta["normalisation"],
        version=str(meta["version"]),
        path=path,
        sampling=dict(meta.get("sampling", {})),
    )
