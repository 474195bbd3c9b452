"""Every task end to end on real Kang PBMC cells with the tiny model trained in this test session.

Outputs are checked for their documented keys, shapes and dtypes, and for the behaviour the tasks
promise: predictions beat chance, denoising beats the down-sampled input, the two GRN paths equal
their PyTorch references, the GRN round-trips through grnndata and is scored by bengrn, and a
target label pulls generated profiles toward what the model generates for cells of that label.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from scprint.data import make_inference_batches
from scprint.kernels.reference import attention_to_network_reference
from scprint.tasks import (
    Denoiser,
    Embedder,
    Generator,
    GNInfer,
    InputError,
    bengrn_method,
    evaluate_denoising,
)
from scprint.tasks.cli import main as tasks_main
from scprint.tasks.genes import log_normalise, most_expressed_genes
from scprint.training import load_pretrained

#: Optimiser steps of this module's model: the session's 40-step model still predicts one class.
TASK_STEPS = 150


@pytest.fixture(scope="module")
def task_checkpoint(kang_adata, tmp_path_factory, quiet_trainer):
    """A tiny model trained on the Kang cells long enough for its labels to beat chance."""
    from scprint.training import fit

    out_dir = tmp_path_factory.mktemp("tasks_run")
    return fit(
        "tiny",
        data={"files": [kang_adata], "labels": ["cell_type"]},
        # the binomial-thinning denoising input: with the original's down-sampling this model
        # denoises worse than its input after 150 steps (Objective.noise_model)
        model={"objective": {"noise_model": "binomial"}},
        trainer=quiet_trainer(out_dir, max_steps=TASK_STEPS, val_check_interval=TASK_STEPS),
    )


@pytest.fixture(scope="module")
def pretrained(task_checkpoint):
    return load_pretrained(task_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def embedded(pretrained, kang_adata):
    """The embedded copy of the Kang cells and its label metrics (``uns["X_scprint"]["metrics"]``)."""
    adata = Embedder(pretrained, probabilities=True, gene_embeddings=True)(kang_adata, copy=True)
    return adata, adata.uns["X_scprint"]["metrics"]


@pytest.fixture(scope="module")
def omnipath_edges(data_dir) -> pd.DataFrame:
    table = pd.read_parquet(
        data_dir / "grn" / "omnipath_interactions.parquet", columns=["source", "target", "type"]
    )
    return table.loc[table["type"] == "transcriptional", ["source", "target"]]


def _profile(counts) -> np.ndarray:
    """Mean log-normalised expression over cells."""
    return np.asarray(log_normalise(counts).mean(axis=0)).ravel()


# -- Embedder --------------------------------------------------------------------------------------
def test_embedder_writes_documented_keys_shapes_and_dtypes(embedded, pretrained, kang_adata):
    adata, metrics = embedded
    d = pretrained.config.d_model
    assert adata is not kang_adata and "X_scprint" not in kang_adata.obsm
    assert adata.obsm["X_scprint"].shape == (adata.n_obs, d)
    assert adata.obsm["X_scprint"].dtype == np.float32
    for token_class in pretrained.model.label_classes:
        assert adata.obsm[f"X_scprint_{token_class}"].shape == (adata.n_obs, d)
        probs = adata.obsm[f"scprint_{token_class}_probs"]
        assert probs.shape == (adata.n_obs, len(pretrained.labels[token_class].classes))
        np.testing.assert_allclose(probs.to_numpy().sum(axis=1), 1.0, rtol=1e-5)
        winning = adata.obs[f"scprint_{token_class}_prob"].to_numpy()
        assert winning.dtype == np.float32
        np.testing.assert_allclose(winning, probs.to_numpy().max(axis=1), rtol=1e-6)
        assert isinstance(adata.obs[f"scprint_{token_class}"].dtype, pd.CategoricalDtype)
    np.testing.assert_allclose(
        adata.obsm["X_scprint"],
        np.mean([adata.obsm[f"X_scprint_{c}"] for c in pretrained.model.label_classes], axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    assert set(metrics) == {"cell_type"} and metrics["cell_type"]["n_cells"] == adata.n_obs


def test_every_task_writes_in_place_or_into_a_copy_under_key_added(pretrained, kang_adata):
    """One convention: copy=False changes the AnnData and returns None, copy=True leaves it as
    it was and returns the changed copy; results and uns use key_added (the walk over every
    registered task is tests/test_contract.py; here what each task writes)."""
    cells = kang_adata[:12].copy()
    genes = list(cells.var_names[:20])
    before = set(cells.obsm) | set(cells.obs) | set(cells.layers) | set(cells.uns)
    copied = Embedder(pretrained, classes=["cell_type"])(cells, key_added="X_emb", copy=True)
    assert set(cells.obsm) | set(cells.obs) | set(cells.layers) | set(cells.uns) == before
    assert Embedder(pretrained, classes=["cell_type"])(cells, key_added="X_emb") is None
    np.testing.assert_array_equal(cells.obsm["X_emb"], copied.obsm["X_emb"])
    assert list(cells.obs["emb_cell_type"]) == list(copied.obs["emb_cell_type"])
    assert cells.uns["X_emb"]["classes"] == ["cell_type"]
    assert Denoiser(pretrained, genes=genes)(cells, key_added="den") is None
    assert cells.layers["den"][:, cells.var["den"].to_numpy()].shape == (12, 20)
    token = np.zeros(pretrained.config.d_model, dtype=np.float32)
    generator = Generator(pretrained, target={"cell_type": token}, genes=genes)
    assert generator(cells, key_added="gen") is None
    assert cells.uns["gen"]["target"] == {"cell_type": "embedding"}
    assert cells.var["gen"].sum() == 20 and cells.layers["gen"].shape == cells.shape
    network = GNInfer(pretrained, genes=genes, n_cells=None, filtration="none")
    grn = network.network(cells)
    assert network(cells, key_added="net") is None
    chosen = cells.var["net"].to_numpy()
    in_place = cells.varp["net"][chosen][:, chosen].toarray()
    np.testing.assert_allclose(in_place, grn.grn.toarray(), rtol=1e-6)
    assert not cells.varp["net"][~chosen].count_nonzero()
    assert cells.uns["net"]["parameters"] == grn.grn_metadata["parameters"]
    with pytest.raises(InputError, match=r"use GNInfer.network\(adata\)"):
        GNInfer(pretrained, genes=genes, head_aggregation="none")(cells)


def test_embedder_predictions_beat_chance_on_training_labels(embedded):
    adata, metrics = embedded
    cell_type = metrics["cell_type"]
    assert cell_type["n_unknown"] == 0
    majority = adata.obs["cell_type"].value_counts(normalize=True).max()
    assert cell_type["accuracy"] > majority > cell_type["chance_accuracy"]
    assert cell_type["macro_f1"] > cell_type["chance_accuracy"]


def test_gene_embeddings_are_nan_exactly_for_genes_never_in_an_input(embedded, pretrained):
    adata, _ = embedded
    genes = adata.varm["X_scprint_genes"]
    assert genes.shape == (adata.n_vars, pretrained.config.d_model) and genes.dtype == np.float32
    seen = adata.var["scprint_n_cells"].to_numpy() > 0
    assert seen.sum() > 100
    assert np.isfinite(genes[seen]).all() and np.isnan(genes[~seen]).all()


def test_embedder_chosen_class_and_unknown_class(pretrained, kang_adata):
    adata = Embedder(pretrained, classes=["cell_type"])(kang_adata[:16], copy=True)
    np.testing.assert_allclose(adata.obsm["X_scprint"], adata.obsm["X_scprint_cell_type"])
    with pytest.raises(ValueError, match="subset of the cell tokens"):
        Embedder(pretrained, classes=["tissue"])


# -- Denoiser --------------------------------------------------------------------------------------
def test_denoiser_fills_chosen_genes_below_the_target_depth(pretrained, kang_adata):
    cells = kang_adata[:32].copy()
    # 60 genes fit in one context of the tiny model (max_len 64), whose means sum to at most the depth
    assert Denoiser(pretrained, genes="hvg", n_genes=60, depth_factor=3.0)(cells) is None
    out = cells
    layer = out.layers["scprint_denoised"]
    assert sp.issparse(layer) and layer.shape == cells.shape and layer.dtype == np.float32
    chosen = out.var["scprint_denoised"].to_numpy()
    assert chosen.sum() == 60
    dense = layer.toarray()
    assert (dense[:, ~chosen] == 0).all() and (dense[:, chosen] >= 0).all()
    depth = np.asarray(cells.X.sum(axis=1)).ravel()
    assert (dense.sum(axis=1) <= 3.0 * depth * (1 + 1e-4)).all()
    assert out.uns["scprint_denoised"]["depth_factor"] == 3.0


def test_denoising_beats_the_downsampled_input_on_training_cells(pretrained, kang_adata):
    result = evaluate_denoising(
        kang_adata, pretrained, fraction=0.7, n_cells=96, n_genes=200, device="cpu"
    )
    assert result["n_cells"] == 96 and result["n_genes"] == 200
    assert result["spearman_denoised"] > result["spearman_noisy"]


def test_denoising_baselines_are_scored_on_the_same_cells_and_genes(pretrained, kang_adata):
    def oracle(noisy, columns):
        # the full counts of the very cells that were thinned: a perfect denoiser
        rows = kang_adata.obs_names.get_indexer(noisy.obs_names)
        return np.asarray(kang_adata.X[rows][:, columns].todense(), dtype=float)

    def identity(noisy, columns):
        return np.asarray(noisy.X[:, columns].todense(), dtype=float)

    result = evaluate_denoising(
        kang_adata,
        pretrained,
        n_cells=48,
        n_genes=100,
        device="cpu",
        baselines={"oracle": oracle, "identity": identity},
    )
    assert result["spearman_oracle"] == pytest.approx(1.0)
    assert result["pearson_oracle"] == pytest.approx(1.0)
    assert result["spearman_identity"] == pytest.approx(result["spearman_noisy"])
    assert result["improved_fraction_identity"] == 0.0
    with pytest.raises(ValueError, match="baseline 'bad' returned shape"):
        evaluate_denoising(
            kang_adata,
            pretrained,
            n_cells=8,
            n_genes=50,
            device="cpu",
            baselines={"bad": lambda noisy, columns: np.zeros((1, 1))},
        )


def test_denoiser_rejects_bad_options(pretrained):
    with pytest.raises(ValueError, match="depth_factor must be positive"):
        Denoiser(pretrained, depth_factor=0)
    with pytest.raises(ValueError, match="genes must be one of"):
        Denoiser(pretrained, genes="de")


# -- GNInfer ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def network_cells(kang_adata):
    cells = kang_adata[:24].copy()
    genes = list(cells.var_names[np.sort(most_expressed_genes(cells.X, 30))])
    return cells, genes


@pytest.mark.parametrize("aggregation", ["fast", "exact"])
def test_gninfer_paths_equal_their_pytorch_references(pretrained, network_cells, aggregation):
    cells, genes = network_cells
    inferer = GNInfer(
        pretrained,
        genes=genes,
        n_cells=None,
        aggregation=aggregation,
        head_aggregation="none",
        filtration="none",
        batch_size=7,
    )
    stack = inferer.network(cells).varp["GRN"]
    n_layers, n_heads = pretrained.config.n_layers, pretrained.config.n_heads
    assert stack.shape == (len(genes), len(genes), n_layers * n_heads)
    model = pretrained.model
    batch = next(
        make_inference_batches(cells, pretrained.vocab, genes=genes, batch_size=cells.n_obs)
    )
    with torch.inference_mode():
        out = model(batch["gene_ids"], batch["counts"], batch["depth"], return_qk=True)
    local = torch.arange(len(genes)).expand(cells.n_obs, -1)
    for layer in range(n_layers):
        q, k = (t[:, :, model.n_cell_tokens :].float() for t in out.qk[layer])
        if aggregation == "exact":
            summed, pairs = attention_to_network_reference(q, k, local, len(genes), heads=None)
            expected = summed / pairs
        else:
            scores = q.mean(0) @ k.mean(0).transpose(-1, -2) * q.shape[-1] ** -0.5
            expected = torch.softmax(scores, dim=-1)
        for head in range(n_heads):
            # rows = regulators = the attended-to key genes: the transposed attention map
            np.testing.assert_allclose(
                stack[:, :, layer * n_heads + head], expected[head].T.numpy(), rtol=1e-4, atol=1e-6
            )


def test_gninfer_grn_roundtrips_through_grnndata_and_is_scored_by_bengrn(
    pretrained, kang_adata, omnipath_edges, tmp_path
):
    import grnndata
    from bengrn.metrics import score

    grn = GNInfer(
        pretrained,
        cell_type_column="cell_type",
        cell_type="CD14+ Monocytes",
        genes="expressed",
        n_genes=150,
        n_cells=64,
        filtration="topk",
        k=10,
    ).network(kang_adata)
    assert isinstance(grn, grnndata.GRNAnnData)
    assert grn.shape == (64, 150) and (grn.obs["cell_type"] == "CD14+ Monocytes").all()
    assert ((grn.grn > 0).sum(axis=1) <= 10).all()
    meta = grn.grn_metadata
    assert meta["method"] == "scprint" and meta["parameters"]["cell_type"] == "CD14+ Monocytes"
    path = tmp_path / "net.zarr"
    grn.write_zarr(path)
    back = grnndata.read_zarr(path)
    assert (back.grn != grn.grn).nnz == 0
    assert list(back.var_names) == list(grn.var_names)
    assert back.grn_metadata["parameters"] == meta["parameters"]
    truth = omnipath_edges.set_axis(["regulator", "target"], axis=1)
    result = score(back.grn, truth, predicted_genes=back.var["gene_symbol"].astype(str).tolist())
    assert result["n_true_edges"] > 0
    assert 0.0 <= result["auprc"] <= 1.0 and np.isfinite(result["epr"])


def _planted_truth(stack: np.ndarray, genes: list[str], head: int) -> pd.DataFrame:
    """The 10% of gene pairs where ``head`` scores most above the other heads' mean."""
    others = np.delete(np.arange(stack.shape[2]), head)
    specific = stack[:, :, head] - stack[:, :, others].mean(axis=2)
    regulators, targets = np.nonzero(
        (specific > np.quantile(specific, 0.9)) & ~np.eye(len(genes), dtype=bool)
    )
    names = np.asarray(genes)
    return pd.DataFrame({"regulator": names[regulators], "target": names[targets]})


