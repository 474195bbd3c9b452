"""Every task and command accepts a scPRINT-2 checkpoint (the parity fixtures) on real cells.

The fixture models are randomly initialised scPRINT-2 models made by the original code
(``tests/fixtures/parity/scprint2_*``): these tests check that each task runs on them and writes
what it documents (scPRINT-2's embedding layout, its neighbours for the metacell encoder, its
organisms), not the quality of the predictions. Equality with the original's own tasks is in
``test_scprint2.py``.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import scprint
from scprint.tasks import Denoiser, Embedder, Generator, GNInfer

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
PUBLISHED_LAYOUT = FIXTURES / "scprint2_s2_cell_vae_metacell.ckpt"
SHARED = FIXTURES / "scprint2_s2_shared_fsq_mvc.ckpt"
CELL_TYPE = "cell_type_ontology_term_id"


@pytest.fixture(scope="module")
def metacell() -> scprint.Pretrained:
    return scprint.load(PUBLISHED_LAYOUT, device="cpu")


@pytest.fixture(scope="module")
def cells(kang_adata) -> ad.AnnData:
    return kang_adata[:30].copy()


def test_embedder_writes_scprint2_codes_and_ontology_names(metacell, cells):
    adata = Embedder(metacell, max_len=64)(cells, copy=True)
    model = metacell.model
    widths = {CELL_TYPE: 8, "organism_ontology_term_id": 2, "sex_ontology_term_id": 2}
    for name, width in widths.items():
        assert adata.obsm[f"X_scprint_{name}"].shape == (cells.n_obs, width)
    # the original's embedding: the base token (no compressor) then every class's code
    embedding = adata.obsm["X_scprint"]
    assert embedding.shape == (cells.n_obs, model.config.cell_dim + sum(widths.values()))
    codes = np.hstack([adata.obsm[f"X_scprint_{name}"] for name in widths])
    np.testing.assert_allclose(embedding[:, model.config.cell_dim :], codes, rtol=1e-6)
    names = set(adata.obs[f"scprint_{CELL_TYPE}"].cat.categories)
    assert {"B cell", "natural killer cell", "CD14-positive monocyte"} <= names
    assert set(adata.obs["scprint_organism_ontology_term_id"].cat.categories) == {
        "Homo sapiens",
        "Mus musculus",
    }
    # classes chosen: their codes side by side, as the original's Embedder(pred_embedding=...)
    chosen = Embedder(metacell, classes=[CELL_TYPE, "sex_ontology_term_id"], max_len=64)(
        cells, copy=True
    )
    np.testing.assert_allclose(
        chosen.obsm["X_scprint"],
        np.hstack(
            [adata.obsm[f"X_scprint_{CELL_TYPE}"], adata.obsm["X_scprint_sex_ontology_term_id"]]
        ),
        rtol=1e-5,
        atol=1e-6,
    )


def test_metacell_batches_hold_each_cells_neighbours_counts(metacell, cells):
    from scprint.data.neighbours import nearest_cells
    from scprint.tasks._batches import iter_model_batches
    from scprint.tasks._input import prepare

    match = prepare(cells, metacell).match
    neighbours = nearest_cells(cells.X)
    counts = cells.X.toarray()
    column_of = dict(zip(match.vocab_indices, match.var_indices))
    batches = iter_model_batches(
        cells, metacell, match, genes=None, max_len=40, batch_size=8, description="test"
    )
    batch = next(iter(batches))
    for b, row in enumerate(batch["cell_index"].tolist()):
        ids = batch["gene_ids"][b].tolist()
        columns = [column_of[i] for i in ids if i >= 0]
        expected = counts[neighbours.indices[row]][:, columns]
        np.testing.assert_array_equal(batch["neighbour_counts"][b, :, : len(columns)], expected)
        np.testing.assert_allclose(batch["neighbour_distances"][b], neighbours.distances[row])
    # the neighbours change the embedding (the encoder reads them)
    from scprint.tasks._batches import model_inputs

    with torch.no_grad():
        inputs = model_inputs(batch)
        alone = {k: v for k, v in inputs.items() if not k.startswith("neighbour")}
        read = metacell.model(**inputs).cell_embedding
        without = metacell.model(**alone).cell_embedding
    assert not torch.allclose(read, without)


def test_neighbours_come_from_obsp_distances_when_present(metacell, cells):
    from scprint.data.neighbours import neighbours_of

    graph = sp.lil_matrix((cells.n_obs, cells.n_obs))
    for row in range(cells.n_obs):
        for step in range(1, 8):
            graph[row, (row + step) % cells.n_obs] = float(step)
    adata = cells.copy()
    adata.obsp["distances"] = graph.tocsr()
    found, source = neighbours_of(adata)
    assert source == "obsp['distances']"
    np.testing.assert_array_equal(found.indices[0], np.arange(1, 7))
    np.testing.assert_array_equal(found.distances[3], np.arange(1, 7, dtype=np.float32))
    adata.obsp["distances"] = sp.csr_matrix((cells.n_obs, cells.n_obs))
    with pytest.raises(ValueError, match=r"stores 0 neighbours for cell 0 but scPRINT-2 reads 6"):
        neighbours_of(adata)


def test_denoiser_scales_means_to_the_requested_depth(metacell, cells):
    out = Denoiser(metacell, genes="hvg", n_genes=40, depth_factor=4.0)(cells, copy=True)
    layer = out.layers["scprint_denoised"].toarray()
    chosen = out.var["scprint_denoised"].to_numpy()
    assert chosen.sum() == 40 and np.all(layer[:, ~chosen] == 0)
    observed = np.asarray(cells.X[:, chosen].sum(axis=1)).ravel()
    np.testing.assert_allclose(layer[:, chosen].sum(1), 4.0 * observed, rtol=1e-4)


@pytest.mark.parametrize("path", [PUBLISHED_LAYOUT, SHARED])
def test_gninfer_reads_the_gene_transformers_attention(path, cells):
    pretrained = scprint.load(path, device="cpu")
    grn = GNInfer(pretrained, n_genes=25, n_cells=12).network(cells)
    matrix = grn.varp["GRN"]
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    assert matrix.shape == (25, 25) and np.isfinite(matrix).all() and (matrix >= 0).all()
    assert set(grn.var_names) <= set(pretrained.vocab.genes)


def test_generator_swaps_a_cell_transformer_token(metacell, cells):
    genes = metacell.vocab.genes[:30]  # Kang genes of the fixture vocabulary
    target = {CELL_TYPE: "CL:0000236"}  # the B cells' mean output token
    out = Generator(metacell, target=target, genes=genes)(cells[:8], copy=True)
    decoded = out.var["scprint_generated"].to_numpy()
    generated = out.layers["scprint_generated"][:, decoded].toarray()
    assert generated.shape == (8, 30) and (generated >= 0).all() and np.isfinite(generated).all()
    zeros = {CELL_TYPE: np.zeros(16, np.float32)}
    same = Generator(metacell, target=zeros, genes=genes)(cells[:8], copy=True)
    assert not np.allclose(same.layers["scprint_generated"][:, decoded].toarray(), generated)
    with pytest.raises(ValueError, match=r"must have shape \(16,\)"):
        Generator(metacell, target={CELL_TYPE: np.zeros(32, np.float32)}, genes=genes)(cells[:8])


def _mouse_cells(data_dir: Path) -> ad.AnnData:
    """The 40 Semrau mESC cells with the most counts, real raw counts, genes named by symbol."""
    from scprint.testing import mouse_cells

    counts, all_symbols = mouse_cells(data_dir)
    rows = np.argsort(-counts.sum(1), kind="stable")[:40]
    adata = ad.AnnData(
        X=sp.csr_matrix(counts[rows].astype(np.float32)),
        var=pd.DataFrame(index=pd.Index(all_symbols, dtype=str)),
    )
    adata.obs_names = [f"mesc_{r}" for r in rows]
    return adata


def test_mouse_cells_on_a_two_organism_checkpoint_use_the_mouse_vocabulary(
    metacell, data_dir, tmp_path
):
    """Mouse symbols need a gene table (the data folder has no mouse one): the fixture's mouse
    genes are placeholder Ensembl ids for real Semrau mESC symbols, and the user's table maps
    them, as a user's table for a published model would."""
    inputs = dict(np.load(FIXTURES / "scprint2_inputs.npz"))
    n_human = int(inputs["n_human_genes"])
    ids, symbols = inputs["genes"][n_human:], inputs["mouse_symbols"]
    adata = _mouse_cells(data_dir)
    table = pd.DataFrame({"ensembl_id": ids, "symbol": symbols})
    table.to_csv(tmp_path / "mouse_genes.csv", index=False)
    matching = {"organism": "mouse", "gene_table": tmp_path / "mouse_genes.csv"}
    out = Embedder(metacell, gene_matching=matching, max_len=64)(adata, copy=True)
    match = out.uns["X_scprint"]["gene_match"]
    assert match["organism"] == "NCBITaxon:10090"
    assert match["n_known"] == len(ids) and match["n_matched_by_symbol"] == len(ids)
    assert np.isfinite(out.obsm["X_scprint"]).all()

    from scprint.tasks._batches import iter_model_batches
    from scprint.tasks._input import prepare

    data = prepare(adata, metacell, **matching)
    batch = next(
        iter(
            iter_model_batches(
                adata,
                metacell,
                data.match,
                genes=None,
                max_len=64,
                batch_size=4,
                description="test",
            )
        )
    )
    real = batch["gene_ids"][batch["gene_ids"] >= 0]
    assert (real >= n_human).all()  # only the mouse block of the vocabulary

    # without the table no mouse symbol is known: a clear error naming the counts
    with pytest.raises(ValueError, match=r"only 0 of the AnnData's \d+ genes are known"):
        Embedder(metacell, gene_matching={"organism": "mouse"})(adata)
    # an organism the checkpoint does not hold is refused
    with pytest.raises(ValueError, match=r"organism .NCBITaxon:7955.; expected one of"):
        Embedder(metacell, gene_matching={"organism": "NCBITaxon:7955"})(adata)


