"""The error every task raises for bad input: :class:`InputError`."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input to a task (an option, the AnnData, a gene list, a checkpoint path ...).

    One line saying what was wrong and what was expected. A ``ValueError`` (code catching those
    keeps working); the ``scprint`` command reports it as a usage mistake (exit status 2).
    """
