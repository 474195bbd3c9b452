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
import evaluation
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
# The demo's pretraining run (also reused by benchmarks/quality): the ``cpu-demo`` config
# (scprint/configs/cpu-demo.yaml: model, objective, optimiser, batch and steps), the recipe that
# benchmarks/training/recipe_search.py found best within about 10 minutes of 2 CPU cores.
DEFAULT_PRETRAINING: dict[str, Any] = {"config": "cpu-demo"}
#: Where the mean and spread over seeds of the demo recipe's quality numbers are recorded.
SEED_SPREAD_RESULTS = "benchmarks/results/recipe_search_summary.md"


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


def _config_text(config: str) -> str:
    """The text of a preset (by name) or YAML file, so that editing it invalidates the cache."""
    from scprint.training.cli import presets

    shipped = presets()
    path = Path(config) if Path(config).is_file() else shipped.get(config.removesuffix(".yaml"))
    if path is None:
        raise FileNotFoundError(
            f"config {config!r} is neither a YAML file nor a preset {sorted(shipped)}"
        )
    return path.read_text()


def _cache_key(files: list[Path], config: str, options: str, seed: int) -> str:
    from scprint import __version__
    from scprint.checkpoints import FORMAT_VERSION

    h = hashlib.sha256()
    for f in files:
        stat = f.stat()
        h.update(f"{f.name}:{stat.st_size}".encode())
    h.update(_config_text(config).encode())
    h.update(f"{config}:{options}:{seed}:{__version__}:{FORMAT_VERSION}".encode())
    return h.hexdigest()[:16]


def pretrain(
    data: Path,
    cache_dir: Path,
    config: str,
    seed: int,
    retrain: bool,
    max_steps: int | None = None,
    **fit_options: Any,
) -> tuple[Path, dict[str, Any]]:
    """Pretrain on the PBMC sets, or return the cached checkpoint of an identical run.

    ``config`` is a preset or YAML file (its text goes into the cache key); ``max_steps``
    overrides its ``trainer.max_steps``; ``fit_options`` are ``scprint fit`` settings (e.g.
    ``batch_size`` for ``data:``, a model-config field such as ``max_len``, or ``objective``) and
    go into the cache key.
    """
    from dataclasses import fields

    from scprint.model import ModelConfig
    from scprint.training import fit
    from scprint.training.fit import _mapping

    files = [data / f for f in TRAIN_FILES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"training files missing from the data folder: {missing}")
    options = {k: v for k, v in fit_options.items() if v is not None}
    key = _cache_key(files, config, f"{max_steps}:{sorted(options.items())}", seed)
    name = Path(config).stem
    run_dir = cache_dir / f"pretrain-{name}-{key}"
    ckpt = run_dir / "scprint.ckpt"
    steps = max_steps or (_mapping(config).get("trainer") or {}).get("max_steps")
    info: dict[str, Any] = {"files": [f.name for f in files], "config": name, "max_steps": steps}
    if ckpt.exists() and not retrain:
        log.info("reusing the cached pretraining run %s (pass --retrain to redo it)", run_dir)
        info["cached"] = True
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        network = {f.name for f in fields(ModelConfig)}
        model: dict[str, Any] = {
            "config": {k: options.pop(k) for k in list(options) if k in network}
        }
        if "objective" in options:
            model["objective"] = options.pop("objective")
        # two of the four sets carry no cell types: their cells train unlabelled
        data_section = {"files": [str(f) for f in files], "labels": ["cell_type"]}
        data_section.update(allow_missing_labels=True, **options)
        trainer: dict[str, Any] = {"default_root_dir": str(run_dir)}
        if max_steps is not None:
            trainer["max_steps"] = max_steps
        ckpt = fit(config, model=model, data=data_section, trainer=trainer, seed_everything=seed)
        info["cached"] = False
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        info["metrics_csv"] = str(metrics)
    return ckpt, info


def embed_held_out(ckpt: Path, adata: ad.AnnData, out: Path, seed: int) -> dict[str, Any]:
    """Embed the held-out cells and predict their cell types (:func:`evaluation.label_evaluation`:
    chance and macro-F1 over the scored populations, linear probe and 15-NN beside PCA-50's);
    plot a 2-D map and the confusion matrix."""
    from scprint.data.ontology import term_label

    result = evaluation.label_evaluation(ckpt, adata, seed=seed)
    true_names = adata.obs["cell_type_ontology_term_id"].astype(str).map(term_label)
    predicted_names = pd.Series(result["predicted_names"], index=adata.obs_names)
    tsne = report.embedding_figure(
        result["embedding"], true_names, predicted_names, out / "embedding_tsne.png"
    )
    confusion = report.confusion_figure(result["confusion"], out / "confusion_matrix.png")
    return {
        "metrics": result["metrics"],
        "per_population": result["per_population"],
        "confusion": result["confusion"],
        "figure": tsne.name,
        "confusion_figure": confusion.name,
    }


