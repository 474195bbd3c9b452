"""scPRINT: a single-cell foundation model over genes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["CheckpointError", "__version__", "fit", "load", "load_pretrained"]


def __getattr__(name: str) -> Any:
    """Import the training side (Lightning) only when ``fit``, ``load`` or its errors are used.

    ``scprint.load(path, device="auto")`` loads our checkpoints and the original scPRINT's
    (1.6.x and 2.x); ``load_pretrained`` is its former name.
    """
    if name in ("fit", "load", "load_pretrained", "CheckpointError"):
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'scprint' has no attribute {name!r}")
