"""Where the project's real data lives: one setting shared by grnndata, bengrn and scprint.

Resolution order of :func:`data_dir` (first hit wins; nothing is guessed from the folder a
program runs in):

1. an explicit path given by the caller (e.g. a ``--data-dir`` command-line option);
2. the environment variable ``SCPRINT_DATA_DIR``;
3. the per-user data folder :func:`default_data_dir`, when it exists: ``scprint/data`` in the
   platform's cache folder: ``$XDG_CACHE_HOME/scprint/data`` (default
   ``~/.cache/scprint/data``) on Linux and other Unix systems,
   ``~/Library/Caches/scprint/data`` on macOS, ``%LOCALAPPDATA%\\scprint\\Cache\\data`` on
   Windows.

Nothing is downloaded here; loaders that can download (``bengrn.datasets``) use this folder first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DATA_DIR_ENV = "SCPRINT_DATA_DIR"

__all__ = ["DATA_DIR_ENV", "DataDirNotFoundError", "data_dir", "default_data_dir", "find_data_dir"]


class DataDirNotFoundError(FileNotFoundError):
    """Raised when the data folder is required but cannot be found."""


def default_data_dir() -> Path:
    """The per-user data folder (whether or not it exists): ``scprint/data`` in the platform's
    cache folder (see the module docstring)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "scprint" / "Cache" / "data"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "scprint" / "data"
    base = os.environ.get("XDG_CACHE_HOME") or ""
    cache = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return cache / "scprint" / "data"


def find_data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """Return the data folder, or ``None`` when none is configured and the per-user folder does
    not exist.

    Parameters
    ----------
    path
        An explicit folder; when given it must exist.

    Raises
    ------
    DataDirNotFoundError
        ``path``, or the folder ``SCPRINT_DATA_DIR`` names, is not a folder.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise DataDirNotFoundError(f"data folder {str(p)!r} does not exist or is not a folder")
        return p.resolve()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise DataDirNotFoundError(
                f"{DATA_DIR_ENV}={env!r} does not exist or is not a folder; "
                f"set {DATA_DIR_ENV} to the folder holding scrna/, grn/, gene_sets/ ..."
            )
        return p.resolve()
    per_user = default_data_dir()
    return per_user.resolve() if per_user.is_dir() else None


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the data folder or raise a :class:`DataDirNotFoundError` that says what to set."""
    found = find_data_dir(path)
    if found is None:
        raise DataDirNotFoundError(
            f"no data folder found: set the environment variable {DATA_DIR_ENV} to the folder "
            "holding scrna/, grn/, gene_sets/ ..., pass --data-dir, or put the data in "
            f"{str(default_data_dir())!r}"
        )
    return found
