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
from scprint.tasks import Embedder, GeneEmbedder, Imputer, InputError, imputed_anndata

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
    imputer = Imputer(metacell, genes_to_impute=genes, depth_factor=4.0, batch_size=8)
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
    plain = Imputer(metacell, genes_to_impute=genes, batch_size=8)(cells, copy=True)
    zi = Imputer(
        metacell, genes_to_impute=[*genes, "NOT_A_GENE"], zero_inflation=True, batch_size=8
    )(cells, copy=True)
    assert zi.uns["scprint_imputed"]["unknown_genes"] == ["NOT_A_GENE"]
    assert "NOT_A_GENE" in caplog.text
    ratio = zi.obsm["scprint_imputed"].to_numpy() / plain.obsm["scprint_imputed"].to_numpy()
    assert ((ratio > 0) & (ratio < 1)).all()  # times P(not a dropout)
    with pytest.raises(InputError, match=r"none of the 1 genes to impute is known"):
        Imputer(metacell, genes_to_impute=["NOT_A_GENE"])(cells)
    with pytest.raises(InputError, match=r"genes_to_impute must be a non-empty list"):
        Imputer(metacell, genes_to_impute="CD3E")
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
    args = ["--out", str(out), "--genes-to-impute", ",".join(genes)]
    assert main(["impute", *common, *args]) == 0
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
    assert main(["impute", *common, "--out", str(tmp_path / "x.h5ad")]) == 2  # no genes
    # the input genes chosen as for the other tasks: the 30 most variable known genes
    args = ["--out", str(tmp_path / "hvg.h5ad"), "--genes-to-impute", ",".join(genes)]
    assert main(["impute", *common, *args, "--input-genes", "hvg", "--n-genes", "30"]) == 0
    settings = ad.read_h5ad(tmp_path / "hvg.h5ad").uns["scprint_imputed"]
    assert settings["n_input_genes"] == 30 and settings["input_genes"] == "hvg"
    emb = tmp_path / "genes.h5ad"
    args = ["--out", str(emb), "--genes", "hvg", "--n-genes", "10", "--groupby", "part"]
    assert main(["gene-emb", *common, *args]) == 0
    written = ad.read_h5ad(emb)
    assert {"X_scprint_genes", "X_scprint_genes_a", "X_scprint_genes_b"} <= set(written.varm)
    assert (
        main(["gene_emb", *common, "--output_filename", str(tmp_path / "g"), "--n-genes", "8"]) == 0
    )
    assert (tmp_path / "g_gene_emb.h5ad").exists()
    counterfactual = tmp_path / "counterfactual.h5ad"
    from scprint.tasks._input import prepare

    known = list(cells.var_names[np.sort(prepare(cells, metacell).match.var_indices)])
    args = ["--out", str(counterfactual), "--space", "code", "--genes", ",".join(known[:5])]
    args += ["--target", "cell_type_ontology_term_id=CL:0000236"]  # B cells' mean code
    args += ["--input-genes", ",".join(known[:30])]
    assert main(["generate", *common, *args]) == 0
    generated = ad.read_h5ad(counterfactual).uns["scprint_generated"]
    assert (
        generated["space"] == "code"
        and len(generated["target_codes"]["cell_type_ontology_term_id"]) == 8
    )
    refined = tmp_path / "refined.h5ad"
    args = ["--out", str(refined), "--max-len", "64", "--refine", "--refine-lambda", "0.5"]
    assert main(["embed", *common, *args]) == 0
    record = ad.read_h5ad(refined).uns["X_scprint"]["refine"]
    assert record["lambda"] == 0.5 and record["graph"].startswith("UMAP connectivities")


