"""The ``grnndata`` command: ``info``, ``convert`` and ``verify`` a network file.

- ``grnndata info PATH``: a store's summary (genes, regulators, targets, edges, density, format,
  integrity manifest, ``varp`` key) for a grnndata zarr store or h5ad file, or any AnnData
  zarr / h5ad with a network in ``varp`` (``--key``). Zarr stores are read lazily (the
  ``indptr`` arrays of the network, not its edges).
- ``grnndata convert INPUT --out OUTPUT``: an edge list (``.csv`` / ``.tsv``, optionally
  compressed), an h5ad file or a zarr store (either zarr format, grnndata's or plain anndata's)
  into the current format: a zarr v3 store (``.zarr``) or an h5ad file (``.h5ad``), written
  atomically. An existing OUTPUT is replaced only with ``--overwrite``, and only if it is a
  zarr store / HDF5 file.
- ``grnndata verify PATH``: checks a zarr store against its integrity manifest (every chunk
  object's size and checksum); exit status 1 naming the first damaged array.

Conventions (:mod:`grnndata.cli`): ``--out``, ``-v/-q/--debug`` before or after the subcommand,
help text on every flag; exit status 2 and one line for a usage mistake, 1 and one line for any
other failure (``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import zarr

from . import __version__
from ._integrity import manifest
from ._matrix import GRN_KEY, missing_network
from .atomic import OutputExistsError, check_output_path, write_json
from .cli import CliParser, UsageError, add_common_options, run_cli
from .convert import as_network
from .edges import Duplicates

log = logging.getLogger(__name__)

__all__ = ["build_parser", "main"]

_EDGE_LIST_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")


def build_parser() -> CliParser:
    """The ``grnndata`` argument parser (every flag with help text)."""
    parser = CliParser(
        prog="grnndata",
        description="Inspect, convert and verify gene networks stored in AnnData "
        "(rows = regulators, columns = targets, in varp['GRN']).",
    )
    parser.add_argument(
        "--version", action="version", version=f"grnndata {__version__}", help="print the version"
    )
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser(
        "info",
        help="print a network file's summary",
        description="Summary of a network file: genes, regulators, targets, edges, density, "
        "format, integrity manifest.",
    )
    info.add_argument("path", metavar="PATH", help="a zarr store (folder) or an .h5ad file")
    _add_key(info)
    info.add_argument("--out", metavar="FILE.json", help="also write the summary to this JSON file")
    add_common_options(info)

    convert = sub.add_parser(
        "convert",
        help="convert an edge list, h5ad or zarr (v2 or v3) into the current format",
        description="Convert a network into the current format: a zarr v3 store (OUTPUT "
        "ending in .zarr) or an h5ad file (.h5ad), written atomically.",
    )
    convert.add_argument(
        "input",
        metavar="INPUT",
        help="an edge list (.csv / .tsv / .txt, optionally .gz), an .h5ad file or a zarr store",
    )
    convert.add_argument(
        "--out",
        metavar="OUTPUT",
        required=True,
        help="the file to write: a .zarr store (zarr v3) or an .h5ad file",
    )
    _add_key(convert)
    convert.add_argument(
        "--source",
        metavar="COLUMN",
        default=None,
        help="edge list: the regulator column (default: 'regulator' or 'source')",
    )
    convert.add_argument(
        "--target",
        metavar="COLUMN",
        default="target",
        help="edge list: the target column (default: 'target')",
    )
    convert.add_argument(
        "--weight",
        metavar="COLUMN",
        default=None,
        help="edge list: the weight column (default: 'weight' when present, else every edge "
        "weighs 1)",
    )
    convert.add_argument(
        "--duplicates",
        choices=[rule for rule in get_args(Duplicates)],
        default="max",
        help="edge list: how repeated (regulator, target) rows merge (default: max)",
    )
    convert.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT if it exists (only a zarr store or an HDF5 file is replaced)",
    )
    add_common_options(convert)

    verify = sub.add_parser(
        "verify",
        help="check a zarr store against its integrity manifest",
        description="Check every chunk object of a zarr store (number, size, checksum) "
        "against the manifest written with it; exit status 1 names the first damaged array.",
    )
    verify.add_argument("path", metavar="PATH", help="a zarr store (folder)")
    verify.add_argument(
        "--out", metavar="FILE.json", help="also write the report to this JSON file"
    )
    add_common_options(verify)
    return parser


def _add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        default=GRN_KEY,
        help="the varp key holding the network (default: GRN, the packages' convention)",
    )


def main(argv: list[str] | None = None) -> int:
    """Run the ``grnndata`` command; returns its exit status."""
    return run_cli("grnndata", build_parser(), _dispatch, argv)


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {"info": _info, "convert": _convert, "verify": _verify}
    return handlers[args.command](args)


# --------------------------------------------------------------------------- inputs
def _kind_of(path: Path, what: str) -> str:
    """``"zarr"``, ``"h5ad"`` or ``"edges"`` for an existing ``path``; :class:`UsageError`
    otherwise."""
    if not os.path.lexists(path):
        raise UsageError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        if any((path / marker).is_file() for marker in ("zarr.json", ".zgroup")):
            return "zarr"
        raise UsageError(f"{what} {str(path)!r} is a folder but not a zarr store")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last == ".h5ad":
        return "h5ad"
    if last in _EDGE_LIST_SUFFIXES:
        return "edges"
    raise UsageError(
        f"{what} {str(path)!r}: expected a zarr store (folder), an .h5ad file or an edge list "
        f"(.csv, .tsv, .txt, optionally compressed); got suffix {path.suffix or '(none)'!r}"
    )


def _check_key(varp_keys: list[str], key: str, path: Path) -> None:
    message = missing_network(varp_keys, key, repr(str(path)))
    if message is not None:
        raise UsageError(re.sub(r"pass key='([^']*)'", r"pass --key \1", message))


def _zarr_root(path: Path) -> Any:
    from .io.zarr import open_root

    return open_root(path)[0]


def _zarr_varp_keys(root: Any) -> list[str]:
    return list(root["varp"].keys()) if "varp" in root else []


# --------------------------------------------------------------------------- info
def _info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    kind = _kind_of(path, "PATH")
    if kind == "edges":
        raise UsageError(
            f"{str(path)!r} is an edge list; `grnndata convert {path} --out net.zarr` makes a "
            "store of it"
        )
    out = None if args.out is None else _checked_json_out(args.out)
    summary = _zarr_summary(path, args.key) if kind == "zarr" else _h5ad_summary(path, args.key)
    width = max(len(name) for name in summary)
    for name, value in summary.items():
        sys.stdout.write(f"{name.replace('_', ' '):<{width}}  {_shown(value)}\n")
    if out is not None:
        write_json(out, summary)
    return 0


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if value is None:
        return "-"
    return str(value)


def _counts(n_genes: int, n_targets: np.ndarray, n_regulators: np.ndarray) -> dict[str, Any]:
    n_edges = int(n_targets.sum())
    return {
        "genes": n_genes,
        "regulators": int((n_targets > 0).sum()),
        "targets": int((n_regulators > 0).sum()),
        "edges": n_edges,
        "density": n_edges / n_genes**2 if n_genes else 0.0,
    }


def _zarr_summary(path: Path, key: str) -> dict[str, Any]:
    from .io import open_zarr

    root = _zarr_root(path)
    _check_key(_zarr_varp_keys(root), key, path)
    recorded = manifest(root)
    lazy = open_zarr(path, key=key)
    fmt = int(getattr(getattr(root, "metadata", None), "zarr_format", 2))
    node = root["varp"][key]
    sharded = isinstance(node, zarr.Group) and "data" in node and _sharded(node["data"])
    summary: dict[str, Any] = {"path": str(path), "format": f"zarr v{fmt}"}
    summary["layout"] = _layout(recorded, sharded)
    summary["integrity_manifest"] = recorded is not None
    summary["varp_key"] = key
    summary["cells"] = _zarr_n_obs(root)
    if len(lazy.shape) == 3:
        summary.update(genes=lazy.n_vars, networks_in_stack=int(lazy.shape[2]))
        return summary
    degrees = lazy.degrees()
    summary.update(
        _counts(lazy.n_vars, degrees["n_targets"].to_numpy(), degrees["n_regulators"].to_numpy())
    )
    method = lazy.metadata.get("method")
    summary["method"] = None if method is None else str(method)
    return summary


def _sharded(array: Any) -> bool:
    return getattr(array, "shards", None) is not None


def _layout(recorded: dict[str, Any] | None, sharded: bool) -> str:
    network = "sharded network" if sharded else "one object per chunk"
    if recorded is None:
        return f"plain AnnData ({network}, no grnndata manifest)"
    version = int(recorded.get("format", 1))
    note = "" if version >= 2 else ", no per-object checksums"
    return f"grnndata format {version} ({network}{note})"


def _zarr_n_obs(root: Any) -> int | None:
    if "obs" not in root:
        return None
    obs = root["obs"]
    index = obs.attrs.get("_index", "_index")
    if index not in obs:
        return None
    node = obs[index]
    if isinstance(node, zarr.Group):  # pandas 3 strings: values + mask
        node = node["values"] if "values" in node else None
    return None if node is None else int(node.shape[0])


def _h5ad_summary(path: Path, key: str) -> dict[str, Any]:
    import anndata
    import h5py

    with h5py.File(path, "r") as handle:
        varp_keys = list(handle["varp"].keys()) if "varp" in handle else []
    _check_key(varp_keys, key, path)
    adata = anndata.read_h5ad(path, backed="r")  # expression stays on disk
    try:
        network = as_network(adata, sparse=None, key=key, name=repr(str(path)))
    finally:
        if adata.file is not None:
            adata.file.close()
    summary: dict[str, Any] = {"path": str(path), "format": "h5ad"}
    summary["layout"] = "AnnData h5ad (no integrity manifest: h5ad files carry none)"
    summary["integrity_manifest"] = False
    summary["varp_key"] = key
    summary["cells"] = int(adata.n_obs)
    matrix = network.matrix
    present = matrix != 0
    n_targets = np.asarray(present.sum(axis=1)).ravel()
    n_regulators = np.asarray(present.sum(axis=0)).ravel()
    summary.update(_counts(network.n_genes, n_targets, n_regulators))
    meta = adata.uns.get("grn", {})
    summary["method"] = str(meta["method"]) if isinstance(meta, dict) and "method" in meta else None
    return summary


# --------------------------------------------------------------------------- convert
def _output_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".zarr":
        return "zarr"
    if suffix == ".h5ad":
        return "h5ad"
    raise UsageError(
        f"--out {str(path)!r}: expected a path ending in .zarr (zarr v3 store) or .h5ad; got "
        f"suffix {path.suffix or '(none)'!r}"
    )


def _checked_json_out(value: str) -> Path:
    try:
        return check_output_path(value, "json")
    except (OutputExistsError, NotADirectoryError, PermissionError) as err:
        raise UsageError(f"--out: {err}") from err


def _convert(args: argparse.Namespace) -> int:
    source = Path(args.input)
    kind = _kind_of(source, "INPUT")
    out = Path(args.out)
    out_kind = _output_kind(out)
    same = os.path.lexists(out) and os.path.realpath(out) == os.path.realpath(source)
    if os.path.lexists(out) and not args.overwrite:
        raise UsageError(
            f"--out {str(out)!r} exists; pass --overwrite to replace it"
            + (" (converting a store in place)" if same else "")
        )
    try:
        check_output_path(out, out_kind)
    except (OutputExistsError, NotADirectoryError, PermissionError) as err:
        raise UsageError(f"--out: {err}") from err
    if kind == "edges":
        grn = _from_edge_list(source, args)
    else:
        grn = _read_network(source, kind, args.key)
    try:
        if out_kind == "zarr":
            grn.write_zarr(out)
        else:
            grn.write_h5ad(out)
    except OutputExistsError as err:  # the path changed while we read the input
        raise UsageError(f"--out: {err}") from err
    where = "zarr v3 store" if out_kind == "zarr" else "h5ad file"
    sys.stdout.write(
        f"wrote {out} ({where}): {grn.n_vars} genes, {grn.n_edges} edges, {grn.n_obs} cells\n"
    )
    return 0


def _read_network(path: Path, kind: str, key: str) -> Any:
    from .io import read_h5ad, read_zarr

    if kind == "zarr":
        _check_key(_zarr_varp_keys(_zarr_root(path)), key, path)
        return read_zarr(path, key=key)
    import h5py

    with h5py.File(path, "r") as handle:
        varp_keys = list(handle["varp"].keys()) if "varp" in handle else []
    _check_key(varp_keys, key, path)
    return read_h5ad(path, key=key)


def _from_edge_list(path: Path, args: argparse.Namespace) -> Any:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in _COMPRESSIONS]
    separator = _EDGE_LIST_SUFFIXES[suffixes[-1]]
    try:
        table = pd.read_csv(path, sep=separator)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise UsageError(f"INPUT {str(path)!r} could not be read as an edge list: {err}") from err
    columns = [str(c) for c in table.columns]
    regulator = args.source or next((c for c in ("regulator", "source") if c in columns), None)
    weight = args.weight or ("weight" if "weight" in columns else None)
    wanted = {"--source": regulator, "--target": args.target, "--weight": weight}
    for flag, column in wanted.items():
        if flag != "--weight" and column is None:
            raise UsageError(
                f"INPUT {str(path)!r} has no regulator column ('regulator' or 'source'); its "
                f"columns are {columns}: name it with {flag}"
            )
        if column is not None and column not in columns:
            raise UsageError(
                f"{flag} {column!r} is not a column of {str(path)!r}; its columns are {columns}"
            )
    unnamed = table[[regulator, args.target]].isna().any(axis=1).to_numpy()
    if unnamed.any():
        raise UsageError(
            f"INPUT {str(path)!r}: {int(unnamed.sum())} edge(s) have an empty {regulator!r} or "
            f"{args.target!r} (e.g. data row {int(np.flatnonzero(unnamed)[0]) + 1}); every edge "
            "needs both gene names"
        )
    edges = pd.DataFrame(
        {
            "regulator": table[regulator].astype(str),
            "target": table[args.target].astype(str),
        }
    )
    if weight is not None:
        edges["weight"] = table[weight]
    network = as_network(
        edges,
        weight="weight" if weight is not None else None,
        duplicates=args.duplicates,
        name=repr(str(path)),
    )
    grn = network.to_grnanndata()
    grn.set_metadata(
        "edge list",
        {
            "file": path.name,
            "regulator": regulator,
            "target": args.target,
            "weight": weight,
            "duplicates": args.duplicates,
        },
    )
    return grn


# --------------------------------------------------------------------------- verify
def _verify(args: argparse.Namespace) -> int:
    from .io import GRNStoreError, verify_zarr

    path = Path(args.path)
    kind = _kind_of(path, "PATH")
    if kind != "zarr":
        raise UsageError(
            f"{str(path)!r} is not a zarr store: verify checks the integrity manifest that "
            "grnndata writes into zarr stores (h5ad files and edge lists carry none)"
        )
    out = None if args.out is None else _checked_json_out(args.out)
    report = {"path": str(path), **verify_zarr(path)}
    if out is not None:
        write_json(out, report)
    if report["manifest_format"] is None:
        raise GRNStoreError(
            f"{str(path)!r} has no integrity manifest (not written by grnndata): its "
            f"{report['sparse_matrices']} sparse matrices are consistent, but damaged chunks "
            "cannot be detected; `grnndata convert` writes a store with a manifest"
        )
    sys.stdout.write(
        f"ok: {path}: {report['objects']} chunk objects of {report['arrays']} arrays "
        f"({report['bytes']} bytes) match the manifest (grnndata format "
        f"{report['manifest_format']})\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
