"""GPU: the Triton kernels of ``scprint.kernels`` against PyTorch, on an H100/H200-class GPU.

1. ``attention`` (bfloat16, seq 1,024-8,192, head_dim 64 and 128, 16k tokens per batch, model
   width 2,048): forward and forward+backward TFLOP/s against ``scaled_dot_product_attention``
   with the flash backend (targets: >= 0.8x SDPA forward+backward without bias); with a
   ``(heads, seq, seq)`` bias against SDPA given the materialised ``(batch, heads, seq, seq)``
   float mask (target: >= 3x faster).
2. ``attention_to_network`` (64 cells, 8 heads, head_dim 64, bfloat16 q/k, heads="mean") against
   the naive method (``attention_to_network_reference`` over batches of cells, at most 8 and at
   most 8 GiB of float32 maps: materialised softmax maps + scatter-add) at 4,096 and 8,192
   genes: time and peak GPU memory (targets: >= 3x faster, >= 10x less memory); and ours alone
   at 20,000 genes (feasibility).

FLOPs: forward ``4 * batch * heads * seq**2 * head_dim``; forward+backward 3.5x that (the
FlashAttention convention: backward = 2.5 forwards). Times: median of ``triton.testing.do_bench``
for attention, best of 3 synchronised runs (after a warm-up) for networks. Peak memory:
``torch.cuda.max_memory_allocated`` during the call minus the allocation before it.

Without a CUDA device the script records every planned row as "not measured: no GPU available"
and exits 0. ``--smoke`` runs tiny shapes on CPU through Triton's interpreter to check the script
itself (nothing is written).

Run alone: ``python benchmarks/kernels/bench_attention_gpu.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

if "--smoke" in sys.argv:
    # Triton picks interpreter mode when triton.language is first imported.
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_results  # noqa: E402

log = logging.getLogger("benchmarks.kernels.gpu")
NOT_MEASURED = "not measured: no GPU available"
RESULT_NAME = "kernels_attention_gpu"


class Plan:
    """Shapes of the run (full on a GPU, tiny with ``--smoke``)."""

    def __init__(self, smoke: bool) -> None:
        self.smoke = smoke
        self.device = torch.device("cpu" if smoke else "cuda")
        self.dtype = torch.float32 if smoke else torch.bfloat16
        self.seqs = (40,) if smoke else (1024, 2048, 4096, 8192)
        self.head_dims = (16,) if smoke else (64, 128)
        self.tokens = 80 if smoke else 16384
        self.width = 32 if smoke else 2048
        self.network_genes = (24,) if smoke else (4096, 8192)
        self.feasibility_genes = 30 if smoke else 20000
        self.cells = 4 if smoke else 64
        self.network_heads = 2 if smoke else 8
        self.network_head_dim = 16 if smoke else 64
        #: The naive method's batch of cells: at most 8, and at most 2**31 float32 map entries (8 GiB).
        self.naive_max_entries = 2**31

    def naive_batch(self, genes: int) -> int:
        return max(1, min(8, self.naive_max_entries // (self.network_heads * genes * genes)))


def planned_rows(plan: Plan) -> list[dict[str, Any]]:
    """Every row the GPU run produces, marked as not measured."""
    rows: list[dict[str, Any]] = []
    for head_dim in plan.head_dims:
        for seq in plan.seqs:
            for variant in (
                "triton",
                "sdpa_flash",
                "triton_bias",
                "sdpa_float_mask",
                "triton_bias_grad",
            ):
                rows.append(
                    {
                        "op": "attention",
                        "variant": variant,
                        "seq": seq,
                        "head_dim": head_dim,
                        "status": NOT_MEASURED,
                    }
                )
    for genes in plan.network_genes:
        for variant in ("triton", "naive"):
            rows.append(
                {
                    "op": "attention_to_network",
                    "variant": variant,
                    "genes": genes,
                    "status": NOT_MEASURED,
                }
            )
    rows.append(
        {
            "op": "attention_to_network",
            "variant": "triton",
            "genes": plan.feasibility_genes,
            "status": NOT_MEASURED,
        }
    )
    return rows


def median_ms(fn: Callable[[], Any], plan: Plan) -> float:
    if plan.smoke:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def best_of_3_ms(fn: Callable[[], Any], plan: Plan) -> float:
    fn()
    best = float("inf")
    for _ in range(1 if plan.smoke else 3):
        if not plan.smoke:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if not plan.smoke:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def peak_extra_mb(fn: Callable[[], Any], plan: Plan) -> float | str:
    if plan.smoke:
        fn()
        return "n/a (CPU smoke run)"
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del result
    return round(peak / 2**20, 1)


def guarded(row: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fill ``row`` from ``measure()``; an out-of-memory error or failure is recorded, not raised."""
    try:
        row.update(measure())
        row.setdefault("status", "ok")
    except torch.cuda.OutOfMemoryError:
        row["status"] = "out of memory"
    except RuntimeError as error:
        row["status"] = f"failed: {str(error).splitlines()[0][:160]}"
    if not row["status"].startswith("ok"):
        log.warning("%s", row)
    if not torch.cuda.is_available():
        return row
    torch.cuda.empty_cache()
    return row


