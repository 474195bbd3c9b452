"""scPRINT: a single-cell foundation model over genes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["CheckpointError", "__version__", "fit", "load", "load_pretrained"]


def __getattr__(name: str) -> Any:
    """Import on first use: ``load`` (:mod:`scprint.checkpoints`, no Lightning) and ``fit``
    (:mod:`scprint.training`, Lightning).

    ``scprint.load(path, device="auto")`` loads our checkpoints and the original scPRINT's;
    ``load_pretrained`` is its former name.
    """
    if name in ("load", "load_pretrained", "CheckpointError"):
        from . import checkpoints

        return getattr(checkpoints, name)
    if name == "fit":
        from .training import fit

        return fit
    raise AttributeError(f"module 'scprint' has no attribute {name!r}")