def test_gninfer_ridge_selects_the_head_that_matches_the_ground_truth(pretrained, network_cells):
    cells, genes = network_cells
    options = {"genes": genes, "n_cells": None, "filtration": "none"}
    stack = GNInfer(pretrained, head_aggregation="none", **options).network(cells).varp["GRN"]
    target_head = stack.shape[2] - 1
    truth = _planted_truth(stack, genes, target_head)
    grn = GNInfer(pretrained, head_aggregation="ridge", ground_truth=truth, **options).network(
        cells
    )
    weights = grn.grn_metadata["parameters"]["head_weights"]
    assert sum(weights.values()) == pytest.approx(1.0)
    layer, head = divmod(target_head, pretrained.config.n_heads)
    assert max(weights, key=weights.get) == f"layer{layer}_head{head}"
    held_out = grn.var["ridge_held_out"].to_numpy()
    assert 0 < held_out.sum() < len(genes)
    dense = grn.grn.toarray()
    # only the held-out rows (regulators) are returned: the weighted mix of the heads there
    assert not dense[~held_out].any() and dense[held_out].any()
    labels = [
        f"layer{li}_head{hi}"
        for li in range(pretrained.config.n_layers)
        for hi in range(pretrained.config.n_heads)
    ]
    mixed = sum(weights.get(label, 0.0) * stack[:, :, i] for i, label in enumerate(labels))
    np.testing.assert_allclose(dense[held_out], mixed[held_out], rtol=1e-4, atol=1e-6)


