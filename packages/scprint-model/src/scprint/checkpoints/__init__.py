"""Checkpoints: ours and the original scPRINT's, behind one loader (:func:`load`).

- :mod:`~scprint.checkpoints.ours`: our format (a Lightning checkpoint with a plain-data
  ``checkpoint["scprint"]`` entry);
- :mod:`~scprint.checkpoints.scprint1`: the original scPRINT's first generation (packages
  ``scprint`` 1.6.x and 2.x, e.g. the published ``medium-v1.5.ckpt``);
- :mod:`~scprint.checkpoints.scprint2`: the second generation, scPRINT-2 (package ``scprint2``
  1.0.x, e.g. the published ``small-v2.ckpt``);
- :mod:`~scprint.checkpoints.reader`: safe reading (``weights_only``), :class:`CheckpointError`,
  device resolution.

Nothing here imports Lightning: inference (``scprint.load`` and every task) runs without it.
"""

from __future__ import annotations

import logging
import os
from typing import BinaryIO

import torch

from . import scprint1, scprint2
from .ours import CHECKPOINT_KEY, FORMAT_VERSION, load_ours
from .pretrained import Pretrained
from .reader import CheckpointError, read_checkpoint, resolve_device, source_path

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "Pretrained",
    "load",
    "load_pretrained",
    "read_checkpoint",
    "resolve_device",
]


def load(path: str | os.PathLike | BinaryIO, device: str | torch.device = "auto") -> Pretrained:
    """Load a scPRINT checkpoint for inference: ours, an original scPRINT-1 one (``scprint``
    1.6.x or 2.x) or a scPRINT-2 one (``scprint2`` 1.0.x).

    Args:
        path: checkpoint file (e.g. the published ``medium-v1.5.ckpt`` or ``small-v2.ckpt``), or a
            binary file object.
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
    path = source_path(path)
    if CHECKPOINT_KEY in checkpoint:
        pretrained = load_ours(checkpoint, path)
    elif scprint2.is_scprint2(checkpoint):
        pretrained = scprint2.load(checkpoint, path)
    elif scprint1.is_original(checkpoint):
        pretrained = scprint1.load(checkpoint, path)
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


#: The former name of :func:`load`.
load_pretrained = load
