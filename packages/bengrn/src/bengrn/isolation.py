"""Run one inference in a process of its own, so that nothing it does can take the benchmark down.

:func:`infer_isolated` starts a forkserver child (spawn where forkserver is missing) that reads the
expression set, calls the method, checks its output (a network over genes of the expression set,
no NaN) and writes the network to a GRnnData zarr store and an info file (wall time, peak RSS,
status, error). A method that raises, hangs past the time limit, or exhausts memory is recorded
as failed; the benchmark goes on.

Everything the method starts is stopped with it (:mod:`bengrn._process`):

* the child leads its own session and, on Linux, adopts its orphaned descendants (a child
  subreaper), so a program that left its group (``setsid``) or daemonised is still in its tree;
* after the method returns, and on a time limit, every descendant is frozen and killed; the
  child then gets SIGTERM (a method's ``finally`` blocks run) and SIGKILL after a grace period;
* its temporary folder (its ``TMPDIR``: e.g. a ``cmd:`` method's input file) is removed;
* when the benchmark process itself dies, even by SIGKILL, a small guardian process does the
  same: stops the child's tree and removes the temporary folders (the child's and
  multiprocessing's own).

Not stopped: processes handed to another supervisor (``systemd-run``, ``docker run``, a job
scheduler); and, where Linux's ``/proc/<pid>/task/<tid>/children`` or ``prctl`` is missing,
descendants that left the child's session.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import multiprocessing.util
import os
import resource
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from bengrn._process import become_subreaper, guardian, stop_tree
from bengrn.records import read_json, write_record

__all__ = ["check_network_result", "infer_isolated"]

log = logging.getLogger(__name__)

_EXIT_GRACE_SECONDS = 15
_TERM_GRACE_SECONDS = 5


def check_network_result(result: Any, genes: pd.Index) -> None:
    """Raise a specific error when a method's output is not a network over (a subset of) the
    input's ``genes``: not an AnnData with ``varp["GRN"]``, unknown genes, NaN scores."""
    from grnndata import as_network

    if not (hasattr(result, "varp") and hasattr(result, "var_names")):
        raise TypeError(
            f"the method returned {type(result).__name__}; expected a GRNAnnData "
            "(network in varp['GRN'] over the input genes)"
        )
    network = as_network(result, name="the method's network")
    unknown = network.genes[~network.genes.isin(genes)]
    if len(unknown):
        raise ValueError(
            f"the method returned {len(unknown)} genes that are not in the expression set, e.g. "
            f"{list(unknown[:5])} (input genes look like {list(genes[:5])})"
        )


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def _infer_child(
    spec: str,
    params: dict[str, Any],
    input_path: str,
    zarr_path: str,
    info_path: str,
    tmpdir: str,
    scheduler: str | None,
    key: str,
) -> None:
    """The inference process: infer, check, write the network and an info file (never raises).

    It leads its own session, adopts orphaned descendants, and unwinds on SIGTERM like on an
    exception (so a method's ``finally`` blocks, e.g. an external command stopping its program,
    run before it exits).
    """
    os.setsid()
    become_subreaper()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    os.environ["TMPDIR"] = tempfile.tempdir = tmpdir  # removed by the parent afterwards
    logging.basicConfig(level=logging.WARNING)
    info: dict[str, Any] = {"status": "failed"}
    try:
        import grnndata
        from bengrn.methods import resolve_method

        adata = ad.read_h5ad(input_path)
        _, fn = resolve_method(spec, key=key)
        with contextlib.ExitStack() as stack:
            if scheduler is not None:  # a method that takes client= runs on this dask cluster
                from bengrn.methods._dask import dask_client

                params = {**params, "client": stack.enter_context(dask_client(scheduler))}
            start = time.perf_counter()
            result = fn(adata, **params)
            info["infer_seconds"] = time.perf_counter() - start
        check_network_result(result, adata.var_names)
        if not isinstance(result, grnndata.GRNAnnData):
            result = grnndata.GRNAnnData.from_adata(result)
        result.write_zarr(zarr_path, overwrite=True)  # the runner's own networks/ folder
        info["n_edges"] = int(result.grn.nnz)
        info["n_genes"] = int(result.n_vars)
        info["status"] = "ok"
    except BaseException as err:  # noqa: BLE001 - every failure is reported, not raised
        info["error"] = f"{type(err).__name__}: {err}"
        info["traceback"] = traceback.format_exc()[-4000:]
    finally:
        stop_tree(os.getpid(), include_root=False)  # whatever the method left running
    info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_record(Path(info_path), info)


def _context() -> Any:
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["bengrn.isolation", "bengrn.methods", "grnndata"])
    return ctx


def _stop(proc: Any) -> None:
    """Stop an inference process and everything it started: its descendants first (while it
    still adopts orphans), then SIGTERM to it (its cleanup runs), SIGKILL to what is left."""
    if proc.is_alive():
        stop_tree(proc.pid, include_root=False)
        proc.terminate()
        proc.join(_TERM_GRACE_SECONDS)
    if proc.is_alive():
        stop_tree(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child is its group's leader (os.setsid)
    proc.join(5)


def infer_isolated(
    spec: str,
    params: dict[str, Any],
    input_path: Path,
    zarr_path: Path,
    timeout: float | None,
    scheduler: str | None = None,
    key: str = "GRN",
) -> dict[str, Any]:
    """Infer with method ``spec`` on the h5ad ``input_path`` in its own process (see the module
    docstring); the network goes to ``zarr_path``. Returns the info record: ``status`` (``ok`` /
    ``failed``), ``error``, ``infer_seconds``, ``wall_seconds``, ``peak_rss_mb``, ``n_edges``,
    ``n_genes``. ``key``: the ``varp`` key of networks read from files (``cmd:``, ``file:``)."""
    info_path = zarr_path.with_suffix(".json")
    info_path.unlink(missing_ok=True)
    ctx = _context()
    guard = guardian()
    start = time.perf_counter()
    tmpdir = Path(tempfile.mkdtemp(prefix="bengrn-infer-"))  # the child's TMPDIR
    guard.watch_folder(tmpdir)
    proc = ctx.Process(
        target=_infer_child,
        args=(
            spec,
            params,
            str(input_path),
            str(zarr_path),
            str(info_path),
            str(tmpdir),
            scheduler,
            key,
        ),
    )
    proc.start()
    guard.watch_process(proc.pid)
    if ctx.get_start_method() == "forkserver":  # its socket's folder, left by a killed process
        guard.watch_folder(multiprocessing.util.get_temp_dir())
    timed_out, finished_at = False, None
    try:
        while proc.is_alive():
            proc.join(0.5)
            now = time.perf_counter()
            if info_path.exists():
                # the result is on disk; a child stuck in shutdown (e.g. a method's idle worker
                # pool) gets a grace period, then is stopped
                finished_at = finished_at or now
                if now - finished_at > _EXIT_GRACE_SECONDS:
                    log.warning(
                        "%s: inference process did not exit after writing its result; stopping it",
                        spec,
                    )
                    break
            elif timeout is not None and now - start > timeout:
                timed_out = True
                break
    finally:
        _stop(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)
        guard.forget_process(proc.pid)
        guard.forget_folder(tmpdir)
    if timed_out:
        info = {
            "status": "failed",
            "error": f"TimeoutError: exceeded the time limit of {timeout:g} s",
        }
    else:
        info = read_json(info_path) or {
            "status": "failed",
            "error": f"the inference process died with exit code {proc.exitcode} (out of memory?)",
        }
    info["wall_seconds"] = time.perf_counter() - start
    return info