def test_cli_runs_every_task_on_a_scprint2_checkpoint(metacell, cells, tmp_path):
    from scprint.cli import main

    adata_path = tmp_path / "cells.h5ad"
    cells.write_h5ad(adata_path)
    common = ["--ckpt", str(PUBLISHED_LAYOUT), "--adata", str(adata_path), "--device", "cpu"]
    assert main(["embed", *common, "--out", str(tmp_path / "emb.h5ad"), "--max-len", "64"]) == 0
    assert ad.read_h5ad(tmp_path / "emb.h5ad").obsm["X_scprint"].shape == (cells.n_obs, 28)
    denoise = ["denoise", *common, "--out", str(tmp_path / "den.h5ad"), "--n-genes", "30"]
    assert main([*denoise, "--genes", "hvg"]) == 0
    assert ad.read_h5ad(tmp_path / "den.h5ad").var["scprint_denoised"].sum() == 30
    assert main(["gninfer", *common, "--out", str(tmp_path / "net.zarr"), "--n-genes", "20"]) == 0
    import grnndata

    assert grnndata.read_zarr(tmp_path / "net.zarr").grn.shape == (20, 20)
    generate = ["generate", *common, "--out", str(tmp_path / "gen.h5ad")]
    generate += [
        "--target",
        f"{CELL_TYPE}=CL:0000236",
        "--genes",
        ",".join(metacell.vocab.genes[:10]),
    ]
    assert main(generate) == 0
    assert ad.read_h5ad(tmp_path / "gen.h5ad").var["scprint_generated"].sum() == 10
    # the original scprint2 CLI's spellings: --ckpt_path, --species, --output_filename PREFIX
    original = ["embed", "--adata", str(adata_path), "--ckpt_path", str(PUBLISHED_LAYOUT)]
    original += ["--species", "NCBITaxon:9606", "--device", "cpu"]
    original += ["--output_filename", str(tmp_path / "run"), "--keep_all_labels_pred", "true"]
    assert main([*original, "--pred_embedding", "other", CELL_TYPE]) == 0
    embedded = ad.read_h5ad(tmp_path / "run_embedded.h5ad")
    # "other" is the base token (16, no compressor), then the cell type's code (8)
    assert embedded.obsm["X_scprint"].shape == (cells.n_obs, 16 + 8)
    assert f"scprint_{CELL_TYPE}_probs" in embedded.obsm


