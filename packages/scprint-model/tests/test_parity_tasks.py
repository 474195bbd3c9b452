"""The user-facing tasks accept an original scPRINT checkpoint (the parity fixtures) on real cells.

The fixture models are randomly initialised originals (``tests/fixtures/parity``): these tests
check that every task runs on an original checkpoint and writes what it documents, with the
checkpoint's own label decoders mapped to Cell Ontology names; not the quality of predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import scprint
from scprint.tasks import Denoiser, Embedder, Generator

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


@pytest.fixture(scope="module")
def original() -> scprint.training.Pretrained:
    return scprint.load(FIXTURES / "v2_pos_fsq.ckpt", device="cpu")


@pytest.fixture(scope="module")
def cells(kang_adata):
    return kang_adata[:24].copy()


def test_embedder_on_an_original_checkpoint_predicts_cell_ontology_names(original, cells):
    adata = Embedder(original, probabilities=True)(cells, copy=True)
    d_model = original.config.d_model
    assert adata.obsm["X_scprint"].shape == (cells.n_obs, d_model)
    assert np.isfinite(adata.obsm["X_scprint"]).all()
    names = set(adata.obs["scprint_cell_type_ontology_term_id"].cat.categories)
    assert {"B cell", "natural killer cell", "CD14-positive monocyte"} <= names
    assert set(adata.obs["scprint_sex_ontology_term_id"].cat.categories) == {"female", "male"}
    probs = adata.obsm["scprint_cell_type_ontology_term_id_probs"].to_numpy()
    assert probs.shape == (cells.n_obs, 6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # the embedding is the mean of the class tokens, as the original's Embedder writes it
    tokens = [adata.obsm[f"X_scprint_{n}"] for n in original.model.label_classes]
    np.testing.assert_allclose(adata.obsm["X_scprint"], np.mean(tokens, axis=0), atol=1e-5)


def test_denoiser_on_an_original_checkpoint_scales_means_to_the_requested_depth(original, cells):
    out = Denoiser(original, genes="hvg", n_genes=40, depth_factor=2.0)(cells, copy=True)
    layer = out.layers["scprint_denoised"].toarray()
    chosen = out.var["scprint_denoised"].to_numpy()
    assert chosen.sum() == 40 and np.all(layer[:, ~chosen] == 0)
    assert (layer >= 0).all() and np.isfinite(layer).all()
    observed = np.asarray(cells.X[:, chosen].sum(axis=1)).ravel()
    # one context of 40 genes: the means sum to twice the cell's counts over them
    np.testing.assert_allclose(layer[:, chosen].sum(1), 2.0 * observed, rtol=1e-4)


def test_generator_on_an_original_checkpoint_swaps_a_class_token(original, cells):
    genes = original.vocab.genes[:50]  # all are Kang genes
    token = np.zeros(original.config.d_model, dtype=np.float32)
    target = {"cell_type_ontology_term_id": token}
    out = Generator(original, target=target, genes=genes)(cells[:6], copy=True)
    decoded = out.var["scprint_generated"].to_numpy()
    assert set(out.var_names[decoded]) == set(genes)  # in the columns of the AnnData
    generated = out.layers["scprint_generated"][:, decoded].toarray()
    assert generated.shape == (6, 50) and generated.dtype == np.float32 and (generated >= 0).all()
    with torch.no_grad():
        again = Generator(original, target=target, genes=genes)(cells[:6], copy=True)
    np.testing.assert_allclose(
        generated, again.layers["scprint_generated"][:, decoded].toarray(), rtol=1e-5
    )


def test_gninfer_on_a_v2_cell_transformer_checkpoint_reads_gene_attention(cells):
    """With cell_specific_blocks the gene transformer's queries/keys hold genes only."""
    from scprint.tasks import GNInfer

    original = scprint.load(FIXTURES / "v2_cell_blocks.ckpt", device="cpu")
    grn = GNInfer(original, n_genes=30, n_cells=12).network(cells)
    matrix = grn.varp["GRN"]
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    assert matrix.shape == (30, 30) and np.isfinite(matrix).all()
    assert set(grn.var_names) <= set(original.vocab.genes)
