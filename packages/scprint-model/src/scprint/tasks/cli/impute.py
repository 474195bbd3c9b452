"""``scprint impute``: expression of genes the data did not measure."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from grnndata.cli import UsageError

from ._options import flag, gene_option, switch

HELP = "expression of genes the data did not measure (obsm['scprint_imputed'])"
OUT_HELP = "output .h5ad (obsm['scprint_imputed']: cells x imputed genes)"
TASK_CLASS = "scprint.tasks.Imputer"
EXAMPLE_PARAM = "batch_size=16"
ORIGINAL_SUFFIX = "_imputed.h5ad"
OUT_SUFFIXES = (".h5ad",)
#: The flags of a small run on Kang PBMC cells (LYZ, CD3E, MS4A1 from 50 variable genes).
EXAMPLE_ARGS: tuple[str, ...] = (
    "--genes-to-impute",
    "ENSG00000090382,ENSG00000198851,ENSG00000156738",
    "--input-genes",
    "hvg",
    "--n-genes",
    "50",
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint impute`` beyond the common ones."""
    flag(
        parser,
        "--genes-to-impute",
        type=gene_option,
        default=None,
        help="genes to impute (required): g1,g2,... or @file (one gene per line)",
    )
    flag(
        parser,
        "--input-genes",
        "--genes_to_use",
        type=gene_option,
        default="all",
        help="measured genes the model reads: all (default, the known genes not imputed), hvg, "
        "expressed, g1,g2,... or @file",
    )
    flag(
        parser,
        "--n-genes",
        type=int,
        default=2000,
        help="number of input genes for hvg / expressed",
    )
    flag(
        parser,
        "--depth-factor",
        "--predict_depth_mult",
        type=float,
        default=4.0,
        help="imputed means at this multiple of each cell's depth",
    )
    switch(
        parser,
        "--zero-inflation",
        "--apply_zero_pred",
        help="multiply the means by the probability of not being a dropout",
    )
    flag(
        parser,
        "--method",
        default="generative",
        help="the original's imputation method; only 'generative' (its default) is offered",
    )


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[Any, Any], Any]]:
    """The task's options from the flags, and how to run it on the input (returns what is written)."""
    genes = args.genes_to_impute
    if genes is None:
        raise UsageError(
            "--genes-to-impute is required (e.g. --genes-to-impute CD3E,MS4A1 or @genes.txt)"
        )
    if isinstance(genes, str):
        genes = [genes]
    if args.method != "generative":
        raise UsageError(
            f"--method {args.method!r} is not offered; only 'generative' (the original's default)"
        )
    options = {
        "genes_to_impute": genes,
        "input_genes": args.input_genes,
        "n_genes": args.n_genes,
        "depth_factor": args.depth_factor,
        "zero_inflation": args.zero_inflation,
    }

    def run(task: Any, adata: Any) -> Any:
        task(adata)
        return adata

    return options, run
