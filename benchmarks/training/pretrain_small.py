"""Pretrain the ``small`` scPRINT model on the shared PBMC sets on CPU; record loss curves and throughput.

Data: ``kang2018_pbmc_8k`` and ``pbmc3k_2k_hvg`` (labelled, Cell Ontology ids), and the unlabelled
``kang2018_ctrl_stim_2k`` and ``celltypist_demo_559cells``; gene positions from
``gene_meta/human_biomart_gene_positions.parquet``. 5% of the cells are held out for validation.
``zheng2017_sorted_pbmc_3k5`` is left out entirely (it is the zero-shot evaluation set).

Outputs (``benchmarks/results/``):

- ``training_pretrain_small.{json,md}``: command, settings, final losses, wall time, cells/s, and
  the loss curves (every logged step) in the JSON;
- ``training_pretrain_small_loss.png``: each loss term against the step;
- ``training_throughput.{json,md}``: training cells/s of ``tiny``, ``cpu-demo`` and ``small``
  (``--throughput-models``; ``small`` at its own 2,200-gene context and at 256 genes) on the CPU
  it runs on (and on the GPU when one is available), measured after warm-up steps.

``small`` keeps the original's 2,200-gene context, slow to train on a CPU; ``--max-len`` shortens
the pretraining run's context (recorded in the results).

Run alone: ``python benchmarks/training/pretrain_small.py [--max-steps N] [--max-len 256]
[--skip-throughput]``.
The checkpoint goes to ``--out-dir`` (default: a folder under the system temp dir), never into the
repository.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS_DIR, data_dir_argument, peak_rss_mb, resolve_data_dir, write_results  # noqa: E402

from scprint.training import fit  # noqa: E402

log = logging.getLogger("benchmarks.training")

DATASETS = (
    "scrna/kang2018_pbmc_8k.h5ad",
    "scrna/pbmc3k_2k_hvg.h5ad",
    "scrna/kang2018_ctrl_stim_2k.h5ad",
    "scrna/celltypist_demo_559cells.h5ad",
)
POSITIONS = "gene_meta/human_biomart_gene_positions.parquet"
TERMS = ("loss", "denoise", "generation", "classification", "disentanglement")


class StepTimer(L.Callback):
    """Wall-clock time at the end of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.times.append(time.perf_counter())

    def cells_per_second(self, batch_size: int, skip: int) -> float:
        """Cells per second from the median step time after the first ``skip`` steps (warm-up).

        The median resists spikes from other load on the CPUs; validation steps are excluded.
        """
        if len(self.times) <= skip + 1:
            raise ValueError(f"need more than {skip + 1} steps to time, got {len(self.times)}")
        steps = [b - a for a, b in zip(self.times[skip:], self.times[skip + 1 :])]
        return batch_size / statistics.median(steps)


def curves(run: Path) -> pd.DataFrame:
    """Per-step training and validation losses from the run's ``metrics.csv``."""
    metrics = pd.read_csv(run / "metrics.csv")
    return metrics.groupby("step").first()


def plot_curves(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TERMS), figsize=(4 * len(TERMS), 3.2))
    for axis, term in zip(axes, TERMS):
        train = frame[f"train/{term}"].dropna()
        axis.plot(
            train.index, train.rolling(10, min_periods=1).mean(), label="train (10-step mean)"
        )
        if f"val/{term}" in frame:
            val = frame[f"val/{term}"].dropna()
            axis.plot(val.index, val, "o-", label="validation")
        axis.set_title(term)
        axis.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def preset_max_len(config: str) -> int | None:
    """The context (genes per cell) a shipped training preset sets, ``None`` if it sets none."""
    import yaml

    from scprint.training.cli import presets

    content = yaml.safe_load(presets()[config].read_text()) or {}
    return ((content.get("model") or {}).get("config") or {}).get("max_len")


def parse_models(spec: str) -> list[tuple[str, int | None]]:
    """``"tiny,small,small:256"`` -> ``[("tiny", None), ("small", None), ("small", 256)]``
    (config, context override)."""
    models = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        config, _, max_len = item.partition(":")
        if max_len and not max_len.isdigit():
            raise SystemExit(f"--throughput-models: {item!r} is not CONFIG or CONFIG:MAX_LEN")
        models.append((config, int(max_len) if max_len else None))
    return models


