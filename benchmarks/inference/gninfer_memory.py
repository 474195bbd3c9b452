"""Peak memory of GNInfer's exact path on CPU for a large network: 5,000 genes x 256 cells.

A randomly initialised model of a size preset (default ``small``; no published checkpoint) over
the genes of the Zheng 2017 sorted PBMC data (8,846 genes, Ensembl ids from ``var``) is saved in
our checkpoint format; ``GNInfer(aggregation="exact", genes="hvg", n_genes=5000)`` then runs on
256 of its cells with all layers and heads and ``head_aggregation="mean"`` (the default), every
cell reading exactly the 5,000 genes. Reports wall time, cells/s and the process's peak RSS
(``ru_maxrss``, model and data included) against the 4 GB target.

Usage::

    python benchmarks/inference/gninfer_memory.py [--size small] [--genes 5000] [--cells 256]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.inference.gninfer_memory")
TARGET_MB = 4096


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="size preset (small, medium, large)")
    parser.add_argument("--genes", type=int, default=5000, help="network genes")
    parser.add_argument("--cells", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", default="32")
    data_dir_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import anndata as ad
    import torch

    from scprint.checkpoints.ours import checkpoint_metadata
    from scprint.data import LabelEncoder, Vocabulary
    from scprint.model import ModelConfig, build_network
    from scprint.tasks import GNInfer

    full = ad.read_h5ad(
        resolve_data_dir(args.data_dir) / "scrna" / "zheng2017_sorted_pbmc_3k5.h5ad"
    )
    ids = full.var["ensembl_id"].astype(str)
    keep = (ids.str.startswith("ENSG") & ~ids.duplicated()).to_numpy()
    adata = full[:, keep].copy()
    adata.var_names = ids[keep].to_numpy()
    rows = np.sort(np.random.default_rng(0).choice(adata.n_obs, args.cells, replace=False))
    cells = adata[rows].copy()
    vocab = Vocabulary(genes=list(adata.var_names), symbols=[""] * adata.n_vars)
    config = ModelConfig.from_yaml(args.size)
    torch.manual_seed(0)
    labels = {
        "cell_type": LabelEncoder(
            name="cell_type", classes=["CL:0000236", "CL:0000623", "CL:0000624"]
        )
    }
    model = build_network(config, len(vocab), {"cell_type": 3})
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.ckpt"
        meta = checkpoint_metadata(config, vocab, labels, {})
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        torch.save({"scprint": meta, "state_dict": state}, ckpt)
        del model, state, full
        task = GNInfer(
            ckpt,
            genes="hvg",
            n_genes=args.genes,
            n_cells=None,
            aggregation="exact",
            batch_size=args.batch_size,
            device="cpu",
            precision=args.precision,
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        start = time.perf_counter()
        task(cells)  # in place: varp["GRN"], var["GRN"] marks the network's genes
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {
        "task": "gninfer exact",
        "size": args.size,
        "precision": args.precision,
        "genes": int(cells.var["GRN"].sum()),
        "cells": cells.n_obs,
        "seconds": round(seconds, 1),
        "cells_per_s": round(cells.n_obs / seconds, 3),
        "peak_rss_mb_before_task": round(before),
        "peak_rss_mb": round(peak),
        "within_4_gb": peak <= TARGET_MB,
        "threads": torch.get_num_threads(),
    }
    log.info("%s", row)
    write_results(
        "inference_gninfer_memory",
        [row],
        notes=(
            f"Peak RSS of the whole process (model, data, network). Load average before the task "
            f"{load}, after {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())} on {os.cpu_count()} "
            "CPUs. The mean over heads is accumulated as it goes (one 5,000 x 5,000 float32 "
            "sum, 100 MB), not one map per head."
        ),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
