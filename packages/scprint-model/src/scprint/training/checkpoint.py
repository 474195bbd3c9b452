"""Checkpoints: ours, and the original scPRINT's, behind one loader (:func:`load`).

Our checkpoint is a Lightning checkpoint (so training resumes from it) with an extra entry
``checkpoint["scprint"]`` holding plain Python values only: format version, package version, model
config, vocabulary (genes, symbols, position bins, organism), label encoders (leaves, coarse
labels, hierarchy, names) and the expression normalisation.

An original scPRINT checkpoint (releases 1.6.x and 2.x, e.g. the published ``medium-v1.5.ckpt``)
is read through :mod:`scprint.training.original`.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, plus
Lightning's ``AttributeDict`` and numpy scalars/arrays that original hyper-parameters may hold.
Anything else pickled in a file is refused, never executed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .. import __version__
from ..data.ontology import LabelEncoder
from ..data.vocabulary import Vocabulary
from ..model import ModelConfig, ScPrint
from . import original
from .original import CheckpointError

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "scprint"
#: Version of the layout of ``checkpoint["scprint"]`` and of the weights; bump on incompatible change
#: (2: the network became the original scPRINT architecture).
FORMAT_VERSION = 2


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
        return original.genes_by_organism(self.vocab.genes)

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


def _safe_globals() -> list[Any]:
    """Types original hyper-parameters may pickle that are plain data (no code runs on load)."""
    allowed: list[Any] = []
    with contextlib.suppress(ImportError):
        from lightning.fabric.utilities.data import AttributeDict

        allowed.append(AttributeDict)
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed += [np.dtype, np.ndarray, multiarray._reconstruct, multiarray.scalar]
    allowed += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")]
    return allowed


def _source_path(source: str | os.PathLike | BinaryIO) -> Path:
    """The path of a checkpoint source (a file object's ``name``, else ``<file object>``)."""
    if isinstance(source, str | os.PathLike):
        return Path(source)
    return Path(str(getattr(source, "name", "<file object>")))


def read_checkpoint(source: str | os.PathLike | BinaryIO) -> dict[str, Any]:
    """The checkpoint dictionary of a file (path or binary file object), read without unsafe
    unpickling.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a directory, an empty, truncated or non-torch file, or a file holding
            pickled objects outside the allowed data types (one line naming the file).
    """
    path = _source_path(source)
    if isinstance(source, str | os.PathLike):
        if path.is_dir():
            raise CheckpointError(f"checkpoint {str(path)!r} is a directory, expected a .ckpt file")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        if path.stat().st_size == 0:
            raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes)")
        source = path
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if unsupported:
            raise CheckpointError(
                f"checkpoint {str(path)!r} pickles a Python object of type {unsupported.group(1)}, "
                "which is not plain data; refusing to unpickle it"
            ) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable torch checkpoint (truncated or corrupted?)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable torch checkpoint (truncated or corrupted?): {reason}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, expected a checkpoint dictionary"
        )
    return checkpoint


