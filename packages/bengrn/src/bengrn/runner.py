"""Run any set of methods on any set of tasks, resumably, and store everything on disk.

For each task unit the expression set is written once to ``<out>/inputs/<id>.h5ad``, where ``id``
is the unit's :meth:`~bengrn.tasks.Task.expression_id` (units of different tasks built on the same
expression set, e.g. McCalla hESC, literature and enrichment, share it and share the inferred
networks when the method's parameters, candidate regulators included, are the same).
For each method x expression set, inference runs in a **separate process** (a forkserver child: a method
that crashes, hangs past ``timeout`` or exhausts memory cannot take the benchmark down), which
writes the network to ``<out>/networks/<id>/<method>.zarr`` (GRnnData) and its wall time,
peak memory (the child's peak RSS, which includes the ~100-200 MB of imported libraries) and
parameters to ``<method>.json`` beside it. The network is then scored and the metrics, PR curves
and status go to ``<out>/runs/<task>/<unit>/<method>.json``. A failed method (an exception,
wrong genes, NaN scores, a time limit) is recorded with its error; the others still run. A
network with no non-zero edge, or with the same score on every edge (in the network or within a
task's edge universe), is scored but recorded with status ``degenerate`` (and the reason), not
``ok``: no metric can tell it from a random guess.

A time limit stops the inference process **and everything it started**: the child runs in its
own session and its whole process group is killed; its temporary folder (the ``TMPDIR`` of the
child, holding e.g. a ``cmd:`` method's input file) is removed. A cached network that cannot be
read back (a corrupted or half-deleted store) is inferred again, once, with a warning.

Every file is written atomically through :mod:`grnndata.atomic` (a temporary sibling, then an
atomic replace), so a killed benchmark leaves each file either complete or absent. The results
folder is checked before anything is computed: it must be new, empty or a bengrn results folder
(one holding ``runs/``); a file, or a folder of other files, is refused with
:class:`ResultsFolderError`.

Reruns skip every (method, task, unit) whose run file says ``ok`` (or ``degenerate``) for the same
method spec and parameters, unless ``force=True`` (changed parameters are run again; a changed
method *code* is not detected: use ``force``); with the same seeds they give identical networks.
:func:`bengrn.report.write_report` turns the run files into tables and figures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import resource
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bengrn.methods import accepts, check_params, resolve_method
from bengrn.tasks import Task, get_task
from grnndata.atomic import atomic_path, write_json

__all__ = [
    "DONE_STATUSES",
    "ParameterError",
    "ResultsFolderError",
    "check_results_folder",
    "run_benchmark",
    "safe_name",
]

log = logging.getLogger(__name__)

_CURVE_POINTS = 200
_EXIT_GRACE_SECONDS = 15
_TERM_GRACE_SECONDS = 5

#: Statuses of a finished run that a rerun skips.
DONE_STATUSES = ("ok", "degenerate")


class ParameterError(ValueError):
    """Parameters for a method that is not run, or that the method does not take."""


class ResultsFolderError(ValueError):
    """The results folder is a file, or a folder that is not a bengrn results folder."""


def check_results_folder(out: str | os.PathLike) -> Path:
    """Check, before computing, that ``out`` can hold a benchmark's results; returns it.

    Accepted: a path that does not exist (its parent must be a folder), an empty folder, or a
    folder holding ``runs/`` (a results folder of an earlier run). Refused with
    :class:`ResultsFolderError`: a file, or a folder holding other things (the run would mix its
    ``results.csv``, ``figures/``, ... with them).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ResultsFolderError(f"--out {str(out)!r} is a file; expected a results folder")
    if out.is_dir() and not (out / "runs").is_dir() and any(out.iterdir()):
        found = sorted(p.name for p in out.iterdir())[:5]
        raise ResultsFolderError(
            f"--out {str(out)!r} is a folder of other files ({', '.join(found)}, ...), not a "
            "bengrn results folder (no runs/ inside); choose a new or empty folder"
        )
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ResultsFolderError(f"cannot create --out {str(out)!r}: {str(parent)!r} is a file")
    return out


