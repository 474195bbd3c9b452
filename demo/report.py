"""Figures and the Markdown report of the demo (:mod:`run_demo` computes, this module draws and
writes). Every function takes computed results and an output folder; nothing here runs a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from grnndata import atomic  # noqa: E402


def loss_figure(metrics_csv: Path, path: Path) -> Path | None:
    frame = pd.read_csv(metrics_csv)
    columns = [
        c
        for c in frame.columns
        if c.startswith("train/") and c != "train/lr" and not c.startswith("train/classification_")
    ]
    if "step" not in frame or not columns:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for column in columns:
        series = frame[["step", column]].dropna()
        ax.plot(series["step"], series[column], label=column.removeprefix("train/"))
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("pretraining losses")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def embedding_figure(
    embedding: np.ndarray, true_names: pd.Series, predicted_names: pd.Series, path: Path
) -> Path:
    """Two t-SNE panels of the cell embeddings ``(n_cells, d_model)``, coloured by true and by
    predicted label (one colour per name across both panels)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    palette = plt.get_cmap("tab20").colors
    names = sorted(set(true_names) | set(predicted_names))
    colours = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    coords = PCA(n_components=min(30, embedding.shape[1]), random_state=0).fit_transform(embedding)
    coords = TSNE(n_components=2, random_state=0, init="pca", perplexity=30).fit_transform(coords)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, labels, title in (
        (axes[0], true_names, "true label (FACS sort, Cell Ontology name)"),
        (axes[1], predicted_names, "predicted label (zero-shot)"),
    ):
        for label in sorted(labels.unique()):
            mask = (labels == label).to_numpy()
            ax.scatter(*coords[mask].T, s=3, color=colours[label], label=label)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=3, loc="best")
    fig.suptitle("Held-out Zheng 2017 sorted PBMC: t-SNE of scPRINT cell embeddings")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def subgraph_figure(grn: Any, seed: str, path: Path) -> Path:
    """The sub-network of the GRNAnnData ``grn`` around the gene ``seed`` (20 genes, 40 edges)."""
    from grnndata.plot import plot_subgraph

    fig = plot_subgraph(grn, seed, max_genes=20, top_edges=40)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _table(frame: pd.DataFrame, columns: list[str]) -> str:
    present = [c for c in columns if c in frame.columns]
    frame = frame[present]
    lines = ["| " + " | ".join(present) + " |", "|" + "---|" * len(present)]
    for _, row in frame.iterrows():
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out: Path, sections: dict[str, Any]) -> Path:
    """``<out>/report.md``: every table and a link to every figure."""
    s = sections
    lines = [
        "# scPRINT demo report",
        "",
        f"Data: `{s['data_dir']}`. Total wall time {sum(s['timings'].values()):.0f} s on "
        f"{s['machine']}.",
        "",
        "## 1. Pretraining",
        "",
        f"A `{s['pretrain']['config']}` scPRINT, {s['pretrain']['max_steps']} optimiser steps on "
        f"{', '.join(s['pretrain']['files'])}"
        + (" (reused from the cache)." if s["pretrain"]["cached"] else "."),
    ]
    if s.get("loss_figure"):
        lines += ["", f"![pretraining losses]({s['loss_figure']})"]
    m = s["embedding"]
    lines += [
        "",
        "## 2. Zero-shot cell-type prediction on held-out cells (Zheng 2017, 7 FACS-sorted populations)",
        "",
        "| metric | value |",
        "|---|---|",
        *[
            f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in m.items()
            if not isinstance(v, dict | list)
        ],
        "",
        "Accuracy credits a prediction that is the true Cell Ontology term or one of its "
        "descendants; a true term finer than any the model learned (e.g. regulatory T cell) is "
        "scored at its nearest known ancestor (`n_mapped_to_ancestor`); `n_unknown` cells have no "
        "such ancestor and are left out.",
        "",
        f"![t-SNE of the embeddings]({s['embedding_figure']})",
        "",
        "## 3. Denoising held-out cells (70 % of counts removed, then restored by the model)",
        "",
        "| | noisy input | scPRINT denoised | gain |",
        "|---|---|---|---|",
    ]
    d = s["denoising"]
    for corr in ("spearman", "pearson"):
        noisy, den = d[f"{corr}_noisy"], d[f"{corr}_denoised"]
        lines.append(f"| {corr} vs full counts | {noisy:.3f} | {den:.3f} | {den - noisy:+.3f} |")
    lines += [
        "",
        f"{d['n_cells']} cells, {d['n_genes']} genes; cells improved: {d['improved_fraction']:.0%}.",
        "",
        f"## 4. Gene network of {s['grn_cell_type']} cells",
        "",
        f"{s['grn_shape'][0]} genes, {s['grn_edges']} non-zero edges (rows = regulators), stored as "
        f"GRnnData zarr `{s['grn_path']}`.",
        "",
        f"![sub-network around {s['grn_seed']}]({s['grn_figure']})",
        "",
        "## 5. BenGRN",
        "",
    ]
    bench: pd.DataFrame = s["bengrn"]
    edges = bench[bench["task"] != "enrichment"]
    enrichment = bench[bench["task"] == "enrichment"]
    lines += [
        "Edge-level tasks (AUPRC ratio and EPR: 1 = random; rows = regulators):",
        "",
        _table(
            edges,
            [
                "task",
                "variant",
                "method",
                "status",
                "auprc_ratio",
                "epr",
                "ap",
                "precision",
                "recall",
                "n_true_edges",
            ],
        ),
        "",
        "Enrichment self-assessment (top 100 central genes):",
        "",
        _table(
            enrichment,
            [
                "method",
                "status",
                "tf_enrichment_odds_ratio",
                "tf_enrichment_pvalue",
                "marker_best_set",
                "marker_best_fdr",
                "chip_tfs_enriched_share",
            ],
        ),
        "",
        "Figures: " + ", ".join(f"[{p.name}]({p.relative_to(out)})" for p in s["bengrn_figures"]),
        "",
        "## Timings",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in s["timings"].items()],
        "",
    ]
    return atomic.write_text(out / "report.md", "\n".join(lines))