def test_fine_tuning_a_scprint2_checkpoint_keeps_its_weights_and_grows_new_labels(
    kang_adata, tmp_path, quiet_trainer
):
    """``scprint fit --model.init_from <scPRINT-2 ckpt>``: new labels get new outputs, a new
    label class a class token, a compressor and a classifier; the result is our checkpoint of a
    scPRINT-2 network, which loads and runs every task as before."""
    from scprint.data import CellSource, build_label_encoders
    from scprint.model import ModelConfig, ScPrint2
    from scprint.training import fit, load
    from scprint.training.finetune import fine_tuned_network

    original = load(PUBLISHED_LAYOUT, device="cpu")
    labels = build_label_encoders(
        [CellSource(kang_adata)], [CELL_TYPE, "donor_id"], start_from=original.labels
    )
    network = fine_tuned_network(
        str(PUBLISHED_LAYOUT), ModelConfig(max_len=64), original.vocab, labels
    )
    assert isinstance(network, ScPrint2) and network.config.max_len == 64
    state, trained = network.state_dict(), original.model.state_dict()
    for key, tensor in trained.items():
        assert torch.equal(state[key][: len(tensor)] if tensor.dim() else state[key], tensor), key
    n_donors = kang_adata.obs["donor_id"].nunique()
    assert state["cls_decoders.donor_id.out_layer.bias"].shape == (n_donors,)
    assert network.config.compress_class_dim["donor_id"] == 8  # a VAE, like the widest class
    assert len(state["class_encoder.embedding.weight"]) == original.model.n_cell_tokens + 1

    path = fit(
        "finetune",
        model={"init_from": str(PUBLISHED_LAYOUT), "config": {"max_len": 64}},
        data={"files": [kang_adata], "labels": [CELL_TYPE], "batch_size": 8},
        trainer=quiet_trainer(tmp_path, max_steps=3, val_check_interval=3),
    )
    tuned = load(path, device="cpu")
    assert isinstance(tuned.model, ScPrint2) and tuned.config == original.config.replace(
        max_len=64, dropout=tuned.config.dropout
    )
    assert tuned.organisms == ["NCBITaxon:9606", "NCBITaxon:10090"]
    before, after = original.model.state_dict(), tuned.model.state_dict()
    assert torch.equal(
        after["gene_encoder.0.embeddings.weight"], before["gene_encoder.0.embeddings.weight"]
    )
    assert not torch.equal(
        after["cell_transformer.blocks.0.mlp.fc1.weight"],
        before["cell_transformer.blocks.0.mlp.fc1.weight"],
    )
    out = Embedder(tuned, max_len=64)(kang_adata[:12].copy(), copy=True)
    assert np.isfinite(out.obsm["X_scprint"]).all()


def test_nearest_cells_are_the_closest_other_cells_of_a_log_normalised_pca(kang_adata):
    """Each cell's neighbours: the 6 closest other cells in the top principal components of
    log1p(counts per 10,000), computed here with a dense SVD."""
    from scprint.data.neighbours import nearest_cells

    cells = kang_adata[:200]
    found = nearest_cells(cells.X)
    counts = cells.X.toarray().astype(np.float64)
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    centred = logged - logged.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    scores = u[:, :10] * s[:10]  # 200 cells: 200 // 20 components
    distances = np.linalg.norm(scores[:, None] - scores[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    np.testing.assert_allclose(found.distances, np.sort(distances, 1)[:, :6], rtol=1e-4)
    assert (found.indices != np.arange(200)[:, None]).all()
    np.testing.assert_allclose(
        np.take_along_axis(distances, found.indices, 1), found.distances, rtol=1e-4
    )
