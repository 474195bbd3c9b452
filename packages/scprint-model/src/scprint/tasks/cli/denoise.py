"""``scprint denoise``: denoised counts at a higher depth."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from grnndata.cli import UsageError
from scprint.tasks.options import DENOISE_DEPTH_FACTOR, DENOISE_GENES

from ._options import flag, gene_flags

HELP = "denoised counts at a higher depth (layers['scprint_denoised'])"
OUT_HELP = "output .h5ad (layers['scprint_denoised'])"
TASK_CLASS = "scprint.tasks.Denoiser"
EXAMPLE_PARAM = "context_len=512"
ORIGINAL_SUFFIX = "_denoised.h5ad"
#: The flags of a small run (the contract test runs every task with its own).
EXAMPLE_ARGS: tuple[str, ...] = ("--genes", "hvg", "--n-genes", "20")
OUT_SUFFIXES = (".h5ad",)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint denoise`` beyond the common ones."""
    gene_flags(parser, DENOISE_GENES, "all", "--genelist")
    flag(
        parser,
        "--how",
        default=None,
        help="the original's: 'most var' (= --genes hvg), 'most expr' (= --genes expressed)",
    )
    flag(
        parser,
        "--depth-factor",
        "--predict_depth_mult",
        type=float,
        default=DENOISE_DEPTH_FACTOR,
        help=f"depth multiplier M: the counts expected at M x each cell's depth "
        f"(default {DENOISE_DEPTH_FACTOR})",
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
