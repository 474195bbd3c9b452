"""GPU: the Triton kernels of ``scprint.kernels`` against PyTorch's SDPA and FlexAttention.

Four parts, each row written to ``results/kernels_attention_gpu.{json,md}``; the targets beside
the measured ratios, with pass / fail, go to ``results/kernels_gpu_targets.{json,md}``:

1. ``attention`` without bias, bfloat16, 1,024-8,192 tokens, head_dim 64 and 128 (16,384 tokens
   per batch, model width 2,048): forward and forward+backward TFLOP/s, ours (autotuned) against
   SDPA's flash backend. Target: >= 0.8x SDPA flash, forward and forward+backward.
2. learnable bias: a ``(heads, seq, seq)`` bias that requires grad (e.g. a learned gene-gene
   prior), forward+backward time and peak memory, ours against FlexAttention (``torch.compile``
   d ``flex_attention`` with a ``score_mod`` closing over the bias tensor; its backward
   accumulates the bias gradient) and against SDPA's memory-efficient backend given the bias as
   a grad-requiring ``attn_mask`` (broadcast over the batch). Targets: >= 1.5x FlexAttention,
   >= 3x SDPA memory-efficient.
3. ``attention_to_network`` at 8,000 genes x 64 cells (8 heads, head_dim 64, bfloat16, 10 %
   padding, ``heads="mean"``) against the naive materialise-and-scatter
   (``attention_to_network_reference`` over batches of cells, each batch's float32 maps at most
   8 GiB): time and peak memory. Targets: >= 3x faster, >= 10x less peak memory.
4. the whole model with ``backend="auto"`` (``scprint.testing.synthetic.build_model``), ``small`` and ``medium``:
   training (bfloat16 autocast, AdamW) and inference cells/s on synthetic counts.

FLOPs: forward ``4 * batch * heads * seq**2 * head_dim``; forward+backward 3.5x that (the
FlashAttention convention). Times: median of ``triton.testing.do_bench`` (attention), best of 3
synchronised runs after a warm-up (networks). Peak memory: ``torch.cuda.max_memory_allocated``
during the call minus the allocation before it. A time budget (``--budget-s``) bounds the run:
rows it leaves out say so.

Without a CUDA device the script records every planned row as "not measured: no GPU available"
and exits 0. ``--smoke`` runs every part with tiny shapes on CPU, the kernels in Triton's
interpreter, to check the script end to end (rows PyTorch cannot run on CPU are marked; nothing
is written unless ``--out`` is given).

Run alone: ``python benchmarks/kernels/bench_attention_gpu.py``; the whole GPU check (tests,
then this) is ``bash benchmarks/kernels/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "--smoke" in sys.argv:
    # Triton picks interpreter mode when triton.language is first imported.
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import _common  # noqa: E402

from scprint.testing import synthetic  # noqa: E402

log = logging.getLogger("benchmarks.kernels.gpu")
NOT_MEASURED = "not measured: no GPU available"
RESULT_NAME = "kernels_attention_gpu"
TARGETS_NAME = "kernels_gpu_targets"
#: Target name -> (claim, least acceptable ratio).
TARGETS = {
    "no_bias_fwd": ("attention, no bias, forward: ours / SDPA flash speed", 0.8),
    "no_bias_fwd_bwd": ("attention, no bias, forward+backward: ours / SDPA flash speed", 0.8),
    "bias_vs_flex": ("learnable bias, forward+backward: speed-up over FlexAttention", 1.5),
    "bias_vs_sdpa": ("learnable bias, forward+backward: speed-up over SDPA mem-efficient", 3.0),
    "network_speed": ("attention-to-network, 8,000 genes x 64 cells: speed-up over naive", 3.0),
    "network_memory": ("attention-to-network: peak-memory reduction over naive", 10.0),
}


class Plan:
    """Shapes of the run (full on a GPU, tiny with ``--smoke``)."""

    def __init__(self, smoke: bool, budget_s: float) -> None:
        self.smoke = smoke
        self.device = torch.device("cpu" if smoke else "cuda")
        self.dtype = torch.float32 if smoke else torch.bfloat16
        self.seqs = (24,) if smoke else (1024, 2048, 4096, 8192)
        self.head_dims = (16,) if smoke else (64, 128)
        self.bias_seqs = (24,) if smoke else (1024, 4096)
        self.tokens = 24 if smoke else 16384
        self.width = 32 if smoke else 2048
        self.network_genes = 24 if smoke else 8000
        self.cells = 2 if smoke else 64
        self.network_heads = 2 if smoke else 8
        self.network_head_dim = 16 if smoke else 64
        #: The naive method's batch of cells: at most 2**31 float32 map entries (8 GiB).
        self.naive_max_entries = 2**31
        self.presets = (("tiny", 2),) if smoke else (("small", 64), ("medium", 32))
        self.model_steps = (0, 1) if smoke else (3, 10)
        self.budget_s = budget_s
        self.start = time.perf_counter()

    def naive_batch(self, genes: int) -> int:
        return max(1, min(self.cells, self.naive_max_entries // (self.network_heads * genes**2)))

    def over_budget(self) -> bool:
        return time.perf_counter() - self.start > self.budget_s


def planned_rows(plan: Plan) -> list[dict[str, Any]]:
    """Every measurement row of a GPU run, marked as not measured."""
    rows: list[dict[str, Any]] = []
    for head_dim in plan.head_dims:
        for seq in plan.seqs:
            for variant in ("triton", "sdpa_flash"):
                rows.append(
                    {"op": "attention", "variant": variant, "seq": seq, "head_dim": head_dim}
                )
        for seq in plan.bias_seqs:
            for variant in ("triton", "flex_attention", "sdpa_mem_efficient"):
                rows.append(
                    {"op": "learnable_bias", "variant": variant, "seq": seq, "head_dim": head_dim}
                )
    for variant in ("triton", "naive"):
        rows.append({"op": "attention_to_network", "variant": variant, "genes": plan.network_genes})
    for preset, _ in plan.presets:
        for mode in ("train", "inference"):
            rows.append({"op": f"model_{mode}", "variant": "auto", "preset": preset})
    for row in rows:
        row["status"] = NOT_MEASURED
    return rows


# ------------------------------------------------------------------------------- measuring


class NotRunHere(RuntimeError):
    """A variant that cannot run on this device (recorded as its status, not as a failure)."""


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
    """Peak CUDA memory during ``fn()`` above what was allocated before, in MiB."""
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


def guarded(row: dict[str, Any], measure: Callable[[], dict[str, Any]], plan: Plan) -> dict:
    """Fill ``row`` from ``measure()``; out of memory, a failure or the budget is recorded."""
    if plan.over_budget():
        row["status"] = f"not measured: time budget of {plan.budget_s:.0f} s spent"
        return row
    try:
        row.update(measure())
        row.setdefault("status", "ok")
    except torch.cuda.OutOfMemoryError:
        row["status"] = "out of memory"
    except NotRunHere as reason:
        row["status"] = str(reason)
    except Exception as error:  # one failing variant must not stop the others
        row["status"] = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    if row["status"].startswith(("failed", "out of memory")):
        log.warning("%s", row)
    else:
        log.info("%s", row)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def ratio(rows: dict[str, dict], ours: str, theirs: str, key: str) -> float | None:
    """``theirs[key] / ours[key]`` when both rows measured ``key``."""
    a, b = rows.get(ours, {}), rows.get(theirs, {})
    if a.get("status") != "ok" or b.get("status") != "ok":
        return None
    if not isinstance(a.get(key), float) or not isinstance(b.get(key), float):
        return None
    return round(b[key] / max(a[key], 1e-9), 2)


# ------------------------------------------------------------------------------ attention


def attention_inputs(plan: Plan, seq: int, head_dim: int):
    batch, heads = max(1, plan.tokens // seq), plan.width // head_dim
    generator = torch.Generator(device=plan.device).manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=plan.device, dtype=plan.dtype)

    q, k, v = (randn(batch, heads, seq, head_dim).requires_grad_() for _ in range(3))
    return q, k, v, randn(batch, heads, seq, head_dim), randn, (batch, heads)


def timing(forward: Callable[[], torch.Tensor], inputs, grad_out, flops: int, plan: Plan) -> dict:
    """Forward and forward+backward medians, TFLOP/s, and peak memory of forward+backward."""

    def both() -> Any:
        return torch.autograd.grad(forward(), inputs, grad_out)

    forward_ms = median_ms(forward, plan)
    both_ms = median_ms(both, plan)
    return {
        "fwd_ms": round(forward_ms, 3),
        "fwd_tflops": round(flops / forward_ms / 1e9, 1),
        "fwd_bwd_ms": round(both_ms, 3),
        "fwd_bwd_tflops": round(3.5 * flops / both_ms / 1e9, 1),
        "fwd_bwd_peak_mb": peak_extra_mb(both, plan),
    }


def bench_no_bias(plan: Plan, seq: int, head_dim: int) -> list[dict[str, Any]]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scprint.kernels import attention

    q, k, v, grad_out, _, (batch, heads) = attention_inputs(plan, seq, head_dim)
    flops = 4 * batch * heads * seq * seq * head_dim

    def sdpa_flash() -> torch.Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    variants = {
        "triton": lambda: attention(q, k, v, backend="triton"),
        "sdpa_flash": sdpa_flash,
    }
    rows = {}
    for name, forward in variants.items():
        row = {"op": "attention", "variant": name, "seq": seq, "head_dim": head_dim}
        row.update(batch=batch, heads=heads)
        rows[name] = guarded(
            row, lambda f=forward: timing(f, [q, k, v], grad_out, flops, plan), plan
        )
    for key in ("fwd_ms", "fwd_bwd_ms"):
        speed = ratio(rows, "triton", "sdpa_flash", key)
        if speed is not None:
            rows["triton"][f"speed_vs_sdpa_flash_{key[:-3]}"] = speed
    return list(rows.values())


_COMPILED: dict[str, Callable] = {}


def compiled_flex_attention() -> Callable:
    """``torch.compile(flex_attention)``, built once (how FlexAttention is meant to be used)."""
    if "flex" not in _COMPILED:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED["flex"] = torch.compile(flex_attention, dynamic=False)
    return _COMPILED["flex"]


def bench_learnable_bias(plan: Plan, seq: int, head_dim: int) -> list[dict[str, Any]]:
    """A ``(heads, seq, seq)`` bias requiring grad: ours, FlexAttention, SDPA memory-efficient."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scprint.kernels import attention

    q, k, v, grad_out, randn, (batch, heads) = attention_inputs(plan, seq, head_dim)
    bias = randn(heads, seq, seq).requires_grad_()
    flops = 4 * batch * heads * seq * seq * head_dim
    inputs = [q, k, v, bias]

    def ours() -> torch.Tensor:
        return attention(q, k, v, bias=bias, backend="triton")

    def flex() -> torch.Tensor:
        if plan.smoke:
            raise NotRunHere("not run on CPU: FlexAttention has no CPU backward")

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + bias[h, q_idx, kv_idx]

        return compiled_flex_attention()(q, k, v, score_mod=score_mod)

    def sdpa_mem_efficient() -> torch.Tensor:
        if plan.smoke:
            raise NotRunHere("not run on CPU: the memory-efficient SDPA backend is CUDA-only")
        with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.unsqueeze(0))

    rows = {}
    for name, forward in (
        ("triton", ours),
        ("flex_attention", flex),
        ("sdpa_mem_efficient", sdpa_mem_efficient),
    ):
        row = {"op": "learnable_bias", "variant": name, "seq": seq, "head_dim": head_dim}
        row.update(batch=batch, heads=heads)
        rows[name] = guarded(row, lambda f=forward: timing(f, inputs, grad_out, flops, plan), plan)
    for theirs in ("flex_attention", "sdpa_mem_efficient"):
        speed = ratio(rows, "triton", theirs, "fwd_bwd_ms")
        if speed is not None:
            rows["triton"][f"speedup_vs_{theirs}"] = speed
        memory = ratio(rows, "triton", theirs, "fwd_bwd_peak_mb")
        if memory is not None:
            rows["triton"][f"memory_reduction_vs_{theirs}"] = memory
    return list(rows.values())


