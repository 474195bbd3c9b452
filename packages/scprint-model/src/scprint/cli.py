"""The ``scprint`` command: ``scprint fit`` (training) and the zero-shot tasks.

``scprint fit ...`` goes to :mod:`scprint.training.cli`; ``scprint embed | denoise | gninfer |
generate ...`` go to :mod:`scprint.tasks.cli`. Each subcommand has its own ``--help``.
"""

from __future__ import annotations

import difflib
import importlib
import sys

_SUBCOMMANDS = {
    "fit": "scprint.training.cli",
    "embed": "scprint.tasks.cli",
    "denoise": "scprint.tasks.cli",
    "gninfer": "scprint.tasks.cli",
    "generate": "scprint.tasks.cli",
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``scprint <subcommand> ...`` to the module that implements it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        names = " | ".join(_SUBCOMMANDS)
        sys.stdout.write(f"usage: scprint {{{names}}} [options]\n\n{__doc__}")
        return 0
    command = argv[0]
    if command not in _SUBCOMMANDS:
        close = difflib.get_close_matches(command, list(_SUBCOMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        sys.stderr.write(
            f"scprint: error: unknown command {command!r}; expected one of "
            f"{sorted(_SUBCOMMANDS)}{hint}\n"
        )
        return 2
    module = importlib.import_module(_SUBCOMMANDS[command])
    return int(module.main(argv) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
