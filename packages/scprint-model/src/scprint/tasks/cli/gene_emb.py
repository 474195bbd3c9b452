"""``scprint gene-emb``: gene embeddings over all cells and per group of cells."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ._options import flag, gene_option

HELP = "gene embeddings, over all cells and per group of cells (varm['X_scprint_genes'])"
OUT_HELP = "output .h5ad (varm['X_scprint_genes'], varm['X_scprint_genes_<group>'])"
TASK_CLASS = "scprint.tasks.GeneEmbedder"
EXAMPLE_PARAM = "n_genes=500"
ORIGINAL_SUFFIX = "_gene_emb.h5ad"
OUT_SUFFIXES = (".h5ad",)
#: The flags of a small run.
EXAMPLE_ARGS: tuple[str, ...] = ("--genes", "hvg", "--n-genes", "20")


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint gene-emb`` beyond the common ones."""
    flag(
        parser,
        "--genes",
        "--genelist",
        type=gene_option,
        default="hvg",
        help="genes every cell is read over: hvg (default), expressed, all, g1,g2,... or @file",
    )
    flag(parser, "--n-genes", type=int, default=2000, help="number of genes for hvg / expressed")
    flag(
        parser,
        "--groupby",
        default=None,
        help="obs column (e.g. cell_type): one embedding matrix per value besides the overall one",
    )


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[Any, Any], Any]]:
    """The task's options from the flags, and how to run it on the input (returns what is written)."""
    options = {"genes": args.genes, "n_genes": args.n_genes, "groupby": args.groupby}

    def run(task: Any, adata: Any) -> Any:
        task(adata)
        return adata

    return options, run
