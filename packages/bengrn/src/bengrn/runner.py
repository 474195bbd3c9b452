"""Run any set of methods on any set of tasks, resumably, and store everything on disk.

For each task unit the expression set is written once to ``<out>/inputs/<id>.h5ad``, where ``id``
is the unit's :meth:`~bengrn.tasks.Task.expression_id` (units of different tasks built on the same
expression set, e.g. McCalla hESC, literature and enrichment, share it and share the inferred
networks when the method's parameters, candidate regulators included, are the same).
For each method x expression set, inference runs in a **separate process**
(:mod:`bengrn.isolation`: a method that crashes, hangs past ``timeout`` or exhausts memory cannot
take the benchmark down, and everything it started is stopped with it), which writes the network
to ``<out>/networks/<id>/<method>.zarr`` (GRnnData) and its wall time, peak memory and parameters
to ``<method>.json`` beside it. The network is then scored and the run recorded in
``<out>/runs/<task>/<unit>/<method>.json`` (:mod:`bengrn.records`: metrics, PR curves, status).

**One universe per expression set.** Every network is scored over the task's whole edge universe
on the expression set the method was given: a network over only some of its genes is extended
to all of them, the missing genes' edges scored 0 ("no prediction", ranked below every predicted
edge), so methods are compared on the same edges. The run records the network's ``coverage``
(``genes_covered``, the fraction of the expression set's genes it has) and the report shows it;
each variant also counts the truth's edges left out because a gene is outside the expression set
(``n_truth_edges_outside_genes``).

Inputs are checked before any method runs: the results folder (new, empty or a bengrn results
folder; :class:`ResultsFolderError` otherwise), every method's parameter names and types
(:class:`ParameterError`), and an expression set given by the user (``adata=``; a custom task's
file is checked when the task is built): at least one cell, two genes, finite counts >= 0
(:class:`bengrn.expression.ExpressionError`).

Reruns skip every (method, task, unit) whose run file says ``ok`` (or ``degenerate``) for the same
method spec and parameters, unless ``force=True`` (changed parameters are run again; a changed
method *code* is not detected: use ``force``); with the same seeds they give identical networks.
A cached network that cannot be read back is inferred again, once, with a warning.
:func:`bengrn.report.write_report` turns the run files into tables and figures.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd
from tqdm.auto import tqdm

from bengrn.expression import check_expression
from bengrn.isolation import infer_isolated
from bengrn.methods import ExternalCommand, NetworkFile, accepts, check_params, resolve_method
from bengrn.records import (
    DONE_STATUSES,
    as_requested,
    coverage,
    params_for_record,
    read_json,
    safe_name,
    status_of,
    variant_records,
    write_record,
)
from bengrn.tasks import Task, get_task
from grnndata import Network, as_network
from grnndata.atomic import atomic_path

__all__ = [
    "ParameterError",
    "ResultsFolderError",
    "check_results_folder",
    "run_benchmark",
]

log = logging.getLogger(__name__)

#: Recorded in each run's ``requested``: runs scored under another convention are redone.
_UNIVERSE = "the expression set's genes; genes a network lacks score 0"


class ParameterError(ValueError):
    """Parameters for a method that is not run, that the method does not take, or of a type its
    annotations refuse."""


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


def _expression_path(
    out: Path, task: Task, unit: str, adata: ad.AnnData | None
) -> tuple[Path, str]:
    """The h5ad the methods read for this unit (written once) and its key."""
    if adata is not None:  # a user's set: named by its content, never mistaken for another one
        digest = hashlib.sha1()
        for part in (adata.obs_names, adata.var_names):
            digest.update(pd.util.hash_pandas_object(pd.Index(part.astype(str))).to_numpy())
        key = f"user-{adata.n_obs}x{adata.n_vars}-{digest.hexdigest()[:12]}"
        path = out / "inputs" / f"{key}.h5ad"
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
    key: str = "GRN",
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
    key
        The ``varp`` key of the network in AnnData files read by ``cmd:`` and ``file:`` methods
        (default ``"GRN"``; another key reads a network a tool stored in place in the file).

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
    if adata is not None:
        check_expression(adata, "the expression set given to run_benchmark (adata=)")
    params = {k: dict(v) for k, v in (params or {}).items()}
    task_options = task_options or {}
    resolved = []
    for spec in methods:
        try:
            name, fn = resolve_method(spec, key=key)
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
            previous = read_json(run_path)
            wanted = {
                "spec": spec,
                "params": params_for_record(params.get(name, {})),
                "universe": _UNIVERSE,
            }
            if task.fingerprint():
                wanted["task"] = task.fingerprint()
            if key != "GRN" and _reads_files(fn):
                wanted["key"] = key
            requested = as_requested(wanted)
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
                run = _Run(out, task, unit, spec, name, fn, timeout, force, scheduler, key)
                record.update(run.execute(params.get(name, {}), adata))
            except Exception as err:  # noqa: BLE001 - recorded in the table, the others still run
                record["error"] = f"{type(err).__name__}: {err}"
                log.warning("%s on %s/%s failed: %s", name, task.name, unit, record["error"])
            write_record(run_path, record)
            bar.update()
    bar.close()
    if report:
        write_report(out)
    return collect_results(out)


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


@dataclass
class _Run:
    """One method on one task unit: infer (or reuse the cached network), then score."""

    out: Path
    task: Task
    unit: str
    spec: str
    name: str
    fn: Any
    timeout: float | None
    force: bool
    scheduler: str | None
    key: str

    def execute(self, method_params: dict[str, Any], adata: ad.AnnData | None) -> dict[str, Any]:
        """The run record's fields: parameters, timings, the network's path and coverage, and
        the scored variants with the status (or the error)."""
        input_path, set_key = _expression_path(self.out, self.task, self.unit, adata)
        call_params = dict(method_params)
        if "regulators" not in call_params and accepts(self.fn, "regulators"):
            regulators = self.task.regulators(self.unit) if adata is None else None
            if regulators is not None:
                call_params["regulators"] = list(regulators)
        zarr_path = self.out / "networks" / set_key / f"{safe_name(self.name)}.zarr"
        info_path = zarr_path.with_suffix(".json")
        info = read_json(info_path)
        recorded_params = params_for_record(call_params)
        reuse = (
            not self.force
            and info is not None
            and info.get("status") == "ok"
            and zarr_path.exists()
            and info.get("params") == recorded_params
            and (not _reads_files(self.fn) or info.get("key", "GRN") == self.key)
        )

        def infer() -> dict[str, Any]:
            log.info("infer %s on %s", self.name, set_key)
            takes_client = accepts(self.fn, "client") and "client" not in call_params
            new_info = infer_isolated(
                self.spec,
                call_params,
                input_path,
                zarr_path,
                self.timeout,
                self.scheduler if takes_client else None,
                self.key,
            )
            new_info["params"] = recorded_params
            new_info["key"] = self.key
            write_record(info_path, new_info)
            return new_info

        if not reuse:
            info = infer()
        grn = None
        if info.get("status") == "ok":
            grn, again = _read_network(zarr_path, infer, reuse, self.name)
            info = again or info
        record: dict[str, Any] = {
            "params": info.get("params"),
            "infer_seconds": info.get("infer_seconds"),
            "wall_seconds": info.get("wall_seconds"),
            "peak_rss_mb": info.get("peak_rss_mb"),
            "network": str(zarr_path.relative_to(self.out)),
        }
        if info.get("status") != "ok":
            record["error"] = info.get("error", "inference failed")
            return record
        network, record["coverage"] = _over_expression_set(grn, input_path)
        if record["coverage"]["n_genes_missing"]:
            log.warning(
                "%s on %s/%s: the network lacks %d of the expression set's genes (e.g. %s); "
                "their edges are scored as no prediction",
                self.name,
                self.task.name,
                self.unit,
                record["coverage"]["n_genes_missing"],
                ", ".join(record["coverage"]["missing_examples"]),
            )
        result = self.task.run(network, unit=self.unit)
        variants = variant_records(result.variants)
        status, reason = status_of(network, variants)
        record.update(status=status, variants=variants, score_seconds=result.timings.get("total"))
        if reason is not None:
            record["error"] = f"degenerate: {reason}"
            log.warning(
                "%s on %s/%s is degenerate: %s", self.name, self.task.name, self.unit, reason
            )
        return record


def _reads_files(fn: Any) -> bool:
    """Whether the method reads its network from a file, where ``key`` applies."""
    return isinstance(fn, ExternalCommand | NetworkFile)


def _over_expression_set(grn: Any, input_path: Path) -> tuple[Network, dict[str, Any]]:
    """The network over every gene of the expression set at ``input_path`` (genes it lacks get
    no edge) and its :func:`~bengrn.records.coverage`."""
    backed = ad.read_h5ad(input_path, backed="r")
    try:
        genes = pd.Index(backed.var_names.astype(str))
    finally:
        backed.file.close()
    network = as_network(grn, name="the method's network")
    covered = coverage(network.genes, genes)
    if not network.genes.equals(genes):
        network = as_network(grn, genes, name="the method's network")
    return network, covered
