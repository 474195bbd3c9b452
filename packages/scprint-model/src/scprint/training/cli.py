"""``scprint fit``: pretrain from the command line.

    scprint fit --config small --data a.h5ad b.zarr --labels cell_type --max-steps 2000 --out-dir run/

``--config`` is a preset (tiny, small, medium, large) or a YAML file with a ``model:`` section
(:class:`~scprint.model.ModelConfig` fields) and a ``training:`` section (defaults of
``batch_size``, ``learning_rate``, ``warmup_steps``); command-line options override the file, ``--model KEY=VALUE`` overrides model fields.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import yaml


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``scprint fit``."""
    parser = argparse.ArgumentParser(
        prog="scprint fit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--config", default="small", help="preset name or YAML file (default: small)")
    add("--data", nargs="+", required=True, help=".h5ad files or .zarr stores with raw counts")
    add("--labels", nargs="*", default=["cell_type"], help="obs label columns (default: cell_type)")
    add("--max-steps", type=int, default=1000)
    add("--out-dir", default="scprint_run")
    add("--seed", type=int, default=0)
    add("--batch-size", type=int, default=None)
    add("--learning-rate", type=float, default=None)
    add("--warmup-steps", type=int, default=None)
    add("--organism", default="NCBITaxon:9606")
    add(
        "--gene-positions", default=None, help="gene position table (parquet/CSV, index Ensembl id)"
    )
    add(
        "--gene-embeddings", default=None, help="gene -> vector table to initialise gene identities"
    )
    add("--gene-sampling", default="weighted", choices=["weighted", "random"])
    add("--val-fraction", type=float, default=None)
    add(
        "--val-datasets",
        type=int,
        nargs="*",
        default=None,
        help="indices of --data held out for validation",
    )
    add("--val-every", type=int, default=None)
    add("--checkpoint-every", type=int, default=None)
    add("--resume-from", default=None, help="checkpoint to resume from")
    add("--accelerator", default="auto")
    add("--devices", default="1", help="number of devices or 'auto'")
    add("--strategy", default="auto", help="e.g. ddp")
    add("--num-nodes", type=int, default=1)
    add("--precision", default=None)
    add("--num-workers", type=int, default=0)
    add("--progress-bar", action="store_true")
    add(
        "--model",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; ``argv[0]`` is ``"fit"`` when called through ``scprint``."""
    from .fit import fit

    args = list(argv or [])
    if args and args[0] == "fit":
        args = args[1:]
    options = build_parser().parse_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    optional = {
        "batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "warmup_steps": options.warmup_steps,
        "val_fraction": options.val_fraction,
        "val_datasets": options.val_datasets,
        "val_every": options.val_every,
        "checkpoint_every": options.checkpoint_every,
        "precision": options.precision,
    }
    keywords = {k: v for k, v in optional.items() if v is not None}
    devices: int | str = int(options.devices) if options.devices.isdigit() else options.devices
    path = fit(
        options.data,
        config=options.config,
        label_columns=tuple(options.labels),
        max_steps=options.max_steps,
        out_dir=options.out_dir,
        seed=options.seed,
        organism=options.organism,
        gene_positions=options.gene_positions,
        gene_embeddings=options.gene_embeddings,
        resume_from=options.resume_from,
        accelerator=options.accelerator,
        devices=devices,
        strategy=options.strategy,
        num_nodes=options.num_nodes,
        num_workers=options.num_workers,
        gene_sampling=options.gene_sampling,
        progress_bar=options.progress_bar,
        **keywords,
        **dict(options.model),
    )
    logging.getLogger(__name__).info("final checkpoint: %s", path)
    return 0
