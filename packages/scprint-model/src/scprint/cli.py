"""The ``scprint`` command: training (``fit``, ``validate``, ``test``) and the zero-shot tasks.

``scprint fit | validate | test ...`` go to :mod:`scprint.training.cli` (LightningCLI: YAML
configs, ``--print_config``); ``scprint embed | denoise | gninfer | generate | impute |
gene-emb ...`` go to
:mod:`scprint.tasks.cli`. Each subcommand has its own ``--help``. ``-v/--verbose`` (twice for
DEBUG), ``-q/--quiet`` and ``--debug`` (tracebacks) go before or after the subcommand. A mistake
exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
from collections.abc import Sequence

from grnndata.cli import CliParser, UsageError, add_common_options, run_cli
from scprint.errors import InputError
from scprint.tasks.cli import ALIASES, COMMANDS

#: Subcommand -> module running it: training, then the task registry (:mod:`scprint.tasks.cli`).
_SUBCOMMANDS = {
    "fit": "scprint.training.cli",
    "validate": "scprint.training.cli",
    "test": "scprint.training.cli",
    **{command: "scprint.tasks.cli" for command in (*COMMANDS, *ALIASES)},
}
_TRAINING = ("fit", "validate", "test")
#: The subcommands listed in the help (the original's spellings are accepted, not listed).
_SHOWN = [command for command in _SUBCOMMANDS if command not in ALIASES]
_COMMON = {"-v": 1, "--verbose": 1, "-vv": 2, "-q": 0, "--quiet": 0, "--debug": 0}


def build_parser() -> CliParser:
    """The dispatcher's parser: common options, then the subcommand and its arguments."""
    parser = CliParser(
        prog="scprint", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(parser)
    parser.add_argument("command", help=f"one of {' | '.join(_SHOWN)}")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the subcommand's arguments")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command not in _SUBCOMMANDS:
        close = difflib.get_close_matches(command, list(_SUBCOMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(
            f"unknown command {command!r}; expected one of {sorted(_SUBCOMMANDS)}{hint}"
        )
    module = importlib.import_module(_SUBCOMMANDS[command])
    if command not in _TRAINING:
        common = (
            ["-v"] * getattr(args, "verbose", 0)
            + ["-q"] * getattr(args, "quiet", False)
            + ["--debug"] * getattr(args, "debug", False)
        )
        return int(module.main([command, *common, *args.args]) or 0)
    rest = [item for item in args.args if item not in _COMMON]
    verbose = sum(_COMMON[item] for item in args.args if item in _COMMON)
    root = logging.getLogger()
    if verbose or "-q" in args.args or "--quiet" in args.args:
        quiet = "-q" in args.args or "--quiet" in args.args
        root.setLevel(logging.ERROR if quiet else (logging.INFO if verbose == 1 else logging.DEBUG))
    for handler in root.handlers:  # Lightning's INFO lines have their own handler
        handler.setLevel(root.level)
    return int(module.main([command, *rest]) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``scprint [-v] [-q] [--debug] <subcommand> ...``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        names = " | ".join(_SHOWN)
        sys.stdout.write(f"usage: scprint [-v] [-q] [--debug] {{{names}}} [options]\n\n{__doc__}")
        return 0
    # bad data found while training runs (scprint.data's checks) is a usage mistake too
    return run_cli("scprint", build_parser(), _dispatch, argv, usage_errors=(InputError,))


if __name__ == "__main__":
    raise SystemExit(main())
