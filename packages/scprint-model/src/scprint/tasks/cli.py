"""``scprint embed | denoise | gninfer | generate``: the tasks from the command line.

Each subcommand reads ``--adata`` (``.h5ad`` or ``.zarr``, raw counts), runs the task with
``--ckpt`` (one of our checkpoints or a published scPRINT Lightning checkpoint) and writes
``--out`` (``.h5ad``, or ``.zarr`` for a network). The conventions are :mod:`grnndata.cli`'s,
shared with ``bengrn``: ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` before or after the
subcommand, ``--data-dir DIR``, and ``--param NAME=VALUE`` (repeatable) for any option of the
task's class (e.g. ``--param layers=[0,1]``, ``--param organism=human``), applied after the flags.
Inputs and the output path are checked before any computing; a user mistake exits with status 2
and one line on stderr (``--debug`` shows the traceback). Progress bars go to stderr;
``--device auto`` uses the GPU when there is one. Example::

    scprint gninfer --ckpt model.ckpt --adata pbmc.h5ad --out net.zarr \\
        --cell-type-column cell_type --cell-type "B cells" --genes hvg --n-genes 200

The original scPRINT's spellings of its commands keep working (``--ckpt_path``, ``--species``,
``--output_filename PREFIX`` writing ``PREFIX_embedded.h5ad`` / ``PREFIX_denoised.h5ad`` /
``PREFIX_<cell type>_grn.h5ad`` as the original does, ``--batch_size``, ``--how``,
``--num_genes``, ``--max_cells``, ``--head_agg``, ``--symmetrize true`` ...); every option also
accepts ``_`` in place of ``-``.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from grnndata import atomic
from grnndata.cli import (
    CliParser,
    UsageError,
    add_common_options,
    add_data_dir_option,
    parse_params,
    run_cli,
    use_data_dir,
)

log = logging.getLogger(__name__)

__all__ = ["COMMANDS", "UsageError", "build_parser", "check_output_path", "main"]

#: The task subcommands.
COMMANDS: tuple[str, ...] = ("embed", "denoise", "gninfer", "generate")
#: One line per task, for ``--help``.
TASK_HELP = {
    "embed": "cell embeddings and label predictions (obsm X_scprint, obs scprint_<class>)",
    "denoise": "denoised counts at a higher depth (layers['scprint_denoised'])",
    "gninfer": "a gene network from attention (GRnnData, rows = regulators)",
    "generate": "counterfactual expression with replaced cell tokens (layers)",
}
#: The class whose options ``--param`` sets, per task.
TASK_CLASSES = {
    "embed": "scprint.tasks.Embedder",
    "denoise": "scprint.tasks.Denoiser",
    "gninfer": "scprint.tasks.GNInfer",
    "generate": "scprint.tasks.Generator",
}
EXAMPLE_PARAMS = {
    "embed": "max_len=1000",
    "denoise": "context_len=512",
    "gninfer": "heads=[0,1]",
    "generate": "max_reference_cells=64",
}
#: What the original's ``--output_filename PREFIX`` writes, per command.
ORIGINAL_SUFFIXES = {
    "embed": "_embedded.h5ad",
    "denoise": "_denoised.h5ad",
    "gninfer": "_grn.h5ad",
    "generate": "_generated.h5ad",
}


def _boolean(value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _gene_option(value: str) -> str | list[str]:
    """A selection name, a comma-separated gene list, ``[g1, g2]`` or ``@file`` (one gene per line)."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"gene list file {str(path)!r} does not exist")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        return [g.strip().strip("'\"") for g in text.split(",") if g.strip()]
    if "," in text:
        return [g.strip() for g in text.split(",") if g.strip()]
    return value


def _ints(values: Sequence[str] | None) -> list[int] | None:
    """``["1", "2"]``, ``["[1,2]"]`` or ``["1,2"]`` -> ``[1, 2]``; ``ValueError`` otherwise."""
    if values is None:
        return None
    out = []
    for value in values:
        for part in str(value).strip("[]").split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise UsageError(f"expected integers, got {value!r}") from None
    return out


