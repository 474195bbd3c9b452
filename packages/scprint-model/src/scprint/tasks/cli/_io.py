"""Input and output paths of the task subcommands, checked before any computing, and reading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grnndata.cli import UsageError

if TYPE_CHECKING:  # pandas is imported when reading, so that --help starts fast
    import pandas as pd

__all__ = [
    "check_input",
    "check_json_output",
    "check_output_path",
    "output_path",
    "read_adata",
    "read_edges",
]


def check_input(path: str | None, what: str, flag: str) -> Path:
    """``path`` as a Path when it exists (a file, or a ``.zarr`` folder), else ``UsageError``."""
    if path is None:
        raise UsageError(f"{flag} is required ({what})")
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{what} {path!r} does not exist ({flag})")
    if file.suffix == ".zarr":
        if not file.is_dir():
            raise UsageError(f"{what} {path!r} is not a .zarr folder ({flag})")
    elif not file.is_file():
        raise UsageError(f"{what} {path!r} is not a file ({flag})")
    return file


def check_output_path(
    path: str | Path, suffixes: Sequence[str] = (".h5ad", ".zarr"), *, overwrite: bool = False
) -> Path:
    """Refuse an output path we must not write, before any computing; returns it as a Path.

    The path must end in one of ``suffixes``; the rest is :func:`grnndata.atomic.check_output_path`:
    an existing path is only replaced when it is of the kind written (an HDF5 file for ``.h5ad``,
    a zarr store for ``.zarr``), never a folder or file of the user's, and its folder must be
    writable.
    """
    from grnndata import atomic
    from scprint.tasks._output import output_kind

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"output must end in {' or '.join(suffixes)}, got {str(out)!r}")
    try:
        atomic.check_output_path(out, output_kind(out), overwrite=overwrite)
    except (OSError, ValueError) as error:
        message = str(error).replace("overwrite=True", "--overwrite")
        raise UsageError(f"output {str(out)!r} cannot be written: {message}") from None
    return out


def output_path(
    args: Any, suffixes: Sequence[str], original_suffix: str, *, prefix_suffix: str = ""
) -> Path:
    """The output of a subcommand: ``--out`` (one of ``suffixes``), or the original's
    ``--output_filename PREFIX`` + ``prefix_suffix`` + ``original_suffix``; checked."""
    if args.out is not None and args.output_prefix is not None:
        raise UsageError("give --out or --output_filename, not both")
    if args.out is not None:
        return check_output_path(args.out, suffixes, overwrite=args.overwrite)
    if args.output_prefix is None:
        raise UsageError("--out is required (output file)")
    return check_output_path(
        f"{args.output_prefix}{prefix_suffix}{original_suffix}",
        (".h5ad",),
        overwrite=args.overwrite,
    )


def check_json_output(path: str, flag: str) -> Path:
    """A ``.json`` output path whose folder exists or can be made; ``UsageError`` otherwise."""
    out = Path(path)
    if out.suffix.lower() != ".json":
        raise UsageError(f"{flag} must end in .json, got {path!r}")
    if out.is_dir():
        raise UsageError(f"{flag} {path!r} is a folder")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path!r}: {str(parent)!r} is not a folder")
    return out


def read_adata(path: Path) -> Any:
    """An AnnData from ``.h5ad`` or ``.zarr``; ``UsageError`` naming the file when unreadable."""
    import anndata as ad

    try:
        if path.suffix == ".zarr":
            return ad.read_zarr(path)
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as err:
        raise UsageError(f"cannot read {str(path)!r} as AnnData: {err}") from err


def read_edges(path: Path) -> pd.DataFrame:
    """An edge list (``.csv``, else tab-separated) as a DataFrame."""
    sep = "," if ".csv" in path.suffixes else "\t"
    import pandas as pd

    return pd.read_csv(path, sep=sep)