def test_gninfer_ridge_never_sees_the_edges_it_is_scored_on(pretrained, network_cells):
    cells, genes = network_cells
    options = {"genes": genes, "n_cells": None, "filtration": "none"}
    stack = GNInfer(pretrained, head_aggregation="none", **options).network(cells).varp["GRN"]
    truth = _planted_truth(stack, genes, stack.shape[2] - 1)
    first = GNInfer(pretrained, head_aggregation="ridge", ground_truth=truth, **options).network(
        cells
    )
    held_out = pd.Series(first.var["ridge_held_out"].to_numpy(), index=genes)
    # move every edge of a held-out regulator to another target: the scored edges change
    shifted = [genes[(genes.index(t) + 7) % len(genes)] for t in truth["target"]]
    rewired = truth.assign(
        target=np.where(held_out[truth["regulator"]].to_numpy(), shifted, truth["target"])
    )
    rewired = rewired[rewired["regulator"] != rewired["target"]]
    assert not rewired.reset_index(drop=True).equals(truth.reset_index(drop=True))
    second = GNInfer(pretrained, head_aggregation="ridge", ground_truth=rewired, **options).network(
        cells
    )
    np.testing.assert_array_equal(second.var["ridge_held_out"].to_numpy(), held_out.to_numpy())
    assert second.grn_metadata["parameters"]["head_weights"] == pytest.approx(
        first.grn_metadata["parameters"]["head_weights"]
    )
    assert (first.grn != second.grn).nnz == 0
    assert not first.grn.toarray()[~held_out.to_numpy()].any()


