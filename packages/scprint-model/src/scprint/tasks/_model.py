"""The model of a task: loading it (path or an already loaded model) and where it runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

import torch

from scprint.checkpoints import Pretrained, resolve_device
from scprint.tasks._errors import InputError

__all__ = ["Checkpoint", "load_model", "model_device", "resolve_device"]

#: What a task takes as its model: a checkpoint path or the object :func:`scprint.load` returns.
Checkpoint: TypeAlias = str | os.PathLike[str] | Pretrained


def load_model(ckpt: Checkpoint, device: str | torch.device = "auto") -> Pretrained:
    """A loaded scPRINT model: ``ckpt`` is a checkpoint path or an already loaded model.

    A path is read by :func:`scprint.load` (ours, and the original scPRINT-1 1.6.x / 2.x and
    scPRINT-2 ones). An already loaded model (the object :func:`scprint.load` returns, with
    ``.model``, ``.vocab`` and ``.labels``) is moved to ``device`` and put in evaluation mode.
    """
    resolved = resolve_device(device)
    if isinstance(ckpt, str | os.PathLike):
        from scprint.checkpoints import load

        path = Path(ckpt)
        if not path.exists():
            raise InputError(f"checkpoint {str(path)!r} does not exist")
        pretrained = load(path, device=str(resolved))
    elif hasattr(ckpt, "model") and hasattr(ckpt, "vocab"):
        pretrained = ckpt
        pretrained.model.to(resolved)
    else:
        raise InputError(
            "ckpt must be a checkpoint path or the object scprint.load returns, "
            f"got {type(ckpt).__name__}"
        )
    pretrained.model.eval()
    return pretrained


def model_device(pretrained: Pretrained) -> torch.device:
    """The device the model's parameters live on."""
    return next(pretrained.model.parameters()).device
