"""How fast a scPRINT forward pass could possibly run on this CPU: FLOPs per cell per operation
class against the measured speed of each class's kernel, per size preset and precision.

A forward pass over ``L`` = 2,200 genes (+ ``C`` cell tokens) spends nearly all its arithmetic in
two classes of operation:

* linear layers (``Wqkv``, ``out_proj``, ``fc1``, ``fc2``: ``2 L (3d + d + 4d + 4d) d`` FLOPs per
  layer with ``n_heads_kv = n_heads``): matrix products of ``(L, d)`` activations;
* attention (``softmax(q kᵀ) v``: ``4 L² d`` FLOPs per layer): PyTorch's CPU flash-attention kernel.

``cells_only`` (what ``Embedder`` runs without gene embeddings) computes the last block for the
``C`` cell tokens alone (its fused ``Wqkv`` still over every token, for the keys and values), so
its last layer costs ``2 L 3 d² + 2 C 9 d² + 4 C L d``. The script measures, with the run's
threads, each class's speed at the preset's own shapes: float32, bfloat16 (oneDNN) and int8
(``torch.ao`` dynamic quantisation, per-channel weights, what ``precision="int8"`` runs) linear
layers, and float32 / bfloat16 attention (``scaled_dot_product_attention``). The best possible
cells/s of a precision is ``1 / (linear FLOPs / linear speed + attention FLOPs / attention
speed)``: it leaves out LayerNorm, GELU, residual adds, casts, embeddings and decoders, so it is
an upper bound. With ``--peer`` the original scPRINT 2.3.8's forward pass is timed in the same
run (its peer venv, ``benchmarks/parity/setup_peers.py``) on 8 real cells, and each bound is
given as a multiple of it.

Usage::

    python benchmarks/inference/cpu_ceiling.py [--sizes small,medium,large] [--threads 2] [--peer]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "parity"))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.inference.cpu_ceiling")
RESULT_NAME = "inference_cpu_ceiling"
GENES = 2200
CELL_TOKENS = 4  # base, depth and two label classes (the models of bench_cpu.py)
HEAD_DIM = 64
BATCH = 2  # cells per timed call


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def flops_per_cell(d: int, n_layers: int, cells_only: bool) -> dict[str, float]:
    """Linear and attention FLOPs of one cell's forward pass (multiply-add = 2 FLOPs)."""
    seq = GENES + CELL_TOKENS
    linear_layer = 2 * seq * 12 * d * d
    attention_layer = 4 * seq * seq * d
    if not cells_only:
        return {"linear": n_layers * linear_layer, "attention": n_layers * attention_layer}
    last_linear = 2 * seq * 3 * d * d + 2 * CELL_TOKENS * 9 * d * d
    last_attention = 4 * CELL_TOKENS * seq * d
    return {
        "linear": (n_layers - 1) * linear_layer + last_linear,
        "attention": (n_layers - 1) * attention_layer + last_attention,
    }


