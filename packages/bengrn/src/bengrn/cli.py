"""The ``bengrn`` command line: ``bengrn run``, ``bengrn report``, ``bengrn list``.

Examples::

    bengrn run --method pearson --method genie3 --method random \\
        --task mccalla-hesc --task beeline-synthetic --out results/
    bengrn run --method mytool=cmd:"python infer.py {input} {output}" --task beeline-curated --out r/
    bengrn run --method my_pkg.grn:infer --param infer:alpha=0.5 --task literature --out r/
    bengrn report results/
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

log = logging.getLogger("bengrn")


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
            raise SystemExit(
                f"{flag} expects NAME:KEY=VALUE (e.g. genie3:n_trees=50); got {item!r}"
            )
        out.setdefault(name, {})[key] = _value(value)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bengrn", description="Benchmark gene-network inference.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
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
    report = sub.add_parser("report", help="regenerate tables and figures of a results folder")
    report.add_argument("out", help="results folder")
    sub.add_parser("list", help="list methods, tasks and datasets")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 when any run failed)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
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

        paths = write_report(args.out)
        sys.stdout.write(
            f"wrote {paths['csv']}, {paths['markdown']} and {len(paths['figures'])} figures\n"
        )
        return 0
    if args.data_dir:
        os.environ["SCPRINT_DATA_DIR"] = args.data_dir
    import anndata as ad

    from bengrn.runner import run_benchmark

    adata = ad.read_h5ad(args.input) if args.input else None
    frame = run_benchmark(
        args.method,
        args.task,
        args.out,
        params=_keyed_options(args.param, "--param"),
        task_options=_keyed_options(args.task_option, "--task-option"),
        adata=adata,
        timeout=args.timeout,
        force=args.force,
    )
    failed = frame[frame["status"] != "ok"] if len(frame) else frame
    summary = [f"{len(frame)} result rows in {args.out}/results.csv ({len(failed)} failed)"]
    for _, row in failed.drop_duplicates(["method", "task", "unit"]).iterrows():
        summary.append(f"  FAILED {row['method']} on {row['task']}/{row['unit']}: {row['error']}")
    sys.stdout.write("\n".join(summary) + "\n")
    return 1 if len(failed) else 0
