"""Our side of the parity check of scPRINT-2's newer tasks against the original scprint2 1.0.3.

The original ran its imputation, gene-embedding, GRIT and counterfactual tasks on the
checkpoints it saved and on the task cells of the scPRINT-2 fixtures
(:data:`~scprint.testing.parity.SCPRINT2_TASK_INPUTS`: 12 real Kang 2018 PBMC cells x 24 genes, each cell's 6 nearest
cells); its outputs are ``scprint2_tasks_<config>.npz`` and the shared settings
``scprint2_tasks_extra.npz`` (genes to impute, cell graph, GRIT strengths, reference cells).
:func:`compare` runs our tasks on the same cells and returns one comparison row per output
(:func:`scprint.testing.parity.comparison_row`); bar :data:`~scprint.testing.parity.TASK_TOLERANCE`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scprint.testing.parity import (
    SCPRINT2_CONFIGS,
    SCPRINT2_TASK_INPUTS,
    TASK_TOLERANCE,
    cells_as_anndata,
    comparison_row,
    fixture_genes,
    fractions,
)

__all__ = [
    "BATCH",
    "DEPTH_FACTOR",
    "EXTRA",
    "compare",
    "counterfactual_rows",
    "fixture_name",
    "gene_embedding_rows",
    "grit_rows",
    "impute_row",
]

#: The original's settings of these tasks.
EXTRA = "scprint2_tasks_extra.npz"
#: Cells per batch and depth multiplier, as the original ran them.
BATCH = 4
DEPTH_FACTOR = 4.0
#: The label whose code the counterfactual swaps (reference cells are labelled "reference").
CELL_TYPE = "cell_type_ontology_term_id"


def fixture_name(config: str) -> str:
    """File of the original's task outputs for ``config``."""
    return f"scprint2_tasks_{config}.npz"


def impute_row(
    config: str, pretrained: Any, task: dict[str, np.ndarray], extra: dict, reference: dict
) -> dict[str, Any]:
    """Our :class:`~scprint.tasks.Imputer` reading the task genes and imputing
    ``extra["impute_ids"]``; means as fractions of each cell's imputed total."""
    from scprint.tasks import Imputer

    vocab = [str(g) for g in pretrained.vocab.genes]
    adata = cells_as_anndata(task, vocab)
    genes = [vocab[i] for i in extra["impute_ids"]]
    imputer = Imputer(
        pretrained,
        genes_to_impute=genes,
        input_genes=fixture_genes(pretrained, task),
        depth_factor=DEPTH_FACTOR,
        batch_size=BATCH,
    )
    got = imputer(adata, copy=True).obsm["scprint_imputed"][genes].to_numpy()
    expected = reference["impute_mean"]
    diff = float(np.abs(fractions(got) - fractions(expected)).max())
    note = f"counts diff {float(np.abs(got - expected).max()):.1e}"
    return comparison_row(config, "imputation (fractions)", diff, expected, note)


def gene_embedding_rows(
    config: str, pretrained: Any, task: dict[str, np.ndarray], reference: dict
) -> list[dict[str, Any]]:
    """Our :class:`~scprint.tasks.GeneEmbedder` over the task genes: the mean over cells, the
    original's ``average=True`` and each cell's matrix (``groupby`` a column of unique values)."""
    from scprint.tasks import GeneEmbedder

    adata = cells_as_anndata(task, [str(g) for g in pretrained.vocab.genes])
    adata.obs["cell"] = [f"c{i:02d}" for i in range(adata.n_obs)]
    genes = fixture_genes(pretrained, task)
    out = GeneEmbedder(pretrained, genes=genes, groupby="cell", batch_size=BATCH)(adata, copy=True)
    columns = adata.var_names.get_indexer(genes)
    overall = out.varm["X_scprint_genes"][columns]
    per_cell = np.stack([out.varm[f"X_scprint_genes_{c}"][columns] for c in adata.obs["cell"]])
    expected = reference["gene_embedding"]
    compared = (
        ("gene embeddings, mean over cells", overall, expected.mean(axis=0)),
        ("gene embeddings, original average=True", overall, reference["gene_embedding_average"]),
        ("gene embeddings, per cell", per_cell, expected),
    )
    return [
        comparison_row(config, output, float(np.abs(got - want).max()), want)
        for output, got, want in compared
    ]


