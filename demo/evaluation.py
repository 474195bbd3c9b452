"""How the demo, ``benchmarks/quality`` and ``benchmarks/training/recipe_search.py`` score a
pretrained scPRINT on held-out cells: one home for the quality numbers they report.

- :func:`label_evaluation`: zero-shot cell-type prediction (:class:`scprint.tasks.Embedder`,
  scored by :func:`scprint.tasks.label_metrics`: chance and macro-F1 over the populations actually
  scored), per-population accuracy and the confusion table (true population x predicted label);
- :func:`embedding_probes`: 5-fold linear-probe (logistic regression) and 15-NN accuracy of an
  embedding, run on ``obsm["X_scprint"]`` and on PCA-50 of the log-normalised counts;
- :func:`denoising_evaluation`: :func:`scprint.tasks.evaluate_denoising` with 15-NN smoothing
  scored on the same thinned cells and genes;
- :func:`literature_network`: a network of one cell type (:class:`scprint.tasks.GNInfer`) and
  Pearson correlation on the same cells and genes, scored against OmniPath with human TFs as
  regulators (AUPRC ratio: 1 = random);
- :func:`seed_summary`: mean and spread of a metric over seeds.

Nothing here trains; every function takes a checkpoint and cells.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

log = logging.getLogger("scprint_demo.evaluation")

#: Column of the held-out set holding the true populations (FACS sorts) and their ontology terms.
POPULATION = "cell_type"
TERM = "cell_type_ontology_term_id"


def log_normalise(counts: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    """``log1p(1e4 * counts / depth)`` per cell, ``(n_cells, n_genes)`` CSR float32."""
    counts = sp.csr_matrix(counts, dtype=np.float32)
    depth = np.asarray(counts.sum(axis=1)).ravel()
    scaled = sp.csr_matrix(sp.diags(1e4 / np.maximum(depth, 1)) @ counts, dtype=np.float32)
    scaled.data = np.log1p(scaled.data)
    return scaled


def pca_embedding(adata: ad.AnnData, n_components: int = 50, seed: int = 0) -> np.ndarray:
    """PCA of the log-normalised counts of every gene, ``(n_cells, n_components)``: the baseline
    embedding the probes compare scPRINT's with."""
    from sklearn.decomposition import PCA

    dense = log_normalise(adata.X).toarray()
    return PCA(n_components=n_components, random_state=seed).fit_transform(dense)


def embedding_probes(
    embedding: np.ndarray, labels: np.ndarray, seed: int = 0, folds: int = 5, k: int = 15
) -> dict[str, float]:
    """Stratified ``folds``-fold accuracy of a standardised logistic regression (linear probe) and
    of a ``k``-nearest-neighbour vote on ``embedding`` ``(n_cells, d)`` for ``labels``
    ``(n_cells,)``: how much of what separates the populations the embedding keeps."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    return {
        "linear_probe_accuracy": float(cross_val_score(linear, embedding, labels, cv=split).mean()),
        "knn_accuracy": float(cross_val_score(knn, embedding, labels, cv=split).mean()),
    }


def label_evaluation(
    ckpt: Any, held_out: ad.AnnData, seed: int = 0, pca: np.ndarray | None = None
) -> dict[str, Any]:
    """Zero-shot labels and embedding quality of ``ckpt`` on ``held_out`` (raw counts, true
    populations in ``obs["cell_type"]`` and their terms in ``obs["cell_type_ontology_term_id"]``).

    Returns ``metrics`` (:func:`scprint.tasks.label_metrics`, plus the probes of ``X_scprint``
    and of PCA-50 as ``pca_linear_probe_accuracy`` / ``pca_knn_accuracy``), ``per_population``
    (accuracy of each true population), ``confusion`` (DataFrame: true population x predicted
    label name, cell counts), and the ``embedding`` and predicted names (for figures).
    """
    from scprint.data.ontology import term_label
    from scprint.tasks import Embedder

    embedder = Embedder(ckpt, label_columns={"cell_type": TERM})
    embedded = embedder(held_out, copy=True)
    metrics = dict(embedded.uns["X_scprint"]["metrics"]["cell_type"])
    encoder = embedder.pretrained.labels["cell_type"]
    populations = held_out.obs[POPULATION].astype(str).to_numpy()
    terms = held_out.obs[TERM].astype(str).to_numpy()
    predicted = embedded.obs["scprint_cell_type"]
    leaf = predicted.cat.codes.to_numpy()
    predicted_names = (
        predicted.astype(str).map(lambda p: term_label(p) if ":" in p else p).to_numpy()
    )
    nearest = {t: encoder.nearest_known(t) for t in set(terms)}
    leaves = {t: set(encoder.descendant_leaves(n)) if n else set() for t, n in nearest.items()}
    credited = np.array([int(p) in leaves[t] for p, t in zip(leaf, terms)], dtype=bool)
    embedding = np.asarray(embedded.obsm["X_scprint"])
    metrics.update(embedding_probes(embedding, populations, seed))
    if pca is None:
        pca = pca_embedding(held_out, seed=seed)
    metrics.update({f"pca_{k}": v for k, v in embedding_probes(pca, populations, seed).items()})
    per_population = {p: float(credited[populations == p].mean()) for p in sorted(set(populations))}
    confusion = pd.crosstab(
        pd.Series(populations, name="true population"),
        pd.Series(predicted_names, name="predicted label"),
    )
    return {
        "metrics": metrics,
        "per_population": per_population,
        "confusion": confusion,
        "embedding": embedding,
        "predicted_names": predicted_names,
    }


def knn_smoothing(
    thinned: sp.csr_matrix, k: int = 15, n_pcs: int = 30, seed: int = 0
) -> np.ndarray:
    """kNN smoothing (dense ``(n_cells, n_genes)`` means): average each cell with its ``k`` nearest
    neighbours (Euclidean, PCA of log-normalised thinned counts), on normalised profiles, rescaled
    to the cell's own depth."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    depth = np.asarray(thinned.sum(axis=1)).ravel()
    pcs = PCA(n_components=min(n_pcs, min(thinned.shape) - 1), random_state=seed).fit_transform(
        log_normalise(thinned).toarray()
    )
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(pcs).kneighbors(pcs)
    fractions = (sp.diags(1 / np.maximum(depth, 1)) @ thinned).toarray()
    smoothed = fractions[neighbours].mean(axis=1)
    return smoothed * depth[:, None]