def _spellings(names: Sequence[str]) -> list[str]:
    """Each name, and for a long option its ``_`` and ``-`` spellings, in order, once."""
    out: list[str] = []
    for name in names:
        variants = [name]
        if name.startswith("--"):
            body = name[2:]
            variants += ["--" + body.replace("_", "-"), "--" + body.replace("-", "_")]
        for variant in variants:
            if variant not in out:
                out.append(variant)
    return out


def _flag(parser: argparse.ArgumentParser, *names: str, **options: Any) -> None:
    """Add an option under ``names`` and the ``_`` / ``-`` spelling of each long name."""
    parser.add_argument(*_spellings(names), **options)


def _switch(parser: argparse.ArgumentParser, *names: str, help: str) -> None:
    """A boolean option: ``--name`` alone, or ``--name true|false`` (the original's spelling)."""
    _flag(parser, *names, nargs="?", const=True, default=False, type=_boolean, help=help)


def _common(parser: argparse.ArgumentParser, command: str, out_help: str) -> None:
    _flag(
        parser, "--ckpt", "--ckpt_path", help="model checkpoint (ours or a published scPRINT one)"
    )
    _flag(parser, "--adata", help="input .h5ad or .zarr with raw counts (cells x genes)")
    _flag(parser, "--out", default=None, help=out_help)
    _flag(
        parser,
        "--overwrite",
        action="store_true",
        help="replace an existing output even when it is not of the kind written (a folder or "
        "file of yours); without it such a path is refused before computing",
    )
    _flag(
        parser,
        "--output_filename",
        dest="output_prefix",
        default=None,
        help=f"the original's output prefix: writes PREFIX{ORIGINAL_SUFFIXES[command]}",
    )
    _flag(
        parser,
        "--organism",
        "--species",
        default=None,
        help="organism of the cells (NCBITaxon:9606 human, NCBITaxon:10090 mouse); "
        "default obs['organism_ontology_term_id']",
    )
    _flag(parser, "--gene-column", default=None, help="var column of the Ensembl ids or symbols")
    _flag(
        parser,
        "--gene-table",
        default=None,
        help=".csv/.tsv/.parquet of (Ensembl id, symbol) pairs for symbols the data folder lacks",
    )
    _flag(parser, "--min-genes", type=int, default=None, help="fewest known genes to accept")
    _switch(parser, "--orthologs", help="map mouse symbols to their human orthologs")
    _flag(parser, "--device", default="auto", help="auto (GPU if any), cpu, cuda or cuda:<index>")
    _flag(parser, "--batch-size", type=int, default=32, help="cells per forward pass")
    _flag(
        parser,
        "--seed",
        "--seed_everything",
        type=int,
        default=0,
        help="random seed (gninfer's ridge split, generate's sampling)",
    )
    _flag(
        parser,
        "--num_workers",
        type=int,
        default=None,
        help="accepted for the original's commands; data are read in-process here",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help=f"an option of the task's class ({TASK_CLASSES[command]}), e.g. --param "
        f"{EXAMPLE_PARAMS[command]}; repeatable, overrides the flags",
    )
    add_data_dir_option(parser)
    add_common_options(parser)


def build_parser() -> CliParser:
    """The ``scprint`` task parser: one subcommand per task (``args.command``)."""
    parser = CliParser(prog="scprint", description=__doc__.splitlines()[0], allow_abbrev=False)
    add_common_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="TASK")
    for command in COMMANDS:
        sub = commands.add_parser(
            command, help=TASK_HELP[command], description=TASK_HELP[command], allow_abbrev=False
        )
        _add_task_options(sub, command)
    return parser


