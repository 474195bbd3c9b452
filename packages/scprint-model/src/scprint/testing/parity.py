"""Our side of the parity checks: our tasks on the cells the original scPRINT was run on.

The original (scPRINT 2.3.8, scPRINT-2 1.0.3) runs in its own virtual environment
(``benchmarks/parity/peer_*.py``) and its outputs are committed as fixtures beside the tests;
the package's tests and the parity benchmarks both compare through the functions here, so "our
side" is defined once.

Task inputs are the arrays of a fixture (``dict(np.load(...))``):

* ``gene_ids`` ``(n_cells, n_genes)`` vocabulary indices, the same genes in every row;
* ``counts`` ``(n_cells, n_genes)`` raw counts of those genes, ``depth`` ``(n_cells,)`` each
  cell's total counts over all its genes;
* ``batch_size`` (cells per batch, as the original ran them) and ``cells`` (cell names);
* optionally ``neighbour_indices`` / ``neighbour_distances`` ``(n_cells, k)``: each cell's
  nearest cells among these cells (for the metacell encoder of scPRINT-2).

A comparison row is a dict (``config``, ``output``, ``compared``, ``max_abs_diff``,
``max_abs_value``, ``note``, ``bar``, ``ok``) as the benchmarks report it; numbers are written
as ``"1.0e-05"`` strings, ``ok`` says whether the bar is met.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "GNINFER_VARIANTS",
    "SCPRINT2_CONFIGS",
    "SCPRINT2_DENOISE_DEPTH_FACTOR",
    "SCPRINT2_GNINFER_VARIANTS",
    "SCPRINT2_TASK_INPUTS",
    "TASK_TOLERANCE",
    "cells_as_anndata",
    "comparison_row",
    "denoised_means",
    "fixture_genes",
    "fractions",
    "gninfer_network",
    "same_ranking",
    "scprint2_denoise_row",
    "scprint2_gninfer_rows",
]

#: Bar of the task comparisons: max abs difference (means as fractions of their total).
TASK_TOLERANCE = 1e-4
#: scPRINT-2 fixture configurations (checkpoints ``scprint2_<name>.ckpt`` made by the original).
SCPRINT2_CONFIGS = ("s2_cell_vae_metacell", "s2_shared_fsq_mvc", "s2_gqa_vae_grown")
#: The scPRINT-2 task cells (12 real Kang 2018 PBMC cells x 24 genes, 6 neighbours each).
SCPRINT2_TASK_INPUTS = "scprint2_task_inputs.npz"
#: Depth multiplier of the scPRINT-2 denoising fixtures (the original's ``depth_mult``).
SCPRINT2_DENOISE_DEPTH_FACTOR = 4.0
#: The original's GNInfer variants (``peer_gninfer.VARIANTS``) -> our ``GNInfer`` options.
GNINFER_VARIANTS: dict[str, dict[str, Any]] = {
    "mean": {"head_aggregation": "mean", "filtration": "none"},
    "heads": {"head_aggregation": "none", "filtration": "none"},
    "max_sym_thresh": {"head_aggregation": "max", "filtration": "uniform", "symmetrise": True},
    "scores": {"head_aggregation": "mean", "filtration": "none", "preprocess": "none"},
    "denoise_mode": {"head_aggregation": "mean", "filtration": "none", "forward_mode": "denoise"},
}
#: Variants compared on scPRINT-2 (its fixtures have no ``denoise_mode`` network).
SCPRINT2_GNINFER_VARIANTS = ("mean", "heads", "max_sym_thresh", "scores")


def cells_as_anndata(inputs: dict[str, np.ndarray], vocab_genes: list[str]) -> Any:
    """An AnnData whose model inputs are exactly ``inputs``.

    Columns: the vocabulary's genes (zeros where ``inputs`` gives none) and one gene outside the
    vocabulary holding the rest of each cell's depth, so each cell's total is ``depth``. When
    ``inputs`` has neighbours, they are ``obsp["distances"]`` (``k`` stored edges per cell, as
    our tasks and the original read them).
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    n_cells = len(inputs["depth"])
    matrix = np.zeros((n_cells, len(vocab_genes) + 1), dtype=np.float32)
    matrix[:, inputs["gene_ids"][0]] = inputs["counts"]
    matrix[:, -1] = inputs["depth"] - inputs["counts"].sum(axis=1)
    var = pd.DataFrame(index=[*vocab_genes, "outside_the_vocabulary"])
    obs = pd.DataFrame(index=[str(c) for c in inputs["cells"]])
    adata = ad.AnnData(X=sp.csr_matrix(matrix), obs=obs, var=var)
    if "neighbour_indices" in inputs:
        k = inputs["neighbour_indices"].shape[1]
        adata.obsp["distances"] = sp.csr_matrix(
            (
                inputs["neighbour_distances"].ravel(),
                (np.repeat(np.arange(n_cells), k), inputs["neighbour_indices"].ravel()),
            ),
            shape=(n_cells, n_cells),
        )
    return adata


