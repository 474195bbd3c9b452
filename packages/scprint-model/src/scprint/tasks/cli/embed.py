"""``scprint embed``: cell embeddings and label predictions."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from ._io import check_json_output
from ._options import flag, switch

log = logging.getLogger(__name__)

HELP = "cell embeddings and label predictions (obsm X_scprint, obs scprint_<class>)"
OUT_HELP = "output .h5ad (obsm X_scprint*, obs scprint_<class>)"
TASK_CLASS = "scprint.tasks.Embedder"
EXAMPLE_PARAM = "max_len=1000"
ORIGINAL_SUFFIX = "_embedded.h5ad"
#: The flags of a small run (the contract test runs every task with its own).
EXAMPLE_ARGS: tuple[str, ...] = ("--max-len", "64")
OUT_SUFFIXES = (".h5ad",)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``scprint embed`` beyond the common ones."""
    flag(
        parser,
        "--classes",
        "--pred_embedding",
        nargs="+",
        default=None,
        help="cell tokens whose embedding is X_scprint (the original's 'all' = every token, "
        "'other' = the base token)",
    )
    switch(
        parser,
        "--probabilities",
        "--keep_all_cls_pred",
        "--keep_all_labels_pred",
        help="store full label probabilities",
    )
    switch(parser, "--gene-embeddings", "--get_gene_emb", help="average gene embeddings into varm")
    flag(
        parser,
        "--max-len",
        "--max_len",
        type=int,
        default=None,
        help="input genes per cell (default: the model's training context length)",
    )
    switch(
        parser,
        "--refine",
        help="refine the label predictions over the cell graph (graph-regularised logits, GRIT)",
    )
    flag(
        parser,
        "--refine-lambda",
        type=float,
        default=0.1,
        help="strength of the refinement (with --refine)",
    )
    flag(parser, "--metrics", default=None, help="also write the label metrics to this .json")


def plan(args: argparse.Namespace) -> tuple[dict[str, Any], Callable[[Any, Any], Any]]:
    """The task's options from the flags, and how to run it on the input (returns what is written)."""
    from grnndata import atomic

    metrics_path = None if args.metrics is None else check_json_output(args.metrics, "--metrics")
    classes = args.classes
    if classes is not None:  # the original scprint2 spellings of the cell tokens
        classes = None if classes == ["all"] else ["base" if c == "other" else c for c in classes]
    options = {
        "classes": classes,
        "probabilities": args.probabilities,
        "gene_embeddings": args.gene_embeddings,
        "max_len": args.max_len,
        "refine": args.refine,
        "refine_lambda": args.refine_lambda,
    }

    def run(task: Any, adata: Any) -> Any:
        task(adata)
        metrics = adata.uns["X_scprint"]["metrics"]
        if metrics_path is not None:
            atomic.write_json(metrics_path, metrics)
        log.info("metrics: %s", metrics)
        return adata

    return options, run