def _add_task_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of one task's subcommand."""
    if command == "embed":
        _common(parser, command, "output .h5ad (obsm X_scprint*, obs scprint_<class>)")
        _flag(
            parser,
            "--classes",
            "--pred_embedding",
            nargs="+",
            default=None,
            help="cell tokens averaged into X_scprint",
        )
        _switch(
            parser,
            "--probabilities",
            "--keep_all_cls_pred",
            help="store full label probabilities",
        )
        _switch(
            parser, "--gene-embeddings", "--get_gene_emb", help="average gene embeddings into varm"
        )
        _flag(parser, "--max-len", type=int, default=None, help="input genes per cell")
        _flag(parser, "--metrics", default=None, help="also write the label metrics to this .json")
    elif command == "denoise":
        _common(parser, command, "output .h5ad (layers['scprint_denoised'])")
        _flag(
            parser,
            "--genes",
            "--genelist",
            type=_gene_option,
            default=None,
            help="all, hvg, expressed, g1,g2,... or @file (default all)",
        )
        _flag(parser, "--how", default=None, help="the original's: 'most var' (= --genes hvg)")
        _flag(
            parser,
            "--n-genes",
            "--max_len",
            type=int,
            default=2000,
            help="number of genes for hvg / expressed",
        )
        _flag(
            parser,
            "--depth-factor",
            "--predict_depth_mult",
            type=float,
            default=4.0,
            help="depth multiplier M",
        )
    elif command == "gninfer":
        _common(parser, command, "output .zarr or .h5ad (GRnnData, varp['GRN'] rows = regulators)")
        _flag(
            parser,
            "--cell-type-column",
            "--cell_type_col",
            default=None,
            help="obs column of the cell types (default cell_type with --cell-type)",
        )
        _flag(parser, "--cell-type", default=None, help="cell type to use (default: all cells)")
        _flag(
            parser,
            "--genes",
            type=_gene_option,
            default=None,
            help="hvg, de, expressed, g1,g2,..., [g1,g2] or @file (default hvg)",
        )
        _flag(
            parser,
            "--how",
            default=None,
            help="the original's gene selection: 'most var within', 'most var across', "
            "'most expr', 'given' (with --genes)",
        )
        _flag(parser, "--n-genes", "--num_genes", type=int, default=500, help="genes to select")
        _flag(
            parser,
            "--n-cells",
            "--max_cells",
            type=int,
            default=512,
            help="top-N cells by counts (0 = all)",
        )
        _flag(parser, "--layers", "--layer", nargs="+", default=None, help="layers used")
        _flag(parser, "--heads", nargs="+", default=None, help="heads used in each layer")
        _flag(parser, "--aggregation", default=None, help="fast or exact (default fast)")
        _flag(
            parser,
            "--comp_attn",
            type=_boolean,
            default=None,
            help="the original's: true = --aggregation fast, false = exact",
        )
        _flag(parser, "--preprocess", default="softmax", help="softmax or none")
        _flag(
            parser,
            "--forward_mode",
            default="none",
            help="none, or denoise (the depth token reads 6x the depth, as the original)",
        )
        _switch(parser, "--cell-tokens", help="normalise attention over the cell tokens too")
        _flag(
            parser,
            "--head-aggregation",
            "--head_agg",
            default="mean",
            help="mean, max, ridge or none",
        )
        _flag(
            parser,
            "--ground-truth",
            "--known_grn",
            default=None,
            help="edge list (.csv/.tsv, regulator,target) for ridge or filtration known",
        )
        _flag(parser, "--ridge-holdout", type=float, default=0.5, help="share held out of ridge")
        _flag(
            parser,
            "--filtration",
            default="uniform",
            help="uniform (= thresh), topk (= top-k), known or none",
        )
        _flag(parser, "--k", type=int, default=20, help="targets kept per regulator for topk")
        _switch(parser, "--symmetrise", "--symmetrize", help="average A and its transpose")
        _switch(parser, "--apc", help="average product correction of each head's map")
        _switch(parser, "--drop-unexpressed", help="drop genes without counts in the cells")
        _flag(parser, "--chunk-size", type=int, default=None, help="query chunk of exact kernel")
    else:
        _common(parser, command, "output .h5ad (layers['scprint_generated'])")
        _flag(
            parser,
            "--target",
            action="append",
            default=None,
            help="CLASS=LABEL, e.g. cell_type='B cells' (repeatable)",
        )
        _flag(parser, "--reference", default=None, help=".h5ad whose cells define the labels")
        _flag(
            parser,
            "--genes",
            type=_gene_option,
            default="all",
            help="all, g1,g2,... or @file",
        )
        _switch(parser, "--sample", help="draw counts from the ZINB")