def denoise_held_out(ckpt: Path, adata: ad.AnnData, seed: int) -> dict[str, Any]:
    """Down-sample held-out cells by 70 %, denoise back to full depth, compare with full counts
    (and with 15-NN smoothing of the same thinned cells)."""
    return evaluation.denoising_evaluation(ckpt, adata, n_cells=300, n_genes=300, seed=seed)


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
        sections["embedding"] = embed_held_out(ckpt, held_out.copy(), out, seed)

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
        sections["seed_spread"] = SEED_SPREAD_RESULTS
        summary = report.write_report(out, sections)
    atomic.write_json(out / "demo_summary.json", summary_record(sections), indent=1, default=str)
    return summary


def summary_record(sections: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers as plain JSON: the confusion matrix as ``{population: {label: n}}``,
    the BenGRN table as records."""
    record = {k: v for k, v in sections.items() if k != "bengrn_figures"}
    embedding = dict(record["embedding"])
    embedding["confusion"] = embedding["confusion"].to_dict(orient="index")
    record["embedding"] = embedding
    if isinstance(sections.get("bengrn"), pd.DataFrame):
        keep = ["task", "variant", "method", "status", "auprc_ratio", "epr"]
        table = sections["bengrn"]
        record["bengrn"] = table[[c for c in keep if c in table.columns]].to_dict(orient="records")
    return record


def record_results(out: Path, load: tuple[float, float]) -> Path:
    """Write the demo's report as ``benchmarks/results/demo_report.{json,md}`` (through
    ``benchmarks/_common.write_results``: command, date, machine, commit), with the confusion
    matrix figure beside it as ``demo_confusion_matrix.png``."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from _common import RESULTS_DIR, portable_command, portable_path, write_results

    record = summary_record(_read_summary(out))
    # the record is committed: no path of the machine that ran the demo
    record["data_dir"] = portable_path(str(record["data_dir"]))
    if "metrics_csv" in record.get("pretrain", {}):
        record["pretrain"]["metrics_csv"] = portable_path(str(record["pretrain"]["metrics_csv"]))
    m, d = record["embedding"]["metrics"], record["denoising"]
    rows: list[dict[str, Any]] = [
        {"part": "labels", "metric": k, "value": m[k]}
        for k in (
            "accuracy",
            "macro_f1",
            "chance_accuracy",
            "n_scored_classes",
            "linear_probe_accuracy",
            "knn_accuracy",
            "pca_linear_probe_accuracy",
            "pca_knn_accuracy",
        )
    ]
    rows += [
        {"part": "denoising", "metric": k, "value": d[k]}
        for k in (
            "spearman_noisy",
            "spearman_denoised",
            "spearman_knn",
            "spearman_gain",
            "spearman_gain_knn",
            "improved_fraction",
        )
    ]
    for row in record.get("bengrn", []):
        if row.get("status") == "ok" and row.get("variant") in ("omnipath-tfs", "chip"):
            rows.append(
                {
                    "part": f"network {row['task']} {row['variant']}",
                    "metric": f"auprc_ratio {row['method']}",
                    "value": row["auprc_ratio"],
                }
            )
    timings = record["timings"]
    rows += [{"part": "timings", "metric": k, "value": round(v, 1)} for k, v in timings.items()]
    rows.append(
        {"part": "timings", "metric": "total seconds", "value": round(sum(timings.values()), 1)}
    )
    figure = out / "confusion_matrix.png"
    if figure.exists():
        shutil.copyfile(figure, RESULTS_DIR / "demo_confusion_matrix.png")
    notes = (
        f"One run of `{portable_command()}` (pretraining config "
        f"`{record['pretrain']['config']}`, {record['pretrain']['max_steps']} steps, "
        f"{'cached' if record['pretrain']['cached'] else 'trained in this run'}); 1-minute load "
        f"average {load[0]:.2f} before and {load[1]:.2f} after. Per-population accuracy: "
        + ", ".join(f"{k} {v:.2f}" for k, v in record["embedding"]["per_population"].items())
        + ". Confusion matrix: demo_confusion_matrix.png. Mean and spread over 3 seeds of the"
        " same recipe: recipe_search_summary.md."
    )
    return write_results("demo_report", rows, notes=notes, extra={"report": record})


def _read_summary(out: Path) -> dict[str, Any]:
    import json

    record = json.loads((out / "demo_summary.json").read_text())
    record["embedding"]["confusion"] = pd.DataFrame.from_dict(
        record["embedding"]["confusion"], orient="index"
    )
    return record


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
    parser.add_argument(
        "--config", default=defaults["config"], help="pretraining config: preset or YAML"
    )
    parser.add_argument(
        "--max-steps", type=int, default=None, help="pretraining steps (default: the config's)"
    )
    parser.add_argument(
        "--max-len", type=int, default=None, help="genes per cell (default: the config's)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="cells per step (default: the config's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of pretraining and sampling")
    parser.add_argument("--retrain", action="store_true", help="ignore the cached pretraining run")
    parser.add_argument(
        "--record",
        action="store_true",
        help="also write the report as benchmarks/results/demo_report.{json,md} (from a checkout)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from grnndata.settings import DataDirNotFoundError

    load_before = os.getloadavg()[0]
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
    if args.record:
        record_results(Path(args.out).resolve(), (load_before, os.getloadavg()[0]))
    sys.stdout.write(f"\nDemo report written to {written}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
