"""``scprint denoise``: denoised counts at a higher depth."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from grnndata.cli import UsageError

from ._options import flag, gene_option

HELP = "denoised counts at a higher depth (layers['scprint_denoised'])"
OUT_HELP = "output .h5ad (layers['scprint_denoised'])"
TASK_CLASS = "scprint.tasks.Denoiser"
EXAMPLE_PARAM = "context_len=512"
ORIGINAL_SUFFIX = "_denoised.h5ad"
OUT_SUFFIXES = (".h5ad",)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint denoise`` beyond the common ones."""
    flag(
        parser,
        "--genes",
        "--genelist",
        type=gene_option,
        default=None,
        help="all, hvg, expressed, g1,g2,... or @file (default all)",
    )
    flag(parser, "--how", default=None, help="the original's: 'most var' (= --genes hvg)")
    flag(
        parser,
        "--n-genes",
        "--max_len",
        type=int,
        default=2000,
        help="number of genes for hvg / expressed",
    )
    flag(
        parser,
        "--depth-factor",
        "--predict_depth_mult",
        type=float,
        default=4.0,
        help="depth multiplier M",
    )


def _genes(args: argparse.Namespace) -> str | list[str]:
    if args.how is not None:
        aliases = {"most var": "hvg", "most expr": "expressed"}
        if args.how not in aliases:
            raise UsageError(f"--how must be one of {list(aliases)}, got {args.how!r}")
        if args.genes is not None:
            raise UsageError("give --how or --genes, not both")
        return aliases[args.how]
    return "all" if args.genes is None else args.genes


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[Any, Any], Any]]:
    """The task's options from the flags, and how to run it on the input (returns what is written)."""
    options = {"genes": _genes(args), "n_genes": args.n_genes, "depth_factor": args.depth_factor}

    def run(task: Any, adata: Any) -> Any:
        task(adata)
        return adata

    return options, run
