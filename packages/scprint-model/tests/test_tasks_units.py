"""The model-free parts of the tasks: gene selection, network filtration, head selection, metrics,
input checks and atomic writing. Small arrays or a slice of the real Kang data; no model."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from scprint.tasks import _model, label_metrics, write_anndata
from scprint.tasks.denoise import _rowwise_pearson, _rowwise_spearman
from scprint.tasks.generate import sample_zinb
from scprint.tasks.genes import (
    differentially_expressed_genes,
    highly_variable_genes,
    log_normalise,
    most_expressed_genes,
)
from scprint.tasks.gninfer import (
    average_product_correction,
    filter_network,
    ground_truth_matrix,
    ridge_head_weights,
    split_rows,
)


@pytest.fixture(scope="module")
def kang_counts(data_dir) -> ad.AnnData:
    adata = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    return adata[:400].copy()


def test_log_normalise_rows_sum_to_target_before_log():
    counts = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 2, 4]], dtype=np.int32))
    normalised = log_normalise(counts).toarray()
    np.testing.assert_allclose(np.expm1(normalised).sum(axis=1), [1e4, 0.0, 1e4])


def test_hvg_picks_planted_bimodal_gene_and_skips_unexpressed(kang_counts):
    counts = kang_counts.X.toarray().astype(np.float64)
    assert 5 not in highly_variable_genes(sp.csr_matrix(counts), 50)
    rng = np.random.default_rng(0)
    counts[:, 5] = np.where(rng.random(counts.shape[0]) < 0.5, 0, 60)
    counts[:, 7] = 0
    chosen = highly_variable_genes(sp.csr_matrix(counts), 50)
    assert len(chosen) == 50 and len(set(chosen.tolist())) == 50
    assert 5 in chosen
    assert 7 not in chosen


def test_de_statistic_matches_scipy_welch_t_test(kang_counts):
    in_group = (kang_counts.obs["cell_type"] == "B cells").to_numpy()
    chosen = differentially_expressed_genes(kang_counts.X, in_group, 10)
    logged = log_normalise(kang_counts.X).toarray()
    t, _ = stats.ttest_ind(logged[in_group], logged[~in_group], equal_var=False)
    t = np.nan_to_num(t, nan=-np.inf)
    np.testing.assert_array_equal(np.sort(chosen), np.sort(np.argsort(-t, kind="stable")[:10]))
    symbols = kang_counts.var["gene_symbol"].to_numpy()[chosen]
    assert {"CD79A", "MS4A1", "CD79B", "CD74"} & set(symbols)


def test_de_needs_two_cells_per_side(kang_counts):
    group = np.zeros(kang_counts.n_obs, dtype=bool)
    group[0] = True
    with pytest.raises(ValueError, match="at least 2 cells"):
        differentially_expressed_genes(kang_counts.X, group, 10)


def test_most_expressed_is_order_of_mean_log_expression(kang_counts):
    chosen = most_expressed_genes(kang_counts.X, 20)
    mean = np.asarray(log_normalise(kang_counts.X).mean(axis=0)).ravel()
    np.testing.assert_array_equal(chosen, np.argsort(-mean, kind="stable")[:20])


def test_uniform_filtration_keeps_weights_above_one_over_n():
    network = np.array([[0.5, 0.2, 0.3], [0.1, 0.8, 0.1], [0.34, 0.33, 0.33]], dtype=np.float32)
    out = filter_network(network, "uniform")
    np.testing.assert_array_equal(out > 0, network > 1 / 3)
    np.testing.assert_array_equal(out[out > 0], network[network > 1 / 3])


def test_topk_filtration_keeps_k_strongest_targets_per_regulator():
    rng = np.random.default_rng(1)
    network = rng.random((12, 12)).astype(np.float32)
    out = filter_network(network, "topk", k=3)
    assert ((out > 0).sum(axis=1) == 3).all()
    for row in range(12):
        np.testing.assert_array_equal(
            np.sort(np.flatnonzero(out[row])), np.sort(np.argsort(-network[row])[:3])
        )
    with pytest.raises(ValueError, match="filtration must be one of"):
        filter_network(network, "top5")


def test_ridge_keeps_informative_heads_and_drops_anticorrelated_one():
    rng = np.random.default_rng(0)
    n = 40
    truth = rng.random((n, n)) < 0.1
    informative = truth + 0.3 * rng.random((n, n))
    noise = rng.random((n, n))
    anti = 1.0 - truth + 0.3 * rng.random((n, n))
    weights = ridge_head_weights(np.stack([informative, noise, anti]), truth)
    assert weights[0] > 0.5
    assert weights[2] == 0.0
    assert weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kept no head"):
        ridge_head_weights(np.stack([anti]), truth)


def test_ridge_reads_only_the_rows_it_may_fit_on():
    rng = np.random.default_rng(2)
    n = 40
    truth = rng.random((n, n)) < 0.1
    per_head = np.stack([truth + 0.3 * rng.random((n, n)), rng.random((n, n))])
    held_out = split_rows(truth, 0.5, seed=0)
    expected = ridge_head_weights(per_head, truth, rows=~held_out)
    # whatever the held-out rows hold (scores or truth), the weights do not change
    poisoned = per_head.copy()
    poisoned[:, held_out] = np.nan
    flipped = truth.copy()
    flipped[held_out] = ~flipped[held_out]
    np.testing.assert_array_equal(ridge_head_weights(poisoned, flipped, rows=~held_out), expected)


def test_split_rows_holds_out_a_share_of_regulators_and_of_other_rows():
    truth = np.zeros((30, 30), dtype=bool)
    truth[:10, 10:15] = True  # rows 0-9 are regulators
    held_out = split_rows(truth, 0.3, seed=1)
    assert held_out[:10].sum() == 3 and held_out[10:].sum() == 6
    assert not np.array_equal(held_out, split_rows(truth, 0.3, seed=2))
    with pytest.raises(ValueError, match="at least 2"):
        split_rows(np.eye(5, k=1, dtype=bool) & (np.arange(5) == 0)[:, None], 0.5)
    with pytest.raises(ValueError, match=r"ridge_holdout must be in \(0, 1\)"):
        split_rows(truth, 1.0)


def test_average_product_correction_and_known_filtration():
    rng = np.random.default_rng(3)
    network = rng.random((6, 6)).astype(np.float32)
    corrected = average_product_correction(network)
    expected = network - np.outer(network.sum(1), network.sum(0)) / network.sum()
    np.testing.assert_allclose(corrected, expected, rtol=1e-6)
    np.testing.assert_allclose(corrected.sum(axis=0), 0.0, atol=1e-5)
    known = rng.random((6, 6)) < 0.3
    np.testing.assert_array_equal(filter_network(network, "known", known=known) > 0, known)
    with pytest.raises(ValueError, match="needs a boolean known network"):
        filter_network(network, "known")


def test_ground_truth_matrix_matches_symbols_when_ids_do_not():
    genes = ["ENSG1", "ENSG2", "ENSG3"]
    symbols = ["TP53", "MDM2", "CDKN1A"]
    edges = pd.DataFrame({"source": ["TP53", "TP53", "FOO"], "target": ["MDM2", "CDKN1A", "TP53"]})
    matrix = ground_truth_matrix(edges, genes, symbols)
    expected = np.zeros((3, 3), dtype=bool)
    expected[0, 1] = expected[0, 2] = True
    np.testing.assert_array_equal(matrix, expected)
    with pytest.raises(ValueError, match="none of the ground-truth edges"):
        ground_truth_matrix(pd.DataFrame({"regulator": ["X"], "target": ["Y"]}), genes, symbols)


class _Encoder:
    """A two-level ontology: 'T cell' is the parent of the leaves 'CD4 T' and 'CD8 T'."""

    classes = ["CD4 T", "CD8 T", "B"]
    coarse = ["T cell"]
    _leaves = {"CD4 T": [0], "CD8 T": [1], "B": [2], "T cell": [0, 1]}

    def encode(self, values):
        labels = [*self.classes, *self.coarse]
        return np.array([labels.index(v) if v in labels else -1 for v in values])

    def decode(self, index):
        labels = [*self.classes, *self.coarse]
        return [labels[int(i)] for i in index]

    def descendant_leaves(self, label):
        return self._leaves[label]

    def nearest_known(self, value):
        return None  # no ontology behind this two-level test double


def test_label_metrics_credit_predictions_below_a_coarse_true_label():
    true = ["T cell", "T cell", "B", "CD4 T", "unknown"]
    predicted = np.array([0, 1, 0, 0, 2])
    metrics = label_metrics(true, predicted, _Encoder())
    assert metrics["n_cells"] == 4 and metrics["n_unknown"] == 1
    assert metrics["accuracy"] == pytest.approx(3 / 4)
    assert 0 < metrics["macro_f1"] < 1


def test_label_metrics_chance_and_macro_f1_run_over_the_scored_populations_only():
    """Three populations are scored ("T cell", "B", "CD4 T") of the model's three leaves plus a
    coarse label: chance is 1/3, and the wrong "CD4 T" call on the B cell is a false positive of
    "CD4 T" (the most specific scored population holding that leaf), not a class of its own."""
    true = ["T cell", "T cell", "B", "CD4 T", "unknown"]
    metrics = label_metrics(true, np.array([0, 1, 0, 0, 2]), _Encoder())
    assert metrics["n_scored_classes"] == 3 and metrics["n_classes"] == 3
    assert metrics["chance_accuracy"] == pytest.approx(1 / 3)
    assert metrics["majority_accuracy"] == pytest.approx(2 / 4)
    # F1: "T cell" 1, "B" 0 (missed), "CD4 T" 2/3 (one right, one false positive)
    assert metrics["macro_f1"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    only_b = label_metrics(["B", "B"], np.array([2, 0]), _Encoder())
    assert only_b["n_scored_classes"] == 1 and only_b["chance_accuracy"] == 1.0
    assert only_b["macro_f1"] == pytest.approx(2 / 3)  # precision 1, recall 1/2


def test_rowwise_correlations_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.poisson(2.0, (5, 30)).astype(float), rng.poisson(2.0, (5, 30)).astype(float)
    expected_s = [stats.spearmanr(x, y).statistic for x, y in zip(a, b)]
    expected_p = [stats.pearsonr(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(_rowwise_spearman(a, b), expected_s, rtol=1e-10)
    np.testing.assert_allclose(_rowwise_pearson(a, b), expected_p, rtol=1e-10)
    a[:, :10] = np.nan  # ignored entries: the correlation over the other 20
    expected_masked = [stats.spearmanr(x[10:], y[10:]).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(_rowwise_spearman(a, b), expected_masked, rtol=1e-10)


def test_zinb_samples_have_the_zinb_mean():
    rng = np.random.default_rng(0)
    shape = (20_000,)
    mean, theta, logit = np.full(shape, 5.0), np.full(shape, 2.0), np.full(shape, -1.0)
    draws = sample_zinb(mean, theta, logit, rng)
    pi = 1 / (1 + np.exp(1.0))
    assert draws.dtype == np.float32
    assert draws.mean() == pytest.approx(5.0 * (1 - pi), rel=0.05)


def test_organism_check_reads_obs_then_ensembl_prefixes():
    from scprint.data.organisms import check_cells_organism

    mouse_obs = ad.AnnData(
        X=np.ones((2, 2), dtype=np.float32),
        obs=pd.DataFrame({"organism": ["Mus musculus"] * 2}, index=["a", "b"]),
    )
    with pytest.raises(ValueError, match="unsupported organism.*NCBITaxon:10090"):
        check_cells_organism(mouse_obs.obs, ["NCBITaxon:9606"])
    mouse_genes = ad.AnnData(
        X=np.ones((1, 3), dtype=np.float32),
        var=pd.DataFrame(index=["ENSMUSG00000000001", "ENSMUSG00000000028", "ENSMUSG00000000031"]),
    )
    with pytest.raises(ValueError, match="Ensembl prefixes"):
        check_cells_organism(mouse_genes.obs, ["NCBITaxon:9606"], var_names=mouse_genes.var_names)
    found = check_cells_organism(
        mouse_genes.obs, ["NCBITaxon:10090"], var_names=mouse_genes.var_names
    )
    assert found == {"NCBITaxon:10090"}


def test_resolve_device_auto_and_missing_gpu():
    import torch

    assert _model.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            _model.resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        _model.resolve_device("tpu-please")


def test_write_anndata_is_atomic_and_replaces(tmp_path, kang_counts):
    small = kang_counts[:10, :20].copy()
    for name in ("out.h5ad", "out.zarr"):
        target = tmp_path / name
        write_anndata(small, target)
        write_anndata(small[:5].copy(), target)
        back = ad.read_h5ad(target) if name.endswith("h5ad") else ad.read_zarr(target)
        assert back.shape == (5, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5ad", "out.zarr"]
    with pytest.raises(ValueError, match="must end in .h5ad or .zarr"):
        write_anndata(small, tmp_path / "out.csv")


def test_true_labels_finer_than_the_model_are_scored_at_their_nearest_known_ancestor():
    """Real Cell Ontology: the model knows "CD8-positive, alpha-beta T cell" (CL:0000625) and B
    cells; a FACS-sorted naive CD8 T cell (CL:0000900) is scored as CD8 T, a Treg (CL:0000815)
    at "T cell"-level or coarser, and a non-ontology label stays unknown."""
    from scprint.data import LabelEncoder
    from scprint.tasks import label_metrics

    encoder = LabelEncoder.build("cell_type", ["CL:0000625", "CL:0000236"])
    assert encoder.nearest_known("CL:0000900") == "CL:0000625"
    assert encoder.nearest_known("CL:0000236") == "CL:0000236"
    assert encoder.nearest_known("not a term") is None
    treg = encoder.nearest_known("CL:0000815")
    assert treg is not None and encoder.descendant_leaves(treg) == [
        encoder.classes.index("CL:0000625")
    ]

    cd8, b = encoder.classes.index("CL:0000625"), encoder.classes.index("CL:0000236")
    metrics = label_metrics(
        ["CL:0000900", "CL:0000900", "CL:0000236", "something else"],
        np.array([cd8, b, b, b]),
        encoder,
    )
    assert metrics["n_cells"] == 3 and metrics["n_unknown"] == 1
    assert metrics["n_mapped_to_ancestor"] == 2
    assert metrics["accuracy"] == pytest.approx(2 / 3)
