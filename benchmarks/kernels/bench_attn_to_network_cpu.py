"""CPU: ``attention_to_network`` (chunked PyTorch backend) against the naive method, 2,000 genes.

The naive method is ``scprint.kernels.reference.attention_to_network_reference``: it materialises
the ``(cells, heads, seq, seq)`` softmax maps of a batch of cells and scatter-adds them into the
gene x gene matrix. The chunked backend processes one cell and one block of query rows at a time.

Each variant runs in a fresh subprocess. Peak memory is the peak resident set size (RSS) of that
process during the call minus its RSS just before it: on Linux the kernel's high-water mark is
reset through ``/proc/self/clear_refs`` and read from ``VmHWM`` in ``/proc/self/status``;
elsewhere ``ru_maxrss`` is used (then the figure is an upper bound). It counts every allocation
(torch's CPU allocator included), unlike tracemalloc. Time is the best of ``--repeats`` calls.

Run alone: ``python benchmarks/kernels/bench_attn_to_network_cpu.py [--genes 2000 --cells 8]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results  # noqa: E402

log = logging.getLogger("benchmarks.kernels.network_cpu")
VARIANTS = ("naive", "chunked")


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def make_inputs(cells: int, heads: int, genes: int, head_dim: int, padding: float):
    """Cells holding random subsets of the vocabulary (``genes`` positions, a tail of padding)."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(cells, heads, genes, head_dim, generator=generator)
    k = torch.randn(cells, heads, genes, head_dim, generator=generator)
    gene_ids = torch.stack([torch.randperm(genes, generator=generator) for _ in range(cells)])
    n_padding = int(genes * padding)
    if n_padding:
        gene_ids[:, genes - n_padding :] = -1
    return q, k, gene_ids


def run_child(args: argparse.Namespace) -> None:
    """Measure one variant in this (fresh) process and print a JSON line."""
    from scprint.kernels import attention_to_network
    from scprint.kernels.reference import attention_to_network_reference

    torch.set_num_threads(args.threads)
    q, k, gene_ids = make_inputs(args.cells, args.heads, args.genes, args.head_dim, args.padding)
    if args.child == "naive":

        def call():
            return attention_to_network_reference(q, k, gene_ids, args.genes, heads=args.head_mode)

    else:

        def call():
            return attention_to_network(
                q, k, gene_ids, args.genes, heads=args.head_mode, backend="torch"
            )

    rss_before = _rss_kib("VmRSS")
    exact = rss_before is not None and _reset_peak_rss()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    result = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    if exact:
        peak_extra_mb = (_rss_kib("VmHWM") - rss_before) / 1024
    else:
        peak_extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before) / 1024
    torch.save(result[0], args.output)
    print(
        json.dumps(
            {
                "seconds": min(times),
                "peak_extra_mb": peak_extra_mb,
                "memory_method": "VmHWM after clear_refs" if exact else "ru_maxrss delta",
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--genes", type=int, default=2000, help="vocabulary size = positions per cell"
    )
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument(
        "--padding", type=float, default=0.1, help="fraction of padded positions per cell"
    )
    parser.add_argument("--head-mode", default="mean", choices=["mean"], help="heads argument")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {}
        for variant in VARIANTS:
            outputs[variant] = str(Path(tmp) / f"{variant}.pt")
            forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
            cmd = [
                sys.executable,
                __file__,
                *forwarded,
                "--child",
                variant,
                "--output",
                outputs[variant],
            ]
            log.info("running %s", variant)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{proc.stderr}")
            measured = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "method": variant,
                    "genes": args.genes,
                    "cells": args.cells,
                    "heads": args.heads,
                    "head_dim": args.head_dim,
                    "seconds": round(measured["seconds"], 3),
                    "peak_extra_mb": round(measured["peak_extra_mb"], 1),
                    "memory_method": measured["memory_method"],
                }
            )
            log.info("%s", rows[-1])
        naive, chunked = (torch.load(outputs[v]) for v in VARIANTS)
        max_abs_difference = float((naive - chunked).abs().max())
    speedup = rows[0]["seconds"] / rows[1]["seconds"]
    memory_ratio = rows[0]["peak_extra_mb"] / max(rows[1]["peak_extra_mb"], 1e-3)
    rows[1]["speedup_vs_naive"] = round(speedup, 2)
    rows[1]["memory_reduction_vs_naive"] = round(memory_ratio, 1)
    notes = (
        f"CPU, float32, heads='{args.head_mode}', {args.padding:.0%} padding per cell. naive = reference "
        "(materialises the (cells, heads, seq, seq) maps, scatter-adds with index_put_); chunked = "
        "attention_to_network(backend='torch'). Each variant in a fresh subprocess; peak_extra_mb = peak RSS "
        "during the call minus RSS before it (VmHWM reset via /proc/self/clear_refs). "
        f"Max |naive - chunked| = {max_abs_difference:.2e}. Times are indicative: they were taken "
        "under the 1-minute load average recorded with this file."
    )
    write_results("kernels_attn_to_network_cpu", rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
