"""Run every benchmark script and gather their results (what ``nox -s bench`` calls).

Each script is runnable alone (``python benchmarks/<topic>/<script>.py --help``) and writes
``benchmarks/results/<name>.json`` and ``.md``. By default the scripts run in their quick mode
(``--quick``, or ``--smoke`` for scripts that offer it; minutes on a 2-core laptop; the BenGRN
runner comparison is the longest, about 20 minutes);
``--full`` runs the genome-scale / long variants and the ``pretrain_*.py`` pretraining runs, ``--peers`` also
builds and times the original bengrn 1.3.2 / grnndata 1.3.2 in their own venvs (needs PyPI).

Usage::

    python benchmarks/run_all.py [--full] [--peers] [--only grnndata,bengrn,...] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import write_results  # noqa: E402

log = logging.getLogger("benchmarks.run_all")


def discover(full: bool = False) -> list[tuple[str, Path]]:
    """Every ``bench_*.py`` script under a topic folder (and, with ``full``, the long
    ``pretrain_*.py`` runs), in a stable order."""
    order = ["grnndata", "bengrn", "kernels", "training", "tasks", "inference", "quality"]
    found = []
    for topic_dir in sorted(
        p for p in HERE.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    ):
        if topic_dir.name == "results":
            continue
        patterns = ("bench_*.py", "pretrain_*.py") if full else ("bench_*.py",)
        for pattern in patterns:
            for script in sorted(topic_dir.glob(pattern)):
                found.append((topic_dir.name, script))
    return sorted(
        found, key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[1].name)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="run the long / genome-scale variants")
    parser.add_argument(
        "--peers", action="store_true", help="also time the original packages in their own venvs"
    )
    parser.add_argument("--only", default="", help="comma-separated topics (folder names) to run")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    only = {t for t in args.only.split(",") if t}
    rows = []
    for topic, script in discover(args.full):
        if only and topic not in only:
            continue
        help_text = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True
        ).stdout
        cmd = [sys.executable, str(script)]
        if "--full" in help_text and args.full:
            cmd.append("--full")
        elif "--quick" in help_text and not args.full:
            cmd.append("--quick")
        elif "--smoke" in help_text and not args.full:
            cmd.append("--smoke")
        if args.peers and "--peers" in help_text:
            cmd.append("--peers")
        if args.data_dir and "--data-dir" in help_text:
            cmd += ["--data-dir", args.data_dir]
        log.info("running %s", " ".join(cmd))
        start = time.perf_counter()
        proc = subprocess.run(cmd)
        rows.append(
            {
                "topic": topic,
                "script": str(script.relative_to(HERE)),
                "status": "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})",
                "wall_s": round(time.perf_counter() - start, 1),
            }
        )
    write_results("run_all", rows, notes="Which benchmark scripts ran in the last `nox -s bench`.")
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        log.error("%s: %s", r["script"], r["status"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
