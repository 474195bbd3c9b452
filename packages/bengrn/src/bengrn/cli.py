"""The ``bengrn`` command line: ``bengrn run``, ``bengrn report``, ``bengrn list``.

Examples::

    bengrn run --method pearson --method genie3 --method random \\
        --task mccalla-hesc --task beeline-synthetic --out results/
    bengrn run --method mytool=cmd:"python infer.py {input} {output}" --task beeline-curated --out r/
    bengrn run --method my_pkg.grn:infer --param infer:alpha=0.5 --task literature --out r/
    bengrn report results/

A user mistake (unknown task or method, a misspelt ``--param`` key, an output path that is a file
or a folder of other files, a missing report folder or input file) exits with status 2 and one
line on stderr, checked before anything is computed; other failures print one line and exit 1.
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["UsageError", "main"]

log = logging.getLogger("bengrn")


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _keyed_options(items: Sequence[str], flag: str) -> dict[str, dict[str, Any]]:
    """Parse ``NAME:KEY=VALUE`` items into ``{NAME: {KEY: VALUE}}`` (VALUE as a Python literal)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, colon, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not (colon and eq and name and key):
            raise UsageError(
                f"{flag} expects NAME:KEY=VALUE (e.g. genie3:n_trees=50); got {item!r}"
            )
        out.setdefault(name, {})[key] = _value(value)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bengrn", description="Benchmark gene-network inference.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="infer with methods on tasks, score, write tables and figures")
    run.add_argument(
        "--method", action="append", required=True, help="name, module:function or cmd:..."
    )
    run.add_argument("--task", action="append", required=True, help="task name (see `bengrn list`)")
    run.add_argument("--out", required=True, help="results folder")
    run.add_argument("--param", action="append", default=[], help="METHOD:KEY=VALUE")
    run.add_argument("--task-option", action="append", default=[], help="TASK:KEY=VALUE")
    run.add_argument("--input", help="h5ad expression set to infer on instead of each task's own")
    run.add_argument("--timeout", type=float, default=None, help="seconds allowed per inference")
    run.add_argument("--force", action="store_true", help="redo finished (method, task) pairs")
    run.add_argument("--data-dir", help="data folder (sets SCPRINT_DATA_DIR)")
    run.add_argument(
        "--scheduler",
        help="run GENIE3/GRNBoost2 on dask.distributed: a scheduler address (tcp://HOST:PORT) or "
        "local:N for N local worker processes (needs bengrn[dask])",
    )
    report = sub.add_parser("report", help="regenerate tables and figures of a results folder")
    report.add_argument("out", help="results folder")
    sub.add_parser("list", help="list methods, tasks and datasets")
    return parser


def _tasks(names: Sequence[str], options: dict[str, dict[str, Any]]) -> list[Any]:
    """The task objects, or a :class:`UsageError` naming the unknown task / option."""
    from bengrn.tasks import TASKS, get_task

    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise UsageError(f"unknown task {unknown[0]!r}; known tasks: {', '.join(TASKS)}")
    stray = sorted(set(options) - set(names))
    if stray:
        raise UsageError(f"--task-option for {stray[0]!r}, which is not among the --task values")
    tasks = []
    for name in names:
        try:
            tasks.append(get_task(name, **options.get(name, {})))
        except TypeError as err:
            factory = TASKS[name]
            target = factory if inspect.isclass(factory) else None
            known = (
                ", ".join(list(inspect.signature(target).parameters)) if target else "see the docs"
            )
            raise UsageError(f"--task-option for {name!r}: {err} (options: {known})") from None
        except ValueError as err:
            raise UsageError(f"--task-option for {name!r}: {err}") from None
    return tasks


def _methods(specs: Sequence[str]) -> None:
    """Every method reference resolves, or a :class:`UsageError` says why not."""
    from bengrn.methods import MethodUnavailableError, resolve_method

    for spec in specs:
        try:
            resolve_method(spec)
        except MethodUnavailableError as err:
            raise UsageError(str(err)) from None


def _run(args: argparse.Namespace) -> int:
    from bengrn.runner import ParameterError, ResultsFolderError, check_results_folder

    if args.command == "list":
        from bengrn.datasets import REGISTRY
        from bengrn.methods import available_methods
        from bengrn.tasks import TASKS

        lines = ["methods:"] + [f"  {k}: {v}" for k, v in available_methods().items()]
        lines += ["tasks:"] + [f"  {k}" for k in TASKS]
        lines += ["datasets:"] + [f"  {k}: {e.url}" for k, e in REGISTRY.items()]
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    if args.command == "report":
        from bengrn.report import write_report

        if not (Path(args.out) / "runs").is_dir():
            raise UsageError(
                f"{args.out!r} is not a bengrn results folder (no runs/ inside); "
                f"run `bengrn run ... --out {args.out}` first"
            )
        paths = write_report(args.out)
        sys.stdout.write(
            f"wrote {paths['csv']}, {paths['markdown']} and {len(paths['figures'])} figures\n"
        )
        return 0
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            raise UsageError(f"--data-dir {args.data_dir!r} is not a folder")
        os.environ["SCPRINT_DATA_DIR"] = args.data_dir
    params = _keyed_options(args.param, "--param")
    task_options = _keyed_options(args.task_option, "--task-option")
    if args.input and not Path(args.input).is_file():
        raise UsageError(f"--input {args.input!r} does not exist (expected an .h5ad file)")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds; got {args.timeout:g}")
    try:
        check_results_folder(args.out)
    except ResultsFolderError as err:
        raise UsageError(str(err)) from None
    if args.scheduler is not None:
        if args.scheduler.startswith("local:") and not (
            args.scheduler[6:].isdigit() and int(args.scheduler[6:]) >= 1
        ):
            raise UsageError(
                f"--scheduler local:N needs a worker count N >= 1; got {args.scheduler!r}"
            )
        try:
            from bengrn.methods._dask import _distributed

            _distributed()
        except ImportError as err:
            raise UsageError(f"--scheduler: {err}") from None
    _methods(args.method)
    tasks = _tasks(args.task, task_options)
    import anndata as ad

    from bengrn.runner import run_benchmark

    adata = ad.read_h5ad(args.input) if args.input else None
    try:
        frame = run_benchmark(
            args.method,
            tasks,
            args.out,
            params=params,
            adata=adata,
            timeout=args.timeout,
            force=args.force,
            scheduler=args.scheduler,
        )
    except ParameterError as err:
        raise UsageError(f"--param: {err}") from None
    failed = frame[~frame["status"].isin(["ok", "degenerate"])] if len(frame) else frame
    degenerate = frame[frame["status"] == "degenerate"] if len(frame) else frame
    summary = [
        f"{len(frame)} result rows in {args.out}/results.csv ({len(failed)} failed, "
        f"{len(degenerate)} degenerate)"
    ]
    for label, rows in (("FAILED", failed), ("DEGENERATE", degenerate)):
        for _, row in rows.drop_duplicates(["method", "task", "unit"]).iterrows():
            summary.append(
                f"  {label} {row['method']} on {row['task']}/{row['unit']}: {row['error']}"
            )
    sys.stdout.write("\n".join(summary) + "\n")
    return 1 if len(failed) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 when any run failed or an unexpected
    error occurred, 2 for a mistake in the command line)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except UsageError as err:
        if args.debug:
            raise
        sys.stderr.write(f"bengrn: error: {err}\n")
        return 2
    except Exception as err:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        sys.stderr.write(
            f"bengrn: error: {type(err).__name__}: {err} (rerun with --debug for the traceback)\n"
        )
        return 1