def denoising_evaluation(
    ckpt: Any,
    held_out: ad.AnnData,
    *,
    n_cells: int = 300,
    n_genes: int = 300,
    fraction: float = 0.7,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`scprint.tasks.evaluate_denoising` (``fraction`` of the counts removed, restored to
    full depth) with 15-NN smoothing on the same thinned cells and genes; adds
    ``spearman_gain`` and ``spearman_gain_knn`` (each method's Spearman minus the thinned
    input's)."""
    from scprint.tasks import evaluate_denoising

    def knn(noisy: ad.AnnData, columns: np.ndarray) -> np.ndarray:
        smoothed = knn_smoothing(sp.csr_matrix(noisy.X, dtype=np.float32), seed=seed)
        return smoothed[:, columns] / (1.0 - fraction)

    result = dict(
        evaluate_denoising(
            held_out,
            ckpt,
            fraction=fraction,
            n_cells=n_cells,
            genes="expressed",
            n_genes=n_genes,
            seed=seed,
            baselines={"knn": knn},
        )
    )
    result["spearman_gain"] = result["spearman_denoised"] - result["spearman_noisy"]
    result["spearman_gain_knn"] = result["spearman_knn"] - result["spearman_noisy"]
    return result


def literature_network(
    ckpt: Any,
    held_out: ad.AnnData,
    *,
    cell_type: str = "CD14+ Monocyte",
    n_genes: int = 300,
    n_cells: int = 256,
    out: Path | None = None,
) -> dict[str, Any]:
    """A network of the ``cell_type`` cells of ``held_out`` (:class:`scprint.tasks.GNInfer`,
    exact aggregation, ``n_genes`` most variable genes) and the absolute Pearson correlation of
    the same genes on the same cells, each scored against OmniPath with the human TFs as
    regulators (:func:`bengrn.metrics.score`). Returns ``auprc_ratio`` (scPRINT),
    ``auprc_ratio_pearson``, ``n_true_edges`` and the GRNAnnData as ``network`` (written to
    ``out`` as zarr when given)."""
    from bengrn.datasets import load_omnipath, load_tfs
    from bengrn.metrics import score
    from scprint.tasks import GNInfer

    infer = GNInfer(
        ckpt,
        cell_type_column=POPULATION,
        cell_type=cell_type,
        genes="hvg",
        n_genes=n_genes,
        n_cells=n_cells,
        aggregation="exact",
        filtration="none",
    )
    grn = infer.network(held_out)
    if out is not None:
        grn.write_zarr(out)
    truth, tfs = load_omnipath(), load_tfs("human")
    genes = list(grn.var_names)
    cells = held_out[held_out.obs[POPULATION] == cell_type][:, genes]
    expression = log_normalise(cells.X).toarray()
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = np.nan_to_num(np.abs(np.corrcoef(expression.T)), nan=0.0)
    np.fill_diagonal(pearson, 0.0)
    ours = score(grn, truth, regulators=tfs)
    baseline = score(pearson, truth, predicted_genes=genes, regulators=tfs)
    return {
        "auprc_ratio": float(ours["auprc_ratio"]),
        "auprc_ratio_pearson": float(baseline["auprc_ratio"]),
        "n_true_edges": int(ours["n_true_edges"]),
        "n_genes": len(genes),
        "network": grn,
    }


def seed_summary(rows: list[dict[str, Any]], metrics: list[str]) -> dict[str, Any]:
    """Mean, standard deviation (``ddof=1``; 0 for one seed), min and max of each metric over
    ``rows`` (one per seed); ``n_seeds``."""
    out: dict[str, Any] = {"n_seeds": len(rows)}
    for name in metrics:
        values = np.array([r[name] for r in rows if r.get(name) is not None], dtype=float)
        if values.size == 0:
            continue
        out[f"{name}_mean"] = float(values.mean())
        out[f"{name}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[f"{name}_min"], out[f"{name}_max"] = float(values.min()), float(values.max())
    return out