def _layer_head_maps(pretrained, cells, genes, cell_tokens):
    """Per-layer queries and keys of one forward pass (all cells in one batch)."""
    model = pretrained.model
    batch = next(
        make_inference_batches(cells, pretrained.vocab, genes=genes, batch_size=cells.n_obs)
    )
    with torch.inference_mode():
        out = model(batch["gene_ids"], batch["counts"], batch["depth"], return_qk=True)
    first = 0 if cell_tokens else model.n_cell_tokens
    return [(q[:, :, first:].float(), k[:, :, first:].float()) for q, k in out.qk]


@pytest.mark.parametrize(
    ("aggregation", "preprocess"), [("fast", "softmax"), ("exact", "softmax"), ("exact", "none")]
)
def test_gninfer_with_cell_tokens_in_the_softmax_equals_its_definition(
    pretrained, network_cells, aggregation, preprocess
):
    cells, genes = network_cells
    stack = (
        GNInfer(
            pretrained,
            genes=genes,
            n_cells=0,
            aggregation=aggregation,
            preprocess=preprocess,
            cell_tokens=True,
            head_aggregation="none",
            filtration="none",
            batch_size=5,
        )
        .network(cells)
        .varp["GRN"]
    )
    n_cell = pretrained.model.n_cell_tokens
    n_heads = pretrained.config.n_heads
    for layer, (q, k) in enumerate(_layer_head_maps(pretrained, cells, genes, cell_tokens=True)):
        scale = q.shape[-1] ** -0.5
        if aggregation == "fast":
            expected = torch.softmax(q.mean(0) @ k.mean(0).transpose(-1, -2) * scale, -1)
        else:
            scores = q @ k.transpose(-1, -2) * scale
            maps = torch.softmax(scores, -1) if preprocess == "softmax" else scores
            expected = maps.mean(0)
        expected = expected[:, n_cell:, n_cell:]
        for head in range(n_heads):
            np.testing.assert_allclose(
                stack[:, :, layer * n_heads + head],
                expected[head].T.numpy(),
                rtol=1e-4,
                atol=1e-5,
            )


