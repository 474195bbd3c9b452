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
  the first three columns), ``.zarr`` or ``.h5ad`` (a GRnnData file). The command is split like a
  shell command line but run without a shell, in its own session: when it ends, fails, times
  out or the caller is stopped, its whole process group is killed (no orphan keeps running).

:func:`available_methods` lists the built-ins and plug-ins with where each comes from.
Methods that take a ``regulators`` parameter receive the task's candidate regulators (e.g. the
dataset's TFs) unless the user set it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

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
    "available_methods",
    "check_params",
    "genie3",
    "grnboost2",
    "pearson",
    "random_network",
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


@dataclass(frozen=True)
class ExternalCommand:
    """A method run as an external program (see the module docstring)."""

    command: str
    timeout: float | None = None

    def __call__(self, adata: ad.AnnData, **params: Any) -> Any:
        import grnndata

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
            returncode, stderr = _run_in_own_group(argv, self.timeout)
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
            if suffix == ".zarr":
                return grnndata.read_zarr(out)
            if suffix == ".h5ad":
                return grnndata.read_h5ad(out)
            edges = read_edge_table(out)
            weight = "weight" if "weight" in edges.columns else None
            return grnndata.from_edges(list(adata.var_names), edges, weight=weight, strict=True)


def _run_in_own_group(argv: list[str], timeout: float | None) -> tuple[int, str]:
    """Run ``argv`` in a new session; return (exit status, stderr).

    Whatever happens (normal end, time limit, an exception or signal in the caller), every
    process left in the command's group (e.g. a child it started in the background) is killed.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except OSError as err:
        raise RuntimeError(f"external command {argv[0]!r} cannot be started: {err}") from err
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise TimeoutError(
            f"external command {argv[0]!r} exceeded its time limit of {timeout:g} s"
        ) from err
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode, stderr


def resolve_method(spec: str) -> tuple[str, Callable[..., Any]]:
    """``(display name, callable)`` for a method reference (see the module docstring).

    A ``name=`` prefix sets the display name, e.g. ``mytool=cmd:./run.sh {input} {output}``.
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
        return name or Path(shlex.split(command)[0]).stem, ExternalCommand(command)
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
    """Raise ``TypeError`` naming the parameters ``fn`` does not take (e.g. a misspelt key).

    A callable with ``**kwargs`` takes any name; an external command takes none.
    """
    if not params:
        return
    if isinstance(fn, ExternalCommand):
        raise TypeError(
            f"method {name!r} is an external command and takes no parameters (got "
            f"{sorted(params)}); put them in its command line"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    named = [
        p.name
        for p in list(parameters.values())[1:]  # the first one is the expression set
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = sorted(set(params) - set(named))
    if unknown:
        raise TypeError(
            f"method {name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters: "
            f"{', '.join(named) or '(none)'}"
        )