# -- checks before computing -------------------------------------------------------------------
def _check_input(path: str | None, what: str, flag: str) -> Path:
    if path is None:
        raise UsageError(f"{flag} is required ({what})")
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{what} {path!r} does not exist ({flag})")
    if file.suffix == ".zarr":
        if not file.is_dir():
            raise UsageError(f"{what} {path!r} is not a .zarr folder ({flag})")
    elif not file.is_file():
        raise UsageError(f"{what} {path!r} is not a file ({flag})")
    return file


def check_output_path(
    path: str | Path, suffixes: Sequence[str] = (".h5ad", ".zarr"), *, overwrite: bool = False
) -> Path:
    """Refuse an output path we must not write, before any computing; returns it as a Path.

    The path must end in one of ``suffixes``; the rest is :func:`grnndata.atomic.check_output_path`:
    an existing path is only replaced when it is of the kind written (an HDF5 file for ``.h5ad``,
    a zarr store for ``.zarr``), never a folder or file of the user's, and its folder must be
    writable.
    """
    from grnndata import atomic
    from scprint.tasks._common import output_kind

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"output must end in {' or '.join(suffixes)}, got {str(out)!r}")
    try:
        atomic.check_output_path(out, output_kind(out), overwrite=overwrite)
    except (OSError, ValueError) as error:
        message = str(error).replace("overwrite=True", "--overwrite")
        raise UsageError(f"output {str(out)!r} cannot be written: {message}") from None
    return out


def _output_path(command: str, args: argparse.Namespace) -> Path:
    if args.out is not None and args.output_prefix is not None:
        raise UsageError("give --out or --output_filename, not both")
    if args.out is not None:
        suffixes = (".h5ad", ".zarr") if command == "gninfer" else (".h5ad",)
        return check_output_path(args.out, suffixes, overwrite=args.overwrite)
    if args.output_prefix is None:
        raise UsageError("--out is required (output file)")
    suffix = ORIGINAL_SUFFIXES[command]
    if command == "gninfer" and args.cell_type is not None:
        suffix = f"_{args.cell_type}{suffix}"
    return check_output_path(f"{args.output_prefix}{suffix}", (".h5ad",), overwrite=args.overwrite)