def bench_attention_shape(plan: Plan, seq: int, head_dim: int) -> list[dict[str, Any]]:
    """Rows of every attention variant at one (seq, head_dim)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scprint.kernels import attention

    batch, heads = max(1, plan.tokens // seq), plan.width // head_dim
    generator = torch.Generator(device=plan.device).manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=plan.device, dtype=plan.dtype)

    q, k, v = (randn(batch, heads, seq, head_dim).requires_grad_() for _ in range(3))
    grad_out = randn(batch, heads, seq, head_dim)
    bias = randn(heads, seq, seq)
    forward_flops = 4 * batch * heads * seq * seq * head_dim
    Variant = tuple[Callable[[], torch.Tensor], list[torch.Tensor]]

    def sdpa_flash() -> Variant:
        def forward() -> torch.Tensor:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v)

        return forward, [q, k, v]

    def sdpa_float_mask() -> Variant:
        # Materialised here, so that it exists only while this variant is measured.
        mask = bias.expand(batch, heads, seq, seq).contiguous()
        return (lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)), [q, k, v]

    def triton(with_bias: bool = False, bias_grad: bool = False) -> Variant:
        b = bias.detach().requires_grad_(bias_grad) if with_bias else None
        inputs = [q, k, v] + ([b] if bias_grad else [])
        return (lambda: attention(q, k, v, bias=b, backend="triton")), inputs

    variants: dict[str, Callable[[], Variant]] = {
        "triton": triton,
        "sdpa_flash": sdpa_flash,
        "triton_bias": lambda: triton(with_bias=True),
        "sdpa_float_mask": sdpa_float_mask,
        "triton_bias_grad": lambda: triton(with_bias=True, bias_grad=True),
    }

    def measure(factory: Callable[[], Variant]) -> dict[str, Any]:
        forward, inputs = factory()
        forward_ms = median_ms(forward, plan)
        both_ms = median_ms(lambda: torch.autograd.grad(forward(), inputs, grad_out), plan)
        return {
            "fwd_ms": round(forward_ms, 3),
            "fwd_tflops": round(forward_flops / forward_ms / 1e9, 1),
            "fwd_bwd_ms": round(both_ms, 3),
            "fwd_bwd_tflops": round(3.5 * forward_flops / both_ms / 1e9, 1),
        }

    measured: dict[str, dict[str, Any]] = {}
    for name, factory in variants.items():
        row: dict[str, Any] = {"op": "attention", "variant": name, "seq": seq, "head_dim": head_dim}
        row.update(batch=batch, heads=heads)
        measured[name] = guarded(row, partial(measure, factory))
        log.info("%s", row)
    for ours, theirs in (("triton", "sdpa_flash"), ("triton_bias", "sdpa_float_mask")):
        if measured[ours]["status"] == "ok" and measured[theirs]["status"] == "ok":
            for key in ("fwd_ms", "fwd_bwd_ms"):
                ratio = measured[theirs][key] / measured[ours][key]
                measured[ours][f"speedup_{key[:-3]}_vs_{theirs}"] = round(ratio, 2)
    return list(measured.values())


def network_inputs(plan: Plan, genes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cells holding every gene once in random order, the last 10% of them replaced by padding."""
    generator = torch.Generator(device=plan.device).manual_seed(0)
    shape = (plan.cells, plan.network_heads, genes, plan.network_head_dim)
    q = torch.randn(shape, generator=generator, device=plan.device, dtype=plan.dtype)
    k = torch.randn(shape, generator=generator, device=plan.device, dtype=plan.dtype)
    order = torch.rand(plan.cells, genes, generator=generator, device=plan.device).argsort(dim=1)
    gene_ids = torch.where(order < int(0.9 * genes), order, torch.full_like(order, -1))
    return q, k, gene_ids


