"""The ``bengrn`` command line: ``bengrn run``, ``bengrn report``, ``bengrn list``.

Examples::

    bengrn run --method pearson --method genie3 --method random \\
        --task mccalla-hesc --task beeline-synthetic --out results/ --param genie3.n_trees=50
    bengrn run --method mytool=cmd:"python infer.py {input} {output}" --task beeline-curated --out r/
    bengrn run --method my_pkg.grn:infer --param alpha=0.5 --task literature --out r/
    bengrn run --method pearson --task custom --truth edges.tsv --expression cells.h5ad --out r/
    bengrn run --method pearson --task my_task.yaml --out r/
    bengrn report results/
    bengrn -v list

The conventions are those of :mod:`grnndata.cli`, shared by the project's commands: ``-v/--verbose``,
``-q/--quiet`` and ``--debug`` before or after the subcommand, ``--out``, ``--data-dir``,
``--param NAME=VALUE`` (``METHOD.NAME=VALUE`` when several methods run; the old
``METHOD:NAME=VALUE`` is still read, with a deprecation warning). A user mistake (unknown task or
method, a misspelt ``--param`` key, an output path that is a file or a folder of other files, a
missing report folder or input file) exits with status 2 and one line on stderr, checked before
anything is computed; other failures print one line and exit 1. ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bengrn._signature import check_call
from bengrn.expression import ExpressionError, check_expression_file
from grnndata.cli import (
    CliParser,
    UsageError,
    add_common_options,
    add_data_dir_option,
    parse_params,
    run_cli,
    use_data_dir,
)

__all__ = ["UsageError", "build_parser", "main"]

log = logging.getLogger("bengrn")


def build_parser() -> CliParser:
    """The ``bengrn`` argument parser (every option documents itself)."""
    parser = CliParser(
        prog="bengrn",
        description="Benchmark gene-network inference methods on ground truths.",
        epilog="Run `bengrn COMMAND --help` for a command's options.",
    )
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="infer with methods on tasks, score, write tables and figures",
        description="Infer a network with every method on every task, score it, write reports.",
    )
    run.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="METHOD",
        help="a method: a name from `bengrn list` (built-in or plug-in), module:function, "
        "cmd:'PROGRAM {input} {output}' or file:NETWORK (an .h5ad/.zarr/edge table computed "
        "beforehand); NAME=... sets its display name; repeat for several",
    )
    run.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="TASK",
        help="a task name from `bengrn list`, `custom` (with --truth and --expression) or a YAML "
        "task file (truth, expression, name, regulators ...); repeat for several",
    )
    run.add_argument("--out", required=True, metavar="DIR", help="results folder (new or earlier)")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a method parameter, VALUE read as a Python literal; METHOD.NAME=VALUE when several "
        "methods run (e.g. genie3.n_trees=50); repeat for several",
    )
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a task option (e.g. n_genes=1000); TASK.NAME=VALUE when several tasks run "
        "(e.g. mccalla-hesc.n_genes=1000)",
    )
    run.add_argument(
        "--truth",
        metavar="EDGES",
        help="with --task custom: your ground truth, an edge table (.tsv, .csv, .parquet; "
        "columns regulator, target, or the first two)",
    )
    run.add_argument(
        "--expression",
        metavar="H5AD",
        help="with --task custom: the expression set (cells x genes, counts) methods infer from",
    )
    run.add_argument(
        "--input", metavar="H5AD", help="infer on this expression set instead of each task's own"
    )
    run.add_argument(
        "--key",
        default="GRN",
        metavar="KEY",
        help="varp key of the network in .h5ad/.zarr files read by file: methods and written by "
        "cmd: programs (default GRN; e.g. the key a tool used to store its network in place)",
    )
    run.add_argument("--timeout", type=float, default=None, help="seconds allowed per inference")
    run.add_argument("--force", action="store_true", help="redo finished (method, task) pairs")
    run.add_argument(
        "--scheduler",
        help="run GENIE3/GRNBoost2 on dask.distributed: a scheduler address (tcp://HOST:PORT) or "
        "local:N for N local worker processes (needs bengrn[dask])",
    )
    add_data_dir_option(run)
    add_common_options(run)
    report = sub.add_parser(
        "report",
        help="regenerate the tables and figures of a results folder",
        description="Rewrite results.csv, results.md and figures/ from a results folder's runs/.",
    )
    report.add_argument("results", nargs="?", help="results folder (as given to `bengrn run`)")
    report.add_argument("--out", metavar="DIR", help="results folder (instead of the argument)")
    add_common_options(report)
    listing = sub.add_parser(
        "list",
        help="list methods (and where each comes from), tasks and datasets",
        description="List the built-in and plug-in methods, the tasks and the registered files.",
    )
    add_common_options(listing)
    return parser


def _per_name(
    items: Sequence[str], flag: str, names: Sequence[str], what: str
) -> dict[str, dict[str, Any]]:
    """``--param`` / ``--task-option`` items into ``{name: {key: value}}``.

    ``KEY=VALUE`` goes to the only ``name``; ``NAME.KEY=VALUE`` names one of ``names`` (the
    longest that matches); the old ``NAME:KEY=VALUE`` is read as ``NAME.KEY=VALUE`` with a
    deprecation warning.
    """
    dotted = []
    for item in items:
        head, eq, value = item.partition("=")
        name, colon, key = head.partition(":")
        if eq and colon and name and key:
            log.warning(
                "%s %s is deprecated; write %s %s.%s=%s", flag, item, flag, name, key, value
            )
            item = f"{name}.{key}={value}"
        dotted.append(item)
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_params(dotted, flag).items():
        owners = sorted((n for n in names if key.startswith(f"{n}.")), key=len)
        if owners:
            name, key = owners[-1], key[len(owners[-1]) + 1 :]
        elif "." in key or not names:
            raise UsageError(
                f"{flag} {key}: {key.split('.')[0]!r} is not among the {what}s run "
                f"({', '.join(names) or 'none'}); write {flag} {what.upper()}.NAME=VALUE"
            )
        elif len(names) == 1:
            name = names[0]
        else:
            raise UsageError(
                f"{flag} {key}: {len(names)} {what}s are run ({', '.join(names)}); say which one, "
                f"e.g. {flag} {names[0]}.{key}=VALUE"
            )
        out.setdefault(name, {})[key] = value
    return out


def _custom_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--truth`` / ``--expression`` as options of the ``custom`` task (checked here)."""
    options = {}
    for flag, value in (("truth", args.truth), ("expression", args.expression)):
        if value is None:
            continue
        if "custom" not in args.task:
            raise UsageError(f"--{flag} is for --task custom, which is not among the --task values")
        if not Path(value).is_file():
            raise UsageError(f"--{flag} {value!r} does not exist")
        options[flag] = value
    return options