def test_gninfer_head_max_symmetrise_apc_and_threshold_follow_their_definitions(
    pretrained, network_cells
):
    from scprint.tasks.gninfer import average_product_correction

    cells, genes = network_cells
    options = {"genes": genes, "n_cells": None}
    stack = GNInfer(pretrained, head_aggregation="none", filtration="none", **options).network(
        cells
    )
    per_head = np.transpose(stack.varp["GRN"], (2, 0, 1))
    grn = GNInfer(
        pretrained,
        head_aggregation="max",
        symmetrise=True,
        apc=True,
        filtration="thresh",  # the original's name of "uniform"
        **options,
    ).network(cells)
    corrected = [average_product_correction((m + m.T) / 2) for m in per_head]
    expected = np.max(corrected, axis=0)
    expected[expected < 1 / len(genes)] = 0
    np.testing.assert_allclose(grn.grn.toarray(), expected, rtol=1e-4, atol=1e-6)
    params = grn.grn_metadata["parameters"]
    assert params["filtration"] == "uniform" and params["apc"] is True
    assert params["gene_match"]["n_known"] == cells.n_vars


def test_gninfer_original_spellings_and_unexpressed_genes(pretrained, network_cells):
    cells, genes = network_cells
    assert GNInfer(pretrained, genes="most var within").genes == "hvg"
    assert GNInfer(pretrained, genes="most expr").genes == "expressed"
    assert GNInfer(pretrained, filtration="top-k").filtration == "topk"
    with pytest.raises(ValueError, match="'random expr'.*not offered"):
        GNInfer(pretrained, genes="random expr")
    with pytest.raises(ValueError, match="preprocess must be one of"):
        GNInfer(pretrained, preprocess="sinkhorn")
    silent = [g for g in cells.var_names if cells[:, g].X.sum() == 0][:2]
    assert len(silent) == 2
    grn = GNInfer(
        pretrained, genes=[*genes[:10], *silent], n_cells=None, drop_unexpressed=True
    ).network(cells)
    assert list(grn.var_names) == genes[:10]
    # a gene list may name the genes by symbol although var_names are Ensembl ids
    symbols = cells.var.loc[genes[:10], "gene_symbol"].astype(str).tolist()
    by_symbol = GNInfer(pretrained, genes=symbols, n_cells=None).network(cells)
    assert list(by_symbol.var_names) == genes[:10]


