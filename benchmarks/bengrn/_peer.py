"""Locate the bengrn 1.3.2 peer virtualenv and run :mod:`peer_worker` jobs in it.

Set it up once (the folder is git-ignored)::

    python -m venv benchmarks/.peer-venvs/bengrn132
    benchmarks/.peer-venvs/bengrn132/bin/pip install --no-deps bengrn==1.3.2
    benchmarks/.peer-venvs/bengrn132/bin/pip install numpy scipy scikit-learn pandas tqdm matplotlib

See ``peer_worker.py`` for why ``--no-deps`` and what is patched (only ``np.trapz``).
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks.bengrn")

PEER_PYTHON = Path(__file__).resolve().parents[1] / ".peer-venvs" / "bengrn132" / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "peer_worker.py"


def peer_missing_reason() -> str | None:
    """Why the peer cannot run (``None`` when it can)."""
    if not PEER_PYTHON.exists():
        return f"no peer virtualenv at {PEER_PYTHON.parent.parent} (see benchmarks/bengrn/_peer.py)"
    done = subprocess.run(
        [
            str(PEER_PYTHON),
            "-c",
            "import importlib.util as u; print(u.find_spec('bengrn') is not None)",
        ],
        capture_output=True,
        text=True,
    )
    if done.stdout.strip() != "True":
        return "bengrn 1.3.2 is not installed in the peer virtualenv"
    return None


def run_peer(*args: str, timeout: float | None = None) -> dict[str, Any]:
    """Run one peer job; returns its JSON line (seconds, peak_rss_mb, result)."""
    done = subprocess.run(
        [str(PEER_PYTHON), str(WORKER), *args], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"peer job {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
