"""Network-inference methods: built-in baselines and the plug-in protocol.

A method is any callable ``(adata: AnnData, **params) -> GRNAnnData`` (cells x genes in, a
network over the same genes out, rows = regulators, columns = targets). It is referenced by

* a built-in name: ``genie3``, ``grnboost2``, ``pearson``, ``spearman``, ``random``;
* a plug-in name: any installed distribution can register methods in the ``bengrn.methods``
  entry-point group (:data:`ENTRY_POINT_GROUP`), e.g. in its ``pyproject.toml``::

      [project.entry-points."bengrn.methods"]
      mymethod = "my_package.grn:infer"

  The entry point is loaded only when the method is used; one that fails to load raises
  :class:`MethodUnavailableError` naming the method, the entry point and its distribution.
  A built-in name cannot be taken over by a plug-in (the built-in wins, with a warning);
* ``module:function``, e.g. ``my_package.grn:infer`` (imported when used);
* ``cmd:<command>``: an external program. ``{input}`` in the command is replaced by the path of an
  h5ad file holding the expression, ``{output}`` by a path prefix; the program writes
  ``<prefix>.tsv``, ``.csv``, ``.parquet`` (an edge list with columns regulator, target, weight, or
  the first three columns), ``.zarr`` or ``.h5ad`` (an AnnData with the network in ``varp[key]``,
  ``key`` = ``"GRN"`` unless set). The command is split like a shell command line but run without
  a shell, in its own session; when it ends, fails, times out or the caller is stopped, it and
  every process it started are killed (see :mod:`bengrn._process` for what "every" covers);
* ``file:<path>``: a network computed beforehand (``.h5ad`` / ``.zarr`` with the network in
  ``varp[key]``, or an edge table), e.g. one an inference tool stored in place: its genes
  must be genes of the task's expression set.

:func:`available_methods` lists the built-ins and plug-ins with where each comes from.
Methods that take a ``regulators`` parameter receive the task's candidate regulators (e.g. the
dataset's TFs) unless the user set it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from bengrn._process import run_command
from bengrn._signature import check_call
from bengrn.datasets.parsers import read_edge_table
from bengrn.methods.correlation import pearson, spearman
from bengrn.methods.random import random_network
from bengrn.methods.trees import genie3, grnboost2

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "ExternalCommand",
    "MethodInfo",
    "MethodUnavailableError",
    "NetworkFile",
    "available_methods",
    "check_params",
    "genie3",
    "grnboost2",
    "pearson",
    "random_network",
    "read_network_file",
    "resolve_method",
    "spearman",
]

log = logging.getLogger(__name__)

#: The entry-point group in which installed distributions register methods.
ENTRY_POINT_GROUP = "bengrn.methods"

BUILTIN: dict[str, Callable[..., Any]] = {
    "genie3": genie3,
    "grnboost2": grnboost2,
    "pearson": pearson,
    "spearman": spearman,
    "random": random_network,
}


class MethodUnavailableError(RuntimeError):
    """A method that cannot be used here (unknown name, a plug-in that fails to load, a bad
    ``module:function`` reference)."""


@dataclass(frozen=True)
class MethodInfo:
    """A registered method and where it comes from.

    Attributes
    ----------
    name
        The name to pass to ``--method`` / :func:`resolve_method`.
    origin
        ``"built-in"`` or ``"entry point"``.
    target
        What the name refers to: ``module:function``.
    distribution, version
        For a plug-in: the distribution that registered it and its installed version.
    description
        First line of the built-in's docstring (plug-ins are not imported to list them: ``""``).
    """

    name: str
    origin: str
    target: str
    distribution: str | None = None
    version: str | None = None
    description: str = ""

    def __str__(self) -> str:
        if self.origin == "built-in":
            return f"built-in ({self.target}): {self.description}"
        return f"entry point of {self.distribution} {self.version} ({self.target})"


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points of :data:`ENTRY_POINT_GROUP`, each name once (the first found wins)."""
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            log.warning(
                "entry point %r = %r of %s is ignored: %r is a built-in method",
                ep.name,
                ep.value,
                _distribution(ep)[0],
                ep.name,
            )
        elif ep.name in seen and seen[ep.name].value != ep.value:
            log.warning(
                "entry point %r is registered twice (%s by %s, %s by %s); using the first",
                ep.name,
                seen[ep.name].value,
                _distribution(seen[ep.name])[0],
                ep.value,
                _distribution(ep)[0],
            )
        else:
            seen.setdefault(ep.name, ep)
    return list(seen.values())