def grit_rows(config: str, extra: dict, reference: dict, n_cells: int) -> list[dict[str, Any]]:
    """Our :func:`~scprint.tasks.refine.refine_logits` on the original's cell-type logits and on
    scores whose labels vary between cells, at each strength; refined values and labels."""
    import scipy.sparse as sp

    from scprint.tasks.refine import refine_logits

    graph = sp.csr_matrix(
        (
            extra["connectivities_data"],
            extra["connectivities_indices"],
            extra["connectivities_indptr"],
        ),
        shape=(n_cells, n_cells),
    )
    rows = []
    inputs = {"grit": ("its cell-type logits", reference["grit_logits"])}
    inputs["grit_scores"] = ("log1p counts of 6 genes", extra["grit_scores"])
    for prefix, (what, scores) in inputs.items():
        for lam in extra["grit_lambdas"]:
            expected = reference[f"{prefix}_refined_{lam:g}"]
            got = refine_logits(scores, graph, lambda_reg=float(lam))
            same = bool((got.argmax(1) == reference[f"{prefix}_predictions_{lam:g}"]).all())
            changed = int((expected.argmax(1) != scores.argmax(1)).sum())
            note = f"same labels: {same}; labels changed by the refinement: {changed}"
            diff = float(np.abs(got - expected).max())
            ok = diff <= TASK_TOLERANCE and same
            output = f"GRIT on {what}, lambda={lam:g}"
            rows.append(comparison_row(config, output, diff, expected, note, ok))
    return rows


def counterfactual_rows(
    config: str, pretrained: Any, task: dict[str, np.ndarray], extra: dict, reference: dict
) -> list[dict[str, Any]]:
    """Our :class:`~scprint.tasks.Generator` with a code target (the mean cell-type code of the
    reference cells): the code and the generated means as fractions of each cell's total."""
    from scprint.tasks import Generator

    adata = cells_as_anndata(task, [str(g) for g in pretrained.vocab.genes])
    labels = np.full(adata.n_obs, "other", dtype=object)
    labels[extra["reference_rows"]] = "reference"
    adata.obs["group"] = labels
    genes = fixture_genes(pretrained, task)
    generator = Generator(
        pretrained,
        target={CELL_TYPE: "reference"},
        label_columns={CELL_TYPE: "group"},
        space="code",
        genes=genes,
        input_genes=genes,
        batch_size=BATCH,
    )
    out = generator(adata, copy=True)
    columns = adata.var_names.get_indexer(genes)
    got = out.layers["scprint_generated"][:, columns].toarray()
    expected = reference["counterfactual_mean"]
    code = np.asarray(out.uns["scprint_generated"]["target_codes"][CELL_TYPE])
    code_diff = float(np.abs(code - reference["counterfactual_code"]).max())
    diff = float(np.abs(fractions(got) - fractions(expected)).max())
    note = f"counts diff {float(np.abs(got - expected).max()):.1e}"
    return [
        comparison_row(config, "counterfactual code", code_diff, reference["counterfactual_code"]),
        comparison_row(config, "counterfactual generation (fractions)", diff, expected, note),
    ]


def compare(fixtures: Path, references: Path | None = None) -> list[dict[str, Any]]:
    """Every comparison row for every configuration.

    Args:
        fixtures: folder of the checkpoints ``scprint2_<config>.ckpt`` and the task cells.
        references: folder of the original's outputs (``scprint2_tasks_<config>.npz`` and
            :data:`EXTRA`); ``fixtures`` when not given.
    """
    import scprint

    references = fixtures if references is None else references
    task = dict(np.load(fixtures / SCPRINT2_TASK_INPUTS))
    extra = dict(np.load(references / EXTRA))
    rows = []
    for name in SCPRINT2_CONFIGS:
        pretrained = scprint.load(fixtures / f"scprint2_{name}.ckpt", device="cpu")
        reference = dict(np.load(references / fixture_name(name)))
        rows.append(impute_row(name, pretrained, task, extra, reference))
        rows += gene_embedding_rows(name, pretrained, task, reference)
        rows += grit_rows(name, extra, reference, len(task["depth"]))
        rows += counterfactual_rows(name, pretrained, task, extra, reference)
    return rows