# ------------------------------------------------------------------------------ networks


def network_inputs(plan: Plan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cells holding every gene once in random order, the last 10 % of them replaced by padding."""
    genes = plan.network_genes
    generator = torch.Generator(device=plan.device).manual_seed(0)
    shape = (plan.cells, plan.network_heads, genes, plan.network_head_dim)
    q = torch.randn(shape, generator=generator, device=plan.device, dtype=plan.dtype)
    k = torch.randn(shape, generator=generator, device=plan.device, dtype=plan.dtype)
    order = torch.rand(plan.cells, genes, generator=generator, device=plan.device).argsort(dim=1)
    gene_ids = torch.where(order < int(0.9 * genes), order, torch.full_like(order, -1))
    return q, k, gene_ids


def bench_network(plan: Plan) -> list[dict[str, Any]]:
    from scprint.kernels import attention_to_network, gene_pair_counts
    from scprint.kernels.reference import attention_to_network_reference

    genes = plan.network_genes
    q, k, gene_ids = network_inputs(plan)
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

    def measure(name: str, fn: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> dict:
        memory = peak_extra_mb(lambda: results.setdefault(name, fn()[0]), plan)
        return {"ms": round(best_of_3_ms(fn, plan), 1), "peak_extra_mb": memory}

    rows = {}
    for name, fn in (("triton", ours), ("naive", naive)):
        row = {"op": "attention_to_network", "variant": name, "genes": genes, "cells": plan.cells}
        row.update(heads=plan.network_heads, head_dim=plan.network_head_dim)
        rows[name] = guarded(row, lambda n=name, f=fn: measure(n, f), plan)
    if "naive" in results and "triton" in results:
        difference = (results["triton"] - results["naive"]).abs().max()
        rows["triton"]["max_relative_difference"] = float(
            f"{float(difference / results['naive'].abs().max()):.2e}"
        )
    speed = ratio(rows, "triton", "naive", "ms")
    if speed is not None:
        rows["triton"]["speedup_vs_naive"] = speed
    memory = ratio(rows, "triton", "naive", "peak_extra_mb")
    if memory is not None:
        rows["triton"]["memory_reduction_vs_naive"] = memory
    return list(rows.values())


# ---------------------------------------------------------------------------------- model


def bench_model(plan: Plan, preset: str, batch_size: int) -> list[dict[str, Any]]:
    """Training and inference cells/s of the whole model with ``backend="auto"``."""
    warmup, steps = plan.model_steps
    rows = []
    state: dict[str, Any] = {}

    def setup() -> None:
        torch.manual_seed(0)
        state["module"] = synthetic.build_model(preset, plan.device)
        state["batch"] = synthetic.make_batch(state["module"], batch_size, plan.device)
        state["optimizer"] = torch.optim.AdamW(state["module"].parameters(), lr=1e-4)

    def train() -> dict:
        setup()

        def step() -> Any:
            return synthetic.training_step(state["module"], state["optimizer"], state["batch"])

        rate = synthetic.cells_per_second(step, batch_size, plan.device, warmup, steps)
        return {"cells_per_s": round(rate, 1)}

    def inference() -> dict:
        if "module" not in state:
            setup()

        def step() -> Any:
            return synthetic.inference_step(state["module"], state["batch"])

        rate = synthetic.cells_per_second(step, batch_size, plan.device, warmup, steps)
        return {"cells_per_s": round(rate, 1)}

    for mode, measure in (("train", train), ("inference", inference)):
        row = {"op": f"model_{mode}", "variant": "auto", "preset": preset, "batch": batch_size}
        rows.append(guarded(row, measure, plan))
    from scprint.kernels import dispatch

    used = sorted(
        f"{op} {dtype} head_dim {dim}: {'triton' if cause is None else 'PyTorch (' + cause + ')'}"
        for (op, _, dtype, dim), cause in dispatch._self_check_results.items()
    )
    for row in rows:
        row["auto_backend"] = "; ".join(used) or "PyTorch (CPU)"
    state.clear()
    return rows


# -------------------------------------------------------------------------------- targets


def target_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target beside its measured ratios (worst case over shapes) and pass / fail."""
    measured: dict[str, list[tuple[str, float]]] = {name: [] for name in TARGETS}
    for row in rows:
        shape = f"seq {row.get('seq')} d {row.get('head_dim')}"
        pairs = {
            "no_bias_fwd": row.get("speed_vs_sdpa_flash_fwd"),
            "no_bias_fwd_bwd": row.get("speed_vs_sdpa_flash_fwd_bwd"),
            "bias_vs_flex": row.get("speedup_vs_flex_attention"),
            "bias_vs_sdpa": row.get("speedup_vs_sdpa_mem_efficient"),
            "network_speed": row.get("speedup_vs_naive"),
            "network_memory": row.get("memory_reduction_vs_naive"),
        }
        for name, value in pairs.items():
            if value is not None:
                label = shape if name.startswith(("no_bias", "bias")) else f"{row['genes']} genes"
                measured[name].append((label, value))
    out = []
    for name, (claim, target) in TARGETS.items():
        values = measured[name]
        if not values:
            out.append({"claim": claim, "target": f">= {target}x", "measured": "not measured"})
            continue
        worst = min(values, key=lambda pair: pair[1])
        out.append(
            {
                "claim": claim,
                "target": f">= {target}x",
                "measured": ", ".join(f"{value}x ({label})" for label, value in values),
                "worst": worst[1],
                "result": "pass" if worst[1] >= target else "fail",
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny shapes on CPU via Triton's interpreter"
    )
    parser.add_argument(
        "--only",
        choices=["attention", "bias", "network", "model"],
        action="append",
        help="run some parts only (repeatable; default: all four)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=240.0,
        help="stop measuring after this many seconds; later rows say so (default 240)",
    )
    parser.add_argument(
        "--out", default=None, help="results folder (default: benchmarks/results; smoke: none)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.out:
        _common.RESULTS_DIR = Path(args.out).resolve()
    plan = Plan(smoke=args.smoke, budget_s=args.budget_s)
    parts = set(args.only or ["attention", "bias", "network", "model"])
    targets_note = "Targets: " + "; ".join(f"{c} >= {t}x" for c, t in TARGETS.values()) + "."
    if not args.smoke and not torch.cuda.is_available():
        log.warning("no CUDA device: recording the GPU rows as not measured")
        rows = planned_rows(plan)
        note = f"{NOT_MEASURED}; to be measured on an H100/H200. {targets_note}"
        _common.write_results(RESULT_NAME, rows, notes=note)
        _common.write_results(TARGETS_NAME, target_rows(rows), notes=note)
        return 0
    rows: list[dict[str, Any]] = []
    if "attention" in parts:
        for head_dim in plan.head_dims:
            for seq in plan.seqs:
                rows += bench_no_bias(plan, seq, head_dim)
    if "bias" in parts:
        for head_dim in plan.head_dims:
            for seq in plan.bias_seqs:
                rows += bench_learnable_bias(plan, seq, head_dim)
    if "network" in parts:
        rows += bench_network(plan)
    if "model" in parts:
        for preset, batch_size in plan.presets:
            rows += bench_model(plan, preset, batch_size)
    targets = target_rows(rows)
    failed = [row for row in rows if row["status"].startswith(("failed", "out of memory"))]
    where = "CPU smoke run (Triton interpreter, tiny shapes: the numbers mean nothing)"
    if not args.smoke:
        where = f"GPU {torch.cuda.get_device_name(0)}, bfloat16, torch {torch.__version__}"
    notes = (
        f"{where}. attention: batch = {plan.tokens} // seq, heads = {plan.width} // head_dim. "
        "learnable_bias: a (heads, seq, seq) bias requiring grad; flex_attention is "
        "torch.compile(flex_attention) with a score_mod reading the bias; sdpa_mem_efficient gets "
        "it as attn_mask (1, heads, seq, seq). attention_to_network: 10 % padding per cell, "
        f"naive over batches of {plan.naive_batch(plan.network_genes)} cells. model: "
        "scprint.testing.synthetic.build_model, synthetic counts, bfloat16 autocast, AdamW. "
        + targets_note
    )
    if args.smoke and not args.out:
        for row in rows + targets:
            log.info("smoke: %s", row)
    else:
        _common.write_results(RESULT_NAME, rows, notes=notes)
        _common.write_results(TARGETS_NAME, targets, notes=notes)
    log.info("%d rows, %d failed", len(rows), len(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
