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


def confusion_figure(confusion: pd.DataFrame, path: Path) -> Path:
    """Heat map of ``confusion`` (true population x predicted label, cell counts), each row
    normalised to the population's share of cells, counts written in the cells."""
    shares = confusion.div(confusion.sum(axis=1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(1.2 * confusion.shape[1] + 3, 0.6 * confusion.shape[0] + 2))
    ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(confusion.shape[1]), confusion.columns, rotation=40, ha="right")
    ax.set_yticks(range(confusion.shape[0]), confusion.index)
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            value = int(confusion.iat[i, j])
            if value:
                colour = "white" if shares.iat[i, j] > 0.5 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted label (zero-shot)")
    ax.set_ylabel("true population (FACS sort)")
    ax.set_title("Held-out Zheng 2017: confusion matrix (cells; colour = share of the row)")
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
    e = s["embedding"]
    m = e["metrics"]
    lines += [
        "",
        "## 2. Zero-shot cell-type prediction on held-out cells (Zheng 2017, 7 FACS-sorted populations)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {m['accuracy']:.3f} |",
        f"| macro-F1 over the {m['n_scored_classes']} scored populations | {m['macro_f1']:.3f} |",
        f"| chance (1 / scored populations) | {m['chance_accuracy']:.3f} |",
        f"| cells scored / at their nearest known ancestor / unknown | {m['n_cells']} / "
        f"{m['n_mapped_to_ancestor']} / {m['n_unknown']} |",
        f"| leaves the model predicts among | {m['n_classes']} |",
        "",
        "Accuracy credits a prediction that is the true Cell Ontology term or one of its "
        "descendants; a true term finer than any the model learned (e.g. regulatory T cell) is "
        "scored at its nearest known ancestor. Macro-F1 runs over the scored populations only "
        "(a wrong call counts against the population it names).",
        "",
        "Accuracy per true population: "
        + ", ".join(f"{k} {v:.2f}" for k, v in e["per_population"].items())
        + ".",
        "",
        f"![confusion matrix]({e['confusion_figure']})",
        "",
        "Embedding quality, 5-fold cross-validated on the 7 populations:",
        "",
        "| embedding | linear probe accuracy | 15-NN accuracy |",
        "|---|---|---|",
        f"| scPRINT `X_scprint` | {m['linear_probe_accuracy']:.3f} | {m['knn_accuracy']:.3f} |",
        f"| PCA-50 of log-normalised counts | {m['pca_linear_probe_accuracy']:.3f} | "
        f"{m['pca_knn_accuracy']:.3f} |",
        "",
        f"![t-SNE of the embeddings]({e['figure']})",
        "",
    ]
    if s.get("seed_spread"):
        lines += [
            f"This is one seed. The same recipe's mean and spread over 3 seeds: "
            f"`{s['seed_spread']}`.",
            "",
        ]
    lines += [
        "## 3. Denoising held-out cells (70 % of counts removed, then restored by the model)",
        "",
        "| | noisy input | scPRINT denoised | gain |",
        "|---|---|---|---|",
    ]
    d = s["denoising"]
    for corr in ("spearman", "pearson"):
        noisy, den = d[f"{corr}_noisy"], d[f"{corr}_denoised"]
        lines.append(f"| {corr} vs full counts | {noisy:.3f} | {den:.3f} | {den - noisy:+.3f} |")
    for corr in ("spearman", "pearson"):
        noisy, knn = d[f"{corr}_noisy"], d[f"{corr}_knn"]
        lines.append(
            f"| {corr}, 15-NN smoothing (baseline) | {noisy:.3f} | {knn:.3f} | {knn - noisy:+.3f} |"
        )
    lines += [
        "",
        f"{d['n_cells']} cells, {d['n_genes']} genes; cells improved: {d['improved_fraction']:.0%} "
        f"(15-NN smoothing: {d['improved_fraction_knn']:.0%}).",
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