def _distribution(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "an unknown distribution", "?"
    return dist.metadata["Name"] or "an unknown distribution", dist.version


def _entry_point_info(ep: importlib.metadata.EntryPoint) -> MethodInfo:
    dist, version = _distribution(ep)
    return MethodInfo(ep.name, "entry point", ep.value, dist, version)


def available_methods() -> dict[str, MethodInfo]:
    """Every registered method by name: the built-ins, then the installed plug-ins (entry points
    of :data:`ENTRY_POINT_GROUP`), with where each comes from. Plug-ins are not imported."""
    out = {
        name: MethodInfo(
            name,
            "built-in",
            f"{fn.__module__}:{fn.__name__}",
            description=(fn.__doc__ or "").strip().splitlines()[0],
        )
        for name, fn in BUILTIN.items()
    }
    out.update({ep.name: _entry_point_info(ep) for ep in _entry_points()})
    return out


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> Callable[..., Any]:
    """The callable an entry point names, or a :class:`MethodUnavailableError` naming it."""
    where = f"entry point {ep.name!r} = {ep.value!r} of {' '.join(_distribution(ep))}"
    try:
        fn = ep.load()
    except Exception as err:  # noqa: BLE001 - any import failure of a plug-in is reported
        raise MethodUnavailableError(
            f"method {ep.name!r} cannot be loaded: {where} failed with {type(err).__name__}: {err}"
        ) from err
    if not callable(fn):
        raise MethodUnavailableError(
            f"method {ep.name!r}: {where} is a {type(fn).__name__}, not a callable "
            "(adata, **params) -> GRNAnnData"
        )
    return fn


def read_network_file(path: Path, genes: pd.Index, key: str = "GRN") -> Any:
    """The network stored in ``path`` as a GRNAnnData over (a subset of) ``genes``.

    ``.zarr`` / ``.h5ad``: an AnnData with the network in ``varp[key]`` (rows = regulators; see
    :func:`bengrn.metrics.network_in_varp`); ``.tsv`` / ``.csv`` / ``.parquet`` (gzipped or
    not): an edge table (regulator, target, optional weight), whose genes must be in ``genes``.
    """
    import grnndata
    from bengrn.metrics import network_in_varp

    name = path.name.removesuffix(".gz")
    if name.endswith((".zarr", ".h5ad")):
        zarr = name.endswith(".zarr")
        if key == "GRN":  # grnndata's own reader (integrity manifest, provenance)
            return grnndata.read_zarr(path) if zarr else grnndata.read_h5ad(path)
        network = network_in_varp((ad.read_zarr if zarr else ad.read_h5ad)(path), key, str(path))
        return grnndata.GRNAnnData.from_matrix(network.matrix, list(network.genes))
    edges = read_edge_table(path)
    weight = "weight" if "weight" in edges.columns else None
    return grnndata.from_edges(list(genes), edges, weight=weight, strict=True)


def _stored_varp_keys(path: Path) -> list[str] | None:
    """The ``varp`` keys of an ``.h5ad`` / ``.zarr`` file, read without loading it; ``None``
    for other files or when they cannot be listed (the read then reports the problem)."""
    try:
        if path.name.endswith(".h5ad"):
            import h5py

            with h5py.File(path, "r") as handle:
                return sorted(handle["varp"].keys()) if "varp" in handle else []
        if path.name.endswith(".zarr"):
            import zarr

            group = zarr.open_group(str(path), mode="r")
            return sorted(group["varp"].keys()) if "varp" in group else []
    except Exception:  # noqa: BLE001 - listing is a courtesy check only
        return None
    return None


@dataclass(frozen=True)
class ExternalCommand:
    """A method run as an external program (see the module docstring)."""

    command: str
    timeout: float | None = None
    key: str = "GRN"

    def __call__(self, adata: ad.AnnData, **params: Any) -> Any:
        if params:
            raise ValueError(
                f"an external command takes no parameters (got {sorted(params)}); put them in the command line"
            )
        with tempfile.TemporaryDirectory(prefix="bengrn-cmd-") as tmp:
            tmp_path = Path(tmp)
            input_path = tmp_path / "input.h5ad"
            ad.AnnData(
                X=adata.X,
                obs=pd.DataFrame(index=adata.obs_names),
                var=pd.DataFrame(index=adata.var_names),
            ).write_h5ad(input_path)
            prefix = tmp_path / "network"
            argv = [
                a.replace("{input}", str(input_path)).replace("{output}", str(prefix))
                for a in shlex.split(self.command)
            ]
            returncode, stderr = run_command(argv, self.timeout)
            if returncode != 0:
                raise RuntimeError(
                    f"external command {argv[0]!r} exited with status {returncode}: "
                    f"{stderr.strip()[-500:]}"
                )
            for suffix in (".tsv", ".csv", ".parquet", ".zarr", ".h5ad"):
                out = prefix.with_suffix(suffix)
                if out.exists():
                    break
            else:
                raise RuntimeError(
                    f"external command {argv[0]!r} wrote none of {prefix}.tsv/.csv/.parquet/.zarr/.h5ad"
                )
            return read_network_file(out, pd.Index(adata.var_names), self.key)


@dataclass(frozen=True)
class NetworkFile:
    """A network computed beforehand, read from a file (see the module docstring)."""

    path: str
    key: str = "GRN"

    def __call__(self, adata: ad.AnnData, **params: Any) -> Any:
        if params:
            raise ValueError(
                f"a network file takes no parameters (got {sorted(params)}); it is read as it is"
            )
        return read_network_file(Path(self.path), pd.Index(adata.var_names), self.key)


def resolve_method(spec: str, *, key: str = "GRN") -> tuple[str, Callable[..., Any]]:
    """``(display name, callable)`` for a method reference (see the module docstring).

    A ``name=`` prefix sets the display name, e.g. ``mytool=cmd:./run.sh {input} {output}``.
    ``key``: the ``varp`` key of the network in the AnnData files that ``cmd:`` programs write
    and ``file:`` references name.
    """
    name = None
    head, sep, rest = spec.partition("=")
    if sep and head and all(c.isalnum() or c in "-_." for c in head):
        name, spec = head, rest
    if spec in BUILTIN:
        return name or spec, BUILTIN[spec]
    plugins = {ep.name: ep for ep in _entry_points()}
    if spec in plugins:
        return name or spec, _load_entry_point(plugins[spec])
    if spec.startswith("cmd:"):
        command = spec[4:].strip()
        if not command:
            raise MethodUnavailableError(
                "cmd: needs a command line, e.g. cmd:python infer.py {input} {output}"
            )
        return name or Path(shlex.split(command)[0]).stem, ExternalCommand(command, key=key)
    if spec.startswith("file:"):
        path = Path(spec[5:].strip()).expanduser()
        if not path.exists():
            raise MethodUnavailableError(
                f"file: network {str(path)!r} does not exist (expected an .h5ad / .zarr with the "
                "network in varp, or an edge table)"
            )
        keys = _stored_varp_keys(path)
        if keys is not None and key not in keys:
            raise MethodUnavailableError(
                f"file: network {str(path)!r} has no varp[{key!r}] (varp keys: {keys}); pass the "
                "key it is stored under (--key / key=)"
            )
        stem = path.name.removesuffix(".gz").rsplit(".", 1)[0]
        return name or stem, NetworkFile(str(path), key=key)
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise MethodUnavailableError(
            f"unknown method {spec!r}: not a built-in ({', '.join(sorted(BUILTIN))}), not a "
            f"plug-in (installed: {', '.join(sorted(plugins)) or 'none'}; see `bengrn list`), "
            "not 'module:function' and not 'cmd:<command>'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise MethodUnavailableError(
            f"method {spec!r}: cannot import module {module_name!r} ({err})"
        ) from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise MethodUnavailableError(f"method {spec!r}: {module_name} has no callable {attr!r}")
    return name or attr, fn


def accepts(fn: Callable[..., Any], param: str) -> bool:
    """Whether ``fn`` declares a parameter named ``param`` (``**kwargs`` does not count)."""
    try:
        return param in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def check_params(name: str, fn: Callable[..., Any], params: dict[str, Any]) -> None:
    """Raise ``TypeError`` (one line) naming a parameter ``fn`` does not take (e.g. a misspelt
    key) or a value of the wrong type (checked against ``fn``'s annotations).

    A callable with ``**kwargs`` takes any name; an external command or file takes none.
    """
    if not params:
        return
    if isinstance(fn, ExternalCommand | NetworkFile):
        kind = "an external command" if isinstance(fn, ExternalCommand) else "a network file"
        raise TypeError(
            f"method {name!r} is {kind} and takes no parameters (got {sorted(params)})"
            + ("; put them in its command line" if isinstance(fn, ExternalCommand) else "")
        )
    check_call(fn, params, what=f"method {name!r}", skip_first=True)
