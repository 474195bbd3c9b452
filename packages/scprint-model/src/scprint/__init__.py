"""scPRINT: a single-cell foundation model over genes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "fit", "load_pretrained"]


def __getattr__(name: str) -> Any:
    """Import the training side (Lightning) only when ``fit`` or ``load_pretrained`` is used."""
    if name in ("fit", "load_pretrained"):
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'scprint' has no attribute {name!r}")
