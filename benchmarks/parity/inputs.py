"""Fixed inputs of the parity comparison: a vocabulary of real genes and a few real cells.

* vocabulary: the 400 genes of ``scrna/kang2018_pbmc_8k.h5ad`` with the most counts that have a
  genomic position bin in ``gene_meta/human_biomart_gene_positions.parquet`` (column ``pos``,
  the bins scPRINT's ``gene_pos_enc`` holds), as Ensembl ids;
* cells: the first two cells of three cell types (6 cells); each cell's context is its (up to) 32 most
  expressed vocabulary genes followed by vocabulary genes it does not express (fixed seed), 48
  genes in all, as the original samples contexts without padding;
* ``depth``: each cell's total counts over all of its genes;
* ``gene_table``: an ``(n_genes, 80)`` table standing in for precomputed gene embeddings
  (protein-language-model vectors in the original). It is synthetic (seeded normal draws): its
  role is only to exercise the original's reduction of such a table to ``d_model``.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

N_GENES = 400
CONTEXT_EXPRESSED = 32
CONTEXT_SILENT = 16
CELL_TYPES = ("CD4 T cells", "CD14+ Monocytes", "B cells")


def build_inputs(data_dir: Path) -> dict[str, np.ndarray]:
    adata = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    positions = pd.read_parquet(data_dir / "gene_meta" / "human_biomart_gene_positions.parquet")
    counts = adata.X.tocsr().astype(np.float32)
    totals = np.asarray(counts.sum(axis=0)).ravel()
    known = np.isin(adata.var_names, positions.index)
    order = [i for i in np.argsort(-totals, kind="stable") if known[i]][:N_GENES]
    genes = np.asarray(adata.var_names[order], dtype=str)
    gene_pos = positions.loc[genes, "pos"].to_numpy(dtype=np.int64)

    rng = np.random.default_rng(0)
    cells = []
    for cell_type in CELL_TYPES:
        cells += list(np.flatnonzero(adata.obs["cell_type"].to_numpy() == cell_type)[:2])
    gene_ids, values, depth = [], [], []
    for cell in cells:
        row = counts[cell].toarray().ravel()
        in_vocab = row[order]
        expressed = [i for i in np.argsort(-in_vocab, kind="stable") if in_vocab[i] > 0]
        chosen = expressed[:CONTEXT_EXPRESSED]
        silent = np.flatnonzero(in_vocab == 0)
        n_silent = CONTEXT_EXPRESSED + CONTEXT_SILENT - len(chosen)
        chosen += [int(i) for i in rng.choice(silent, n_silent, replace=False)]
        gene_ids.append(chosen)
        values.append(in_vocab[chosen])
        depth.append(row.sum())
    return {
        "genes": genes,
        "gene_pos": gene_pos,
        "gene_table": rng.standard_normal((len(genes), 80)).astype(np.float32),
        "gene_ids": np.asarray(gene_ids, dtype=np.int64),
        "counts": np.asarray(values, dtype=np.float32),
        "depth": np.asarray(depth, dtype=np.float32),
        "cells": np.asarray(adata.obs_names[cells], dtype=str),
        "cell_types": np.asarray(adata.obs["cell_type"].to_numpy()[cells], dtype=str),
    }
