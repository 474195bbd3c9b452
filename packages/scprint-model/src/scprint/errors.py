"""The error every check of a user's input raises: :class:`InputError`.

One home for the data layer (:mod:`scprint.data`: count checks, the organism check, datasets)
and the tasks (:mod:`scprint.tasks`, which exports it as ``scprint.tasks.InputError``); it
imports nothing, so the data layer does not depend on the tasks.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input (an option, an AnnData or dataset, a gene list, a checkpoint path ...).

    One line saying what was wrong and what was expected. A ``ValueError`` (code catching those
    keeps working); the ``scprint`` command reports it as a usage mistake (exit status 2), for
    the tasks and for ``scprint fit | validate | test`` alike.
    """