def test_bengrn_method_is_gninfer(pretrained, kang_adata, task_checkpoint):
    grn = bengrn_method(
        kang_adata[:40], ckpt=task_checkpoint, genes="hvg", n_genes=40, device="cpu"
    )
    assert grn.varp["GRN"].shape == (40, 40)
    assert grn.grn_metadata["checkpoint"] == str(task_checkpoint)


def test_gninfer_bad_input_is_reported(pretrained, kang_adata):
    with pytest.raises(ValueError, match="'Platelets' is absent from obs\\['cell_type'\\]"):
        GNInfer(pretrained, cell_type_column="cell_type", cell_type="Platelets").network(kang_adata)
    with pytest.raises(InputError, match="no column 'tissue'"):
        GNInfer(pretrained, cell_type_column="tissue", cell_type="blood").network(kang_adata)
    with pytest.raises(ValueError, match="needs a ground_truth"):
        GNInfer(pretrained, head_aggregation="ridge")
    with pytest.raises(ValueError, match="genes='de'"):
        GNInfer(pretrained, genes="de")
    with pytest.raises(ValueError, match="layers index 9"):
        GNInfer(pretrained, layers=[9])


def test_tasks_reject_unknown_genes_other_organisms_and_non_counts(pretrained, kang_adata):
    embedder = Embedder(pretrained)
    unknown = kang_adata[:8].copy()
    unknown.var_names = [f"GENE{i}" for i in range(unknown.n_vars)]
    unknown.var = unknown.var.drop(columns=["gene_symbol"])
    with pytest.raises(ValueError, match=r"only 0 of the AnnData's 2511 genes are known.*'GENE0'"):
        embedder(unknown)
    mouse = kang_adata[:8].copy()
    mouse.obs["organism_ontology_term_id"] = "NCBITaxon:10090"
    with pytest.raises(ValueError, match="unsupported organism"):
        embedder(mouse)
    logged = kang_adata[:8].copy()
    logged.X = log_normalise(logged.X).astype(np.float32)
    with pytest.raises(ValueError, match="raw integer counts"):
        embedder(logged)


def test_tasks_take_gene_matching_options_and_report_the_match(pretrained, kang_adata):
    cells = kang_adata[:16].copy()
    with pytest.raises(ValueError, match="gene_matching has unknown keys"):
        Denoiser(pretrained, gene_matching={"species": "human"})
    with pytest.raises(ValueError, match="unsupported organism"):
        Embedder(pretrained, gene_matching={"organism": "NCBITaxon:10090"})(cells)
    by_symbol = cells.copy()
    by_symbol.var_names = cells.var["gene_symbol"].astype(str).to_numpy()
    by_symbol.var_names_make_unique()
    by_symbol.var["ids"] = cells.var_names.to_numpy()
    options = {"gene_column": "ids", "min_genes": 2000}
    out = Denoiser(pretrained, genes="hvg", n_genes=20, gene_matching=options)(by_symbol, copy=True)
    summary = out.uns["scprint_denoised"]["gene_match"]
    assert summary["n_matched_by_id"] == summary["n_known"] == cells.n_vars
    partly = cells.copy()
    partly.var_names = [f"UNKNOWN{i}" for i in range(10)] + list(cells.var_names[10:])
    partly.var = partly.var.drop(columns=["gene_symbol"])
    with pytest.raises(ValueError, match=r"only 2501 of the AnnData's 2511 genes.*at least 2511"):
        Denoiser(pretrained, gene_matching={"min_genes": 2511})(partly)
    Denoiser(pretrained, genes="hvg", n_genes=10)(partly)
    assert "scprint_denoised" in partly.layers


