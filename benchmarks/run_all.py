"""Regenerate ``benchmarks/results/`` (what ``nox -s bench`` calls).

Every results file is written by one of the jobs below: a benchmark script, runnable alone, with
the arguments its committed results were measured with (each file records its command, date,
machine and git commit). A job runs when the mode asks for it and what it needs is there:

- quick jobs (minutes each on 2 CPU cores) run by default; ``--full`` adds the long ones
  (genome-scale grnndata, the BenGRN runner and baselines, pretraining, the recipe search);
- ``gpu`` jobs need a CUDA GPU (``bash benchmarks/kernels/gpu_check.sh`` runs them with the GPU
  tests); without one they are skipped, never rerun into "not measured" rows;
- ``peer`` jobs time or compare the original implementations in their own virtualenvs under
  ``benchmarks/.peer-venvs/`` (``benchmarks/parity/setup_peers.py`` makes the scPRINT ones; the
  grnndata / bengrn 1.3.2 ones are made by their scripts with ``--peers``, from the package index);
  they run with ``--peers``.

``--list`` prints every results file, the job that writes it, whether this mode would run it (or
why not) and the commit it was last measured on, without running anything; ``--check`` fails
when a results file has no job (or a job's script is missing). ``run_all.json`` records, per job,
its status, wall time and the commit each written file records.

Usage::

    python benchmarks/run_all.py [--list | --check] [--full] [--peers] [--only NAME,...]
        [--data-dir DIR]

``--only`` takes topics (folder names: grnndata, bengrn, ...) or results names (tasks_throughput).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _common import RESULTS_DIR, write_results  # noqa: E402

log = logging.getLogger("benchmarks.run_all")

PEER_VENVS = HERE / ".peer-venvs"
SCPRINT_PEER = "scprint-2.3.8"


@dataclass(frozen=True)
class Job:
    """One script run and the results files (names in ``results/``, no suffix) it writes.

    ``script`` is relative to the repository root; ``args`` are those of the committed results;
    ``{tmp}`` in an argument becomes a fresh temporary folder. ``full``: only with ``--full``.
    ``gpu``: needs CUDA. ``peer_venvs``: needs these peer venvs (runs only with ``--peers``).
    ``peers_flag``: with ``--peers``, also pass ``--peers`` (the script then adds the originals'
    rows; without it the script runs alone). ``note``: shown by ``--list``.
    """

    script: str
    args: tuple[str, ...]
    writes: tuple[str, ...]
    full: bool = False
    gpu: bool = False
    peer_venvs: tuple[str, ...] = ()
    peers_flag: bool = False
    note: str = ""

    @property
    def topic(self) -> str:
        parts = Path(self.script).parts
        return parts[1] if parts[0] == "benchmarks" else parts[0]


JOBS: tuple[Job, ...] = (
    Job(
        "benchmarks/grnndata/bench_grnndata.py",
        ("--quick", "--workdir", "{tmp}"),
        ("grnndata_quick",),
        peers_flag=True,
    ),
    Job(
        "benchmarks/grnndata/bench_grnndata.py",
        ("--workdir", "{tmp}"),
        ("grnndata_full",),
        full=True,
        peers_flag=True,
    ),
    Job("benchmarks/bengrn/bench_metrics.py", (), ("bengrn_metrics",), peers_flag=True),
    Job(
        "benchmarks/bengrn/bench_runner.py",
        ("--work", "{tmp}"),
        ("bengrn_runner",),
        full=True,
    ),
    Job(
        "benchmarks/bengrn/bench_runner.py",
        ("--peers", "--skip-comparison"),
        ("bengrn_genie3_vs_peer",),
        full=True,
        peer_venvs=("bengrn132",),
    ),
    Job(
        "benchmarks/bengrn/bench_baselines.py",
        (
            "--part",
            "shapes,compile,grnboost2,dask,projection,pearson",
            "--projection-targets",
            "100",
            "--projection-genie3-targets",
            "20",
            "--hesc-target-subset",
            "200",
        ),
        ("bengrn_baselines",),
        full=True,
        peer_venvs=("arboreto016",),
    ),
    Job(
        "benchmarks/bengrn/bench_baselines.py",
        (
            "--part",
            "shapes",
            "--shape-sergio-targets",
            "100",
            "--shape-timing-rounds",
            "1",
            "--results-name",
            "bengrn_baselines_all_sergio_targets",
        ),
        ("bengrn_baselines_all_sergio_targets",),
        full=True,
        note="the shapes of bengrn_baselines with every SERGIO target (agreement on 100, not 25)",
    ),
    Job("benchmarks/checkpoints/bench_finite_check.py", (), ("checkpoints_finite_check",)),
    Job(
        "benchmarks/inference/bench_cpu.py",
        (
            "--sizes",
            "small,medium,large",
            "--cells",
            "64,32,8",
            "--batch-size",
            "8",
            "--denoise-genes",
            "200",
            "--network-genes",
            "100",
            "--threads",
            "1",
        ),
        ("inference_cpu",),
        peer_venvs=(SCPRINT_PEER,),
    ),
    Job(
        "benchmarks/inference/cpu_ceiling.py",
        ("--sizes", "small,medium,large", "--threads", "1", "--peer"),
        ("inference_cpu_ceiling",),
        peer_venvs=(SCPRINT_PEER,),
    ),
    Job(
        "benchmarks/inference/embed_profile.py",
        ("--runs", "small:32,medium:bf16", "--cells", "1000", "--threads", "1"),
        ("inference_embed_profile",),
    ),
    Job(
        "benchmarks/inference/compile_cost.py",
        ("--size", "medium", "--precisions", "32,bf16", "--threads", "1"),
        ("inference_compile_cost",),
    ),
    Job("benchmarks/inference/gninfer_memory.py", (), ("inference_gninfer_memory",)),
    Job(
        "benchmarks/kernels/bench_attention_gpu.py",
        (),
        ("kernels_attention_gpu", "kernels_gpu_targets"),
        gpu=True,
    ),
    Job("benchmarks/kernels/bench_attn_to_network_cpu.py", (), ("kernels_attn_to_network_cpu",)),
    Job(
        "benchmarks/parity/bench_parity.py",
        ("--peers",),
        ("parity_scprint",),
        peer_venvs=(SCPRINT_PEER, "scprint-1.6.4"),
    ),
    Job(
        "benchmarks/parity/bench_denoise.py",
        ("--peers",),
        ("parity_denoise",),
        peer_venvs=(SCPRINT_PEER,),
    ),
    Job(
        "benchmarks/parity/bench_gninfer.py",
        ("--peers",),
        ("parity_gninfer",),
        peer_venvs=(SCPRINT_PEER,),
    ),
    Job(
        "benchmarks/parity/bench_scprint2.py",
        ("--peers",),
        ("parity_scprint2",),
        peer_venvs=("scprint2-1.0.3",),
    ),
    Job(
        "benchmarks/parity/bench_scprint2_tasks.py",
        ("--peers",),
        ("parity_scprint2_tasks",),
        peer_venvs=("scprint2-1.0.3",),
    ),
    Job(
        "benchmarks/tasks/bench_tasks.py",
        ("--max-len", "256", "--steps", "40", "--train-cells", "2000", "--cells", "512"),
        ("tasks_throughput",),
    ),
    Job("benchmarks/training/bench_memory.py", (), ("training_memory",)),
    Job(
        "benchmarks/training/pretrain_small.py",
        ("--skip-pretrain", "--throughput-steps", "10"),
        ("training_throughput",),
    ),
    Job(
        "benchmarks/training/pretrain_small.py",
        ("--skip-throughput", "--max-steps", "60", "--max-len", "256"),
        ("training_pretrain_small",),
        full=True,
    ),
    Job(
        "benchmarks/training/recipe_search.py",
        ("--recipes", "cpu-demo", "--steps", "1000", "--seeds", "0,1,2", "--network"),
        ("recipe_search", "recipe_search_summary"),
        full=True,
        note=(
            "the script adds its rows to the file's earlier ones (one per recipe, seed and "
            "steps); this reruns the current cpu-demo's seeds (rows cpu-demo at 1,000 steps; "
            "the READMEs quote its rows under the name it was searched as, "
            "cpu-demo-len256-cosine, the same recipe: equal numbers at seed 0)"
        ),
    ),
    Job(
        "benchmarks/quality/bench_quality.py",
        ("--quick",),
        ("quality_labels", "quality_denoising", "quality_bengrn"),
    ),
    Job(
        "demo/run_demo.py",
        ("--out", "{tmp}/out", "--cache-dir", "{tmp}/cache", "--record"),
        ("demo_report",),
    ),
)

#: Results files no job regenerates, and why.
KEPT_AS_MEASURED: dict[str, str] = {
    "bengrn_metrics_before_after": (
        "a one-off comparison with bengrn.metrics at commit dd7d122 (the code before a rewrite), "
        "run through a throwaway script; the current code's rows are in bengrn_metrics"
    ),
    "recipe_search_tokens": (
        "probes one trained checkpoint named on its command line (`benchmarks/training/"
        "recipe_search.py --token-probes CKPT --max-lens 256,512,1024`, CKPT from the cache of "
        "`nox -s demo`); run it by hand after the demo"
    ),
    "run_all": "this script's own record",
}


def peer_venv_present(name: str) -> bool:
    return (PEER_VENVS / name / "bin" / "python").exists()


def skip_reason(job: Job, args: argparse.Namespace, has_gpu: bool) -> str | None:
    """Why ``job`` does not run in this mode, or ``None`` when it runs."""
    if job.full and not args.full:
        return "long: runs with --full"
    if job.gpu and not has_gpu:
        return "needs a CUDA GPU (bash benchmarks/kernels/gpu_check.sh)"
    if job.peer_venvs and not args.peers:
        missing = [v for v in job.peer_venvs if not peer_venv_present(v)]
        state = f"absent: {', '.join(missing)}" if missing else "present"
        return f"needs peer venvs {', '.join(job.peer_venvs)} ({state}): runs with --peers"
    return None


def recorded(name: str) -> dict[str, Any]:
    """Date and commit a committed results file records (``{}`` when there is no JSON)."""
    path = RESULTS_DIR / f"{name}.json"
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    git = payload.get("git") or {}
    commit = git.get("commit")
    label = (commit or "none")[:12]
    if git.get("source"):
        label += " (backfilled)"
    elif git.get("dirty"):
        label += " (dirty)"
    return {"date": payload.get("date", ""), "commit": label, "full_commit": commit}


def selected(job: Job, only: set[str]) -> bool:
    return not only or job.topic in only or bool(only & set(job.writes))


def command(job: Job, args: argparse.Namespace, tmp: Path) -> list[str]:
    cmd = [sys.executable, str(REPO / job.script)]
    cmd += [a.replace("{tmp}", str(tmp)) for a in job.args]
    if args.peers and job.peers_flag:
        cmd.append("--peers")
    if args.data_dir:
        help_text = subprocess.run(
            [sys.executable, str(REPO / job.script), "--help"], capture_output=True, text=True
        ).stdout
        if "--data-dir" in help_text:
            cmd += ["--data-dir", args.data_dir]
    return cmd


def coverage_problems() -> list[str]:
    """Results files no job writes, and jobs whose script is missing."""
    problems = []
    written = {name for job in JOBS for name in job.writes} | set(KEPT_AS_MEASURED)
    names = {p.stem for p in RESULTS_DIR.iterdir() if p.suffix in {".json", ".md"}}
    for name in sorted(names - written):
        problems.append(f"results/{name}: no job in run_all.JOBS writes it")
    for job in JOBS:
        if not (REPO / job.script).is_file():
            problems.append(f"{job.script}: the script of a job is missing")
    scripts = {job.script for job in JOBS}
    for path in sorted(HERE.glob("*/bench_*.py")) + sorted(HERE.glob("*/pretrain_*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel not in scripts:
            problems.append(f"{rel}: a benchmark script no job runs")
    return problems


def list_jobs(args: argparse.Namespace, has_gpu: bool, only: set[str]) -> None:
    lines = ["| results | job | this mode | last measured (date, commit) |", "|---|---|---|---|"]
    for job in JOBS:
        if not selected(job, only):
            continue
        reason = skip_reason(job, args, has_gpu)
        call = " ".join([job.script, *job.args])
        for name in job.writes:
            rec = recorded(name)
            lines.append(
                f"| {name} | `{call}` | {reason or 'runs'}{'; ' + job.note if job.note else ''} | "
                f"{rec.get('date', 'no JSON')[:10]} {rec.get('commit', '')} |"
            )
    for name, why in KEPT_AS_MEASURED.items():
        if not only or name in only:
            rec = recorded(name)
            lines.append(
                f"| {name} | none | not regenerated: {why} | "
                f"{rec.get('date', 'no JSON')[:10]} {rec.get('commit', '')} |"
            )
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also run the long jobs")
    parser.add_argument(
        "--peers", action="store_true", help="also run the jobs that need the originals' venvs"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated topics (folder names) or results names"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print what would run and the recorded commits; run nothing",
    )
    parser.add_argument(
        "--check", action="store_true", help="fail if a results file has no job; run nothing"
    )
    parser.add_argument("--data-dir", default=None, help="real data folder for every job")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.check:
        problems = coverage_problems()
        for problem in problems:
            print(problem)
        if not problems:
            print(
                f"every results file is written by one of the {len(JOBS)} jobs or kept as measured"
            )
        return 1 if problems else 0

    only = {t for t in args.only.split(",") if t}
    known = {job.topic for job in JOBS} | {n for job in JOBS for n in job.writes}
    if only - known:
        parser.error(f"--only: unknown {sorted(only - known)}; known: {sorted(known)}")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if args.list:
        list_jobs(args, has_gpu, only)
        return 0

    rows = []
    for job in JOBS:
        if not selected(job, only):
            continue
        reason = skip_reason(job, args, has_gpu)
        if reason:
            log.info("skipping %s: %s", job.script, reason)
            rows.append({"script": job.script, "writes": ", ".join(job.writes), "status": reason})
            continue
        before = {name: recorded(name).get("date") for name in job.writes}
        with tempfile.TemporaryDirectory(prefix="scprint_bench_") as tmp:
            cmd = command(job, args, Path(tmp))
            log.info("running %s", " ".join(cmd))
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO)
            wall = round(time.perf_counter() - start, 1)
        after = {name: recorded(name) for name in job.writes}
        stale = [n for n in job.writes if after[n].get("date") in (None, before[n])]
        if proc.returncode:
            status = f"failed (exit {proc.returncode})"
        elif stale:
            status = f"ran, but did not rewrite {', '.join(stale)}"
        else:
            status = "ok"
        rows.append(
            {
                "script": job.script,
                "writes": ", ".join(job.writes),
                "status": status,
                "wall_s": wall,
                "commits": ", ".join(f"{n}: {after[n].get('commit', 'none')}" for n in job.writes),
            }
        )
    write_results(
        "run_all",
        rows,
        notes=(
            "The jobs of the last `python benchmarks/run_all.py` (`nox -s bench`): status, wall "
            "time and the commit each results file it wrote records. `--list` shows every results "
            "file and when it was last measured."
        ),
    )
    failed = [r for r in rows if r["status"].startswith(("failed", "ran,"))]
    for r in failed:
        log.error("%s: %s", r["script"], r["status"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