def _task_file(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or Path(value).is_file()


def _tasks(names: Sequence[str], options: dict[str, dict[str, Any]]) -> list[Any]:
    """The task objects, or a :class:`UsageError` naming the unknown task / option."""
    from bengrn.tasks import TASKS, CustomTask, TaskFileError, get_task

    tasks = []
    for name in names:
        if _task_file(name):
            try:
                tasks.append(CustomTask.from_file(name))
            except (OSError, TaskFileError) as err:
                raise UsageError(f"--task {name}: {err}") from None
            continue
        if name not in TASKS:
            raise UsageError(
                f"unknown task {name!r}; known tasks: {', '.join(TASKS)} (or a YAML task file)"
            )
        try:
            check_call(TASKS[name], options.get(name, {}), what=f"task {name!r}")
            tasks.append(get_task(name, **options.get(name, {})))
        except TypeError as err:
            raise UsageError(f"--task-option: {err}") from None
        except (ValueError, OSError) as err:
            flag = "--task custom" if name == "custom" else f"--task-option for {name!r}"
            raise UsageError(f"{flag}: {err}") from None
    return tasks


def _methods(specs: Sequence[str], key: str) -> list[str]:
    """The display names of the methods; a :class:`UsageError` says why one cannot be used."""
    from bengrn.methods import MethodUnavailableError, resolve_method

    names = []
    for spec in specs:
        try:
            names.append(resolve_method(spec, key=key)[0])
        except MethodUnavailableError as err:
            raise UsageError(str(err)) from None
    return names


def _list() -> int:
    from bengrn.datasets import REGISTRY
    from bengrn.methods import available_methods
    from bengrn.tasks import TASKS

    lines = ["methods:"] + [f"  {name}: {info}" for name, info in available_methods().items()]
    lines += ["tasks:"] + [f"  {name}" for name in TASKS]
    lines += ["  (or a YAML task file; see `bengrn run --help`)"]
    lines += ["datasets:"] + [f"  {name}: {entry.source}" for name, entry in REGISTRY.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _report(args: argparse.Namespace) -> int:
    from bengrn.report import write_report

    if args.results and args.out and Path(args.results) != Path(args.out):
        raise UsageError(
            f"give the results folder once (got {args.results!r} and --out {args.out!r})"
        )
    folder = args.out or args.results
    if folder is None:
        raise UsageError("bengrn report needs the results folder: bengrn report --out DIR")
    if not (Path(folder) / "runs").is_dir():
        raise UsageError(
            f"{folder!r} is not a bengrn results folder (no runs/ inside); "
            f"run `bengrn run ... --out {folder}` first"
        )
    paths = write_report(folder)
    sys.stdout.write(
        f"wrote {paths['csv']}, {paths['markdown']} and {len(paths['figures'])} figures\n"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from bengrn.runner import ParameterError, ResultsFolderError, check_results_folder

    use_data_dir(args.data_dir)
    names = _methods(args.method, args.key)
    params = _per_name(args.param, "--param", names, "method")
    task_names = [name for name in args.task if not _task_file(name)]
    task_options = _per_name(args.task_option, "--task-option", task_names, "task")
    custom = _custom_options(args)
    if custom:
        task_options["custom"] = {**custom, **task_options.get("custom", {})}
    if "custom" in args.task and not {"truth", "expression"} <= set(task_options.get("custom", {})):
        raise UsageError(
            "--task custom needs your truth and expression set: --truth EDGES.tsv --expression "
            "CELLS.h5ad (or a YAML task file: --task my_task.yaml)"
        )
    if args.input:
        if not Path(args.input).is_file():
            raise UsageError(f"--input {args.input!r} does not exist (expected an .h5ad file)")
        try:
            check_expression_file(args.input, f"--input {args.input!r}")
        except ExpressionError as err:
            raise UsageError(str(err)) from None
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
            key=args.key,
        )
    except ParameterError as err:
        raise UsageError(f"--param: {err}") from None
    failed = frame[~frame["status"].isin(["ok", "degenerate"])] if len(frame) else frame
    degenerate = frame[frame["status"] == "degenerate"] if len(frame) else frame
    partial = frame[frame["genes_covered"].fillna(1) < 1] if len(frame) else frame
    summary = [
        f"{len(frame)} result rows in {args.out}/results.csv ({len(failed)} failed, "
        f"{len(degenerate)} degenerate)"
    ]
    for label, rows in (("FAILED", failed), ("DEGENERATE", degenerate), ("PARTIAL", partial)):
        for _, row in rows.drop_duplicates(["method", "task", "unit"]).iterrows():
            why = row["error"]
            if label == "PARTIAL":
                why = (
                    f"the network has {row['genes_covered']:.1%} of the expression set's genes; "
                    "the others are scored as no prediction"
                )
            summary.append(f"  {label} {row['method']} on {row['task']}/{row['unit']}: {why}")
    sys.stdout.write("\n".join(summary) + "\n")
    return 1 if len(failed) else 0


def _handle(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list()
    if args.command == "report":
        return _report(args)
    return _run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 when any run failed or an unexpected
    error occurred, 2 for a mistake in the command line)."""
    return run_cli("bengrn", build_parser(), _handle, argv)
