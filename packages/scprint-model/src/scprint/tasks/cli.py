"""``scprint embed | denoise | gninfer | generate``: the tasks from the command line.

Each subcommand reads ``--adata`` (``.h5ad``, raw counts), runs the task with ``--ckpt`` and
writes ``--out`` atomically (``.h5ad``, or ``.zarr`` for a network). Progress bars go to stderr;
``--device auto`` uses the GPU when there is one. Example::

    scprint gninfer --ckpt model.ckpt --adata pbmc.h5ad --out net.zarr \\
        --cell-type-column cell_type --cell-type "B cells" --genes hvg --n-genes 200
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import anndata as ad
import pandas as pd

from scprint.tasks._common import write_anndata, write_json
from scprint.tasks.denoise import Denoiser
from scprint.tasks.embed import Embedder
from scprint.tasks.generate import Generator
from scprint.tasks.gninfer import AGGREGATIONS, FILTRATIONS, HEAD_AGGREGATIONS, GNInfer

log = logging.getLogger(__name__)

__all__ = ["build_parser", "main"]


def _gene_option(value: str) -> str | list[str]:
    """A selection name, a comma-separated gene list, or ``@file`` with one gene per line."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"gene list file {str(path)!r} does not exist")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if "," in value:
        return [g.strip() for g in value.split(",") if g.strip()]
    return value


def _common(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--ckpt", required=True, help="model checkpoint")
    parser.add_argument(
        "--adata", required=True, help="input .h5ad with raw counts (cells x genes)"
    )
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument(
        "--device", default="auto", help="auto (GPU if any), cpu, cuda or cuda:<index>"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="cells per forward pass")
    parser.add_argument("--verbose", action="store_true", help="log at INFO level")


def build_parser(command: str) -> argparse.ArgumentParser:
    """The argument parser of one subcommand."""
    parser = argparse.ArgumentParser(prog=f"scprint {command}", description=__doc__.splitlines()[0])
    if command == "embed":
        _common(parser, "output .h5ad (obsm X_scprint*, obs pred_*)")
        parser.add_argument(
            "--classes", nargs="+", default=None, help="cell tokens averaged into X_scprint"
        )
        parser.add_argument(
            "--probabilities", action="store_true", help="store full label probabilities"
        )
        parser.add_argument(
            "--gene-embeddings", action="store_true", help="average gene embeddings into varm"
        )
        parser.add_argument("--max-len", type=int, default=None, help="input genes per cell")
        parser.add_argument(
            "--metrics", default=None, help="also write the label metrics to this .json"
        )
    elif command == "denoise":
        _common(parser, "output .h5ad (layers['scprint_denoised'])")
        parser.add_argument(
            "--genes",
            type=_gene_option,
            default="all",
            help="all, hvg, expressed, g1,g2,... or @file",
        )
        parser.add_argument(
            "--n-genes", type=int, default=2000, help="number of genes for hvg / expressed"
        )
        parser.add_argument("--depth-factor", type=float, default=4.0, help="depth multiplier M")
    elif command == "gninfer":
        _common(parser, "output .zarr or .h5ad (GRnnData, varp['GRN'] rows = regulators)")
        parser.add_argument("--cell-type-column", default=None, help="obs column of the cell types")
        parser.add_argument(
            "--cell-type", default=None, help="cell type to use (default: all cells)"
        )
        parser.add_argument(
            "--genes",
            type=_gene_option,
            default="hvg",
            help="hvg, de, expressed, g1,g2,... or @file",
        )
        parser.add_argument("--n-genes", type=int, default=500)
        parser.add_argument("--n-cells", type=int, default=512, help="top-N cells by counts")
        parser.add_argument("--layers", type=int, nargs="+", default=None)
        parser.add_argument("--heads", type=int, nargs="+", default=None)
        parser.add_argument("--aggregation", choices=AGGREGATIONS, default="fast")
        parser.add_argument("--head-aggregation", choices=HEAD_AGGREGATIONS, default="mean")
        parser.add_argument(
            "--ground-truth", default=None, help="edge list (.csv/.tsv, regulator,target) for ridge"
        )
        parser.add_argument("--filtration", choices=FILTRATIONS, default="uniform")
        parser.add_argument("--k", type=int, default=20, help="targets kept per regulator for topk")
        parser.add_argument("--symmetrise", action="store_true")
        parser.add_argument("--chunk-size", type=int, default=None)
    elif command == "generate":
        _common(parser, "output .h5ad of generated profiles")
        parser.add_argument(
            "--target", required=True, action="append", help="CLASS=LABEL, e.g. cell_type='B cells'"
        )
        parser.add_argument(
            "--reference", default=None, help=".h5ad whose cells define the target labels"
        )
        parser.add_argument(
            "--genes", type=_gene_option, default="all", help="all, g1,g2,... or @file"
        )
        parser.add_argument("--sample", action="store_true", help="draw counts from the ZINB")
        parser.add_argument("--seed", type=int, default=0)
    else:
        raise ValueError(f"unknown task {command!r}; expected embed, denoise, gninfer or generate")
    return parser


def _read(path: str) -> ad.AnnData:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"input {path!r} does not exist")
    if file.suffix == ".zarr":
        return ad.read_zarr(file)
    return ad.read_h5ad(file)


