"""Throughput (cells/s) of the zero-shot tasks with the small model: embed, denoise, gninfer, generate.

Without ``--ckpt`` a model (``--config``, default ``small``) is first trained for ``--steps``
steps on ``--train-cells`` Kang PBMC cells; its training time is recorded. ``--max-len`` sets its
context (genes per cell; default: the config's, 2,200 for ``small``, slow to train on a CPU).
The tasks then run on ``--cells`` other Kang cells (held out from training), on the CPU
(``torch.set_num_threads`` left at its default) and, when a CUDA GPU is present, on the GPU too; without one the GPU rows say
"not measured: no GPU available". Each task is timed once after a one-batch warm-up, end to end
(AnnData in, AnnData out, input checks and batching included). Held-out quality figures are
recorded next to the timings: label accuracy / macro F1 and the denoising correlations.

Run alone: ``python benchmarks/tasks/bench_tasks.py [--ckpt model.ckpt] [--max-len 256] [--cells 512]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import data_dir_argument, peak_rss_mb, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.tasks")
RESULT_NAME = "tasks_throughput"
NOT_MEASURED = "not measured: no GPU available"


def _split(path: Path, n_train: int, n_eval: int, seed: int = 0) -> tuple[ad.AnnData, ad.AnnData]:
    full = ad.read_h5ad(path)
    order = np.random.default_rng(seed).permutation(full.n_obs)
    if n_train + n_eval > full.n_obs:
        raise SystemExit(f"--train-cells + --cells must be at most {full.n_obs}")
    train = full[np.sort(order[:n_train])].copy()
    held_out = full[np.sort(order[n_train : n_train + n_eval])].copy()
    return train, held_out


def _time(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _generation_quality(pretrained: Any, cells: ad.AnnData) -> str:
    """How generated CD14+ monocytes move when their tokens are replaced by the B-cell ones.

    On the 200 genes that differ most between held-out B cells and monocytes (mean log-normalised
    expression), the correlation between the generated shift (target B cells minus target
    monocytes, same source cells) and the measured shift (B-cell mean minus monocyte mean).
    """
    from scprint.tasks import Generator
    from scprint.tasks.genes import log_normalise

    labels = cells.obs["cell_type"].astype(str).to_numpy()

    def profile(matrix: Any) -> np.ndarray:
        return np.asarray(log_normalise(matrix).mean(axis=0)).ravel()

    measured = profile(cells.X[labels == "B cells"]) - profile(cells.X[labels == "CD14+ Monocytes"])
    markers = np.sort(np.argsort(-np.abs(measured))[:200])
    source = cells[labels == "CD14+ Monocytes"][:64].copy()
    parts = []
    for tokens in (("cell_type",), ("cell_type", "base")):
        columns = dict.fromkeys(tokens, "cell_type")
        profiles = []
        for label in ("B cells", "CD14+ Monocytes"):
            generator = Generator(
                pretrained,
                target=dict.fromkeys(tokens, label),
                label_columns=columns,
                reference=cells,
                genes=list(cells.var_names[markers]),
            )
            out = generator(source, copy=True)
            decoded = out.var["scprint_generated"].to_numpy()  # the markers, in column order
            profiles.append(profile(out.layers["scprint_generated"][:, decoded]))
        shift = profiles[0] - profiles[1]
        parts.append(f"{'+'.join(tokens)}: r = {np.corrcoef(shift, measured[markers])[0, 1]:.3f}")
    return "monocytes -> B cells, generated vs measured shift on 200 marker genes, " + ", ".join(
        parts
    )


def run_device(
    ckpt: Path, cells: ad.AnnData, device: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Time every task on ``device``; one row per task."""
    from scprint.tasks import Denoiser, Embedder, Generator, GNInfer, evaluate_denoising
    from scprint.training import load_pretrained

    pretrained = load_pretrained(ckpt, device=device)
    n = cells.n_obs
    batch = args.batch_size
    tasks = {
        "embed": (
            Embedder(pretrained, batch_size=batch),
            f"default context (model max_len, {pretrained.config.max_len} genes per cell)",
        ),
        "denoise": (
            Denoiser(pretrained, genes="expressed", n_genes=args.denoise_genes, batch_size=batch),
            f"{args.denoise_genes} most expressed genes, depth x4",
        ),
        "gninfer fast": (
            GNInfer(
                pretrained,
                genes="hvg",
                n_genes=args.network_genes,
                n_cells=None,
                aggregation="fast",
                batch_size=batch,
            ),
            f"{args.network_genes} HVGs, all layers and heads, mean",
        ),
        "gninfer exact": (
            GNInfer(
                pretrained,
                genes="hvg",
                n_genes=args.network_genes,
                n_cells=None,
                aggregation="exact",
                batch_size=batch,
            ),
            f"{args.network_genes} HVGs, all layers and heads, mean",
        ),
    }
    rows = []
    for name, (task, setting) in tasks.items():
        task(cells[:batch], copy=True)  # warm-up: one batch
        seconds, out = _time(lambda task=task: task(cells, copy=True))
        row = {
            "task": name,
            "device": device,
            "cells": n,
            "seconds": round(seconds, 3),
            "cells_per_s": round(n / seconds, 1),
            "setting": setting,
        }
        if name == "embed":
            metrics = out.uns["X_scprint"]["metrics"]["cell_type"]
            row["quality"] = (
                f"held-out accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
            )
        rows.append(row)
        log.info("%s", row)
    generator = Generator(
        pretrained,
        target={"cell_type": "B cells"},
        genes=list(cells.var_names[: args.denoise_genes]),
        batch_size=batch,
    )
    generator(cells[:batch], copy=True)
    seconds, _ = _time(lambda: generator(cells, copy=True))
    rows.append(
        {
            "task": "generate",
            "device": device,
            "cells": n,
            "seconds": round(seconds, 3),
            "cells_per_s": round(n / seconds, 1),
            "setting": f"cell_type token -> B cells, {args.denoise_genes} genes decoded",
        }
    )
    rows[-1]["quality"] = _generation_quality(pretrained, cells)
    quality = evaluate_denoising(
        cells, pretrained, fraction=0.7, n_cells=min(n, 256), n_genes=200, device=device
    )
    rows[1]["quality"] = (
        f"held-out Spearman denoised {quality['spearman_denoised']:.3f} vs down-sampled "
        f"{quality['spearman_noisy']:.3f} (70% of counts removed, 200 most expressed genes)"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ckpt", default=None, help="a trained checkpoint (default: train a small model)"
    )
    parser.add_argument(
        "--config", default="small", help="preset or YAML of the model trained without --ckpt"
    )
    parser.add_argument(
        "--max-len",
        type=int,
        default=None,
        help="context (genes per cell) of the model trained without --ckpt (default: the config's)",
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps of the model")
    parser.add_argument(
        "--save-ckpt", default=None, help="keep the trained checkpoint at this path"
    )
    parser.add_argument("--train-cells", type=int, default=2000)
    parser.add_argument("--cells", type=int, default=512, help="held-out cells the tasks run on")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--denoise-genes", type=int, default=256)
    parser.add_argument("--network-genes", type=int, default=200)
    data_dir_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = resolve_data_dir(args.data_dir) / "scrna" / "kang2018_pbmc_8k.h5ad"
    load_before = os.getloadavg()[0]
    train, held_out = _split(data, args.train_cells, args.cells)
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.ckpt) if args.ckpt else None
        if ckpt is None:
            from scprint.training import fit

            model = {"config": {"max_len": args.max_len}} if args.max_len else {}
            seconds, ckpt = _time(
                lambda: fit(
                    args.config,
                    model=model,
                    data={"files": [train]},
                    trainer={
                        "max_steps": args.steps,
                        "default_root_dir": tmp,
                        "val_check_interval": args.steps,
                    },
                )
            )
            if args.save_ckpt:
                ckpt = Path(shutil.copy(ckpt, args.save_ckpt))
            notes.append(
                f"Model: config '{args.config}'"
                + (f" with max_len {args.max_len}" if args.max_len else "")
                + f" trained here for {args.steps} steps on {args.train_cells} Kang cells "
                f"in {seconds:.0f} s on CPU ({torch.get_num_threads()} threads)."
            )
        else:
            notes.append(f"Model: checkpoint {ckpt}.")
        rows = run_device(ckpt, held_out, "cpu", args)
        if torch.cuda.is_available():
            rows += run_device(ckpt, held_out, "cuda", args)
        else:
            rows += [
                {"task": row["task"], "device": "cuda", "cells_per_s": NOT_MEASURED} for row in rows
            ]
    notes.append(
        f"Peak RSS of the run: {peak_rss_mb():.0f} MiB. 1-minute load average {load_before:.2f} "
        f"before and {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs."
    )
    notes.append(
        "Under a load average above the CPU count the throughputs are lower bounds of the idle ones; "
        "each task is one end-to-end call (AnnData in, AnnData out) after a one-batch warm-up."
    )
    write_results(RESULT_NAME, rows, notes="\n\n".join(notes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