def _check_json_output(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".json":
        raise UsageError(f"--metrics must end in .json, got {path!r}")
    if out.is_dir():
        raise UsageError(f"--metrics {path!r} is a folder")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--metrics {path!r}: {str(parent)!r} is not a folder")
    return out


# -- running -----------------------------------------------------------------------------------
def _read(path: Path) -> Any:

    try:
        if path.suffix == ".zarr":
            return ad.read_zarr(path)
        return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as err:
        raise UsageError(f"cannot read {str(path)!r} as AnnData: {err}") from err


def _read_edges(path: Path) -> pd.DataFrame:
    sep = "," if ".csv" in path.suffixes else "\t"
    return pd.read_csv(path, sep=sep)


def _choice(value: str, allowed: Sequence[str], flag: str, aliases: dict[str, str]) -> str:
    value = aliases.get(value, value)
    if value not in allowed:
        raise UsageError(f"{flag} must be one of {list(allowed)}, got {value!r}")
    return value


def _gninfer_options(args: argparse.Namespace) -> dict[str, Any]:
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
        ground_truth = _read_edges(
            _check_input(args.ground_truth, "ground truth", "--ground-truth")
        )
    return {
        "cell_type_column": cell_type_column,
        "cell_type": args.cell_type,
        "genes": "hvg" if genes is None else genes,
        "n_genes": args.n_genes,
        "n_cells": args.n_cells,
        "layers": _ints(args.layers),
        "heads": _ints(args.heads),
        "aggregation": _choice(aggregation or "fast", AGGREGATIONS, "--aggregation", {}),
        "preprocess": _choice(args.preprocess, PREPROCESSING, "--preprocess", {}),
        "forward_mode": _choice(args.forward_mode, FORWARD_MODES, "--forward-mode", {}),
        "cell_tokens": args.cell_tokens,
        "head_aggregation": _choice(
            args.head_aggregation, HEAD_AGGREGATIONS, "--head-aggregation", {}
        ),
        "ground_truth": ground_truth,
        "ridge_holdout": args.ridge_holdout,
        "seed": args.seed,
        "filtration": _choice(args.filtration, FILTRATIONS, "--filtration", ORIGINAL_FILTRATIONS),
        "k": args.k,
        "symmetrise": args.symmetrise,
        "apc": args.apc,
        "drop_unexpressed": args.drop_unexpressed,
        "chunk_size": args.chunk_size,
    }


def _denoise_genes(args: argparse.Namespace) -> str | list[str]:
    if args.how is not None:
        aliases = {"most var": "hvg", "most expr": "expressed"}
        if args.how not in aliases:
            raise UsageError(f"--how must be one of {list(aliases)}, got {args.how!r}")
        if args.genes is not None:
            raise UsageError("give --how or --genes, not both")
        return aliases[args.how]
    return "all" if args.genes is None else args.genes


def _match_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.organism is not None:
        options["organism"] = args.organism
    if args.gene_column is not None:
        options["gene_column"] = args.gene_column
    if args.gene_table is not None:
        options["gene_table"] = _check_input(args.gene_table, "gene table", "--gene-table")
    if args.min_genes is not None:
        options["min_genes"] = args.min_genes
    if args.orthologs:
        options["orthologs"] = True
    return options


def _set_organism(adata: Any, organism: str) -> None:
    """Record ``--species`` in ``obs["organism_ontology_term_id"]``, as the original's CLI does."""
    from scprint.data import ORGANISMS
    from scprint.tasks._common import _ORGANISM_NAMES

    taxon = _ORGANISM_NAMES.get(organism.lower(), organism)
    if taxon not in ORGANISMS:
        raise UsageError(
            f"unknown organism {organism!r}; expected one of {sorted(ORGANISMS)} "
            "(NCBITaxon:9606 human, NCBITaxon:10090 mouse)"
        )
    column = "organism_ontology_term_id"
    if column in adata.obs:
        found = sorted(set(adata.obs[column].astype(str)))
        if found != [taxon]:
            raise UsageError(f"--species {organism} contradicts obs[{column!r}] = {found}")
    adata.obs[column] = taxon


def _task_class(command: str) -> type:
    from scprint import tasks

    return getattr(tasks, TASK_CLASSES[command].rsplit(".", 1)[1])


def _apply_params(
    command: str, params: dict[str, Any], task_options: dict[str, Any], match: dict[str, Any]
) -> None:
    """Put ``--param NAME=VALUE`` items into the task's options or its gene matching."""
    from scprint.tasks._common import GENE_MATCHING_OPTIONS

    names = [
        name
        for name in inspect.signature(_task_class(command)).parameters
        if name not in ("self", "ckpt", "gene_matching")
    ]
    for name, value in params.items():
        if name in GENE_MATCHING_OPTIONS:
            match[name] = value
        elif name in names:
            task_options[name] = value
        else:
            known = [*names, *GENE_MATCHING_OPTIONS]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; expected one of {known}"
            raise UsageError(
                f"--param {name}: {TASK_CLASSES[command]} has no option {name!r}{hint}"
            )


def _plan(command: str, args: argparse.Namespace) -> tuple[Path, Callable[[], None]]:
    """Check every input and the output path, and return the work to do (not started yet)."""
    use_data_dir(args.data_dir)
    adata_path = _check_input(args.adata, "input", "--adata")
    ckpt = _check_input(args.ckpt, "checkpoint", "--ckpt")
    out = _output_path(command, args)
    if not zipfile.is_zipfile(ckpt):
        raise UsageError(
            f"checkpoint {str(ckpt)!r} is not a PyTorch checkpoint (a zip archive as torch.save "
            "writes): empty, truncated or another kind of file"
        )
    if adata_path.resolve() == out.resolve():
        raise UsageError(f"output {str(out)!r} is the input file; choose another --out")
    if args.num_workers is not None:
        log.warning("--num_workers has no effect: data are read in-process")
    match = _match_options(args)
    organism = match.pop("organism", None)
    task_options: dict[str, Any] = {}
    metrics_path: Path | None = None
    reference_path: Path | None = None
    target: dict[str, str] = {}
    if command == "gninfer":
        task_options = _gninfer_options(args)
    elif command == "denoise":
        task_options = {
            "genes": _denoise_genes(args),
            "n_genes": args.n_genes,
            "depth_factor": args.depth_factor,
        }
    elif command == "embed":
        metrics_path = None if args.metrics is None else _check_json_output(args.metrics)
        task_options = {
            "classes": args.classes,
            "probabilities": args.probabilities,
            "gene_embeddings": args.gene_embeddings,
            "max_len": args.max_len,
        }
    else:
        if not args.target:
            raise UsageError("--target CLASS=LABEL is required (e.g. --target cell_type='B cells')")
        for item in args.target:
            token_class, sep, label = item.partition("=")
            if not sep or not token_class or not label:
                raise UsageError(
                    f"--target must look like CLASS=LABEL (e.g. cell_type=B cells), got {item!r}"
                )
            target[token_class] = label
        reference_path = (
            None
            if args.reference is None
            else _check_input(args.reference, "reference", "--reference")
        )
        task_options = {"genes": args.genes, "sample": args.sample, "seed": args.seed}
    task_options.update(batch_size=args.batch_size, device=args.device)
    _apply_params(command, parse_params(args.param), task_options, match)
    task = _task_class(command)

    def work() -> None:
        from scprint.tasks._common import write_anndata

        adata = _read(adata_path)
        if organism is not None:
            _set_organism(adata, organism)
        runner = task(ckpt, **task_options, gene_matching=match)
        if command == "generate":
            reference = None if reference_path is None else _read(reference_path)
            runner(adata, target, reference=reference)
            result = adata
        elif command == "gninfer":
            result = runner(adata, copy=True)
        else:
            runner(adata)
            result = adata
        if command == "embed":
            metrics = adata.uns["scprint"]["metrics"]
            if metrics_path is not None:
                atomic.write_json(metrics_path, metrics)
            log.info("metrics: %s", metrics)
        write_anndata(result, out, overwrite=args.overwrite)

    return out, work


def _command(argv: Sequence[str]) -> str:
    """The task named in ``argv`` (the first word that is not a common flag); ``UsageError``
    naming the closest task for an unknown one."""
    words = [
        word for word in argv if word not in ("-v", "-vv", "--verbose", "-q", "--quiet", "--debug")
    ]
    if not words or words[0] in ("-h", "--help"):
        return ""
    if words[0] not in COMMANDS:
        close = difflib.get_close_matches(words[0], COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown task {words[0]!r}; expected one of {list(COMMANDS)}{hint}")
    return words[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv = [common flags..., task, options...]``; returns the exit status.

    0 on success, 2 and one line on stderr for a user mistake (a bad option, file or value), 1 for
    an internal failure; ``--debug`` shows the traceback (:func:`grnndata.cli.run_cli`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command = _command(argv)
    except UsageError as err:
        sys.stderr.write(f"scprint: error: {err}\n")
        return 2
    if not argv:
        sys.stderr.write(f"scprint: error: expected a task name: {', '.join(COMMANDS)}\n")
        return 2

    def handle(args: argparse.Namespace) -> int:
        _, work = _plan(args.command, args)
        work()
        return 0

    prog = f"scprint {command}" if command else "scprint"
    return run_cli(
        prog,
        build_parser(),
        handle,
        argv,
        usage_errors=(ValueError, KeyError, FileNotFoundError, TypeError),
    )