def test_refined_logits_solve_the_regularised_least_squares():
    """Synthetic logits and graph (a math unit test): the refinement is (I + lambda L)^-1 P0 with
    L the Laplacian of the symmetrised graph, and the adjacency in place of L when asked."""
    import scipy.sparse as sp

    from scprint.tasks.refine import refine_logits

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 4))
    graph = sp.random(30, 30, density=0.2, random_state=1, format="csr")
    dense = graph.toarray()
    sym = (dense + dense.T) / 2
    laplacian = np.diag(sym.sum(1)) - sym
    expected = np.linalg.solve(np.eye(30) + 0.5 * laplacian, logits)
    np.testing.assert_allclose(refine_logits(logits, graph, 0.5), expected, rtol=1e-10)
    adjacency = np.linalg.solve(np.eye(30) + 0.5 * sym, logits)
    np.testing.assert_allclose(
        refine_logits(logits, graph, 0.5, use_laplacian=False), adjacency, rtol=1e-10
    )
    with pytest.raises(InputError, match=r"the cell graph is \(30, 30\) but there are 10 cells"):
        refine_logits(logits[:10], graph)


def test_umap_connectivities_give_each_cell_a_nearest_neighbour_of_weight_one(kang_adata):
    from scprint.tasks.refine import cell_graph

    cells = kang_adata[:60].copy()
    graph, source = cell_graph(cells, n_neighbors=15)
    assert source.startswith("UMAP connectivities of the 15 nearest cells")
    dense = graph.toarray()
    np.testing.assert_allclose(dense, dense.T)
    assert (np.diag(dense) == 0).all() and (dense <= 1 + 1e-12).all()
    assert np.allclose(dense.max(axis=1), 1.0)  # the nearest other cell: membership exp(0)
    assert ((dense > 0).sum(axis=1) >= 14).all()
    cells.obsp["connectivities"] = graph * 2
    again, source = cell_graph(cells)
    assert source == "obsp['connectivities']" and np.allclose(again.toarray(), 2 * dense)