def _load_state(model: ScPrint, state: dict[str, torch.Tensor], path: Path) -> None:
    """Strict load; a missing, unexpected or mis-shaped tensor raises naming it."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} lacks tensor {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if unexpected:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has tensor {unexpected[0]!r}, which this model layout does not have"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint {str(path)!r}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=True)


def _load_original(checkpoint: dict[str, Any], path: Path) -> Pretrained:
    hparams = checkpoint["hyper_parameters"]
    release = original.release_of(checkpoint)
    config = original.config_from_hparams(hparams, release, str(path))
    vocab, organisms = original.vocabulary(hparams, str(path))
    labels = original.label_encoders(hparams, str(path))
    positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
    model = ScPrint(
        config,
        len(vocab),
        {name: len(encoder.classes) for name, encoder in labels.items()},
        gene_positions=positions,
    )
    _load_state(model, original.model_state(checkpoint, release, str(path)), path)
    return Pretrained(
        model=model,
        vocab=vocab,
        labels=labels,
        config=config,
        normalisation=config.normalisation,
        version=f"original {release}",
        path=path,
        sampling={
            "max_len": config.max_len,
            "gene_sampling": "random",
            "pad_with_unexpressed": True,
        },
        organisms=organisms,
    )


def _load_ours(checkpoint: dict[str, Any], path: Path) -> Pretrained:
    meta = read_metadata(checkpoint, path)
    model, config, vocab, labels = build_model(meta)
    prefix = "model."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    _load_state(model, state, path)
    return Pretrained(
        model=model,
        vocab=vocab,
        labels=labels,
        config=config,
        normalisation=meta["normalisation"],
        version=str(meta["version"]),
        path=path,
        sampling=dict(meta.get("sampling", {})),
        organisms=[vocab.organism],
    )


def load(path: str | os.PathLike | BinaryIO, device: str | torch.device = "auto") -> Pretrained:
    """Load a scPRINT checkpoint for inference: ours, or an original scPRINT one (1.6.x or 2.x).

    Args:
        path: checkpoint file (e.g. the published ``medium-v1.5.ckpt``), or a binary file object.
        device: ``"auto"`` (GPU when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns:
        :class:`Pretrained`: the model in eval mode on ``device``, its vocabulary, label
        encoders, config and sampling settings.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable file, unknown layout, unsupported hyper-parameter, or a
            missing / unexpected / mis-shaped tensor (each named).
    """
    resolved = resolve_device(device)
    checkpoint = read_checkpoint(path)
    path = _source_path(path)
    if CHECKPOINT_KEY in checkpoint:
        pretrained = _load_ours(checkpoint, path)
    elif original.is_original(checkpoint):
        pretrained = _load_original(checkpoint, path)
    else:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has an unknown layout: neither a {CHECKPOINT_KEY!r} entry (ours) "
            f"nor original scPRINT hyper-parameters; top-level keys {sorted(map(str, checkpoint))[:8]}"
        )
    pretrained.model.to(resolved).eval()
    log.info(
        "loaded %s (%s, %d genes, labels %s)",
        path,
        pretrained.version,
        len(pretrained.vocab),
        list(pretrained.labels),
    )
    return pretrained


def fine_tuned_network(
    path: str, config: ModelConfig, vocab: Vocabulary, labels: dict[str, LabelEncoder]
) -> ScPrint:
    """The network of checkpoint ``path`` with ``labels``' classes and labels added.

    ``labels`` starts with the checkpoint's classes, each keeping its leaves first (the data
    module extends them so). Tensors that grew (classifier outputs, class tokens) keep their
    trained rows; heads of new classes start from the usual initialisation.
    """
    pretrained = load(path, device="cpu")
    if pretrained.vocab.genes != vocab.genes:
        raise ValueError(
            f"init_from {path!r}: the data module's vocabulary is not the checkpoint's; "
            "give the same checkpoint as data.init_from (scprint fit links model.init_from to it)"
        )
    old = pretrained.labels
    if list(labels)[: len(old)] != list(old) or any(
        labels[n].classes[: len(e.classes)] != e.classes for n, e in old.items()
    ):
        raise ValueError(
            f"init_from {path!r}: label classes must start with the checkpoint's {list(old)}, "
            "each keeping its labels first"
        )
    settings = ("dropout", "max_len", "freeze_gene_embeddings")
    network = pretrained.config.replace(**{name: getattr(config, name) for name in settings})
    bits = network.compress_class_dim
    if bits is not None:
        new_bits = {n: max(bits.values()) for n in labels if n not in bits}
        network = network.replace(compress_class_dim={**bits, **new_bits})
    positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
    sizes = {name: len(encoder.classes) for name, encoder in labels.items()}
    model = ScPrint(network, len(vocab), sizes, gene_positions=positions)
    state, trained = model.state_dict(), pretrained.model.state_dict()
    fresh = sorted(set(state) - set(trained))
    for key, tensor in trained.items():
        target = state[key]
        if tensor.shape == target.shape:
            state[key] = tensor
        elif tensor.dim() and tensor.shape[1:] == target.shape[1:] and len(tensor) < len(target):
            target[: len(tensor)] = tensor
        else:
            raise ValueError(f"init_from {path!r}: tensor {key!r} does not fit the network")
    model.load_state_dict(state)
    model.gene_encoder.embeddings.weight.requires_grad_(not network.freeze_gene_embeddings)
    log.info(
        "fine-tuning %s: labels %s, %d new tensors (e.g. %s)",
        path,
        {n: len(e.classes) for n, e in labels.items()},
        len(fresh),
        fresh[:3],
    )
    return model


#: The former name of :func:`load`.
load_pretrained = load
