"""Where the time of ``scprint embed`` goes on CPU: 1,000 real cells end to end, profiled.

Runs the command line (``scprint.tasks.cli.main(["embed", ...])``, in this process, after the
imports) under :mod:`cProfile` on Kang 2018 PBMC cells with a randomly initialised model of a
size preset (no published checkpoint; speed does not depend on the weights) saved in our
checkpoint format, and splits its wall time into: reading the input file, loading the checkpoint,
gene matching (``prepare``), making the batches (``iter_model_batches``), the model's forward
pass, the task's work after the batches (labels, metrics, storing the result), writing the
output file and the rest. The issue's target: everything but the forward pass under 10 % of the
time at 1,000 cells.

Usage::

    python benchmarks/inference/embed_profile.py [--runs small:32,medium:bf16] [--cells 1000]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.inference.embed_profile")
RESULT_NAME = "inference_embed_profile"

#: part of the run -> (file name ending, function name) whose cumulative time it is
PARTS = {
    "read_input": ("tasks/cli/_io.py", "read_adata"),
    "load_checkpoint": ("tasks/_model.py", "load_model"),
    "gene_matching": ("tasks/_input.py", "prepare"),
    "batches": ("tasks/_batches.py", "iter_model_batches"),
    "forward": ("model/scprint.py", "forward"),
    "task_call": ("tasks/embed.py", "__call__"),
    "write_output": ("tasks/_output.py", "write_anndata"),
}


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cumulative_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each of :data:`PARTS` in a profile (summed over matching entries)."""
    out = dict.fromkeys(PARTS, 0.0)
    for (filename, _, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        cumulative = entry[3]
        for part, (ending, name) in PARTS.items():
            if function == name and filename.replace(os.sep, "/").endswith(ending):
                out[part] += cumulative
    return out


def save_random_checkpoint(size: str, genes: list[str], path: Path) -> None:
    """A randomly initialised model of the ``size`` preset over ``genes``, in our format."""
    import torch

    from scprint.checkpoints.ours import checkpoint_metadata
    from scprint.data import LabelEncoder, Vocabulary
    from scprint.model import ModelConfig, build_network

    vocab = Vocabulary(genes=genes, symbols=[""] * len(genes))
    config = ModelConfig.from_yaml(size)
    torch.manual_seed(0)
    labels = {
        "cell_type_ontology_term_id": LabelEncoder(
            name="cell_type_ontology_term_id",
            classes=["CL:0000236", "CL:0000623", "CL:0000624", "CL:0000625", "CL:0000576"],
        )
    }
    model = build_network(config, len(vocab), {"cell_type_ontology_term_id": 5})
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {"scprint": checkpoint_metadata(config, vocab, labels, {}), "state_dict": state}, path
    )


def profile_run(
    size: str, precision: str, cells: Any, batch_size: int, folder: Path, print_profile: int
) -> dict[str, Any]:
    """Run ``scprint embed`` on ``cells`` under cProfile; the row of :data:`PARTS` seconds."""
    import anndata as ad
    import torch

    from scprint.tasks.cli import main as scprint_main

    ckpt = folder / f"{size}.ckpt"
    save_random_checkpoint(size, list(cells.var_names), ckpt)
    source, out = folder / "cells.h5ad", folder / f"embedded_{size}_{precision}.h5ad"
    cells.write_h5ad(source)
    command = ["embed", "--ckpt", str(ckpt), "--adata", str(source), "--out", str(out)]
    command += ["--device", "cpu", "--precision", precision, "--batch-size", str(batch_size)]
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    status = scprint_main(command)
    profiler.disable()
    total = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"scprint embed failed with status {status}")
    if ad.read_h5ad(out).obsm["X_scprint"].shape[0] != cells.n_obs:
        raise SystemExit("scprint embed wrote the wrong number of cells")
    if print_profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(print_profile)
    parts = cumulative_seconds(pstats.Stats(profiler))
    after_batches = parts["task_call"] - parts["gene_matching"] - parts["batches"]
    after_batches -= parts["forward"]
    outside = ("read_input", "load_checkpoint", "task_call", "write_output")
    return {
        "size": size,
        "precision": precision,
        "cells": cells.n_obs,
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "total_s": round(total, 2),
        "cells_per_s": round(cells.n_obs / total, 3),
        "forward_s": round(parts["forward"], 2),
        "read_input_s": round(parts["read_input"], 2),
        "load_checkpoint_s": round(parts["load_checkpoint"], 2),
        "gene_matching_s": round(parts["gene_matching"], 2),
        "batches_s": round(parts["batches"], 2),
        "task_after_batches_s": round(after_batches, 2),
        "write_output_s": round(parts["write_output"], 2),
        "other_s": round(total - sum(parts[p] for p in outside), 2),
        "outside_forward_share": round(1 - parts["forward"] / total, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        default="small:32,medium:bf16",
        help="comma-separated SIZE:PRECISION runs (sizes small, medium, large; 32, bf16, int8)",
    )
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16, help="cells per forward pass")
    parser.add_argument("--threads", type=int, default=None, help="default torch's own")
    parser.add_argument(
        "--print-profile", type=int, default=0, help="print the N slowest functions (cumulative)"
    )
    data_dir_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    runs = [tuple(run.split(":")) for run in args.runs.split(",") if run]
    if any(len(run) != 2 for run in runs):
        raise SystemExit(
            f"--runs must be SIZE:PRECISION pairs, e.g. medium:bf16, got {args.runs!r}"
        )

    import anndata as ad
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    full = ad.read_h5ad(resolve_data_dir(args.data_dir) / "scrna" / "kang2018_pbmc_8k.h5ad")
    chosen = np.sort(np.random.default_rng(0).permutation(full.n_obs)[: args.cells])
    cells = full[chosen].copy()
    load_before = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size, precision in runs:
            rows.append(
                profile_run(size, precision, cells, args.batch_size, Path(tmp), args.print_profile)
            )
            log.info("%s", rows[-1])
    notes = (
        f"`scprint embed` on {args.cells} Kang PBMC cells (the preset's context: 2,200 genes "
        "per cell for small, medium and large) with a randomly initialised model of the "
        "preset, profiled with cProfile in one process after the imports (the command's own "
        "start, `scprint embed --help`, is measured by the package's tests). `forward_s`: the "
        "model's forward passes (for bf16/int8 including the float32 check of the first "
        "batch); `batches_s`: making the batches (counts, gene choice, padding) excluding the "
        "forward passes; `task_after_batches_s`: labels, metrics and storing the result in the "
        "AnnData; `other_s`: argument checks and the rest. `outside_forward_share`: 1 - "
        f"forward / total. Threads {torch.get_num_threads()} of {os.cpu_count()} CPUs; load "
        f"average (1, 5, 15 min) before {load_before}, after {load_average()} (a load above the "
        "number of CPUs means other processes shared them)."
    )
    write_results(RESULT_NAME, rows, notes=notes, extra={"load_average_before": load_before})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