def fixture_genes(pretrained: Any, inputs: dict[str, np.ndarray]) -> list[str]:
    """The names of the input genes (``gene_ids[0]``) in the model's vocabulary, in order."""
    vocab_genes = [str(g) for g in pretrained.vocab.genes]
    return [vocab_genes[i] for i in inputs["gene_ids"][0]]


def denoised_means(
    pretrained: Any, inputs: dict[str, np.ndarray], depth_factor: float
) -> np.ndarray:
    """Our :class:`~scprint.tasks.Denoiser` means ``(n_cells, n_genes)`` of the input genes, in
    their order, at ``depth_factor`` times each cell's depth."""
    from scprint.tasks import Denoiser

    adata = cells_as_anndata(inputs, [str(g) for g in pretrained.vocab.genes])
    genes = fixture_genes(pretrained, inputs)
    out = Denoiser(
        pretrained,
        genes=genes,
        depth_factor=depth_factor,
        context_len=len(genes),
        batch_size=int(inputs["batch_size"]),
    )(adata, copy=True)
    return out.layers["scprint_denoised"][:, adata.var_names.get_indexer(genes)].toarray()


def gninfer_network(pretrained: Any, inputs: dict[str, np.ndarray], variant: str) -> np.ndarray:
    """Our :class:`~scprint.tasks.GNInfer` network for the original's ``variant``
    (:data:`GNINFER_VARIANTS`), ``(n_genes, n_genes)`` or ``(n_genes, n_genes, heads)``,
    transposed to the original's orientation (rows = the attention's query genes; ours has
    rows = regulators)."""
    from scprint.tasks import GNInfer

    adata = cells_as_anndata(inputs, [str(g) for g in pretrained.vocab.genes])
    grn = GNInfer(
        pretrained,
        genes=fixture_genes(pretrained, inputs),
        n_cells=0,
        aggregation="fast",
        cell_tokens=True,
        batch_size=int(inputs["batch_size"]),
        **GNINFER_VARIANTS[variant],
    ).network(adata)
    network = grn.varp["GRN"]
    network = network.toarray() if hasattr(network, "toarray") else np.asarray(network)
    return np.swapaxes(network, 0, 1)


def same_ranking(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the two arrays order their entries identically (stable, descending)."""
    return bool(
        np.array_equal(np.argsort(-a.ravel(), kind="stable"), np.argsort(-b.ravel(), kind="stable"))
    )


def fractions(values: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (means as fractions of their library size)."""
    return values / values.sum(axis=1, keepdims=True)


def comparison_row(
    config: str,
    output: str,
    diff: float,
    reference: np.ndarray,
    note: str = "",
    ok: bool | None = None,
    bar: str = f"{TASK_TOLERANCE:g}",
) -> dict[str, Any]:
    """One report row; ``ok`` defaults to ``diff <= TASK_TOLERANCE``."""
    return {
        "config": config,
        "output": output,
        "compared": int(reference.size),
        "max_abs_diff": f"{diff:.1e}",
        "max_abs_value": f"{float(np.abs(reference).max()):.2e}",
        "note": note,
        "bar": bar,
        "ok": bool(diff <= TASK_TOLERANCE if ok is None else ok),
    }


def scprint2_denoise_row(
    config: str, pretrained: Any, task: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Our denoising against the original scPRINT-2's (``reference["denoise_mean"]``, at
    :data:`SCPRINT2_DENOISE_DEPTH_FACTOR` x depth), means as fractions of each cell's total."""
    got = denoised_means(pretrained, task, SCPRINT2_DENOISE_DEPTH_FACTOR)
    expected = reference["denoise_mean"]
    diff = float(np.abs(fractions(got) - fractions(expected)).max())
    note = f"counts diff {float(np.abs(got - expected).max()):.1e}"
    return comparison_row(config, "denoising (task)", diff, expected, note)


def scprint2_gninfer_rows(
    config: str, pretrained: Any, task: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Our networks against the original scPRINT-2's (``reference["network_<variant>"]``) for
    :data:`SCPRINT2_GNINFER_VARIANTS`; bar :data:`TASK_TOLERANCE` or the same edge ranking.

    The ``scores`` variant (``preprocess="none"``): scprint2 1.0.3 leaves q.k unscaled, ours (as
    scPRINT 2.3.8) are the attention logits q.k / sqrt(head_dim); the note gives the difference
    after rescaling ours by sqrt(head_dim) (``"...: <diff>"``, last).
    """
    rows = []
    for variant in SCPRINT2_GNINFER_VARIANTS:
        got = gninfer_network(pretrained, task, variant)
        expected = reference[f"network_{variant}"]
        diff = float(np.abs(got - expected).max())
        ranking = same_ranking(got, expected)
        note = "same edge ranking" if ranking else "edge ranking differs"
        if variant == "scores":
            factor = float(np.sqrt(pretrained.config.head_dim))
            rescaled = float(np.abs(got * factor - expected).max())
            note += f"; x sqrt(head_dim) = {factor:.3g}: {rescaled:.1e}"
        ok = diff <= TASK_TOLERANCE or ranking
        bar = f"{TASK_TOLERANCE:g} or same ranking"
        rows.append(comparison_row(config, f"GRN {variant} (task)", diff, expected, note, ok, bar))
    return rows
