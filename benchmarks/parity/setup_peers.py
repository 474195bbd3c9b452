"""Create the peer virtualenvs of the original scPRINT under ``benchmarks/.peer-venvs/`` (git-ignored).

* ``scprint-2.3.8``: ``scprint==2.3.8`` and ``simpler-flash==1.0.7`` (its transformer),
* ``scprint-1.6.4``: ``scprint==1.6.4`` (it ships its own copy of the transformer),
* ``scprint2-1.0.3``: ``scprint2==1.0.3`` (the second generation, scPRINT-2) and
  ``simpler-flash==1.3.5``; its pin ``torch==2.8.0`` is not followed: it runs on the same torch
  as the other peers,

each installed with ``--no-deps``, plus only what building, running, saving and loading the model
needs: torch, lightning, einops, huggingface-hub, pandas + pyarrow (its gene-embedding parquet),
scipy, numpy and tqdm. Everything else the original imports is answered by ``stubs.py``.

Usage (needs a package index or a pip cache; pass local wheels with ``--wheels DIR``)::

    python benchmarks/parity/setup_peers.py [--wheels DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / ".peer-venvs"
RELEASES = {
    "scprint-2.3.8": ["scprint==2.3.8", "simpler-flash==1.0.7"],
    "scprint-1.6.4": ["scprint==1.6.4"],
    "scprint2-1.0.3": ["scprint2==1.0.3", "simpler-flash==1.3.5"],
}
RUNTIME = [
    "torch==2.13.0",
    "lightning",
    "einops",
    "huggingface-hub",
    "pandas",
    "pyarrow",
    "scipy",
    "numpy",
    "tqdm",
]


def peer_python(name: str) -> Path:
    """The interpreter of peer venv ``name`` (e.g. ``"scprint-2.3.8"``)."""
    return PEERS / name / "bin" / "python"


def run_peer(venv_name: str, script: Path, *args: str | Path) -> str:
    """Run ``script`` with the peer venv's Python; its stdout, or ``SystemExit`` with its stderr."""
    python = peer_python(venv_name)
    if not python.exists():
        raise SystemExit(f"no peer venv {python.parents[1]}; run benchmarks/parity/setup_peers.py")
    done = subprocess.run(
        [str(python), str(script), *map(str, args)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"peer {venv_name} failed ({script.name}):\n{done.stderr[-3000:]}")
    return done.stdout


def create(name: str, wheels: Path | None) -> None:
    python = peer_python(name)
    if not python.exists():
        venv.create(PEERS / name, with_pip=True)
    find_links = ["--find-links", str(wheels)] if wheels else []
    pip = [str(python), "-m", "pip", "install", "--quiet", *find_links]
    subprocess.run([*pip, "--no-deps", *RELEASES[name]], check=True)
    subprocess.run([*pip, *RUNTIME], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=None, help="folder of local wheels")
    args = parser.parse_args(argv)
    for name in RELEASES:
        create(name, args.wheels)
        print(f"ready: {peer_python(name)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