def _read_edges(path: str) -> pd.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"ground truth {path!r} does not exist")
    sep = "," if ".csv" in file.suffixes else "\t"
    return pd.read_csv(file, sep=sep)


def _run(command: str, args: argparse.Namespace) -> None:
    adata = _read(args.adata)
    if command == "embed":
        embedder = Embedder(
            args.ckpt,
            classes=args.classes,
            probabilities=args.probabilities,
            gene_embeddings=args.gene_embeddings,
            max_len=args.max_len,
            batch_size=args.batch_size,
            device=args.device,
        )
        result, metrics = embedder(adata)
        if args.metrics:
            write_json(metrics, args.metrics)
        log.info("metrics: %s", metrics)
    elif command == "denoise":
        denoiser = Denoiser(
            args.ckpt,
            genes=args.genes,
            n_genes=args.n_genes,
            depth_factor=args.depth_factor,
            batch_size=args.batch_size,
            device=args.device,
        )
        result = denoiser(adata)
    elif command == "gninfer":
        inferer = GNInfer(
            args.ckpt,
            cell_type_column=args.cell_type_column,
            cell_type=args.cell_type,
            genes=args.genes,
            n_genes=args.n_genes,
            n_cells=args.n_cells,
            layers=args.layers,
            heads=args.heads,
            aggregation=args.aggregation,
            head_aggregation=args.head_aggregation,
            ground_truth=None if args.ground_truth is None else _read_edges(args.ground_truth),
            filtration=args.filtration,
            k=args.k,
            symmetrise=args.symmetrise,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            device=args.device,
        )
        result = inferer(adata)
    else:
        target = {}
        for item in args.target:
            token_class, sep, label = item.partition("=")
            if not sep or not token_class or not label:
                raise ValueError(
                    f"--target must look like CLASS=LABEL (e.g. cell_type=B cells), got {item!r}"
                )
            target[token_class] = label
        generator = Generator(
            args.ckpt,
            genes=args.genes,
            sample=args.sample,
            seed=args.seed,
            batch_size=args.batch_size,
            device=args.device,
        )
        reference = None if args.reference is None else _read(args.reference)
        result = generator(adata, target, reference=reference)
    write_anndata(result, args.out)


def main(argv: list[str]) -> int:
    """Run ``argv = [task, options...]``; returns the exit status (2 for bad input)."""
    if not argv:
        raise ValueError("expected a task name: embed, denoise, gninfer or generate")
    command, options = argv[0], argv[1:]
    parser = build_parser(command)
    args = parser.parse_args(options)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        _run(command, args)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        sys.stderr.write(f"scprint {command}: error: {message}\n")
        return 2
    return 0
