"""``scprint embed | denoise | gninfer | generate | impute | gene-emb``: the tasks from the command line.

Each subcommand reads ``--adata`` (``.h5ad`` or ``.zarr``, raw counts), runs the task with
``--ckpt`` (one of our checkpoints or a published scPRINT Lightning checkpoint) and writes
``--out`` (``.h5ad``, or ``.zarr`` for a network). The conventions are :mod:`grnndata.cli`'s,
shared with ``bengrn``: ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` before or after the
subcommand, ``--data-dir DIR``, and ``--param NAME=VALUE`` (repeatable) for any option of the
task's class (e.g. ``--param layers=[0,1]``, ``--param organism=human``), applied after the flags.
Inputs and the output path are checked before any computing. A usage mistake (a bad flag, file
or value: ``UsageError``, or a task's :class:`scprint.tasks.InputError`) exits with status 2 and
one line on stderr; any other failure (a damaged checkpoint, a failed computation) with status 1
and one line; ``--debug`` shows the traceback. Progress bars go to stderr;
``--device auto`` uses the GPU when there is one. Example::

    scprint gninfer --ckpt model.ckpt --adata pbmc.h5ad --out net.zarr \\
        --cell-type-column cell_type --cell-type "B cells" --genes hvg --n-genes 200

The original scPRINT's spellings of its commands keep working (``--ckpt_path``, ``--species``,
``--output_filename PREFIX`` writing ``PREFIX_embedded.h5ad`` / ``PREFIX_denoised.h5ad`` /
``PREFIX_<cell type>_grn.h5ad`` as the original does, ``--batch_size``, ``--how``,
``--num_genes``, ``--max_cells``, ``--head_agg``, ``--symmetrize true`` ...); every option also
accepts ``_`` in place of ``-``.

Layout: one module per subcommand (``embed``, ``denoise``, ``gninfer``, ``generate``,
``impute``, ``gene_emb`` for ``gene-emb``), each with ``HELP``, ``OUT_HELP``, ``TASK_CLASS``,
``EXAMPLE_PARAM``, ``EXAMPLE_ARGS`` (the flags of a small run), ``ORIGINAL_SUFFIX``,
``OUT_SUFFIXES``, ``add_options(parser)`` and
``plan(args) -> (task options, run(task, adata) -> output)``; shared flags in :mod:`._options`,
paths in :mod:`._io`. A new subcommand is a module and one line in :data:`COMMANDS`; the task
contract (``tests/test_contract.py``) then runs it with its ``EXAMPLE_ARGS``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from grnndata.cli import (
    CliParser,
    UsageError,
    add_common_options,
    parse_params,
    run_cli,
    use_data_dir,
)
from scprint.errors import InputError

from ._io import check_input, check_output_path, output_path, read_adata
from ._options import add_task_common, apply_params, match_options, set_organism, task_class

log = logging.getLogger(__name__)

__all__ = [
    "ALIASES",
    "COMMANDS",
    "UsageError",
    "build_parser",
    "check_output_path",
    "command_module",
    "main",
]

#: The task subcommands, in ``--help`` order.
COMMANDS: tuple[str, ...] = ("embed", "denoise", "gninfer", "generate", "impute", "gene-emb")
#: The original ``scprint2`` spellings of some subcommands.
ALIASES: dict[str, str] = {"gene_emb": "gene-emb"}


def command_module(command: str) -> ModuleType:
    """The module that defines subcommand ``command`` (``scprint.tasks.cli.<command>``, ``-``
    spelled ``_``; the original's aliases accepted)."""
    command = ALIASES.get(command, command)
    return importlib.import_module(f"{__name__}.{command.replace('-', '_')}")


def build_parser() -> CliParser:
    """The ``scprint`` task parser: one subcommand per task (``args.command``)."""
    parser = CliParser(prog="scprint", description=__doc__.splitlines()[0], allow_abbrev=False)
    add_common_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="TASK")
    for command in COMMANDS:
        module = command_module(command)
        sub = commands.add_parser(
            command, help=module.HELP, description=module.HELP, allow_abbrev=False
        )
        add_task_common(
            sub,
            out_help=module.OUT_HELP,
            original_suffix=module.ORIGINAL_SUFFIX,
            task_class=module.TASK_CLASS,
            example_param=module.EXAMPLE_PARAM,
        )
        module.add_options(sub)
    return parser


def _plan(command: str, args: argparse.Namespace) -> tuple[Path, Callable[[], None]]:
    """Check every input and the output path, and return the work to do (not started yet)."""
    module = command_module(command)
    use_data_dir(args.data_dir)
    adata_path = check_input(args.adata, "input", "--adata")
    ckpt = check_input(args.ckpt, "checkpoint", "--ckpt")
    prefix = module.prefix_suffix(args) if hasattr(module, "prefix_suffix") else ""
    out = output_path(args, module.OUT_SUFFIXES, module.ORIGINAL_SUFFIX, prefix_suffix=prefix)
    if not zipfile.is_zipfile(ckpt):
        raise UsageError(
            f"checkpoint {str(ckpt)!r} is not a PyTorch checkpoint (a zip archive as torch.save "
            "writes): empty, truncated or another kind of file"
        )
    if adata_path.resolve() == out.resolve():
        raise UsageError(f"output {str(out)!r} is the input file; choose another --out")
    match = match_options(args)
    organism = match.pop("organism", None)
    task_options, run = module.plan(args)
    task_options.update(batch_size=args.batch_size, device=args.device, precision=args.precision)
    apply_params(module.TASK_CLASS, parse_params(args.param), task_options, match)
    task = task_class(module.TASK_CLASS)

    def work() -> None:
        from scprint.tasks._output import write_anndata

        adata = read_adata(adata_path)
        if organism is not None:
            set_organism(adata, organism)
        result = run(task(ckpt, **task_options, gene_matching=match), adata)
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
    if words[0] in ALIASES:
        return ALIASES[words[0]]
    if words[0] not in COMMANDS:
        close = difflib.get_close_matches(words[0], COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown task {words[0]!r}; expected one of {list(COMMANDS)}{hint}")
    return words[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv = [common flags..., task, options...]``; returns the exit status.

    0 on success, 2 and one line on stderr for a usage mistake (argparse, ``UsageError``,
    :class:`scprint.tasks.InputError`), 1 and one line for any other failure; ``--debug`` shows
    the traceback (:func:`grnndata.cli.run_cli`).
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
    if command:  # the original's spelling of a task (e.g. gene_emb) -> ours
        position = next(i for i, word in enumerate(argv) if ALIASES.get(word, word) == command)
        argv[position] = command

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
        usage_errors=(InputError,),
    )
