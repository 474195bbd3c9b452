"""The records a benchmark run writes, and what decides a run's status.

A run file ``<out>/runs/<task>/<unit>/<method>.json`` holds one (method, task, unit) result:
``status``, ``error``, what was ``requested`` (method spec, parameters, the task's fingerprint:
a rerun skips a finished run only when they are the same), inference time and memory, the
network's ``coverage`` of the expression set, and one entry per truth variant (metrics, counts,
universe, a down-sampled PR curve). An info file ``<out>/networks/<set>/<method>.json`` sits
beside each network. Statuses:

* ``ok``: scored;
* ``degenerate``: scored, but no metric can tell the network from a random guess (no non-zero
  edge, or one score on every edge, in the network or within a task's edge universe);
* ``failed``: no score (the method raised, timed out, returned genes outside the expression set
  or NaN scores, or its process died); ``error`` says why.

Files are written atomically (:mod:`grnndata.atomic`): a killed run leaves each file complete or
absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from grnndata import Network
from grnndata.atomic import write_json

__all__ = [
    "CURVE_POINTS",
    "DONE_STATUSES",
    "as_requested",
    "coverage",
    "degenerate_reason",
    "params_for_record",
    "read_json",
    "safe_name",
    "status_of",
    "variant_records",
    "write_record",
]

#: Statuses of a finished run that a rerun skips.
DONE_STATUSES = ("ok", "degenerate")

#: Points kept of each PR curve in a run file.
CURVE_POINTS = 200


def safe_name(name: str) -> str:
    """A file-name-safe version of a method / task / unit name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_record(path: Path, payload: Mapping[str, Any]) -> None:
    """Atomically write a run / info file inside the results folder (which the runner owns, so
    an unreadable file of ours there is replaced)."""
    write_json(path, payload, indent=1, default=_json_default, overwrite=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """A run / info file, or ``None`` when it is missing or unreadable (it is then redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def as_requested(payload: Mapping[str, Any]) -> Any:
    """``payload`` as it reads back from JSON (to compare with a recorded ``requested``)."""
    return json.loads(json.dumps(payload, default=_json_default))


def params_for_record(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as recorded (JSON-ready, and equal for equal contents, since a rerun compares
    them to decide whether a finished run can be skipped): long lists (candidate regulators),
    tables and arrays become their size and a digest of their contents, paths become strings."""
    return {key: _record_value(value) for key, value in params.items()}


def _digest(*parts: bytes) -> str:
    sha = hashlib.sha1()
    for part in parts:
        sha.update(part)
    return sha.hexdigest()[:12]


def _record_value(value: Any) -> Any:
    if isinstance(value, pd.DataFrame | pd.Series):
        columns = "\n".join(map(str, value.columns)) if isinstance(value, pd.DataFrame) else ""
        rows = pd.util.hash_pandas_object(value, index=True).to_numpy()
        shape = " x ".join(map(str, value.shape))
        return f"<{type(value).__name__} {shape}, sha1 {_digest(columns.encode(), rows.tobytes())}>"
    if sp.issparse(value):
        csr = sp.csr_matrix(value)
        digest = _digest(
            str(csr.shape).encode(), csr.indptr.tobytes(), csr.indices.tobytes(), csr.data.tobytes()
        )
        return f"<sparse {csr.shape[0]} x {csr.shape[1]}, {csr.nnz} stored, sha1 {digest}>"
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        shape = " x ".join(map(str, array.shape))
        return f"<array {shape} {array.dtype}, sha1 {_digest(str(array.dtype).encode(), array.tobytes())}>"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple) and len(value) > 10:
        joined = "\n".join(map(str, value))
        return f"<{len(value)} items, sha1 {_digest(joined.encode())}>"
    return value


def coverage(network_genes: pd.Index, expression_genes: pd.Index) -> dict[str, Any]:
    """How much of the expression set a method's network covers.

    ``genes_covered``: the fraction of the expression set's genes that are genes of the network;
    ``n_genes_missing`` and up to five ``missing_examples``. The benchmark scores every network
    over the whole expression set, so a gene the network lacks counts as "no prediction" (its
    edges rank last, below every predicted edge).
    """
    missing = expression_genes[~expression_genes.isin(network_genes)]
    n = len(expression_genes)
    return {
        "genes_covered": (n - len(missing)) / n if n else 1.0,
        "n_genes_missing": int(len(missing)),
        "missing_examples": [str(g) for g in missing[:5]],
    }


def degenerate_reason(network: Network) -> str | None:
    """Why a network cannot be told from a random guess (no non-zero edge, or one score for
    every edge), or ``None``. Self-loops are ignored."""
    matrix = sp.coo_matrix(network.matrix)
    off = matrix.row != matrix.col
    values = np.abs(matrix.data[off])
    values = values[values != 0]
    if len(values) == 0:
        return "the network has no non-zero edge"
    n = matrix.shape[0]
    if len(values) == n * (n - 1) and values.min() == values.max():
        return f"every edge has the same score ({values[0]:g})"
    return None


def variant_records(variants: Sequence[Any]) -> list[dict[str, Any]]:
    """The scored variants of a :class:`~bengrn.tasks.TaskResult` as JSON-ready records (scalar
    metrics, counts, universe, the PR curve down-sampled to :data:`CURVE_POINTS`)."""
    out = []
    for v in variants:
        curve = v.curve
        if curve is not None and len(curve) > CURVE_POINTS:
            keep = np.unique(np.linspace(0, len(curve) - 1, CURVE_POINTS).round().astype(int))
            curve = curve.iloc[keep]
        out.append(
            {
                "variant": v.variant,
                "metrics": {k: val for k, val in v.metrics.items() if np.isscalar(val)},
                "n_genes_overlap": v.n_genes_overlap,
                "n_true_edges": v.n_true_edges,
                "universe": v.universe,
                "curve": None if curve is None else curve.to_dict(orient="list"),
            }
        )
    return out


def status_of(network: Network, variants: list[dict[str, Any]]) -> tuple[str, str | None]:
    """``("ok", None)`` or ``("degenerate", reason)`` for a scored network."""
    reason = degenerate_reason(network)
    if reason is None:
        constant = [v["variant"] for v in variants if v["metrics"].get("constant_scores")]
        if constant:
            reason = (
                "every edge of the task's edge universe has the same score (variants: "
                + ", ".join(constant)
                + ")"
            )
    return ("ok", None) if reason is None else ("degenerate", reason)