def test_incompatible_checkpoint_version_is_a_clear_error(task_checkpoint, tmp_path):
    checkpoint = torch.load(task_checkpoint, map_location="cpu", weights_only=True)
    checkpoint["scprint"] = {**checkpoint["scprint"], "format": 999}
    bad = tmp_path / "future.ckpt"
    torch.save(checkpoint, bad)
    with pytest.raises(ValueError, match="format version 999"):
        Embedder(bad, device="cpu")


# -- Generator -------------------------------------------------------------------------------------
def test_generation_moves_profiles_toward_the_target_label(pretrained, kang_adata):
    labels = kang_adata.obs["cell_type"].astype(str).to_numpy()
    monocytes = kang_adata[labels == "CD14+ Monocytes"][:24].copy()
    b_cells = kang_adata[labels == "B cells"][:24].copy()
    genes = list(kang_adata.var_names[np.sort(most_expressed_genes(kang_adata.X, 256))])
    identity = {"cell_type": "cell_type", "base": "cell_type"}
    out = Generator(
        pretrained,
        target={"cell_type": "B cells", "base": "B cells"},
        reference=kang_adata,
        label_columns=identity,
        genes=genes,
        max_reference_cells=64,
    )(monocytes, copy=True)
    decoded = out.var["scprint_generated"].to_numpy()
    assert list(out.var_names[decoded]) == genes and out.obs_names.equals(monocytes.obs_names)
    to_b = out.layers["scprint_generated"][:, decoded]
    assert to_b.shape == (monocytes.n_obs, 256) and to_b.dtype == np.float32
    assert (to_b.data >= 0).all()
    assert out.uns["scprint_generated"]["target"] == {"cell_type": "B cells", "base": "B cells"}

    def generated(cells, target, **options):
        generator = Generator(
            pretrained, target=target, genes=genes, max_reference_cells=64, **options
        )
        return generator(cells, copy=True).layers["scprint_generated"][:, decoded]

    unchanged = generated(monocytes, {"cell_type": "CD14+ Monocytes"}, reference=kang_adata)
    # what the model generates for B cells themselves (their own label token)
    b_profile = _profile(generated(b_cells, {"cell_type": "B cells"}))
    distance = {
        name: np.linalg.norm(_profile(g) - b_profile)
        for name, g in (("to_b", to_b), ("unchanged", unchanged))
    }
    assert distance["to_b"] < distance["unchanged"]


def test_generator_samples_counts_and_rejects_bad_targets(pretrained, kang_adata):
    cells = kang_adata[:8].copy()
    token = np.zeros(pretrained.config.d_model, dtype=np.float32)
    Generator(pretrained, target={"cell_type": token}, sample=True, seed=1)(cells)
    draws = cells.layers["scprint_generated"].data
    assert np.array_equal(draws, np.round(draws)) and "scprint_generated_mean" in cells.layers
    with pytest.raises(InputError, match="'Platelets' is absent"):
        Generator(pretrained, target={"cell_type": "Platelets"}, reference=kang_adata)(cells)
    with pytest.raises(InputError, match="unknown token class"):
        Generator(pretrained, target={"tissue": "blood"})
    with pytest.raises(InputError, match="must have shape"):
        Generator(pretrained, target={"cell_type": np.zeros(3)})(cells)
    with pytest.raises(InputError, match="target is empty"):
        Generator(pretrained, target={})


