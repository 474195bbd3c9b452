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

from scprint.testing import mouse_cells

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


# ------------------------------------------------------------------------------- scPRINT-2
#: mouse genes of the two-organism scPRINT-2 vocabulary (most counts in the Semrau mESC cells)
N_MOUSE_GENES = 150
#: mouse cells (Semrau mESC) added to the scPRINT-2 inputs
N_MOUSE_CELLS = 2
#: neighbours per cell of the metacell encoder (scprint.data.neighbours.N_NEIGHBOURS)
N_NEIGHBOURS = 6


def mouse_placeholder_ids(n: int) -> np.ndarray:
    """Mouse vocabulary ids: the data folder has no mouse Ensembl table, so the mouse genes of
    the fixture vocabulary are named ``ENSMUSG9...`` placeholders (their symbols are real)."""
    return np.asarray([f"ENSMUSG9{i:010d}" for i in range(n)], dtype=str)


def _contexts(
    counts: np.ndarray, order: np.ndarray, rows: list[int], rng: np.random.Generator
) -> tuple[list[list[int]], list[np.ndarray]]:
    """Each cell's context over the vocabulary columns ``order``: its most expressed genes, then
    genes it does not express (as :func:`build_inputs`)."""
    chosen_all, values = [], []
    for row in rows:
        in_vocab = counts[row][order]
        expressed = [i for i in np.argsort(-in_vocab, kind="stable") if in_vocab[i] > 0]
        chosen = expressed[:CONTEXT_EXPRESSED]
        silent = np.flatnonzero(in_vocab == 0)
        n_silent = CONTEXT_EXPRESSED + CONTEXT_SILENT - len(chosen)
        chosen += [int(i) for i in rng.choice(silent, n_silent, replace=False)]
        chosen_all.append(chosen)
        values.append(in_vocab[chosen])
    return chosen_all, values


def build_scprint2_inputs(data_dir: Path) -> dict[str, np.ndarray]:
    """The scPRINT-2 inputs: :func:`build_inputs` plus a mouse block and each cell's neighbours.

    * vocabulary: the 400 human genes of :func:`build_inputs`, then :data:`N_MOUSE_GENES` mouse
      genes (``mouse_symbols``, ids from :func:`mouse_placeholder_ids`); ``gene_pos`` for the
      mouse genes are seeded draws (no mouse positions in the data folder: they only exercise
      the position table a checkpoint stores), ``gene_table`` rows too (as for the human genes);
    * cells: the 6 human cells, then the first :data:`N_MOUSE_CELLS` Semrau mESC cells that
      express at least 32 and at most 134 of the mouse genes; their contexts are mouse genes
      (``gene_ids`` index the two-organism vocabulary);
    * ``neighbour_counts`` ``(B, K, L)``: raw counts of each context gene in the cell's
      :data:`N_NEIGHBOURS` nearest cells of its own data set (:func:`scprint.data.neighbours.
      nearest_cells`), ``neighbour_distances`` ``(B, K)``.
    """
    import scipy.sparse as sp

    from scprint.data.neighbours import nearest_cells

    human = build_inputs(data_dir)
    adata = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    kang = sp.csr_matrix(adata.X, dtype=np.float32)
    rows = adata.obs_names.get_indexer(human["cells"])
    columns = adata.var_names.get_indexer(human["genes"])
    near = nearest_cells(kang)
    neighbour_counts = [
        kang[near.indices[row]][:, columns[ids]].toarray()
        for row, ids in zip(rows, human["gene_ids"])
    ]
    distances = [near.distances[row] for row in rows]

    mouse, symbols = mouse_cells(data_dir)
    order = np.argsort(-mouse.sum(axis=0), kind="stable")[:N_MOUSE_GENES]
    rng = np.random.default_rng(1)
    expressed = (mouse[:, order] > 0).sum(axis=1)
    fits = (expressed >= CONTEXT_EXPRESSED) & (expressed <= N_MOUSE_GENES - CONTEXT_SILENT)
    mouse_rows = [int(r) for r in np.flatnonzero(fits)[:N_MOUSE_CELLS]]
    chosen, values = _contexts(mouse, order, mouse_rows, rng)
    mouse_near = nearest_cells(sp.csr_matrix(mouse))
    for row, ids in zip(mouse_rows, chosen):
        neighbour_counts.append(mouse[mouse_near.indices[row]][:, order[ids]])
        distances.append(mouse_near.distances[row])
    n_human = len(human["genes"])
    return {
        **human,
        "genes": np.concatenate([human["genes"], mouse_placeholder_ids(N_MOUSE_GENES)]),
        "n_human_genes": np.int64(n_human),
        "mouse_symbols": symbols[order],
        "gene_pos": np.concatenate(
            [human["gene_pos"], rng.integers(1, int(human["gene_pos"].max()), N_MOUSE_GENES)]
        ),
        "gene_table": np.concatenate(
            [human["gene_table"], rng.standard_normal((N_MOUSE_GENES, 80)).astype(np.float32)]
        ),
        "gene_ids": np.concatenate([human["gene_ids"], np.asarray(chosen) + n_human]),
        "counts": np.concatenate([human["counts"], np.asarray(values, dtype=np.float32)]),
        "depth": np.concatenate([human["depth"], mouse[mouse_rows].sum(axis=1).astype(np.float32)]),
        "cells": np.concatenate([human["cells"], [f"semrau_{r}" for r in mouse_rows]]),
        "cell_types": np.concatenate([human["cell_types"], ["mESC"] * N_MOUSE_CELLS]),
        "neighbour_counts": np.asarray(neighbour_counts, dtype=np.float32),
        "neighbour_distances": np.asarray(distances, dtype=np.float32),
    }
