"""The main job, end to end on real data: ``python demo/run_demo.py --out demo_output`` (``nox -s demo``).

1. pretrain a small scPRINT on the shared PBMC count sets (or reuse the cached run);
2. embed and predict cell types of the held-out sorted-PBMC set (Zheng 2017), and save a 2-D map
   (t-SNE of the embeddings) coloured by true and predicted label;
3. denoise held-out cells and report the correlation gain over the down-sampled input;
4. infer a gene network for one cell type, store it as a GRnnData zarr file and plot the
   sub-network around a known regulator;
5. benchmark it with BenGRN against pearson, genie3 and random (literature and enrichment tasks on
   the PBMC genes, McCalla hESC);
6. write ``<out>/report.md`` with the tables and links to the figures.

Data come from ``--data-dir`` / ``SCPRINT_DATA_DIR`` (see :mod:`grnndata.settings`). Needs the
``bench`` extra (``pip install "scprint-model[bench]"``) for step 5.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import report

from grnndata import atomic

log = logging.getLogger("scprint_demo")

TRAIN_FILES = (
    "scrna/kang2018_pbmc_8k.h5ad",
    "scrna/pbmc3k_2k_hvg.h5ad",
    "scrna/kang2018_ctrl_stim_2k.h5ad",
    "scrna/celltypist_demo_559cells.h5ad",
)
HELD_OUT = "scrna/zheng2017_sorted_pbmc_3k5.h5ad"
# (cell type of the held-out set, regulators to centre the sub-network plot on, first found wins)
GRN_CELL_TYPE = "CD14+ Monocyte"
GRN_SEEDS = ("SPI1", "CEBPB", "CEBPA", "IRF8", "KLF4", "FOS", "JUNB")
# GNInfer settings shared by step 4 and by the scprint method on McCalla hESC in step 5.
GRN_OPTIONS: dict[str, Any] = {"n_cells": 256, "aggregation": "exact", "filtration": "none"}
# The demo's pretraining run (also reused by benchmarks/quality): model preset and steps.
# max_len 128 (genes per cell) keeps a `small` model's pretraining within a few minutes on 2 cores.
DEFAULT_PRETRAINING: dict[str, Any] = {
    "config": "small",
    "max_steps": 400,
    "batch_size": 32,
    "max_len": 128,
    # Binomial thinning instead of the original's down-sampling noise: a 400-step CPU model
    # denoises worse than its own input with the original's noise (scprint.training.Objective).
    "objective": {"noise_model": "binomial"},
}


class Step:
    """Log a numbered step with its wall time."""

    def __init__(self, timings: dict[str, float], number: int, title: str) -> None:
        self.timings, self.number, self.title = timings, number, title

    def __enter__(self) -> Step:
        log.info("step %d/6: %s", self.number, self.title)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start
        self.timings[f"{self.number}. {self.title}"] = elapsed
        log.info("step %d/6 done in %.1f s", self.number, elapsed)


def _cache_key(files: list[Path], config: str, max_steps: int, seed: int) -> str:
    from scprint import __version__
    from scprint.checkpoints import FORMAT_VERSION

    h = hashlib.sha256()
    for f in files:
        stat = f.stat()
        h.update(f"{f.name}:{stat.st_size}".encode())
    h.update(f"{config}:{max_steps}:{seed}:{__version__}:{FORMAT_VERSION}".encode())
    return h.hexdigest()[:16]


def pretrain(
    data: Path,
    cache_dir: Path,
    config: str,
    max_steps: int,
    seed: int,
    retrain: bool,
    **fit_options: Any,
) -> tuple[Path, dict[str, Any]]:
    """Pretrain on the PBMC sets, or return the cached checkpoint of an identical run.

    ``fit_options`` are ``scprint fit`` settings (e.g. ``batch_size`` for ``data:``, a model-config
    field such as ``max_len``, or ``objective``) and go into the cache key.
    """
    from dataclasses import fields

    from scprint.model import ModelConfig
    from scprint.training import fit

    files = [data / f for f in TRAIN_FILES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"training files missing from the data folder: {missing}")
    key = _cache_key(files, f"{config}:{sorted(fit_options.items())}", max_steps, seed)
    run_dir = cache_dir / f"pretrain-{config}-{key}"
    ckpt = run_dir / "scprint.ckpt"
    info: dict[str, Any] = {
        "files": [f.name for f in files],
        "config": config,
        "max_steps": max_steps,
    }
    if ckpt.exists() and not retrain:
        log.info("reusing the cached pretraining run %s (pass --retrain to redo it)", run_dir)
        info["cached"] = True
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        options = dict(fit_options)
        network = {f.name for f in fields(ModelConfig)}
        model = {"config": {k: options.pop(k) for k in list(options) if k in network}}
        if "objective" in options:
            model["objective"] = options.pop("objective")
        # two of the four sets carry no cell types: their cells train unlabelled
        data = {"files": [str(f) for f in files], "labels": ["cell_type"]}
        data.update(allow_missing_labels=True, **options)
        trainer = {"max_steps": max_steps, "default_root_dir": str(run_dir)}
        ckpt = fit(config, model=model, data=data, trainer=trainer, seed_everything=seed)
        info["cached"] = False
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        info["metrics_csv"] = str(metrics)
    return ckpt, info


def embed_held_out(ckpt: Path, adata: ad.AnnData, out: Path) -> tuple[dict[str, Any], Path]:
    """Embed the held-out cells, predict their cell types, plot a 2-D map."""
    from scprint.data.ontology import term_label
    from scprint.tasks import Embedder

    embedder = Embedder(ckpt, label_columns={"cell_type": "cell_type_ontology_term_id"})
    embedder(adata)  # in place: obsm["X_scprint"], obs["scprint_cell_type"], uns["X_scprint"]
    metrics = adata.uns["X_scprint"]["metrics"]
    # both panels in the ontology's names
    true_names = adata.obs["cell_type_ontology_term_id"].astype(str).map(term_label)
    predicted_names = (
        adata.obs["scprint_cell_type"]
        .astype(str)
        .map(lambda label: term_label(label) if ":" in label else label)
    )
    path = report.embedding_figure(
        adata.obsm["X_scprint"], true_names, predicted_names, out / "embedding_tsne.png"
    )
    return metrics.get("cell_type", {}), path


def denoise_held_out(ckpt: Path, adata: ad.AnnData, seed: int) -> dict[str, Any]:
    """Down-sample held-out cells by 70 %, denoise back to full depth, compare with full counts."""
    from scprint.tasks import evaluate_denoising

    return evaluate_denoising(
        adata, ckpt, fraction=0.7, n_cells=300, genes="expressed", n_genes=300, seed=seed
    )


def infer_network(ckpt: Path, adata: ad.AnnData, out: Path) -> tuple[Any, Path, Path, str]:
    """A network for one cell type of the held-out set, stored as zarr, plotted around a regulator."""
    from scprint.tasks import GNInfer

    infer = GNInfer(
        ckpt,
        cell_type_column="cell_type",
        cell_type=GRN_CELL_TYPE,
        genes="hvg",
        n_genes=300,
        **GRN_OPTIONS,
    )
    grn = infer.network(adata)
    path = out / "scprint_monocyte_grn.zarr"
    grn.write_zarr(path)
    genes = set(grn.var_names)
    seed = next((g for g in GRN_SEEDS if g in genes), None)
    if seed is None:
        strength = np.asarray(abs(grn.grn).sum(axis=1)).ravel()
        seed = str(grn.var_names[int(np.argmax(strength))])
        log.info(
            "none of %s among the network's genes; centring the plot on the hub %s", GRN_SEEDS, seed
        )
    figure = report.subgraph_figure(grn, seed, out / f"grn_subgraph_{seed}.png")
    return grn, path, figure, seed


def benchmark_networks(
    ckpt: Path, network_path: Path, grn_input: ad.AnnData, out: Path, seed: int
) -> pd.DataFrame:
    """BenGRN: scPRINT vs pearson, genie3 and random on literature and enrichment (the stored
    monocyte network, on its cells and genes) and McCalla hESC (inferred on the hESC cells)."""
    try:
        from bengrn.runner import run_benchmark
    except ImportError as err:
        raise ImportError(
            "step 5 needs bengrn: pip install 'scprint-model[bench]' (or ./packages/bengrn)"
        ) from err

    baselines = ["pearson", "genie3", "random"]
    params: dict[str, dict[str, Any]] = {
        "genie3": {"n_trees": 50, "seed": seed, "n_jobs": 2},
        "random": {"seed": seed},
    }
    pbmc = run_benchmark(
        ["scprint=demo_methods:stored_network", *baselines],
        ["literature", "enrichment"],
        out / "bengrn_pbmc",
        params={**params, "scprint": {"path": str(network_path)}},
        adata=grn_input,
    )
    hesc = run_benchmark(
        ["scprint", *baselines],
        ["mccalla-hesc"],
        out / "bengrn_hesc",
        params={**params, "scprint": {"ckpt": str(ckpt), **GRN_OPTIONS}},
        task_options={"mccalla-hesc": {"n_genes": 300}},
    )
    return pd.concat([pbmc, hesc], ignore_index=True)


def run(
    out: Path,
    data_dir: str | None = None,
    cache_dir: Path | None = None,
    seed: int = 0,
    retrain: bool = False,
    **pretraining: Any,
) -> Path:
    """Run the six steps and return the path of ``report.md``.

    ``pretraining`` overrides :data:`DEFAULT_PRETRAINING` (``config``, ``max_steps``, and
    :func:`scprint.training.fit` options).
    """
    pretraining = {**DEFAULT_PRETRAINING, **pretraining}
    config = pretraining["config"]
    import platform

    from grnndata.settings import data_dir as resolve_data_dir

    data = resolve_data_dir(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = cache_dir or Path.home() / ".cache" / "scprint" / "demo"
    timings: dict[str, float] = {}
    sections: dict[str, Any] = {
        "data_dir": str(data),
        "timings": timings,
        "machine": f"{platform.machine()} with {os.cpu_count()} CPUs",
        "grn_cell_type": GRN_CELL_TYPE,
    }

    with Step(timings, 1, f"pretrain a {config} scPRINT on the PBMC count sets"):
        ckpt, sections["pretrain"] = pretrain(
            data, cache_dir, seed=seed, retrain=retrain, **pretraining
        )
        if "metrics_csv" in sections["pretrain"]:
            fig = report.loss_figure(
                Path(sections["pretrain"]["metrics_csv"]), out / "pretraining_losses.png"
            )
            sections["loss_figure"] = fig.name if fig else None

    held_out = ad.read_h5ad(data / HELD_OUT)
    with Step(timings, 2, "embed and predict cell types of the held-out Zheng set"):
        sections["embedding"], fig = embed_held_out(ckpt, held_out.copy(), out)
        sections["embedding_figure"] = fig.name

    with Step(timings, 3, "denoise held-out cells"):
        sections["denoising"] = denoise_held_out(ckpt, held_out, seed)

    with Step(timings, 4, f"infer the gene network of {GRN_CELL_TYPE} cells"):
        grn, path, fig, seed_gene = infer_network(ckpt, held_out, out)
        sections.update(
            grn_shape=grn.shape[::-1],
            grn_edges=int(grn.grn.nnz),
            grn_path=path.name,
            grn_figure=fig.name,
            grn_seed=seed_gene,
        )

    with Step(timings, 5, "benchmark with BenGRN against pearson, genie3 and random"):
        cells = held_out[held_out.obs["cell_type"] == GRN_CELL_TYPE]
        grn_input = cells[:, list(grn.var_names)].copy()
        sections["bengrn"] = benchmark_networks(ckpt, path, grn_input, out, seed)
        sections["bengrn_figures"] = sorted(out.glob("bengrn_*/**/*.png"))

    with Step(timings, 6, "write the report"):
        summary = report.write_report(out, sections)
    atomic.write_json(
        out / "demo_summary.json",
        {k: v for k, v in sections.items() if k not in ("bengrn", "bengrn_figures")},
        indent=1,
        default=str,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python demo/run_demo.py``)."""
    parser = argparse.ArgumentParser(
        prog="python demo/run_demo.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--data-dir", default=None, help="data folder (default: SCPRINT_DATA_DIR)")
    parser.add_argument(
        "--cache-dir", default=None, help="pretraining cache (default: ~/.cache/scprint/demo)"
    )
    defaults = DEFAULT_PRETRAINING
    parser.add_argument("--config", default=defaults["config"], help="model preset or YAML")
    parser.add_argument(
        "--max-steps", type=int, default=defaults["max_steps"], help="pretraining steps"
    )
    parser.add_argument("--max-len", type=int, default=defaults["max_len"], help="genes per cell")
    parser.add_argument(
        "--batch-size", type=int, default=defaults["batch_size"], help="cells per step"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of pretraining and sampling")
    parser.add_argument("--retrain", action="store_true", help="ignore the cached pretraining run")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from grnndata.settings import DataDirNotFoundError

    try:
        written = run(
            Path(args.out).resolve(),
            data_dir=args.data_dir,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            seed=args.seed,
            retrain=args.retrain,
            config=args.config,
            max_steps=args.max_steps,
            max_len=args.max_len,
            batch_size=args.batch_size,
        )
    except DataDirNotFoundError as err:
        log.error("%s", err)
        return 2
    sys.stdout.write(f"\nDemo report written to {written}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