def test_embedder_refines_labels_over_the_cell_graph(metacell, kang_adata):
    import scipy.sparse as sp

    from scprint.tasks._batches import iter_model_batches, model_inputs
    from scprint.tasks._input import prepare
    from scprint.tasks.refine import refine_logits

    cells = kang_adata[:24].copy()
    cell_type = "cell_type_ontology_term_id"
    name = f"scprint_{cell_type}"
    plain = Embedder(metacell, max_len=64)(cells, copy=True)
    # no edges: nothing to smooth, the labels stay
    cells.obsp["connectivities"] = sp.csr_matrix((24, 24))
    same = Embedder(metacell, max_len=64, refine=True)(cells, copy=True)
    assert (same.obs[name] == plain.obs[name]).all()
    assert (same.obs[f"{name}_unrefined"] == plain.obs[name]).all()
    # a graph: the probabilities are the softmax of the model's logits refined over it
    graph = sp.random(24, 24, density=0.3, random_state=0, format="csr")
    cells.obsp["connectivities"] = graph
    out = Embedder(metacell, max_len=64, refine=[cell_type], refine_lambda=2.0, probabilities=True)(
        cells, copy=True
    )
    logits = np.zeros((24, len(metacell.labels[cell_type].classes)))
    match = prepare(cells, metacell).match
    with torch.no_grad():
        for batch in iter_model_batches(
            cells, metacell, match, genes=None, max_len=64, batch_size=32, description="test"
        ):
            logits[batch["cell_index"].numpy()] = (
                metacell.model(**model_inputs(batch)).logits[cell_type].numpy()
            )
    refined = refine_logits(logits, graph, 2.0)
    expected = np.exp(refined - refined.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = out.obsm[f"{name}_probs"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    unrefined = np.exp(logits - logits.max(1, keepdims=True))
    change = np.abs(got - unrefined / unrefined.sum(1, keepdims=True)).max()
    assert change > 1e-4  # the random model's logits barely vary: a small but real smoothing
    record = out.uns["X_scprint"]["refine"]
    assert record["graph"] == "obsp['connectivities']" and record["lambda"] == 2.0
    assert "scprint_sex_ontology_term_id_unrefined" not in out.obs
    with pytest.raises(InputError, match=r"refine must be True, False or a list"):
        Embedder(metacell, refine=["nope"])


@pytest.fixture(scope="module")
def task_rows() -> list[dict]:
    """Our tasks against the original's fixtures, compared by :mod:`scprint.testing.parity_tasks`
    (the benchmark's comparison too)."""
    from scprint.testing.parity_tasks import compare

    return compare(FIXTURES)


@pytest.mark.parametrize("name", ["s2_cell_vae_metacell", "s2_shared_fsq_mvc", "s2_gqa_vae_grown"])
def test_new_tasks_equal_the_originals(name, task_rows):
    """Imputation, gene embeddings, GRIT and the code counterfactual of the original scprint2
    1.0.3 on the same cells (fixtures it made, ``bench_scprint2_tasks.py --peers``) within 1e-4."""
    rows = [row for row in task_rows if row["config"] == name]
    outputs = {row["output"] for row in rows}
    assert {"imputation (fractions)", "gene embeddings, per cell"} <= outputs
    assert {
        "GRIT on its cell-type logits, lambda=1",
        "GRIT on log1p counts of 6 genes, lambda=1",
    } <= outputs
    assert {"counterfactual code", "counterfactual generation (fractions)"} <= outputs
    for row in rows:
        assert row["ok"] and float(row["max_abs_diff"]) <= 1e-4, row


def test_generator_swaps_a_class_code_decoded_by_its_compressor(metacell, kang_adata):
    from scprint.tasks import Generator

    cells = kang_adata[:12].copy()
    cell_type = "cell_type_ontology_term_id"
    genes = list(metacell.vocab.genes[:20])
    code = np.linspace(-1, 1, 8).astype(np.float32)  # the cell type's VAE latent (8)
    by_code = Generator(metacell, target={cell_type: code}, genes=genes, space="code")(
        cells, copy=True
    )
    assert by_code.uns["scprint_generated"]["target_codes"][cell_type] == pytest.approx(code)
    token = metacell.model.tokens_from_codes({cell_type: torch.as_tensor(code)[None]})[cell_type]
    by_token = Generator(metacell, target={cell_type: token[0].detach().numpy()}, genes=genes)(
        cells, copy=True
    )
    np.testing.assert_allclose(
        by_code.layers["scprint_generated"].toarray(),
        by_token.layers["scprint_generated"].toarray(),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match=r"target code of .* must have shape \(8,\)"):
        Generator(metacell, target={cell_type: np.zeros(16)}, genes=genes, space="code")(cells)
    with pytest.raises(InputError, match=r"'base' has no compressor"):
        Generator(metacell, target={"base": np.zeros(16)}, genes=genes, space="code")(cells)
    with pytest.raises(InputError, match=r"space must be one of"):
        Generator(metacell, target={cell_type: code}, space="latent")


def test_imputer_and_gene_embedder_run_on_a_scprint1_checkpoint(kang_adata):
    """The first generation generates from its cell tokens too (the original scPRINT 2.3.8's
    ``v2_gqa_log`` fixture): imputation sums to 4x the read counts, gene embeddings are finite."""
    from scprint.tasks._input import prepare

    first = scprint.load(FIXTURES / "v2_gqa_log.ckpt", device="cpu")
    cells = kang_adata[:16].copy()
    match = prepare(cells, first).match
    order = np.argsort(match.vocab_indices, kind="stable")[:5]
    genes = [str(first.vocab.genes[i]) for i in match.vocab_indices[order]]
    panel = cells[:, np.setdiff1d(np.arange(cells.n_vars), match.var_indices[order])].copy()
    out = Imputer(first, genes_to_impute=genes)(panel, copy=True)
    read_match = prepare(panel, first).match
    read = np.asarray(panel.X[:, read_match.var_indices].sum(axis=1)).ravel()
    np.testing.assert_allclose(out.obsm["scprint_imputed"].sum(1), 4 * read, rtol=1e-4)
    embedded = GeneEmbedder(first, genes="hvg", n_genes=10)(panel, copy=True)
    chosen = embedded.var["X_scprint_genes"].to_numpy()
    assert chosen.sum() == 10 and np.isfinite(embedded.varm["X_scprint_genes"][chosen]).all()
