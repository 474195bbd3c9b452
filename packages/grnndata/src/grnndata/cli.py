"""Command-line conventions shared by the ``grnndata``, ``bengrn`` and ``scprint`` commands.

The commands spell their common options the same way, and accept them before or after the
subcommand: ``-v/--verbose`` (repeatable), ``-q/--quiet`` and ``--debug``; results go to
``--out PATH``, the data folder is ``--data-dir DIR`` and overrides are ``--param NAME=VALUE``.
Every flag has help text (:func:`missing_help` lists those that lack it).

Exit statuses (:func:`run_cli`):

- 0: success (or the status the command's handler returns);
- 2: a usage mistake, and only that: a :class:`UsageError` (a wrong flag or value, a path that
  is not what the command needs), reported as one line ``PROG: error: ...`` on stderr;
- 1: any other failure (a damaged input file, a failed computation, a bug), reported as one line
  ``PROG: error: <ExceptionType>: ...``;
- 130: interrupted (Ctrl-C).

``--debug`` prints the traceback before the line.

Example::

    parser = CliParser(prog="mytool")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    add_common_options(sub.add_parser("run", help="run it"))
    raise SystemExit(run_cli("mytool", parser, handler, argv))
"""

from __future__ import annotations

import argparse
import ast
import difflib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "CliParser",
    "UsageError",
    "add_common_options",
    "add_data_dir_option",
    "missing_help",
    "parse_params",
    "run_cli",
    "use_data_dir",
]


class UsageError(ValueError):
    """A mistake in the command line or its files: reported in one line, exit status 2."""


class CliParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, with a suggestion)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            flags = [f for f in message.split(":", 1)[1].split() if f.startswith("-")]
            if flags:
                name = flags[0].split("=")[0]
                known = _option_strings(self)
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else f"; see {self.prog} --help"
                raise UsageError(f"unknown option {name!r}{hint}")
        raise UsageError(f"{message} (see {self.prog} --help)")


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and its subcommands (for "did you mean" hints)."""
    known = []
    for action in parser._actions:
        known.extend(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                known.extend(_option_strings(sub))
    return known


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose``, ``-q/--quiet`` and ``--debug`` to ``parser``.

    Add them to the top-level parser and to every subcommand's parser: the defaults are
    suppressed, so a flag given before the subcommand is not reset by the subcommand's parser.
    Read the values with :func:`run_cli` (or ``getattr(args, "verbose", 0)``).
    """
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log progress (INFO); twice for DEBUG",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="log errors only"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error instead of one line",
    )


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir DIR`` (the folder of shared data; default ``$SCPRINT_DATA_DIR``)."""
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help=(
            "data folder (default: $SCPRINT_DATA_DIR, else the per-user folder "
            "~/.cache/scprint/data or the platform's equivalent when it exists)"
        ),
    )


def use_data_dir(value: str | None) -> Path | None:
    """Check ``--data-dir`` and export it as ``SCPRINT_DATA_DIR`` for the loaders; ``None`` keeps
    the environment. :class:`UsageError` when it is not a folder."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UsageError(f"--data-dir {value!r} is not a folder")
    os.environ["SCPRINT_DATA_DIR"] = str(path.resolve())
    return path


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(items: Sequence[str] | None, flag: str = "--param") -> dict[str, Any]:
    """Parse repeated ``NAME=VALUE`` items into ``{NAME: VALUE}``.

    VALUE is read as a Python literal (``50``, ``0.5``, ``True``, ``[1, 2]``, ``None``) and kept
    as a string otherwise. NAME may be dotted (``genie3.n_trees``); the caller splits it.
    :class:`UsageError` for an item without ``=`` or with an empty name, or a repeated name.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        name = name.strip()
        if not (eq and name):
            raise UsageError(f"{flag} expects NAME=VALUE (e.g. n_trees=50); got {item!r}")
        if name in out:
            raise UsageError(f"{flag} {name} is given twice")
        out[name] = _literal(value)
    return out


def missing_help(parser: argparse.ArgumentParser) -> list[str]:
    """The options and subcommands of ``parser`` (recursively) that have no help text.

    Used by the packages' tests: every flag a user can type documents itself.
    """
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not helped.get(name):
                    missing.append(f"{parser.prog} {name}")
                missing.extend(missing_help(sub))
        elif action.help in (None, "") and not isinstance(action, argparse._HelpAction):
            missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def run_cli(
    prog: str,
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    *,
    usage_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse ``argv``, configure logging and run ``handler(args)``; returns the exit status.

    0 (or the handler's own status) on success; 2 and one line ``PROG: error: ...`` for a
    :class:`UsageError` (raised by :class:`CliParser` for a bad command line, and by handlers
    for bad values or paths); 1 and one line ``PROG: error: <type>: ...`` for any other
    exception; 130 and one line when interrupted. With ``--debug`` the traceback is printed
    first.

    ``usage_errors`` adds exception types that are usage mistakes *by construction* (e.g. a
    package's own configuration-error class). Do not pass broad built-ins such as
    ``ValueError``, ``KeyError`` or ``TypeError``: a bug or a damaged file raising one would
    then be reported as the user's mistake, with exit status 2; raise :class:`UsageError` from
    the checks of the user's input instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = parser.parse_args(argv)
        verbose = int(getattr(args, "verbose", 0) or 0)
        level = logging.WARNING
        if getattr(args, "quiet", False):
            level = logging.ERROR
        elif verbose:
            level = logging.INFO if verbose == 1 else logging.DEBUG
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger().setLevel(level)
        return int(handler(args) or 0)
    except (UsageError, *usage_errors) as err:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{prog}: error: {_first_line(err, '')}\n")
        return 2
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except Exception as err:  # noqa: BLE001 - one line unless --debug
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug for the traceback)"
        message = _first_line(err, "(no message)")
        sys.stderr.write(f"{prog}: error: {type(err).__name__}: {message}{hint}\n")
        return 1


def _first_line(err: BaseException, default: str) -> str:
    """The first non-empty line of ``err``'s message (KeyError's quotes removed)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else (default or type(err).__name__)
