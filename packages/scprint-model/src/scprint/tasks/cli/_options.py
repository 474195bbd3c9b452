"""Flags shared by the task subcommands, and turning flag values into task options."""

from __future__ import annotations

import argparse
import difflib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grnndata.cli import UsageError, add_common_options, add_data_dir_option

from ._io import check_input

__all__ = [
    "PRECISION_CHOICES",
    "add_task_common",
    "apply_params",
    "boolean",
    "choice",
    "flag",
    "gene_flags",
    "gene_option",
    "seed_flag",
    "ints",
    "match_options",
    "set_organism",
    "switch",
    "task_class",
]


#: ``--precision`` values: :data:`scprint.tasks._model.PRECISIONS`, spelled here so that building
#: the parser does not import torch.
PRECISION_CHOICES: tuple[str, ...] = ("32", "bf16", "int8")


def boolean(value: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``) as a bool."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def gene_option(value: str) -> str | list[str]:
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


def ints(values: Sequence[str] | None) -> list[int] | None:
    """``["1", "2"]``, ``["[1,2]"]`` or ``["1,2"]`` -> ``[1, 2]``; ``UsageError`` otherwise."""
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


def choice(value: str, allowed: Sequence[str], name: str, aliases: dict[str, str]) -> str:
    """``value`` (or what its alias stands for) when among ``allowed``, else ``UsageError``."""
    value = aliases.get(value, value)
    if value not in allowed:
        raise UsageError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


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


def flag(parser: argparse.ArgumentParser, *names: str, **options: Any) -> None:
    """Add an option under ``names`` and the ``_`` / ``-`` spelling of each long name."""
    parser.add_argument(*_spellings(names), **options)


def switch(parser: argparse.ArgumentParser, *names: str, help: str) -> None:
    """A boolean option: ``--name`` alone, or ``--name true|false`` (the original's spelling)."""
    flag(parser, *names, nargs="?", const=True, default=False, type=boolean, help=help)


def add_task_common(
    parser: argparse.ArgumentParser,
    *,
    out_help: str,
    original_suffix: str,
    task_class: str,
    example_param: str,
) -> None:
    """The flags every task subcommand has: model, input, output, gene matching, device, ..."""
    flag(
        parser,
        "--ckpt",
        "--ckpt_path",
        help="model checkpoint (ours, or a published scPRINT-1 or scPRINT-2 one)",
    )
    flag(parser, "--adata", help="input .h5ad or .zarr with raw counts (cells x genes)")
    flag(parser, "--out", default=None, help=out_help)
    flag(
        parser,
        "--overwrite",
        action="store_true",
        help="replace an existing output even when it is not of the kind written (a folder or "
        "file of yours); without it such a path is refused before computing",
    )
    flag(
        parser,
        "--output_filename",
        dest="output_prefix",
        default=None,
        help=f"the original's output prefix: writes PREFIX{original_suffix}",
    )
    flag(
        parser,
        "--organism",
        "--species",
        default=None,
        help="organism of the cells (NCBITaxon:9606 human, NCBITaxon:10090 mouse); default "
        "obs['organism_ontology_term_id'], else the genes' Ensembl ids",
    )
    flag(parser, "--gene-column", default=None, help="var column of the Ensembl ids or symbols")
    flag(
        parser,
        "--gene-table",
        default=None,
        help=".csv/.tsv/.parquet of (Ensembl id, symbol) pairs for symbols the data folder lacks",
    )
    flag(parser, "--min-genes", type=int, default=None, help="fewest known genes to accept")
    switch(parser, "--orthologs", help="map mouse symbols to their human orthologs")
    flag(parser, "--device", default="auto", help="auto (GPU if any), cpu, cuda or cuda:<index>")
    flag(parser, "--batch-size", type=int, default=32, help="cells per forward pass")
    flag(
        parser,
        "--precision",
        default="32",
        choices=PRECISION_CHOICES,
        help="numerical precision of the forward pass: 32 (float32), bf16 (bfloat16 autocast, "
        "where the CPU or GPU computes it natively) or int8 (int8 linear layers, CPU only); the "
        "first batch is checked against float32 and the agreement stored in uns",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help=f"an option of the task's class ({task_class}), e.g. --param {example_param}; "
        "repeatable, overrides the flags",
    )
    add_data_dir_option(parser)
    add_common_options(parser)


def gene_flags(
    parser: argparse.ArgumentParser,
    choices: Sequence[str],
    default: str,
    *aliases: str,
    n_genes: int = 2000,
) -> None:
    """``--genes`` (one of ``choices`` of :data:`scprint.tasks._input.GENE_CHOICES`, or a list)
    and ``--n-genes``, spelt and explained the same way by every subcommand that chooses genes."""
    flag(
        parser,
        "--genes",
        *aliases,
        type=gene_option,
        default=None,
        help=f"{', '.join(choices)}, g1,g2,..., [g1,g2] or @file (one gene per line); "
        f"default {default}",
    )
    flag(
        parser,
        "--n-genes",
        "--num_genes",
        type=int,
        default=n_genes,
        help=f"number of genes chosen by hvg, expressed or de (default {n_genes})",
    )


def seed_flag(parser: argparse.ArgumentParser, used_for: str) -> None:
    """``--seed`` (the task's ``seed`` option), for the subcommands whose task draws at random."""
    flag(
        parser, "--seed", "--seed_everything", type=int, default=0, help=f"random seed ({used_for})"
    )


def match_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task's ``gene_matching`` from the gene flags (only those given)."""
    options: dict[str, Any] = {}
    if args.organism is not None:
        options["organism"] = args.organism
    if args.gene_column is not None:
        options["gene_column"] = args.gene_column
    if args.gene_table is not None:
        options["gene_table"] = check_input(args.gene_table, "gene table", "--gene-table")
    if args.min_genes is not None:
        options["min_genes"] = args.min_genes
    if args.orthologs:
        options["orthologs"] = True
    return options


def set_organism(adata: Any, organism: str) -> None:
    """Record ``--species`` in ``obs["organism_ontology_term_id"]``, as the original's CLI does.

    ``--species`` names a human or mouse (:data:`scprint.data.ORGANISMS`); cells of another
    organism a scPRINT-2 model knows carry their NCBITaxon id in that column, or
    ``--param organism=NCBITaxon:<id>`` names it.
    """
    from scprint.data.organisms import ORGANISMS, organism_id

    taxon = organism_id(organism)
    if taxon not in ORGANISMS:
        raise UsageError(
            f"unknown organism {organism!r}; expected one of {sorted(ORGANISMS)} "
            "(NCBITaxon:9606 human, NCBITaxon:10090 mouse; other organisms a model knows: "
            "--param organism=NCBITaxon:<id>)"
        )
    column = "organism_ontology_term_id"
    if column in adata.obs:
        found = sorted(set(adata.obs[column].astype(str)))
        if found != [taxon]:
            raise UsageError(f"--species {organism} contradicts obs[{column!r}] = {found}")
    adata.obs[column] = taxon


def task_class(dotted: str) -> type:
    """The task class named ``scprint.tasks.<Name>``."""
    from scprint import tasks

    return getattr(tasks, dotted.rsplit(".", 1)[1])


def apply_params(
    dotted: str, params: dict[str, Any], task_options: dict[str, Any], match: dict[str, Any]
) -> None:
    """Put ``--param NAME=VALUE`` items into the task's options or its gene matching."""
    from scprint.tasks._input import GENE_MATCHING_OPTIONS

    names = [
        name
        for name in inspect.signature(task_class(dotted)).parameters
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
            raise UsageError(f"--param {name}: {dotted} has no option {name!r}{hint}")