# -- command line ----------------------------------------------------------------------------------
def test_cli_runs_every_task_and_writes_outputs(task_checkpoint, kang_adata, tmp_path):
    from scprint.cli import main

    adata_path = tmp_path / "cells.h5ad"
    kang_adata[:40].copy().write_h5ad(adata_path)
    common = ["--ckpt", str(task_checkpoint), "--adata", str(adata_path), "--device", "cpu"]
    assert (
        main(
            [
                "embed",
                *common,
                "--out",
                str(tmp_path / "emb.h5ad"),
                "--metrics",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    assert "X_scprint" in ad.read_h5ad(tmp_path / "emb.h5ad").obsm
    assert (
        main(
            [
                "denoise",
                *common,
                "--out",
                str(tmp_path / "den.h5ad"),
                "--genes",
                "hvg",
                "--n-genes",
                "50",
            ]
        )
        == 0
    )
    assert "scprint_denoised" in ad.read_h5ad(tmp_path / "den.h5ad").layers
    assert (
        main(
            [
                "gninfer",
                *common,
                "--out",
                str(tmp_path / "net.zarr"),
                "--n-genes",
                "30",
                "--aggregation",
                "exact",
            ]
        )
        == 0
    )
    import grnndata

    assert grnndata.read_zarr(tmp_path / "net.zarr").grn.shape == (30, 30)
    assert (
        main(
            [
                "generate",
                *common,
                "--out",
                str(tmp_path / "gen.h5ad"),
                "--target",
                "cell_type=B cells",
                "--genes",
                ",".join(kang_adata.var_names[:20]),
            ]
        )
        == 0
    )
    generated = ad.read_h5ad(tmp_path / "gen.h5ad")
    assert generated.var["scprint_generated"].sum() == 20
    assert generated.layers["scprint_generated"].shape == (40, kang_adata.n_vars)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_reports_bad_input_with_exit_status_2(task_checkpoint, kang_adata, tmp_path, capsys):
    adata_path = tmp_path / "cells.h5ad"
    kang_adata[:10].copy().write_h5ad(adata_path)
    status = tasks_main(
        [
            "gninfer",
            "--ckpt",
            str(task_checkpoint),
            "--adata",
            str(adata_path),
            "--out",
            str(tmp_path / "net.zarr"),
            "--cell-type-column",
            "cell_type",
            "--cell-type",
            "Platelets",
        ]
    )
    assert status == 2
    assert "'Platelets' is absent" in capsys.readouterr().err
    assert not (tmp_path / "net.zarr").exists()


def test_cli_accepts_the_original_scprint_commands(task_checkpoint, kang_adata, tmp_path):
    """The original's spellings: --ckpt_path, --species, --output_filename PREFIX and its options."""
    from scprint.cli import main

    adata_path = tmp_path / "cells.h5ad"
    kang_adata[:48].copy().write_h5ad(adata_path)
    common = ["--adata", str(adata_path), "--ckpt_path", str(task_checkpoint)]
    common += ["--species", "NCBITaxon:9606", "--batch_size", "16", "--device", "cpu"]
    prefix = str(tmp_path / "out.h5ad")
    denoise = ["denoise", *common, "--output_filename", prefix, "--how", "most var"]
    assert main([*denoise, "--n-genes", "40", "--predict_depth_mult", "2"]) == 0
    denoised = ad.read_h5ad(f"{prefix}_denoised.h5ad")
    assert "scprint_denoised" in denoised.layers
    assert denoised.var["scprint_denoised"].sum() == 40
    gninfer = ["gninfer", *common, "--output_filename", str(tmp_path / "run")]
    gninfer += ["--cell_type", "B cells", "--how", "most var within", "--num_genes", "20"]
    gninfer += ["--max_cells", "8", "--head_agg", "mean", "--filtration", "thresh"]
    gninfer += [
        "--symmetrize",
        "true",
        "--comp_attn",
        "false",
        "--layer",
        "[0]",
        "--seed_everything",
        "3",
    ]
    # --param NAME=VALUE sets any option of the task's class (here GNInfer's apc and heads)
    assert main([*gninfer, "--param", "apc=False", "--param", "heads=[0, 1]"]) == 0
    import grnndata

    grn = grnndata.read_h5ad(tmp_path / "run_B cells_grn.h5ad")
    assert list(grn.grn_metadata["parameters"]["heads"]) == [0, 1]
    assert grn.shape == (8, 20) and (grn.obs["cell_type"] == "B cells").all()
    network = grn.varp["GRN"].toarray()
    np.testing.assert_allclose(network, network.T, rtol=1e-6)
    assert network.min() == 0.0 and (network[network > 0] >= 1 / 20).all()
    embed = ["embed", *common, "--output_filename", str(tmp_path / "run")]
    assert main([*embed, "--keep_all_cls_pred", "true", "--max_len", "100"]) == 0
    assert "X_scprint" in ad.read_h5ad(tmp_path / "run_embedded.h5ad").obsm