def throughput(
    data: list[Path],
    config: str,
    steps: int,
    batch_size: int,
    accelerator: str,
    out_dir: Path,
    max_len: int | None = None,
) -> float:
    """Training cells/s of ``config`` (after 5 warm-up steps) on Kang."""
    timer = StepTimer()
    fit(
        config,
        model={"config": {"max_len": max_len}} if max_len else {},
        data={"files": [str(f) for f in data], "batch_size": batch_size, "val_fraction": 0.0},
        trainer={
            "max_steps": steps,
            "default_root_dir": str(out_dir),
            "accelerator": accelerator,
            "log_every_n_steps": steps,
        },
        callbacks=[timer],
    )
    return timer.cells_per_second(batch_size, skip=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_argument(parser)
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out-dir", default=None, help="run folder (default: a temp folder)")
    parser.add_argument(
        "--max-len",
        type=int,
        default=None,
        help="context (genes per cell) of the pretraining run (default: small's 2,200)",
    )
    parser.add_argument("--throughput-steps", type=int, default=25)
    parser.add_argument(
        "--throughput-models",
        default="tiny,cpu-demo,small:256,small",
        help="comma-separated CONFIG or CONFIG:MAX_LEN whose training cells/s is measured",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-pretrain", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data_dir = resolve_data_dir(args.data_dir)
    data = [data_dir / name for name in DATASETS]
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="scprint_pretrain_small_"))

    if not args.skip_pretrain:
        load_before = f"{os.getloadavg()[0]:.2f}"
        timer = StepTimer()
        start = time.perf_counter()
        fit(
            "small",
            model={"config": {"max_len": args.max_len}} if args.max_len else {},
            data={
                "files": [str(f) for f in data],
                "labels": ["cell_type"],
                # kang2018_ctrl_stim_2k and celltypist_demo carry no cell types
                "allow_missing_labels": True,
                "batch_size": args.batch_size,
                "gene_positions": str(data_dir / POSITIONS),
                "val_fraction": 0.05,
            },
            trainer={
                "max_steps": args.max_steps,
                "default_root_dir": str(out_dir),
                "val_check_interval": max(1, args.max_steps // 6),
                "log_every_n_steps": 1,
                "accelerator": "cpu",
            },
            callbacks=[timer],
        )
        wall = time.perf_counter() - start
        frame = curves(out_dir)
        plot_curves(frame, RESULTS_DIR / "training_pretrain_small_loss.png")
        head, tail = frame.head(20), frame.dropna(subset=["train/loss"]).tail(20)
        rows = []
        for term in TERMS:
            val = (
                frame[f"val/{term}"].dropna() if f"val/{term}" in frame else pd.Series(dtype=float)
            )
            rows.append(
                {
                    "term": term,
                    "train_first_20_steps": float(head[f"train/{term}"].mean()),
                    "train_last_20_steps": float(tail[f"train/{term}"].mean()),
                    "val_first": float(val.iloc[0]) if len(val) else float("nan"),
                    "val_last": float(val.iloc[-1]) if len(val) else float("nan"),
                }
            )
        cells_per_s = timer.cells_per_second(args.batch_size, skip=5)
        notes = (
            "small model"
            + (f" with a {args.max_len}-gene context" if args.max_len else "")
            + f", {args.max_steps} steps x {args.batch_size} cells on CPU ({torch.get_num_threads()} "
            f"threads), wall {wall:.0f} s including data loading and validation, {cells_per_s:.1f} training "
            f"cells/s (median step), peak RSS "
            f"{peak_rss_mb():.0f} MiB; 1-minute load average {load_before} before and "
            f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs (above the CPU count, other "
            "processes shared them and times are pessimistic). Curves: "
            "training_pretrain_small_loss.png. The checkpoint is not kept in the repository."
        )
        columns = [c for c in frame.columns if c.startswith(("train/", "val/"))]
        write_results(
            "training_pretrain_small",
            rows,
            notes,
            extra={
                "settings": {
                    "datasets": list(DATASETS),
                    "max_steps": args.max_steps,
                    "batch_size": args.batch_size,
                    "max_len": args.max_len or preset_max_len("small"),
                },
                "wall_s": wall,
                "train_cells_per_s": cells_per_s,
                "curves": {c: frame[c].dropna().round(5).to_dict() for c in columns},
            },
        )

    if not args.skip_throughput:
        kang = [data_dir / DATASETS[0]]
        rows = []
        devices = [("cpu", "cpu")] + ([("gpu", "gpu")] if torch.cuda.is_available() else [])
        for label, accelerator in devices:
            for config, max_len in parse_models(args.throughput_models):
                batch_size = 16 if config == "tiny" else 32
                load_before = os.getloadavg()[0]
                with tempfile.TemporaryDirectory() as tmp:
                    speed = throughput(
                        kang,
                        config,
                        args.throughput_steps,
                        batch_size,
                        accelerator,
                        Path(tmp),
                        max_len=max_len,
                    )
                rows.append(
                    {
                        "device": label,
                        "config": config,
                        "max_len": max_len or preset_max_len(config),
                        "batch_size": batch_size,
                        "train_cells_per_s": speed,
                        "load_avg_1min": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}",
                    }
                )
                log.info("%s %s: %.1f cells/s", label, config, speed)
        notes = (
            f"Training cells/s (forward, bottleneck-generation pass, backward, AdamW step): batch size "
            f"over the median step time of {args.throughput_steps - 6} steps after 5 warm-up steps, on Kang. CPU rows: fp32, "
            f"{torch.get_num_threads()} threads; load_avg_1min: the 1-minute load average before and after "
            f"each row on {os.cpu_count()} CPUs (above the CPU count, other processes shared them, "
            "which lowers cells/s). max_len: genes per cell. GPU rows "
            "(bf16 mixed precision) appear only when a GPU is available."
        )
        write_results("training_throughput", rows, notes)


if __name__ == "__main__":
    main()