def safe_name(name: str) -> str:
    """A file-name-safe version of a method / task / unit name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed"


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Atomically write a run / info file inside the results folder (which the runner owns, so
    an unreadable file of ours there is replaced)."""
    write_json(path, payload, indent=1, default=_json_default, overwrite=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _check_result(result: Any, genes: pd.Index) -> None:
    """Raise a specific error when a method's output is not a network over the input's genes."""
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


def _infer_child(
    spec: str,
    params: dict[str, Any],
    input_path: str,
    zarr_path: str,
    info_path: str,
    tmpdir: str,
    benchmark_pid: int,
    scheduler: str | None = None,
) -> None:
    """Forkserver child: infer, check, write the network and an info file (never raises).

    The child leads its own session (the parent kills the whole group on a time limit), and a
    SIGTERM unwinds it like an exception, so a method's ``finally`` blocks (e.g. an external
    command stopping its program) run before it exits.
    """
    os.setsid()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _watch_benchmark(benchmark_pid, _pid_start(benchmark_pid))
    os.environ["TMPDIR"] = tempfile.tempdir = tmpdir  # removed by the parent afterwards
    logging.basicConfig(level=logging.WARNING)
    info: dict[str, Any] = {"status": "failed"}
    try:
        import grnndata

        adata = ad.read_h5ad(input_path)
        _, fn = resolve_method(spec)
        with contextlib.ExitStack() as stack:
            if scheduler is not None:  # a method that takes client= runs on this dask cluster
                from bengrn.methods._dask import dask_client

                params = {**params, "client": stack.enter_context(dask_client(scheduler))}
            start = time.perf_counter()
            result = fn(adata, **params)
            info["infer_seconds"] = time.perf_counter() - start
        _check_result(result, adata.var_names)
        if not isinstance(result, grnndata.GRNAnnData):
            result = grnndata.GRNAnnData.from_adata(result)
        result.write_zarr(zarr_path, overwrite=True)  # the runner's own networks/ folder
        info["n_edges"] = int(result.grn.nnz)
        info["status"] = "ok"
    except BaseException as err:  # noqa: BLE001 - every failure is reported, not raised
        info["error"] = f"{type(err).__name__}: {err}"
        info["traceback"] = traceback.format_exc()[-4000:]
    info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _write_json(Path(info_path), info)


def _pid_start(pid: int) -> str | None:
    """Start time of process ``pid`` (Linux ``/proc``), ``None`` when it no longer runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _watch_benchmark(benchmark_pid: int, started: str | None, interval: float = 0.5) -> None:
    """Stop this inference process (SIGTERM, so its cleanup runs) when the benchmark process that
    started it is gone, e.g. SIGKILLed: no inference keeps running after a killed benchmark."""
    import threading

    def watch() -> None:
        while _pid_start(benchmark_pid) == started:
            time.sleep(interval)
        log.warning("the benchmark process %d is gone; stopping this inference", benchmark_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(_TERM_GRACE_SECONDS)
        os.killpg(os.getpid(), signal.SIGKILL)

    if started is not None:
        threading.Thread(target=watch, name="bengrn-watch-benchmark", daemon=True).start()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def _context() -> Any:
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["bengrn.runner", "bengrn.methods", "grnndata"])
    return ctx


def _kill_group(proc: Any) -> None:
    """Stop an inference child and every process of its group: SIGTERM (the child cleans up),
    then SIGKILL to the whole group after a grace period."""
    if proc.is_alive():
        proc.terminate()
        proc.join(_TERM_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the child is the group's leader (os.setsid)
    proc.join(5)


def _infer(
    spec: str,
    params: dict[str, Any],
    input_path: Path,
    zarr_path: Path,
    timeout: float | None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    info_path = zarr_path.with_suffix(".json")
    info_path.unlink(missing_ok=True)
    ctx = _context()
    start = time.perf_counter()
    tmpdir = Path(tempfile.mkdtemp(prefix="bengrn-infer-"))  # the child's TMPDIR
    proc = ctx.Process(
        target=_infer_child,
        args=(
            spec,
            params,
            str(input_path),
            str(zarr_path),
            str(info_path),
            str(tmpdir),
            os.getpid(),
            scheduler,
        ),
    )
    proc.start()
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
        _kill_group(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)
    if timed_out:
        info = {
            "status": "failed",
            "error": f"TimeoutError: exceeded the time limit of {timeout:g} s",
        }
    else:
        info = _read_json(info_path) or {
            "status": "failed",
            "error": f"the inference process died with exit code {proc.exitcode} (out of memory?)",
        }
    info["wall_seconds"] = time.perf_counter() - start
    return info


def _parse_params_for_record(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as recorded: long lists (candidate regulators) become their size and digest."""
    out = {}
    for key, value in params.items():
        if isinstance(value, list | tuple) and len(value) > 10:
            digest = hashlib.sha1("\n".join(map(str, value)).encode()).hexdigest()[:12]
            out[key] = f"<{len(value)} items, sha1 {digest}>"
        else:
            out[key] = value
    return out


def _expression_path(
    out: Path, task: Task, unit: str, adata: ad.AnnData | None
) -> tuple[Path, str]:
    """The h5ad the methods read for this unit (written once) and its key."""
    if adata is not None:
        key = "user"
        path = out / "inputs" / "user.h5ad"
        source = adata
    else:
        key = "/".join(safe_name(part) for part in task.expression_id(unit).split("/"))
        path = out / "inputs" / f"{key}.h5ad"
        source = None
    if not path.exists():
        data = source if source is not None else task.expression(unit)
        with atomic_path(path, "h5ad") as tmp:
            ad.AnnData(
                X=data.X, obs=pd.DataFrame(index=data.obs_names), var=data.var.copy()
            ).write_h5ad(tmp)
    return path, key


def run_benchmark(
    methods: Sequence[str],
    tasks: Sequence[str | Task],
    out: str | os.PathLike,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    task_options: Mapping[str, Mapping[str, Any]] | None = None,
    adata: ad.AnnData | None = None,
    timeout: float | None = None,
    force: bool = False,
    report: bool = True,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Infer with every method on every task unit, score, store; return the results table.

    Parameters
    ----------
    methods
        Method references (see :mod:`bengrn.methods`): names, ``module:function``, ``cmd:...``,
        each optionally prefixed ``display_name=``.
    tasks
        Task names (see :mod:`bengrn.tasks`) or :class:`~bengrn.tasks.Task` objects.
    out
        Results folder (created): new, empty, or the results folder of an earlier run
        (:func:`check_results_folder`; checked before anything is computed).
    params
        Per-method parameters, keyed by display name: ``{"genie3": {"n_trees": 50}}``.
    task_options
        Per-task constructor options, keyed by task name: ``{"mccalla-hesc": {"n_genes": 500}}``.
    adata
        Infer on this expression set (cells x genes) instead of each task's own.
    timeout
        Seconds allowed to each inference; past it the method is recorded as failed.
    force
        Redo (method, task, unit) triples already finished.
    report
        Write tables and figures (:func:`bengrn.report.write_report`) at the end.
    scheduler
        Run the methods that take ``client=`` (GENIE3, GRNBoost2) on dask.distributed: a
        scheduler address (``tcp://HOST:PORT``) or ``local:N`` (a ``LocalCluster`` of ``N``
        worker processes, started per inference). Needs the extra ``bengrn[dask]``.

    Returns
    -------
    The tidy results table (one row per method x task x unit x variant), as
    :func:`bengrn.report.collect_results` builds it.
    """
    from bengrn.report import collect_results, write_report

    out = check_results_folder(out)
    if scheduler is not None:
        from bengrn.methods._dask import _distributed

        _distributed()  # a missing extra fails here, before anything is computed
    params = {k: dict(v) for k, v in (params or {}).items()}
    task_options = task_options or {}
    resolved = []
    for spec in methods:
        try:
            name, fn = resolve_method(spec)
        except Exception as err:  # noqa: BLE001 - an unusable method is a recorded failure
            name, fn = safe_name(spec.split("=")[0].split(":")[-1]), err
        resolved.append((spec, name, fn))
    _check_method_params(resolved, params)
    task_objs = [get_task(t, **task_options.get(t, {})) if isinstance(t, str) else t for t in tasks]
    (out / "runs").mkdir(parents=True, exist_ok=True)  # marks the folder as a results folder
    pairs = [(task, unit) for task in task_objs for unit in task.units()]
    bar = tqdm(total=len(pairs) * len(resolved), desc="benchmark", unit="run")
    for task, unit in pairs:
        for spec, name, fn in resolved:
            run_path = (
                out / "runs" / safe_name(task.name) / safe_name(unit) / f"{safe_name(name)}.json"
            )
            previous = _read_json(run_path)
            wanted = {"spec": spec, "params": _parse_params_for_record(params.get(name, {}))}
            if task.fingerprint():
                wanted["task"] = task.fingerprint()
            requested = json.loads(json.dumps(wanted, default=str))
            if (
                not force
                and previous is not None
                and previous.get("status") in DONE_STATUSES
                and previous.get("requested") == requested
            ):
                log.info("skip %s on %s/%s (already done)", name, task.name, unit)
                bar.update()
                continue
            record: dict[str, Any] = {
                "method": name,
                "spec": spec,
                "task": task.name,
                "unit": unit,
                "status": "failed",
                "requested": requested,
            }
            try:
                if isinstance(fn, Exception):
                    raise fn
                record.update(
                    _run_one(
                        out,
                        task,
                        unit,
                        spec,
                        name,
                        fn,
                        params.get(name, {}),
                        adata,
                        timeout,
                        force,
                        scheduler,
                    )  # fmt: skip
                )
            except Exception as err:  # noqa: BLE001 - recorded in the table, the others still run
                record["error"] = f"{type(err).__name__}: {err}"
                log.warning("%s on %s/%s failed: %s", name, task.name, unit, record["error"])
            _write_json(run_path, record)
            bar.update()
    bar.close()
    if report:
        write_report(out)
    return collect_results(out)


def _degenerate_reason(network: Any) -> str | None:
    """Why a network cannot be told from a random guess (no non-zero edge, or one score for
    every edge), or ``None``. Self-loops are ignored."""
    import scipy.sparse as sp

    matrix = sp.coo_matrix(network.matrix)
    off = matrix.row != matrix.col
    values = np.abs(matrix.data[off])
    values = values[values != 0]
    if len(values) == 0:
        return "the network has no non-zero edge"
    n = matrix.shape[0]
    if len(values) == n * (n - 1) and values.min() == values.max():
        return f"every edge has the same score ({values[0]:g})"
    return None


def _read_network(
    zarr_path: Path, infer: Any, reused: bool, name: str
) -> tuple[Any, dict[str, Any] | None]:
    """Read a stored network; a cached one that fails to read is inferred again once.

    Returns the network and, when it was inferred again, the new info record.
    """
    import grnndata

    try:
        return grnndata.read_zarr(zarr_path), None
    except Exception as err:  # noqa: BLE001 - any unreadable cache is recomputed
        if not reused:
            raise
        log.warning(
            "cached network %s cannot be read (%s: %s); inferring %s again",
            zarr_path,
            type(err).__name__,
            err,
            name,
        )
    info = infer()
    if info.get("status") != "ok":
        return None, info
    return grnndata.read_zarr(zarr_path), info


def _check_method_params(resolved: list[tuple[str, str, Any]], params: dict[str, Any]) -> None:
    """Before computing: every parameter set names a method that runs and that takes it."""
    names = [name for _, name, _ in resolved]
    stray = sorted(set(params) - set(names))
    if stray:
        raise ParameterError(
            f"parameters given for {', '.join(map(repr, stray))}, which is not among the methods "
            f"run ({', '.join(names)}); use the method's display name"
        )
    for _, name, fn in resolved:
        if not isinstance(fn, Exception):
            try:
                check_params(name, fn, params.get(name, {}))
            except TypeError as err:
                raise ParameterError(str(err)) from None


def _run_one(
    out: Path,
    task: Task,
    unit: str,
    spec: str,
    name: str,
    fn: Any,
    method_params: dict[str, Any],
    adata: ad.AnnData | None,
    timeout: float | None,
    force: bool,
    scheduler: str | None = None,
) -> dict[str, Any]:
    input_path, key = _expression_path(out, task, unit, adata)
    call_params = dict(method_params)
    if "regulators" not in call_params and accepts(fn, "regulators"):
        regulators = task.regulators(unit) if adata is None else None
        if regulators is not None:
            call_params["regulators"] = list(regulators)
    zarr_path = out / "networks" / key / f"{safe_name(name)}.zarr"
    info_path = zarr_path.with_suffix(".json")
    info = _read_json(info_path)
    recorded_params = _parse_params_for_record(call_params)
    reuse = (
        not force
        and info is not None
        and info.get("status") == "ok"
        and zarr_path.exists()
        and info.get("params") == recorded_params
    )

    def infer() -> dict[str, Any]:
        log.info("infer %s on %s", name, key)
        on_dask = scheduler if accepts(fn, "client") and "client" not in call_params else None
        new_info = _infer(spec, call_params, input_path, zarr_path, timeout, on_dask)
        new_info["params"] = recorded_params
        _write_json(info_path, new_info)
        return new_info

    if not reuse:
        info = infer()
    grn = None
    if info.get("status") == "ok":
        grn, again = _read_network(zarr_path, infer, reuse, name)
        info = again or info
    record = {
        "params": info.get("params"),
        "infer_seconds": info.get("infer_seconds"),
        "wall_seconds": info.get("wall_seconds"),
        "peak_rss_mb": info.get("peak_rss_mb"),
        "network": str(zarr_path.relative_to(out)),
    }
    if info.get("status") != "ok":
        record["error"] = info.get("error", "inference failed")
        return record
    result = task.run(grn, unit=unit)
    variants = []
    for v in result.variants:
        curve = v.curve
        if curve is not None and len(curve) > _CURVE_POINTS:
            keep = np.unique(np.linspace(0, len(curve) - 1, _CURVE_POINTS).round().astype(int))
            curve = curve.iloc[keep]
        variants.append(
            {
                "variant": v.variant,
                "metrics": {k: val for k, val in v.metrics.items() if np.isscalar(val)},
                "n_genes_overlap": v.n_genes_overlap,
                "n_true_edges": v.n_true_edges,
                "universe": v.universe,
                "curve": None if curve is None else curve.to_dict(orient="list"),
            }
        )
    from grnndata import as_network

    reason = _degenerate_reason(as_network(grn, name="the method's network"))
    if reason is None:
        constant = [v["variant"] for v in variants if v["metrics"].get("constant_scores")]
        if constant:
            reason = (
                "every edge of the task's edge universe has the same score (variants: "
                + ", ".join(constant)
                + ")"
            )
    record.update(
        status="ok" if reason is None else "degenerate",
        variants=variants,
        score_seconds=result.timings.get("total"),
    )
    if reason is not None:
        record["error"] = f"degenerate: {reason}"
        log.warning("%s on %s/%s is degenerate: %s", name, task.name, unit, reason)
    return record