def bench_network_size(plan: Plan, genes: int) -> list[dict[str, Any]]:
    """Rows of ours (and naive, except at the feasibility size) at one vocabulary size."""
    from scprint.kernels import attention_to_network, gene_pair_counts
    from scprint.kernels.reference import attention_to_network_reference

    q, k, gene_ids = network_inputs(plan, genes)
    results: dict[str, torch.Tensor] = {}

    def ours() -> tuple[torch.Tensor, torch.Tensor]:
        return attention_to_network(q, k, gene_ids, genes, heads="mean", backend="triton")

    def naive() -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(genes, genes, device=plan.device)
        step = plan.naive_batch(genes)
        for start in range(0, plan.cells, step):
            cells = slice(start, start + step)
            maps, _ = attention_to_network_reference(
                q[cells], k[cells], gene_ids[cells], genes, heads="mean"
            )
            total += maps
        return total, gene_pair_counts(gene_ids, genes)

    def measure(name: str, fn: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
        memory = peak_extra_mb(lambda: results.setdefault(name, fn()[0]), plan)
        return {"ms": round(best_of_3_ms(fn, plan), 1), "peak_extra_mb": memory}

    variants = (
        {"triton": ours} if genes == plan.feasibility_genes else {"triton": ours, "naive": naive}
    )
    measured: dict[str, dict[str, Any]] = {}
    for name, fn in variants.items():
        row: dict[str, Any] = {"op": "attention_to_network", "variant": name, "genes": genes}
        row.update(cells=plan.cells, heads=plan.network_heads, head_dim=plan.network_head_dim)
        measured[name] = guarded(row, partial(measure, name, fn))
        log.info("%s", row)
    if "naive" in results and "triton" in results:
        difference = (results["triton"] - results["naive"]).abs().max() / results[
            "naive"
        ].abs().max()
        measured["triton"]["max_relative_difference"] = float(f"{float(difference):.2e}")
        if measured["naive"]["status"] == "ok" and measured["triton"]["status"] == "ok":
            measured["triton"]["speedup_vs_naive"] = round(
                measured["naive"]["ms"] / measured["triton"]["ms"], 2
            )
            if isinstance(measured["naive"]["peak_extra_mb"], float):
                ratio = measured["naive"]["peak_extra_mb"] / max(
                    measured["triton"]["peak_extra_mb"], 1e-3
                )
                measured["triton"]["memory_reduction_vs_naive"] = round(ratio, 1)
    return list(measured.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny shapes on CPU via Triton's interpreter; writes nothing",
    )
    parser.add_argument("--only", choices=["attention", "network"], help="run one of the two parts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    plan = Plan(smoke=args.smoke)
    targets = (
        "Targets: attention forward+backward >= 0.8x SDPA flash (speedup_fwd_bwd_vs_sdpa_flash >= 0.8); bias path "
        ">= 3x SDPA with a materialised float mask (speedup_*_vs_sdpa_float_mask >= 3); attention_to_network "
        ">= 3x faster and >= 10x less peak memory than naive at 4,096 and 8,192 genes; 20,000 genes feasible."
    )
    if not args.smoke and not torch.cuda.is_available():
        log.warning("no CUDA device: recording the GPU rows as not measured")
        write_results(
            RESULT_NAME,
            planned_rows(plan),
            notes=f"{NOT_MEASURED}; to be measured on an H100/H200. {targets}",
        )
        return 0
    rows = []
    if args.only in (None, "attention"):
        for head_dim in plan.head_dims:
            for seq in plan.seqs:
                rows += bench_attention_shape(plan, seq, head_dim)
    if args.only in (None, "network"):
        for genes in (*plan.network_genes, plan.feasibility_genes):
            rows += bench_network_size(plan, genes)
    if args.smoke:
        failed = [row for row in rows if row["status"] != "ok"]
        log.info("smoke run: %d rows, %d failed", len(rows), len(failed))
        return 1 if failed else 0
    notes = (
        f"GPU {torch.cuda.get_device_name(0)}, bfloat16. attention: batch = 16384 // seq, heads = 2048 // head_dim; "
        "triton_bias uses a (heads, seq, seq) bias without grad, triton_bias_grad also computes its gradient; "
        "sdpa_float_mask gets the same bias materialised as (batch, heads, seq, seq). attention_to_network: "
        "10% padding per cell, naive over batches of min(8, 2**31 // (heads * genes**2)) cells "
        "(8 at 4,096 genes, 4 at 8,192). " + targets
    )
    write_results(RESULT_NAME, rows, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
