"""Head selection: how the per-head attention networks become one network.

``"mean"`` / ``"max"`` over the heads, ``"none"`` (keep the stack), or ``"ridge"``: heads chosen
and weighted by a positive ridge regression on a known network, holding out the regulators the
result is scored on (:func:`split_rows`, :func:`ridge_head_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scprint.errors import InputError

__all__ = [
    "HEAD_AGGREGATIONS",
    "HeadSelection",
    "aggregate_heads",
    "ridge_head_weights",
    "split_rows",
]

HEAD_AGGREGATIONS: tuple[str, ...] = ("mean", "max", "ridge", "none")


def ridge_head_weights(
    per_head: np.ndarray,
    truth: np.ndarray,
    alpha: float = 1.0,
    max_pairs: int = 200_000,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Head weights from a positive ridge regression of true edges on per-head edge scores.

    ``per_head`` is ``(heads, n_genes, n_genes)`` (rows = regulators), ``truth`` a boolean
    ``(n_genes, n_genes)`` matrix and ``rows`` an optional boolean ``(n_genes,)`` mask of the
    rows (regulators) the fit may see (default all): nothing outside these rows is read.
    Off-diagonal pairs of those rows (all true edges and a random sample of the others,
    ``max_pairs`` in all) are regressed with ``Ridge(positive=True)``; heads with a positive
    coefficient are kept, weighted by their coefficient normalised to sum to one.
    Returns ``(heads,)`` weights (zero for dropped heads). Raises ``ValueError`` when no head gets
    a positive coefficient.
    """
    from sklearn.linear_model import Ridge

    n_heads, n_genes, _ = per_head.shape
    off_diagonal = ~np.eye(n_genes, dtype=bool)
    if rows is not None:
        off_diagonal &= np.asarray(rows, dtype=bool)[:, None]
    positives = np.flatnonzero((truth & off_diagonal).ravel())
    negatives = np.flatnonzero((~truth & off_diagonal).ravel())
    rng = np.random.default_rng(seed)
    budget = max(max_pairs - positives.size, 0)
    if negatives.size > budget:
        negatives = rng.choice(negatives, size=budget, replace=False)
    pairs = np.concatenate([positives, negatives])
    features = per_head.reshape(n_heads, -1)[:, pairs].T.astype(np.float64)
    target = truth.ravel()[pairs].astype(np.float64)
    std = features.std(axis=0)
    scaled = features / np.where(std > 0, std, 1.0)
    coef = Ridge(alpha=alpha, positive=True).fit(scaled, target).coef_
    coef = coef / np.where(std > 0, std, 1.0)
    if not (coef > 0).any():
        raise InputError(
            "positive ridge head selection kept no head: no head's scores increase with the "
            "ground truth; use head_aggregation='mean' or a ground truth closer to these genes"
        )
    weights = np.where(coef > 0, coef, 0.0)
    return weights / weights.sum()


def split_rows(truth: np.ndarray, holdout: float, seed: int = 0) -> np.ndarray:
    """Held-out rows (regulators) for head selection: ``(n_genes,)`` bool, True = held out.

    The rows of ``truth`` (boolean ``(n_genes, n_genes)``, rows = regulators) are split at random
    (``seed``), separately for rows with a true edge and rows without, so that a share
    ``holdout`` of each is held out (rounded, at least one row of each side for the regulators).
    Raises ``ValueError`` when the truth has fewer than two regulators among the genes.
    """
    if not 0.0 < holdout < 1.0:
        raise InputError(f"ridge_holdout must be in (0, 1), got {holdout!r}")
    rng = np.random.default_rng(seed)
    has_edge = truth.any(axis=1)
    if has_edge.sum() < 2:
        raise InputError(
            f"the ground truth has {int(has_edge.sum())} regulator(s) among the selected genes; "
            "holding some out for scoring needs at least 2"
        )
    held_out = np.zeros(truth.shape[0], dtype=bool)
    for rows in (np.flatnonzero(has_edge), np.flatnonzero(~has_edge)):
        if rows.size == 0:
            continue
        n_out = int(round(holdout * rows.size))
        if has_edge[rows[0]]:
            n_out = min(max(n_out, 1), rows.size - 1)
        held_out[rng.permutation(rows)[:n_out]] = True
    return held_out


@dataclass(frozen=True)
class HeadSelection:
    """The networks of :func:`aggregate_heads` and, for ``"ridge"``, how they were made.

    ``networks`` is ``(1, n_keys, n_keys)`` (``(n_heads, n_keys, n_keys)`` for ``"none"``),
    rows = regulators; ``weights`` ``(n_heads,)`` the ridge weights and ``held_out``
    ``(n_genes,)`` the regulators held out of the fit (``None`` unless ``"ridge"``).
    """

    networks: np.ndarray
    weights: np.ndarray | None = None
    held_out: np.ndarray | None = None


def aggregate_heads(
    per_head: np.ndarray,
    method: str,
    *,
    truth: np.ndarray | None = None,
    first: int = 0,
    holdout: float = 0.5,
    seed: int = 0,
) -> HeadSelection:
    """Combine ``per_head`` ``(n_heads, n_keys, n_keys)`` networks (rows = regulators) by ``method``.

    For ``"ridge"``, ``truth`` is the boolean ``(n_keys, n_keys)`` known network and ``first``
    the number of leading non-gene keys (cell tokens) left out of the fit; a share ``holdout`` of
    the truth's regulators (split with ``seed``) is held out of it.
    """
    if method == "mean":
        return HeadSelection(per_head.mean(axis=0, keepdims=True))
    if method == "max":
        return HeadSelection(per_head.max(axis=0, keepdims=True))
    if method == "none":
        return HeadSelection(per_head)
    if method != "ridge":
        raise InputError(f"head_aggregation must be one of {HEAD_AGGREGATIONS}, got {method!r}")
    if truth is None:
        raise InputError("head_aggregation='ridge' needs a ground truth")
    gene_truth = truth[first:, first:]
    held_out = split_rows(gene_truth, holdout, seed)
    weights = ridge_head_weights(per_head[:, first:, first:], gene_truth, seed=seed, rows=~held_out)
    networks = np.tensordot(weights, per_head, axes=1)[None].astype(np.float32)
    return HeadSelection(networks, weights, held_out)
