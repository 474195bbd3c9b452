"""Metrics: equal to scikit-learn on random inputs with ties, exact on hand-computed cases,
sensible on real networks, and specific errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from bengrn.metrics import EmptyGroundTruthError, GeneOverlapError, score


def _flat(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    off = ~np.eye(pred.shape[0], dtype=bool)
    return truth[off].astype(int), np.abs(pred[off])


@st.composite
def _networks(draw):
    """Synthetic (random) networks with many ties, zeros and signs, and a random truth."""
    n = draw(st.integers(3, 9))
    levels = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, levels + 1, size=(n, n)).astype(np.float32)
    pred *= rng.choice([-1.0, 1.0], size=(n, n)).astype(np.float32)
    truth = rng.random((n, n)) < draw(st.floats(0.05, 0.6))
    np.fill_diagonal(truth, False)
    if not truth.any():
        truth[0, 1] = True
    return pred, truth


@settings(max_examples=150, deadline=None)
@given(_networks(), st.booleans())
def test_ap_and_auprc_equal_sklearn_on_random_tied_inputs(net, sparse):
    pred, truth = net
    genes = [f"g{i}" for i in range(pred.shape[0])]
    y, s = _flat(pred, truth)
    given_pred = sp.csr_matrix(pred) if sparse else pred
    out = score(
        given_pred,
        sp.csr_matrix(truth),
        predicted_genes=genes,
        truth_genes=genes,
        return_curve=True,
    )
    precision, recall, thresholds = precision_recall_curve(y, s)
    assert out["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert out["auprc"] == pytest.approx(auc(recall, precision), abs=1e-12)
    # our curve = sklearn's points where recall changes (one per distinct score of a true edge)
    changes = np.r_[True, np.diff(recall[::-1]) != 0][::-1][:-1]
    skl = pd.DataFrame(
        {
            "t": thresholds[changes[: len(thresholds)]],
            "p": precision[:-1][changes[: len(thresholds)]],
        }
    )
    ours = out["curve"].sort_values("threshold")
    np.testing.assert_allclose(ours["threshold"], skl["t"])
    np.testing.assert_allclose(ours["precision"], skl["p"])
    assert out["random_precision"] == pytest.approx(y.mean())


def test_hand_computed_three_gene_case():
    # synthetic: 3 genes, 6 candidate edges, true edges a->b and c->a
    genes = ["a", "b", "c"]
    pred = np.array([[9, 5, 1], [3, 0, 3], [3, 0, 7]], dtype=np.float32)  # diagonal ignored
    truth = pd.DataFrame({"regulator": ["a", "c"], "target": ["b", "a"]})
    out = score(pred, truth, predicted_genes=genes)
    # ranking: a->b 5 (T) | b->a 3, b->c 3, c->a 3 (T) tied | a->c 1 | c->b 0
    # thresholds with a true edge: 5 -> P=1/1, R=1/2; 3 -> P=2/4, R=2/2
    assert out["ap"] == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    # trapezoids: (0,1)->(0.5,1) then (0.5, 1)->(1, 0.5): 0.5 + 0.5 * 0.75
    assert out["auprc"] == pytest.approx(0.5 + 0.375)
    # top-2: a->b, then one of three tied edges (1 true): expected TP = 1 + 1/3
    assert out["precision_at_k"] == pytest.approx((1 + 1 / 3) / 2)
    assert out["random_precision"] == pytest.approx(2 / 6)
    assert out["epr"] == pytest.approx(((1 + 1 / 3) / 2) / (2 / 6))
    # own cutoff = non-zero edges (5 of 6): both true edges found
    assert out["precision"] == pytest.approx(2 / 5) and out["recall"] == 1.0
    # odds ratio at top-2: TP 4/3, FP 2/3, FN 2/3, TN 6 - 2 - 2/3
    assert out["odds_ratio"] == pytest.approx((4 / 3) * (6 - 2 - 2 / 3) / ((2 / 3) * (2 / 3)))


def test_cutoffs_top_k_and_threshold_follow_the_tie_rule():
    genes = ["a", "b", "c"]
    pred = np.array([[0, 5, 1], [3, 0, 3], [3, 0, 0]], dtype=np.float32)
    truth = pd.DataFrame({"regulator": ["a", "c"], "target": ["b", "a"]})
    top = score(pred, truth, predicted_genes=genes, top_k=3)
    assert top["precision"] == pytest.approx((1 + 2 / 3) / 3)
    at = score(pred, truth, predicted_genes=genes, threshold=3)
    assert at["precision"] == pytest.approx(2 / 4) and at["recall"] == 1.0


def test_all_tied_scores_give_random_precision():
    genes = list("abcde")
    truth = pd.DataFrame({"regulator": ["a", "b", "c"], "target": ["b", "c", "d"]})
    out = score(np.ones((5, 5)), truth, predicted_genes=genes)
    assert out["epr"] == pytest.approx(1.0)
    assert out["ap"] == pytest.approx(out["random_precision"])


def test_real_network_metrics_equal_sklearn(hesc_pearson, hesc_intersection, hesc_expression):
    genes = hesc_expression.var_names
    out = score(hesc_pearson, hesc_intersection, truth_genes=genes, regulators_in_truth=True)
    # rebuild the universe explicitly: truth TFs with an edge among the genes x genes, no self-loops
    inside = hesc_intersection[
        hesc_intersection["regulator"].isin(genes) & hesc_intersection["target"].isin(genes)
    ]
    inside = inside[inside["regulator"] != inside["target"]]
    regs = [g for g in genes if g in set(inside["regulator"])]
    matrix = hesc_pearson.grn.toarray()
    pos = pd.Index(hesc_pearson.var_names)
    rows, cols = pos.get_indexer(regs), pos.get_indexer(genes)
    block = matrix[np.ix_(rows, cols)]
    labels = np.zeros_like(block, dtype=bool)
    labels[
        pd.Index(regs).get_indexer(inside["regulator"]),
        pd.Index(genes).get_indexer(inside["target"]),
    ] = True
    keep = np.asarray(genes)[None, :] != np.asarray(regs)[:, None]
    y, s = labels[keep], block[keep]
    precision, recall, _ = precision_recall_curve(y, s)
    assert out["n_true_edges"] == y.sum() > 0
    assert out["n_universe_edges"] == y.size
    assert out["ap"] == pytest.approx(average_precision_score(y, s), rel=1e-9)
    assert out["auprc"] == pytest.approx(auc(recall, precision), rel=1e-9)


def test_truth_against_itself_scores_perfectly(hesc_intersection, hesc_expression):
    genes = list(hesc_expression.var_names)
    out = score(hesc_intersection, hesc_intersection, truth_genes=genes, regulators_in_truth=True)
    assert out["ap"] == pytest.approx(1.0)
    assert out["auprc"] == pytest.approx(1.0)
    assert out["epr"] == pytest.approx(1.0 / out["random_precision"])
    assert out["precision"] == pytest.approx(1.0) and out["recall"] == pytest.approx(1.0)


def test_shuffled_network_stays_near_random_precision(
    hesc_pearson, hesc_intersection, hesc_expression
):
    dense = hesc_pearson.grn.toarray()
    rows = np.flatnonzero(np.abs(dense).sum(axis=1) > 0)  # the regulators' rows
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(5):
        shuffled = dense.copy()
        shuffled[rows] = rng.permutation(dense[rows].ravel()).reshape(len(rows), -1)
        out = score(
            shuffled,
            hesc_intersection,
            predicted_genes=hesc_pearson.var_names,
            truth_genes=hesc_expression.var_names,
            regulators_in_truth=True,
        )
        ratios.append(out["auprc_ratio"])
    assert abs(np.mean(ratios) - 1.0) < 0.1
    real = score(
        hesc_pearson,
        hesc_intersection,
        truth_genes=hesc_expression.var_names,
        regulators_in_truth=True,
    )
    assert real["n_true_edges"] == out["n_true_edges"]


def test_sparse_and_dense_inputs_agree(hesc_pearson, hesc_intersection, hesc_expression):
    kwargs = dict(truth_genes=hesc_expression.var_names, predicted_genes=hesc_pearson.var_names)
    sparse = score(hesc_pearson.grn, hesc_intersection, **kwargs)
    dense = score(hesc_pearson.grn.toarray(), hesc_intersection, **kwargs)
    for key in ("ap", "auprc", "epr", "odds_ratio", "precision", "recall"):
        assert sparse[key] == pytest.approx(dense[key], rel=1e-9)


def test_missing_zero_keeps_uncovered_truth_genes_in_the_universe():
    genes = list("abcd")
    truth = pd.DataFrame({"regulator": ["a", "a", "d"], "target": ["b", "c", "a"]})
    pred = np.array([[0, 2, 1], [1, 0, 1], [1, 1, 0]], dtype=float)  # only a, b, c
    drop = score(pred, truth, predicted_genes=list("abc"))
    zero = score(pred, truth, predicted_genes=list("abc"), missing="zero")
    assert drop["n_universe_edges"] == 6 and drop["n_true_edges"] == 2
    assert zero["n_universe_edges"] == 12 and zero["n_true_edges"] == 3
    assert zero["recall"] == pytest.approx(2 / 3)  # d -> a was never predicted
    assert genes  # the four truth genes define the zero-rule universe


def test_regulator_restriction_shrinks_the_universe():
    truth = pd.DataFrame({"regulator": ["a", "b"], "target": ["b", "c"]})
    pred = np.ones((3, 3))
    out = score(pred, truth, predicted_genes=list("abc"), regulators=["a"])
    assert out["n_regulators"] == 1 and out["n_universe_edges"] == 2 and out["n_true_edges"] == 1


def test_zero_gene_overlap_names_both_gene_sets():
    truth = pd.DataFrame({"regulator": ["SOX2", "POU5F1"], "target": ["NANOG", "SOX2"]})
    with pytest.raises(GeneOverlapError) as err:
        score(np.ones((2, 2)), truth, predicted_genes=["ENSG00000181449", "ENSG00000204531"])
    assert "ENSG00000181449" in str(err.value) and "SOX2" in str(err.value)


def test_nan_scores_are_an_error_naming_the_edge():
    pred = np.ones((3, 3))
    pred[1, 2] = np.nan
    truth = pd.DataFrame({"regulator": ["a"], "target": ["b"]})
    with pytest.raises(ValueError, match=r"NaN.*'b' -> 'c'"):
        score(pred, truth, predicted_genes=list("abc"))


def test_non_square_network_is_rejected():
    truth = pd.DataFrame({"regulator": ["a"], "target": ["b"]})
    with pytest.raises(ValueError, match=r"square.*\(2, 3\)"):
        score(np.ones((2, 3)), truth, predicted_genes=list("ab"))


def test_empty_ground_truth_is_rejected():
    truth = pd.DataFrame({"regulator": ["a"], "target": ["a"]})  # only a self-loop
    with pytest.raises(EmptyGroundTruthError, match="no true edge"):
        score(np.ones((2, 2)), truth, predicted_genes=list("ab"), truth_genes=list("ab"))
