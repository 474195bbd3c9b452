"""scPRINT-2's new tasks (imputation, gene embeddings per group) and their commands on a
scPRINT-2 fixture (a randomly initialised model made by the original code) and real cells.

These check what each task writes and that it computes what it documents from the model's own
outputs, not the quality of the predictions.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import scprint
from scprint.tasks import GeneEmbedder, Imputer, InputError, imputed_anndata

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
PUBLISHED_LAYOUT = FIXTURES / "scprint2_s2_cell_vae_metacell.ckpt"
SHARED = FIXTURES / "scprint2_s2_shared_fsq_mvc.ckpt"


@pytest.fixture(scope="module")
def metacell() -> scprint.Pretrained:
    return scprint.load(PUBLISHED_LAYOUT, device="cpu")


@pytest.fixture(scope="module")
def panel(kang_adata, metacell) -> tuple[ad.AnnData, list[str]]:
    """24 real Kang cells without the columns of 10 vocabulary genes (the genes to impute)."""
    from scprint.tasks._input import prepare

    cells = kang_adata[:24].copy()
    match = prepare(cells, metacell).match
    order = np.argsort(match.vocab_indices, kind="stable")
    dropped = match.var_indices[order[:10]]
    genes = [str(metacell.vocab.genes[i]) for i in match.vocab_indices[order[:10]]]
    keep = np.setdiff1d(np.arange(cells.n_vars), dropped)
    return cells[:, keep].copy(), genes


def test_imputer_generates_unmeasured_genes_from_the_cell_tokens(metacell, panel):
    from scprint.tasks._batches import iter_model_batches, model_inputs
    from scprint.tasks._input import prepare

    cells, genes = panel
    assert not set(genes) & set(cells.var_names)
    imputer = Imputer(metacell, genes=genes, depth_factor=4.0, batch_size=8)
    out = imputer(cells, copy=True)
    assert "scprint_imputed" not in cells.obsm  # copy=True leaves the input alone
    table = out.obsm["scprint_imputed"]
    assert isinstance(table, pd.DataFrame) and list(table.columns) == genes
    assert table.shape == (cells.n_obs, 10) and (table.index == cells.obs_names).all()
    values = table.to_numpy()
    assert values.dtype == np.float32 and np.isfinite(values).all() and (values >= 0).all()
    settings = out.uns["scprint_imputed"]
    assert settings["gene_ids"] == genes and settings["unknown_genes"] == []
    # means over the imputed genes sum to 4x each cell's counts over the genes it read
    match = prepare(cells, metacell).match
    read = np.asarray(cells.X[:, np.sort(match.var_indices)].sum(axis=1)).ravel()
    assert settings["n_input_genes"] == match.n_known
    np.testing.assert_allclose(values.sum(1), 4.0 * read, rtol=1e-4)
    # the values are the model's generation from its own output cell tokens
    model = metacell.model
    batch = next(
        iter(
            iter_model_batches(
                cells,
                metacell,
                match,
                genes=list(cells.var_names[np.sort(match.var_indices)]),
                max_len=match.n_known,
                batch_size=4,
                description="test",
            )
        )
    )
    with torch.no_grad():
        inputs = model_inputs(batch)
        inputs["depth"] = batch["depth"] * 4
        library = inputs["counts"].sum(1) * 4
        tokens = model(**inputs, target_depth=library).cell_tokens
        ids = torch.as_tensor([metacell.vocab.genes.index(g) for g in genes]).expand(4, -1)
        expected = model.decode_from_cell_tokens(tokens, ids, library, depth=inputs["depth"])
    rows = batch["cell_index"].numpy()
    np.testing.assert_allclose(values[rows], expected["mean"].numpy(), rtol=1e-5, atol=1e-6)
    # in place: None returned, the table in obsm; imputed_anndata for scanpy
    adata = cells.copy()
    assert imputer(adata) is None
    np.testing.assert_allclose(adata.obsm["scprint_imputed"].to_numpy(), values, rtol=1e-6)
    view = imputed_anndata(adata)
    assert list(view.var_names) == genes and view.n_obs == cells.n_obs
    np.testing.assert_array_equal(view.X, values)


def test_imputer_zero_inflation_and_unknown_genes(metacell, panel, caplog):
    cells, genes = panel
    plain = Imputer(metacell, genes=genes, batch_size=8)(cells, copy=True)
    zi = Imputer(metacell, genes=[*genes, "NOT_A_GENE"], zero_inflation=True, batch_size=8)(
        cells, copy=True
    )
    assert zi.uns["scprint_imputed"]["unknown_genes"] == ["NOT_A_GENE"]
    assert "NOT_A_GENE" in caplog.text
    ratio = zi.obsm["scprint_imputed"].to_numpy() / plain.obsm["scprint_imputed"].to_numpy()
    assert ((ratio > 0) & (ratio < 1)).all()  # times P(not a dropout)
    with pytest.raises(InputError, match=r"none of the 1 genes to impute is known"):
        Imputer(metacell, genes=["NOT_A_GENE"])(cells)
    with pytest.raises(InputError, match=r"non-empty list of genes"):
        Imputer(metacell, genes="CD3E")
    with pytest.raises(InputError, match=r"has no 'missing'"):
        imputed_anndata(cells, "missing")


def test_gene_embedder_averages_per_group(kang_adata):
    # a model without the metacell encoder: a cell's embedding does not depend on the other
    # cells of the AnnData (its neighbours), so a group alone gives the same matrix
    shared = scprint.load(SHARED, device="cpu")
    cells = kang_adata[:20].copy()
    groups = np.where(np.arange(20) < 8, "first", "second")
    cells.obs["part"] = groups
    embedder = GeneEmbedder(shared, genes="expressed", n_genes=12, groupby="part", batch_size=6)
    out = embedder(cells, copy=True)
    chosen = out.var["X_scprint_genes"].to_numpy()
    assert chosen.sum() == 12
    overall = out.varm["X_scprint_genes"]
    assert np.isnan(overall[~chosen]).all() and np.isfinite(overall[chosen]).all()
    first, second = out.varm["X_scprint_genes_first"], out.varm["X_scprint_genes_second"]
    np.testing.assert_allclose(
        overall[chosen], (8 * first[chosen] + 12 * second[chosen]) / 20, rtol=1e-5, atol=1e-6
    )
    assert out.uns["X_scprint_genes"]["groups"]["first"]["n_cells"] == 8
    # a group's matrix is the plain mean over its cells of the model's output gene embeddings
    alone = GeneEmbedder(shared, genes=list(cells.var_names[chosen]), batch_size=6)(
        cells[:8].copy(), copy=True
    )
    np.testing.assert_allclose(
        alone.varm["X_scprint_genes"][chosen], first[chosen], rtol=1e-4, atol=1e-5
    )
    assert not np.allclose(first[chosen], second[chosen])
    with pytest.raises(InputError, match=r"obs has no column 'nope'"):
        GeneEmbedder(shared, groupby="nope")(cells)
    with pytest.raises(InputError, match=r"genes must be one of"):
        GeneEmbedder(shared, genes="most")


def test_impute_and_gene_emb_commands(metacell, panel, tmp_path):
    from scprint.cli import main

    cells, genes = panel
    adata_path = tmp_path / "panel.h5ad"
    cells.obs["part"] = np.where(np.arange(cells.n_obs) < 10, "a", "b")
    cells.write_h5ad(adata_path)
    common = ["--ckpt", str(PUBLISHED_LAYOUT), "--adata", str(adata_path), "--device", "cpu"]
    out = tmp_path / "imputed.h5ad"
    assert main(["impute", *common, "--out", str(out), "--genes", ",".join(genes)]) == 0
    imputed = ad.read_h5ad(out)
    assert list(imputed.obsm["scprint_imputed"].columns) == genes
    # the original's spellings: --genes_to_impute, --predict_depth_mult, --output_filename
    gene_file = tmp_path / "genes.txt"
    gene_file.write_text("\n".join(genes[:3]) + "\n")
    original = ["impute", *common, "--genes_to_impute", f"@{gene_file}"]
    original += ["--predict_depth_mult", "2", "--output_filename", str(tmp_path / "run")]
    assert main(original) == 0
    run = ad.read_h5ad(tmp_path / "run_imputed.h5ad")
    assert list(run.obsm["scprint_imputed"].columns) == genes[:3]
    assert run.uns["scprint_imputed"]["depth_factor"] == 2.0
    assert main(["impute", *common, "--out", str(tmp_path / "x.h5ad")]) == 2  # no --genes
    emb = tmp_path / "genes.h5ad"
    args = ["--out", str(emb), "--genes", "hvg", "--n-genes", "10", "--groupby", "part"]
    assert main(["gene-emb", *common, *args]) == 0
    written = ad.read_h5ad(emb)
    assert {"X_scprint_genes", "X_scprint_genes_a", "X_scprint_genes_b"} <= set(written.varm)
    assert (
        main(["gene_emb", *common, "--output_filename", str(tmp_path / "g"), "--n-genes", "8"]) == 0
    )
    assert (tmp_path / "g_gene_emb.h5ad").exists()
