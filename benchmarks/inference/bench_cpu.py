"""CPU inference: cells/s of embed, denoise and gninfer per model size and precision, against the
original scPRINT 2.3.8 forward pass on the same checkpoint, cells and threads, in one run.

No published checkpoint is used: for each size preset (``small`` d_model 128 x 4 layers x 2
heads, ``medium`` 256 x 8 x 4, ``large`` 512 x 16 x 8, each at its context of 2,200 genes) the
original 2.3.8, in its peer venv (``benchmarks/parity/setup_peers.py``), builds a randomly
initialised model over the Kang PBMC genes, moves its weights off their initialisation and saves
it as a Lightning checkpoint; both sides load that file. Speed does not depend on the weights;
the accuracy columns compare each reduced precision with float32 of the same model.

Per size:

* the original's forward pass (``do_class=True``) over the very batches our Embedder feeds its
  model (same genes per cell, 2,200 each), after one warm-up batch (``peer_cpu.py``);
* ours, in a fresh process per precision (``32``, ``bf16``, ``int8``), each task end to end
  (AnnData in, results in the AnnData: input checks, gene matching, batching, forward, writing
  into the AnnData; the checkpoint is loaded before the clock starts), after a one-batch warm-up:
  ``embed`` (the model's context), ``denoise`` (``--denoise-genes`` most expressed genes),
  ``gninfer fast`` and ``gninfer exact`` (``--network-genes`` HVGs, all layers and heads, mean);
  the share of embed time spent outside the model's forward pass; peak RSS of the process;
* accuracy of each reduced precision against float32 on these real cells: per-cell cosine of
  the embedding (min), label agreement, per-cell Spearman of the denoised expression (min), and
  Spearman of the network's 10,000 strongest float32 edges. The reduced-precision runs also pay
  a one-off float32 pass of their first batch (the agreement check stored in ``uns``), given
  separately and included in the end-to-end time.

Threads: ``torch.get_num_threads()`` of the run (``--threads`` sets it), the same for both sides.
The load average (``uptime``) is recorded before and after; ratios ours / original measured in the
same run are more robust to other load than absolute cells/s.

Usage::

    python benchmarks/inference/bench_cpu.py [--sizes small,medium,large] [--cells 64] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "parity"))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.inference")
RESULT_NAME = "inference_cpu"
PEER_VENV = "scprint-2.3.8"
SIZES = {"small": (128, 4, 2), "medium": (256, 8, 4), "large": (512, 16, 8)}
PRECISIONS = ("32", "bf16", "int8")
CONTEXT = 2200
TOP_EDGES = 10_000


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ------------------------------------------------------------------------------ worker (ours)
class ForwardClock:
    """Seconds spent in a module's forward passes (hooks around each call)."""

    def __init__(self, module: Any) -> None:
        self.seconds = 0.0
        self._start = 0.0
        module.register_forward_pre_hook(self._enter)
        module.register_forward_hook(self._leave)

    def _enter(self, *_: Any) -> None:
        self._start = time.perf_counter()

    def _leave(self, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._start


#: Where each task writes its settings (its default ``key_added``, issue 24's contract).
TASK_KEYS = {"embed": "X_scprint", "denoise": "scprint_denoised", "gninfer": "GRN"}


def precision_of(adata: Any, task: str) -> dict[str, Any]:
    """The precision record a task stored in ``adata.uns`` (``"gninfer fast"`` -> ``"gninfer"``)."""
    settings = adata.uns[TASK_KEYS[task.split()[0]]]
    record = settings["precision"] if "precision" in settings else None
    if record is None:  # GNInfer keeps it with its other parameters
        record = settings["parameters"]["precision"]
    return record


def worker(args: argparse.Namespace) -> int:
    """Time our tasks for one checkpoint and precision; write outputs and timings to --out-dir."""
    import anndata as ad
    import torch

    torch.set_num_threads(args.threads)
    from scprint.tasks import Denoiser, Embedder, GNInfer

    out = Path(args.out_dir)
    cells = ad.read_h5ad(args.cells_file)
    common = dict(device="cpu", precision=args.precision, batch_size=args.batch_size)
    timings: dict[str, Any] = {"threads": torch.get_num_threads()}
    saved: dict[str, np.ndarray] = {}
    tasks = {
        "embed": lambda: Embedder(args.ckpt, max_len=args.context, **common),
        "denoise": lambda: Denoiser(
            args.ckpt, genes="expressed", n_genes=args.denoise_genes, **common
        ),
        "gninfer fast": lambda: GNInfer(
            args.ckpt, genes="hvg", n_genes=args.network_genes, n_cells=None, **common
        ),
        "gninfer exact": lambda: GNInfer(
            args.ckpt,
            genes="hvg",
            n_genes=args.network_genes,
            n_cells=None,
            aggregation="exact",
            **common,
        ),
    }
    for name, make in tasks.items():
        task = make()
        task(cells[: args.batch_size].copy(), copy=True)  # warm-up: one batch
        task = make()  # a fresh task: its first-batch float32 check is part of the run
        clock = ForwardClock(task.pretrained.model)
        data = cells.copy()
        start = time.perf_counter()
        result = task(data, copy=name.startswith("gninfer"))
        seconds = time.perf_counter() - start
        record = precision_of(data if result is None else result, name)
        check = record.get("first_batch_vs_float32", {})
        timings[name] = {
            "seconds": seconds,
            "forward_seconds": clock.seconds,
            "check_seconds": check.get("float32_seconds", 0.0),
            "precision_used": record["used"],
            "first_batch_check": check,
        }
        if name == "embed":
            saved["embedding"] = data.obsm["X_scprint"]
            saved["labels"] = np.stack(
                [
                    data.obs[c].cat.codes.to_numpy()
                    for c in data.obs
                    if c.startswith("scprint_") and c.endswith("_term_id")
                ]
                or [np.zeros(data.n_obs, dtype=np.int64)]
            )
        elif name == "denoise":
            chosen = data.var["scprint_denoised"].to_numpy()
            saved["denoised"] = data.layers["scprint_denoised"][:, chosen].toarray()
        else:
            key = "network_fast" if name.endswith("fast") else "network_exact"
            saved[key] = result.varp["GRN"].toarray()
        log.info("%s %s: %.1f s", args.precision, name, seconds)
    timings["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.savez(out / f"outputs_{args.precision}.npz", **saved)
    (out / f"timings_{args.precision}.json").write_text(json.dumps(timings, default=float))
    return 0


# ---------------------------------------------------------------------------------- accuracy
def _cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
    return float(cos.min())


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def accuracy(reference: dict[str, np.ndarray], reduced: dict[str, np.ndarray]) -> dict[str, float]:
    """Agreement of a reduced precision's outputs with float32's on the same cells."""
    per_cell = [
        _spearman(x, y)
        for x, y in zip(reference["denoised"], reduced["denoised"])
        if np.ptp(x) > 0 and np.ptp(y) > 0
    ]
    result = {
        "embedding_cosine_min": _cosine_min(reference["embedding"], reduced["embedding"]),
        "label_agreement": float((reference["labels"] == reduced["labels"]).mean()),
        "denoised_spearman_min": float(min(per_cell)),
    }
    for key in ("network_fast", "network_exact"):
        ref = reference[key].ravel()
        top = np.argsort(-ref)[: min(TOP_EDGES, ref.size)]
        result[f"{key}_top_edges_spearman"] = _spearman(ref[top], reduced[key].ravel()[top])
    return {k: round(v, 5) for k, v in result.items()}


TARGETS = {
    "embedding_cosine_min": 0.99,
    "label_agreement": 0.99,
    "denoised_spearman_min": 0.99,
    "network_fast_top_edges_spearman": 0.95,
    "network_exact_top_edges_spearman": 0.95,
}


# ------------------------------------------------------------------------------------ driver
def peer_inputs(ckpt_genes: list[str], cells: Any, batch_size: int, path: Path) -> None:
    """The batches our Embedder feeds its model, for the original (same genes per cell)."""
    from scprint.data import Vocabulary, make_inference_batches

    vocab = Vocabulary(genes=list(ckpt_genes), symbols=[""] * len(ckpt_genes))
    arrays: dict[str, np.ndarray] = {"genes": np.asarray(ckpt_genes)}
    arrays["gene_pos"] = np.zeros(len(ckpt_genes), dtype=np.int64)
    n = 0
    for i, batch in enumerate(
        make_inference_batches(cells, vocab, max_len=CONTEXT, batch_size=batch_size)
    ):
        for key in ("gene_ids", "counts", "depth"):
            arrays[f"batch_{i}_{key}"] = batch[key].numpy()
        n += 1
    arrays["n_batches"] = np.asarray(n)
    np.savez(path, **arrays)


def run_size(size: str, cells: Any, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from setup_peers import peer_python

    d_model, n_layers, n_heads = SIZES[size]
    folder = work / size
    folder.mkdir()
    ckpt = folder / f"{size}.ckpt"
    cells_file = folder / "cells.h5ad"
    cells.write_h5ad(cells_file)
    inputs = folder / "peer_inputs.npz"
    peer_inputs(list(cells.var_names), cells, args.batch_size, inputs)
    python = peer_python(PEER_VENV)
    if not python.exists():
        raise SystemExit(f"no peer venv {python.parents[1]}; run benchmarks/parity/setup_peers.py")
    log.info("%s: original %s forward pass (load %s)", size, PEER_VENV, load_average())
    done = subprocess.run(
        [str(python), str(HERE / "peer_cpu.py"), str(inputs), str(ckpt)]
        + [str(d_model), str(n_layers), str(n_heads), str(args.threads)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"peer failed:\n{done.stderr[-3000:]}")
    peer = json.loads(done.stdout.strip().splitlines()[-1])
    log.info("%s original: %.2f cells/s", size, peer["cells_per_s"])
    outputs: dict[str, dict[str, np.ndarray]] = {}
    rows = []
    for precision in args.precisions:
        log.info("%s: ours, precision %s (load %s)", size, precision, load_average())
        cmd = [sys.executable, __file__, "--worker", "--ckpt", str(ckpt)]
        cmd += ["--cells-file", str(cells_file), "--out-dir", str(folder)]
        cmd += ["--precision", precision, "--threads", str(args.threads)]
        cmd += ["--batch-size", str(args.batch_size), "--context", str(CONTEXT)]
        cmd += ["--denoise-genes", str(args.denoise_genes)]
        cmd += ["--network-genes", str(args.network_genes)]
        subprocess.run(cmd, check=True)
        timings = json.loads((folder / f"timings_{precision}.json").read_text())
        outputs[precision] = dict(np.load(folder / f"outputs_{precision}.npz"))
        acc = {} if precision == "32" else accuracy(outputs["32"], outputs[precision])
        meets = all(acc.get(k, 1.0) >= v for k, v in TARGETS.items())
        for task in ("embed", "denoise", "gninfer fast", "gninfer exact"):
            t = timings[task]
            row = {
                "size": size,
                "precision": precision,
                "used": t["precision_used"],
                "task": task,
                "cells": cells.n_obs,
                "cells_per_s": round(cells.n_obs / t["seconds"], 3),
                "cells_per_s_without_check": round(
                    cells.n_obs / (t["seconds"] - t["check_seconds"]), 3
                ),
                "vs_original_forward": round(cells.n_obs / t["seconds"] / peer["cells_per_s"], 2)
                if task == "embed"
                else "",
                "outside_forward_share": round(1 - t["forward_seconds"] / t["seconds"], 3)
                if task == "embed"
                else "",
                "peak_rss_mb": round(timings["peak_rss_mb"]),
            }
            if task == "embed":
                row["accuracy_vs_fp32"] = json.dumps(acc) if acc else "reference"
                row["meets_accuracy_targets"] = meets
            rows.append(row)
        log.info("%s %s: %s", size, precision, rows[-4])
    rows.append(
        {
            "size": size,
            "precision": "32",
            "used": "original 2.3.8",
            "task": "original forward pass",
            "cells": peer["cells"],
            "cells_per_s": round(peer["cells_per_s"], 3),
            "peak_rss_mb": round(peer["peak_rss_mb"]),
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="small,medium,large", help="comma-separated presets")
    parser.add_argument("--precisions", default="32,bf16,int8", help="comma-separated")
    parser.add_argument("--cells", default="64,64,16", help="cells per size (one, or one per size)")
    parser.add_argument("--batch-size", type=int, default=16, help="cells per forward pass")
    parser.add_argument("--threads", type=int, default=None, help="default torch's own")
    parser.add_argument("--denoise-genes", type=int, default=500)
    parser.add_argument("--network-genes", type=int, default=200)
    parser.add_argument(
        "--smoke", action="store_true", help="a quick run: small model, 8 cells, fp32 and int8"
    )
    data_dir_argument(parser)
    # worker mode (one precision of one checkpoint, in its own process for its peak memory)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--ckpt", "--cells-file", "--out-dir", "--precision"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--context", type=int, default=CONTEXT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads is None:
        import torch

        args.threads = torch.get_num_threads()
    if args.worker:
        return worker(args)
    if args.smoke:
        args.sizes, args.cells, args.precisions = "small", "8", "32,int8"
        args.batch_size = 8
        args.denoise_genes, args.network_genes = 100, 50
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}; expected some of {list(SIZES)}")
    counts = [int(c) for c in args.cells.split(",")]
    counts = counts * len(sizes) if len(counts) == 1 else counts
    args.precisions = [p for p in args.precisions.split(",") if p]
    if args.precisions[0] != "32":
        raise SystemExit("--precisions must start with 32 (the reference of the accuracy columns)")

    import anndata as ad

    full = ad.read_h5ad(resolve_data_dir(args.data_dir) / "scrna" / "kang2018_pbmc_8k.h5ad")
    order = np.random.default_rng(0).permutation(full.n_obs)
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for size, n in zip(sizes, counts):
            cells = full[np.sort(order[:n])].copy()
            rows += run_size(size, cells, args, Path(tmp))
    load_after = load_average()
    notes = (
        f"Threads: {args.threads} for both sides. Load average (1, 5, 15 min) before the run "
        f"{load_before}, after {load_after}, on {os.cpu_count()} CPUs (a load above the number "
        "of CPUs means other processes shared them, which lowers absolute cells/s); the ratio "
        "`vs_original_forward` (our embed end to end / the original's bare forward pass on the "
        "same batches, measured minutes apart in the same run) is the robust figure. Models are "
        "randomly initialised originals of each size preset (no published checkpoint), saved "
        f"by scprint 2.3.8 and read by both sides; {CONTEXT} genes per cell (the presets' "
        "context), Kang PBMC cells. `cells_per_s` includes, for bf16/int8, the one-off float32 "
        "pass of the first batch (the agreement check recorded in uns); "
        "`cells_per_s_without_check` leaves it out (what a long run approaches). "
        "`outside_forward_share`: share of embed time not in the model's forward pass (gene "
        "matching, batching, writing results). Embed reads only the cell tokens "
        "(`cells_only`: the last block computes them alone, no expression decoder; exact). "
        "Accuracy: against float32 of the same model on the same cells; targets "
        f"{TARGETS}. What the kernels allow at best: `inference_cpu_ceiling.md`."
    )
    write_results(
        RESULT_NAME,
        rows,
        notes=notes,
        extra={
            "load_average_before": load_before,
            "load_average_after": load_after,
            "wall_s": round(time.perf_counter() - start, 1),
            "threads": args.threads,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