def seconds_of(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Best of ``repeats`` timed calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_rates(d: int) -> dict[str, float]:
    """GFLOP/s of the preset's linear layers (fp32, bf16, int8) and attention (fp32, bf16)."""
    import torch
    import torch.nn.functional as F
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    rows = BATCH * (GENES + CELL_TOKENS)
    shapes = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)]  # Wqkv, out_proj, fc1, fc2
    flops = sum(2 * rows * i * o for i, o in shapes)
    rates: dict[str, float] = {}
    with torch.inference_mode():
        layers = [torch.nn.Linear(i, o) for i, o in shapes]
        inputs = [torch.randn(rows, i) for i, _ in shapes]
        rates["linear_fp32"] = flops / sum(
            seconds_of(lambda x=x, m=m: m(x)) for x, m in zip(inputs, layers)
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rates["linear_bf16"] = flops / sum(
                seconds_of(lambda x=x, m=m: m(x)) for x, m in zip(inputs, layers)
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantised = [
                quantize_dynamic(
                    torch.nn.Sequential(m), {"0": per_channel_dynamic_qconfig}, dtype=torch.qint8
                )
                for m in layers
            ]
        rates["linear_int8"] = flops / sum(
            seconds_of(lambda x=x, m=m: m(x)) for x, m in zip(inputs, quantised)
        )
        heads = d // HEAD_DIM
        seq = GENES + CELL_TOKENS
        q, k, v = (torch.randn(BATCH, heads, seq, HEAD_DIM) for _ in range(3))
        attention_flops = 4 * BATCH * heads * seq * seq * HEAD_DIM
        rates["attention_fp32"] = attention_flops / seconds_of(
            lambda: F.scaled_dot_product_attention(q, k, v)
        )
        qb, kb, vb = (t.bfloat16() for t in (q, k, v))
        rates["attention_bf16"] = attention_flops / seconds_of(
            lambda: F.scaled_dot_product_attention(qb, kb, vb)
        )
    return {name: rate / 1e9 for name, rate in rates.items()}


def original_cells_per_s(
    size: str, d: int, layers: int, heads: int, threads: int, data_dir: Path
) -> float:
    """The original 2.3.8 forward pass (peer venv) on 8 real cells, as ``bench_cpu.py`` runs it."""
    import anndata as ad
    import numpy as np
    from bench_cpu import PEER_VENV, peer_inputs
    from setup_peers import peer_python

    python = peer_python(PEER_VENV)
    if not python.exists():
        raise SystemExit(f"no peer venv {python.parents[1]}; run benchmarks/parity/setup_peers.py")
    full = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    cells = full[np.sort(np.random.default_rng(0).permutation(full.n_obs)[:8])].copy()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        peer_inputs(list(cells.var_names), cells, 8, inputs)
        done = subprocess.run(
            [str(python), str(HERE / "peer_cpu.py"), str(inputs), str(Path(tmp) / "m.ckpt")]
            + [str(d), str(layers), str(heads), str(threads)],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise SystemExit(f"peer failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cells_per_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="small,medium,large", help="comma-separated presets")
    parser.add_argument("--threads", type=int, default=None, help="default torch's own")
    parser.add_argument(
        "--peer", action="store_true", help="also time the original 2.3.8 (its peer venv)"
    )
    data_dir_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch
    from bench_cpu import SIZES

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    for size in [s for s in args.sizes.split(",") if s]:
        d, layers, heads = SIZES[size]
        rates = measure_rates(d)
        log.info("%s: %s GFLOP/s", size, {k: round(v) for k, v in rates.items()})
        original = (
            original_cells_per_s(size, d, layers, heads, threads, resolve_data_dir(args.data_dir))
            if args.peer
            else None
        )
        for precision, linear, attention in (
            ("32", "linear_fp32", "attention_fp32"),
            ("bf16", "linear_bf16", "attention_bf16"),
            ("int8", "linear_int8", "attention_fp32"),
        ):
            for cells_only in (False, True):
                flops = flops_per_cell(d, layers, cells_only)
                seconds = flops["linear"] / (rates[linear] * 1e9)
                seconds += flops["attention"] / (rates[attention] * 1e9)
                row = {
                    "size": size,
                    "precision": precision,
                    "pass": "cells_only" if cells_only else "full",
                    "linear_gflop_per_cell": round(flops["linear"] / 1e9, 1),
                    "attention_gflop_per_cell": round(flops["attention"] / 1e9, 1),
                    "linear_gflop_per_s": round(rates[linear], 1),
                    "attention_gflop_per_s": round(rates[attention], 1),
                    "attention_time_share": round(
                        flops["attention"] / (rates[attention] * 1e9) / seconds, 3
                    ),
                    "best_cells_per_s": round(1 / seconds, 3),
                }
                if original is not None:
                    row["original_cells_per_s"] = round(original, 3)
                    row["best_vs_original"] = round(1 / seconds / original, 2)
                rows.append(row)
    notes = (
        f"Threads {threads} of {os.cpu_count()} CPUs; load average (1, 5, 15 min) before "
        f"{load_before}, after {load_average()} (a load above the number of CPUs means other "
        "processes shared them, which lowers every rate). Linear speed: the four linear layers "
        f"of a block at the preset's width over {BATCH} cells x {GENES + CELL_TOKENS} tokens; "
        f"attention: scaled_dot_product_attention over {BATCH} cells, the preset's heads of "
        f"{HEAD_DIM}. int8 attention runs in float32 (only the linear layers are quantised). "
        "`best_cells_per_s` counts only these two classes (no LayerNorm, GELU, adds, casts, "
        "embeddings or decoders), so it bounds what any implementation with these kernels "
        "reaches; `best_vs_original` divides it by the original 2.3.8 forward pass timed in "
        "the same run (8 real cells, same threads)."
    )
    write_results(
        RESULT_NAME,
        rows,
        notes=notes,
        extra={"threads": threads, "load_average_before": load_before},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
