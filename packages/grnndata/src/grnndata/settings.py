"""Where the project's real data lives: one setting shared by grnndata, bengrn and scprint.

Resolution order of :func:`data_dir`:

1. an explicit path given by the caller (e.g. a ``--data-dir`` command-line option);
2. the environment variable ``SCPRINT_DATA_DIR``;
3. a ``shared/data`` folder found beside the current directory or one of its parents (the
   monorepo's layout: ``<repo>/../shared/data``).

Nothing is downloaded here; loaders that can download (``bengrn.datasets``) use this folder first.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SCPRINT_DATA_DIR"

__all__ = ["DATA_DIR_ENV", "DataDirNotFoundError", "data_dir", "find_data_dir"]


class DataDirNotFoundError(FileNotFoundError):
    """Raised when the data folder is required but cannot be found."""


def find_data_dir(path: str | os.PathLike | None = None) -> Path | None:
    """Return the data folder, or ``None`` when none is configured or found.

    Parameters
    ----------
    path
        An explicit folder; when given it must exist.
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
    here = Path.cwd().resolve()
    for parent in (here, *here.parents):
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the data folder or raise a :class:`DataDirNotFoundError` that says what to set."""
    found = find_data_dir(path)
    if found is None:
        raise DataDirNotFoundError(
            "no data folder found: set the environment variable "
            f"{DATA_DIR_ENV} (e.g. export {DATA_DIR_ENV}=/path/to/shared/data) or pass --data-dir; "
            "by default the monorepo looks for ../shared/data beside the repository"
        )
    return found
