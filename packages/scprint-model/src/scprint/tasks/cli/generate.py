"""``scprint generate``: counterfactual expression with replaced cell tokens."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from grnndata.cli import UsageError
from scprint.tasks.options import GENERATE_GENES

from ._io import check_input, read_adata
from ._options import flag, gene_flags, gene_option, seed_flag, switch

HELP = "counterfactual expression with replaced cell tokens (layers)"
OUT_HELP = "output .h5ad (layers['scprint_generated'])"
TASK_CLASS = "scprint.tasks.Generator"
EXAMPLE_PARAM = "max_reference_cells=64"
ORIGINAL_SUFFIX = "_generated.h5ad"
#: The flags of a small run (the contract test runs every task with its own).
EXAMPLE_ARGS: tuple[str, ...] = (
    "--target",
    "cell_type=B cells",
    "--genes",
    "hvg",
    "--n-genes",
    "20",
)
OUT_SUFFIXES = (".h5ad",)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint generate`` beyond the common ones."""
    flag(
        parser,
        "--target",
        action="append",
        default=None,
        help="CLASS=LABEL, e.g. cell_type='B cells' (repeatable)",
    )
    flag(parser, "--reference", default=None, help=".h5ad whose cells define the labels")
    gene_flags(parser, GENERATE_GENES, "all")
    switch(parser, "--sample", help="draw counts from the ZINB")
    seed_flag(parser, "the draws of --sample")
    flag(
        parser,
        "--space",
        choices=("token", "code"),
        default="token",
        help="swap a class's output token, or its compressed code (scPRINT-2), decoded by its "
        "compressor",
    )
    flag(
        parser,
        "--input-genes",
        type=gene_option,
        default=None,
        help="genes every cell is read over (g1,g2,... or @file); default each cell's expressed "
        "genes first, up to the model's context",
    )


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[Any, Any], Any]]:
    """The task's options from the flags, and how to run it on the input (returns what is written)."""
    if not args.target:
        raise UsageError("--target CLASS=LABEL is required (e.g. --target cell_type='B cells')")
    target: dict[str, str] = {}
    for item in args.target:
        token_class, sep, label = item.partition("=")
        if not sep or not token_class or not label:
            raise UsageError(
                f"--target must look like CLASS=LABEL (e.g. cell_type=B cells), got {item!r}"
            )
        target[token_class] = label
    reference_path = (
        None if args.reference is None else check_input(args.reference, "reference", "--reference")
    )
    if isinstance(args.input_genes, str):
        args.input_genes = [args.input_genes]
    options = {
        "target": target,
        "reference": None if reference_path is None else read_adata(reference_path),
        "genes": "all" if args.genes is None else args.genes,
        "n_genes": args.n_genes,
        "sample": args.sample,
        "seed": args.seed,
        "space": args.space,
        "input_genes": args.input_genes,
    }

    def run(task: Any, adata: Any) -> Any:
        task(adata)
        return adata

    return options, run
