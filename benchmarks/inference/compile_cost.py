"""Does ``torch.compile`` pay for itself on a 1,000-cell CPU embedding run? Its compile cost
against its per-batch gain, per precision.

A randomly initialised model of a size preset (default ``medium``) embeds batches of 8 cells x
2,200 genes (``cells_only``, what ``Embedder`` runs) eagerly and through ``torch.compile``
(Inductor, default mode, an empty compile cache so the first call pays the whole compilation):
the first compiled call, eager and compiled batches timed alternately (best of 3 each), and the
first call at a second sequence length (per-batch padding gives each batch its own length, and
each new length compiles again). A 1,000-cell run then costs ``125 x batch`` eagerly and
``first call + 124 x batch`` (+ one recompilation per further length) compiled.

Inputs are synthetic (random gene indices and Poisson counts): the speed of a forward pass does
not depend on the values.

Usage::

    python benchmarks/inference/compile_cost.py [--size medium] [--precisions 32,bf16] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import write_results  # noqa: E402

log = logging.getLogger("benchmarks.inference.compile_cost")
RESULT_NAME = "inference_compile_cost"
BATCH, GENES, RUN_CELLS = 8, 2200, 1000


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def measure(size: str, precision: str) -> dict[str, Any]:
    """Eager vs compiled timings of one precision (a fresh model and compile cache)."""
    import torch

    from scprint.model import ModelConfig, build_network

    torch.manual_seed(0)
    model = build_network(ModelConfig.from_yaml(size), 5000, {"cell_type": 30, "sex": 2}).eval()
    gene_ids = torch.randint(0, 5000, (BATCH, GENES))
    counts = torch.poisson(torch.rand(BATCH, GENES) * 3)
    shorter = GENES - 100

    def clock(fn: Any, *inputs: torch.Tensor) -> float:
        start = time.perf_counter()
        fn(*inputs, counts_of(inputs[0]).sum(1), cells_only=True)
        return time.perf_counter() - start

    def counts_of(ids: torch.Tensor) -> torch.Tensor:
        return counts[:, : ids.shape[1]]

    torch._dynamo.reset()
    row: dict[str, Any] = {"size": size, "precision": precision, "cells_per_batch": BATCH}
    with (
        torch.inference_mode(),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
    ):
        compiled = torch.compile(model)
        clock(model, gene_ids, counts)  # eager warm-up
        row["compile_first_call_s"] = round(clock(compiled, gene_ids, counts), 2)
        eager, fast = [], []
        for _ in range(3):
            eager.append(clock(model, gene_ids, counts))
            fast.append(clock(compiled, gene_ids, counts))
        row["eager_batch_s"] = round(min(eager), 3)
        row["compiled_batch_s"] = round(min(fast), 3)
        row["recompile_new_length_s"] = round(
            clock(compiled, gene_ids[:, :shorter], counts[:, :shorter]), 2
        )
    batches = RUN_CELLS // BATCH
    row["speedup_per_batch"] = round(row["eager_batch_s"] / row["compiled_batch_s"], 3)
    row["run_1000_cells_eager_s"] = round(batches * row["eager_batch_s"], 1)
    row["run_1000_cells_compiled_s"] = round(
        row["compile_first_call_s"] + (batches - 1) * row["compiled_batch_s"], 1
    )
    row["compile_wins_at_1000_cells"] = (
        row["run_1000_cells_compiled_s"] < row["run_1000_cells_eager_s"]
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="medium", help="size preset (small, medium, large)")
    parser.add_argument("--precisions", default="32,bf16", help="comma-separated: 32, bf16")
    parser.add_argument("--threads", type=int, default=None, help="default torch's own")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold compile, as a first run has
        for precision in [p for p in args.precisions.split(",") if p]:
            rows.append(measure(args.size, precision))
            log.info("%s", rows[-1])
    notes = (
        f"Threads {torch.get_num_threads()} of {os.cpu_count()} CPUs; load average (1, 5, 15 "
        f"min) before {load_before}, after {load_average()} (a load above the number of CPUs "
        "means other processes shared them; eager and compiled batches alternate, so both see "
        "the same load). `run_1000_cells_compiled_s` counts one compilation: with per-batch "
        "padding each further sequence length adds about `recompile_new_length_s`."
    )
    write_results(
        RESULT_NAME,
        rows,
        notes=notes,
        extra={"threads": torch.get_num_threads(), "load_average_before": load_before},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
