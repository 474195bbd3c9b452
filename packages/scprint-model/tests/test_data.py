"""Vocabulary, labels, gene sampling and input checks on the real PBMC data."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scprint.data import (
    CellSource,
    LabelEncoder,
    Vocabulary,
    build_label_encoders,
    make_inference_batches,
    sample_context,
)
from scprint.data.vocabulary import gene_table, position_bins
from scprint.errors import InputError
from scprint.training import CellDataModule


@pytest.fixture(scope="module")
def kang_vocab(kang_adata: ad.AnnData) -> Vocabulary:
    return Vocabulary.build([kang_adata])


def test_vocabulary_matches_ensembl_ids_and_symbols(kang_adata, kang_vocab, data_dir) -> None:
    var_index, vocab_index = kang_vocab.match(kang_adata)
    assert len(var_index) == kang_adata.n_vars == len(kang_vocab)
    assert kang_vocab.genes[vocab_index[0]] == kang_adata.var_names[var_index[0]]
    pbmc3k = ad.read_h5ad(data_dir / "scrna/pbmc3k_2k_hvg.h5ad", backed="r")
    var_index, vocab_index = kang_vocab.match(pbmc3k, min_overlap=50)
    assert len(var_index) > 100
    symbols = pbmc3k.var["gene_symbol"].to_numpy()[var_index]
    assert np.mean([kang_vocab.symbols[v] == s for v, s in zip(vocab_index, symbols)]) > 0.9


def test_vocabulary_without_overlap_raises(kang_vocab) -> None:
    other = ad.AnnData(
        sp.csr_matrix(np.ones((3, 150), dtype=np.int32)),
        var=pd.DataFrame(index=[f"NOTAGENE{i}" for i in range(150)]),
    )
    with pytest.raises(ValueError, match="only 0 of 150 genes match the model vocabulary"):
        kang_vocab.match(other)


def test_vocabulary_positions_from_biomart_and_round_trip(kang_adata, data_dir) -> None:
    vocab = Vocabulary.build(
        [kang_adata], gene_positions=data_dir / "gene_meta/human_biomart_gene_positions.parquet"
    )
    assert vocab.positions is not None and (vocab.positions >= 0).mean() > 0.9
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.genes == vocab.genes and np.array_equal(again.positions, vocab.positions)


def test_position_bins_open_on_chromosome_change_or_gap() -> None:
    # synthetic coordinates
    chromosome = np.array(["1", "1", "1", "2", None, "1"], dtype=object)
    start = np.array([100.0, 5_000.0, 30_000.0, 5_100.0, 7.0, 31_000.0])
    bins = position_bins(chromosome, start)
    assert bins[0] == bins[1] != bins[2]
    assert bins[2] == bins[5]
    assert bins[3] not in (bins[0], bins[2])
    assert bins[4] == -1


def test_unknown_organism_raises(kang_adata) -> None:
    with pytest.raises(InputError, match="unknown organism 'NCBITaxon:9999'"):
        Vocabulary.build([kang_adata], organism="NCBITaxon:9999")
    mouse = kang_adata[:5].copy()
    mouse.obs["organism_ontology_term_id"] = "NCBITaxon:10090"
    source = CellSource(mouse)
    with pytest.raises(InputError, match=r"unsupported organism: .*\['NCBITaxon:10090'\]"):
        source.bind(Vocabulary.build([kang_adata]))


def test_non_integer_counts_raise(kang_adata, data_dir) -> None:
    logged = kang_adata[:20].copy()
    logged.X = np.log1p(logged.X)
    with pytest.raises(ValueError, match="X must hold raw integer counts, found 0.69"):
        CellSource(logged)
    with pytest.raises(ValueError, match="raw integer counts"):
        CellSource(data_dir / "scrna/pbmc68k_reduced.h5ad")


def test_empty_cells_raise(kang_adata) -> None:
    empty = kang_adata[:10].copy()
    x = empty.X.toarray()
    x[3] = 0
    empty.X = sp.csr_matrix(x)
    with pytest.raises(ValueError, match="1 cells have no counts, e.g. \\['" + empty.obs_names[3]):
        CellSource(empty)


def test_backed_and_in_memory_reads_agree(kang_path, kang_vocab) -> None:
    lazy, loaded = CellSource(kang_path, in_memory=False), CellSource(kang_path, in_memory=True)
    lazy.bind(kang_vocab)
    loaded.bind(kang_vocab)
    rows = np.array([7, 3, 8000, 3])
    assert (lazy.rows(rows) != loaded.rows(rows)).nnz == 0
    np.testing.assert_array_equal(lazy.depth, loaded.depth)


def test_zarr_store_reads_lazily_like_h5ad(kang_adata, kang_vocab, tmp_path) -> None:
    store = tmp_path / "kang.zarr"
    kang_adata[:60].copy().write_zarr(store)
    lazy = CellSource(store, in_memory=False)
    lazy.bind(kang_vocab)
    memory = CellSource(kang_adata[:60].copy())
    memory.bind(kang_vocab)
    rows = np.array([59, 0, 17])
    assert (lazy.rows(rows) != memory.rows(rows)).nnz == 0
    assert list(lazy.meta.obs["cell_type"][:3]) == list(kang_adata.obs["cell_type"][:3])


def test_weighted_gene_sampling_prefers_highly_expressed_genes() -> None:
    # synthetic: one gene with 1,000 counts among 99 genes with 1 count
    counts = np.ones((200, 100), dtype=np.float32)
    counts[:, 0] = 1000.0
    rng = np.random.default_rng(0)
    weighted, _ = sample_context(counts, np.arange(100), 10, rng, method="weighted")
    uniform, _ = sample_context(counts, np.arange(100), 10, rng, method="random")
    assert (weighted == 0).any(axis=1).mean() > 0.95
    assert 0.03 < (uniform == 0).any(axis=1).mean() < 0.25
    with pytest.raises(ValueError, match="gene sampling method must be one of"):
        sample_context(counts, np.arange(100), 10, rng, method="top")


def test_inference_batches_sample_expressed_genes_first(kang_adata, kang_vocab) -> None:
    batches = list(make_inference_batches(kang_adata, kang_vocab, max_len=64, batch_size=128))
    assert [len(b["cell_index"]) for b in batches] == [128, 128, 128, 16]
    first = batches[0]
    x = kang_adata.X[:128].toarray()
    n_expressed = (x > 0).sum(1)
    assert np.array_equal((first["counts"] > 0).sum(1).numpy(), np.minimum(n_expressed, 64))
    column = {g: j for j, g in enumerate(kang_adata.var_names)}
    cell, slot = 5, 10
    gene = kang_vocab.genes[int(first["gene_ids"][cell, slot])]
    assert first["counts"][cell, slot].item() == x[cell, column[gene]]
    np.testing.assert_allclose(first["depth"].numpy(), x.sum(1))


def test_inference_batches_with_fixed_genes(kang_adata, kang_vocab) -> None:
    genes = ["ISG15", "ENSG00000160087", "CD74"]
    batch = next(make_inference_batches(kang_adata, kang_vocab, genes=genes, batch_size=50))
    assert batch["gene_ids"].shape == (50, 3)
    assert (batch["gene_ids"] == batch["gene_ids"][0]).all()
    cd74 = kang_adata.var_names[kang_adata.var["gene_symbol"] == "CD74"][0]
    np.testing.assert_array_equal(
        batch["counts"][:, 2].numpy(), kang_adata[:50, cd74].X.toarray().ravel()
    )
    with pytest.raises(ValueError, match="not in the model vocabulary, e.g. \\['NOTAGENE'\\]"):
        next(make_inference_batches(kang_adata, kang_vocab, genes=["NOTAGENE"]))


def test_cell_ontology_hierarchy_makes_t_cell_a_coarse_label(kang_adata, data_dir) -> None:
    pbmc3k = CellSource(data_dir / "scrna/pbmc3k_2k_hvg.h5ad")
    encoders = build_label_encoders(
        [CellSource(kang_adata), pbmc3k], ["cell_type"], coarse_requested=["CL:0000084"]
    )
    cell_type = encoders["cell_type"]
    assert (
        "CL:0000624" in cell_type.coarse
    )  # CD4 T (Kang) is an ancestor of pbmc3k's naive/memory CD4 T
    assert "CL:0000895" in cell_type.classes
    t_cells = {cell_type.classes[i] for i in cell_type.descendant_leaves("T cell")}
    assert {"CL:0000895", "CL:0000897", "CL:0000625"} <= t_cells
    assert "CL:0000236" not in t_cells
    codes = cell_type.encode(["CD4 T cells", "B", "unknown", None, "T cell", "never seen"])
    assert codes[0] == len(cell_type.classes) + cell_type.coarse.index("CL:0000624")
    assert cell_type.decode(codes[1]) == "CL:0000236"
    assert list(codes[2:4]) == [-1, -1] and codes[5] == -1
    matrix = cell_type.descendant_matrix()
    assert matrix[codes[4]].sum() == len(t_cells)
    again = LabelEncoder.from_dict(cell_type.to_dict())
    assert again.descendant_leaves("CL:0000084") == cell_type.descendant_leaves("CL:0000084")


def test_labels_without_ontology_ids_are_flat(kang_adata, caplog) -> None:
    source = CellSource(kang_adata)
    encoders = build_label_encoders([source], ["donor_id"])
    assert len(encoders["donor_id"].classes) == kang_adata.obs["donor_id"].nunique()
    assert encoders["donor_id"].coarse == []
    assert "flat label set" in caplog.text


def test_terms_of_unshipped_ontologies_fall_back_to_flat_labels(caplog) -> None:
    encoder = LabelEncoder.build("cell_type", ["FOO:0000001", "CL:0000236", "CL:0000624"])
    assert encoder.classes == ["CL:0000236", "CL:0000624", "FOO:0000001"]
    assert (
        encoder.ancestors["FOO:0000001"] == [] and "CL:0000084" in encoder.ancestors["CL:0000624"]
    )
    assert "no ontology hierarchy for 'FOO:0000001'" in caplog.text


def test_missing_label_column_raises(kang_adata) -> None:
    with pytest.raises(ValueError, match="label column 'disease' is in none of the datasets"):
        build_label_encoders([CellSource(kang_adata)], ["disease"])


def test_batches_are_a_function_of_seed_rank_and_step(kang_adata, kang_vocab) -> None:
    module = CellDataModule(
        [kang_adata], batch_size=8, max_len=32, thinning=(0.5, 0.5), val_fraction=0.1, seed=3
    )
    assert module.vocab.genes == kang_vocab.genes
    stream = iter(module.train_dataloader().dataset)
    first, second = next(stream), next(stream)
    assert not np.array_equal(first["gene_ids"], second["gene_ids"])
    again = next(
        iter(
            type(module.train_dataloader().dataset)(
                module.train_cells, module.weights, 3, start_step=1
            )
        )
    )
    np.testing.assert_array_equal(again["gene_ids"], second["gene_ids"])
    other_rank = next(
        iter(type(module.train_dataloader().dataset)(module.train_cells, module.weights, 3, rank=1))
    )
    assert not np.array_equal(other_rank["gene_ids"], first["gene_ids"])
    assert (first["thinned_counts"] <= first["counts"]).all()
    assert 0.3 < first["thinned_counts"].sum() / first["counts"].sum() < 0.7
    assert len(module.val_cells) + len(module.train_cells) == kang_adata.n_obs


def test_label_balanced_sampling_favours_rare_labels(kang_adata, kang_vocab) -> None:
    module = CellDataModule(
        [kang_adata], batch_size=8, max_len=32, balance_weight=1.0, val_fraction=0.0
    )
    codes = module.labels["cell_type"].encode(kang_adata.obs["cell_type_ontology_term_id"])
    per_label = {c: module.weights[codes == c].sum() for c in np.unique(codes)}
    shares = np.array(list(per_label.values()))
    counts = np.array([(codes == c).sum() for c in per_label])
    assert shares.max() / shares.min() < 0.5 * counts.max() / counts.min()
    uniform = CellDataModule([kang_adata], batch_size=8, balance_weight=None, val_fraction=0.0)
    np.testing.assert_allclose(uniform.weights, 1.0 / kang_adata.n_obs)


def test_held_out_dataset_goes_to_validation(kang_adata, kang_vocab) -> None:
    first, second = CellSource(kang_adata[:200].copy()), CellSource(kang_adata[200:].copy())
    module = CellDataModule([first, second], batch_size=8, val_fraction=0.0, val_datasets=[1])
    assert set(module.train_cells.source_id) == {0} and set(module.val_cells.source_id) == {1}
    with pytest.raises(ValueError, match="holds out every dataset"):
        CellDataModule([first, second], val_datasets=[0, 1])


def test_gene_table_strips_versions_of_ensembl_ids_only():
    # a vocabulary built from symbol-named data holds entries such as "AF213884.2"; the view a
    # task hands to the data layer names its columns by those entries, which must match back
    names = [f"ENSG{i:011d}.{i % 3 + 1}" for i in range(9)] + ["AF213884.2"]
    adata = ad.AnnData(X=sp.csr_matrix((1, len(names)), dtype=np.float32))
    adata.var_names = names
    ids = gene_table(adata)["ensembl_id"].tolist()
    assert ids[:9] == [f"ENSG{i:011d}" for i in range(9)]
    assert ids[9] == "AF213884.2"


def test_files_beyond_the_in_memory_budget_stay_on_disk(
    kang_adata, kang_vocab, tmp_path, monkeypatch
) -> None:
    import gc

    from scprint.data import source as source_module
    from scprint.data.streams import BlockStream, TrainingStream, training_stream

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"part{i}.h5ad")
        kang_adata[i * 100 : (i + 1) * 100].copy().write_h5ad(paths[-1])
    largest = max(kang_adata[i * 100 : (i + 1) * 100].X.nnz for i in range(3))
    budget = source_module._loaded["values"] + int(1.5 * largest)
    monkeypatch.setattr(source_module, "IN_MEMORY_MAX_VALUES", budget)
    sources = [CellSource(path) for path in paths]
    assert [s.in_memory for s in sources] == [True, False, False]
    module = CellDataModule(sources, batch_size=8)
    stream = training_stream(module.train_cells, module.weights, seed=0)
    assert isinstance(stream, BlockStream)
    batch = next(iter(stream))
    assert batch["gene_ids"].shape == (8, 512) and (batch["depth"] > 0).all()
    memory = CellDataModule([CellSource(kang_adata, in_memory=True)])
    assert isinstance(training_stream(memory.train_cells, memory.weights, 0), TrainingStream)
    del sources, module, stream, batch
    gc.collect()  # the budget of a closed source is released
    assert CellSource(paths[1]).in_memory


def _organism_verdicts(adata: ad.AnnData, vocab: Vocabulary) -> tuple[str | None, str | None]:
    """What training (``CellSource(adata).bind``) and the tasks (``match_vocabulary``) say of
    the organism of the same AnnData: ``None`` (accepted) or the error after its subject."""
    from scprint.tasks._input import match_vocabulary

    verdicts = []
    for check in (lambda: CellSource(adata).bind(vocab), lambda: match_vocabulary(adata, vocab)):
        try:
            check()
            verdicts.append(None)
        except InputError as error:
            assert "\n" not in str(error)
            verdicts.append(str(error).split(" holds ", 1)[1])
    return verdicts[0], verdicts[1]


def test_training_and_tasks_check_the_organism_of_the_same_anndata_alike(kang_adata) -> None:
    """One organism check (``scprint.data.organisms.check_cells_organism``) for both paths, on
    50 real Kang cells (human Ensembl ids) declaring their organism in each way it is read."""
    from scprint.data.organisms import HUMAN, MOUSE

    cells = kang_adata[:50].copy()
    human = Vocabulary(genes=list(cells.var_names[:500]), symbols=[""] * 500, organism=HUMAN)
    mouse = Vocabulary(genes=list(cells.var_names[:500]), symbols=[""] * 500, organism=MOUSE)

    assert _organism_verdicts(cells, human) == (None, None)  # Ensembl prefixes: human
    training, task = _organism_verdicts(cells, mouse)
    assert training == task and training.startswith("cells of an unsupported organism: Ensembl")

    declared = cells.copy()
    declared.obs["organism_ontology_term_id"] = MOUSE
    training, task = _organism_verdicts(declared, human)
    assert training == task
    assert "obs['organism_ontology_term_id'] gives ['NCBITaxon:10090']" in training

    by_name = cells.copy()
    by_name.obs["organism"] = "human"
    assert _organism_verdicts(by_name, human) == (None, None)

    in_uns = cells.copy()
    in_uns.uns["organism"] = "Mus musculus"
    training, task = _organism_verdicts(in_uns, human)
    assert training == task and "uns['organism'] gives ['NCBITaxon:10090']" in training


def test_pca_gene_embeddings_place_co_expressed_genes_close(kang_adata):
    """``data.gene_embeddings: pca`` on 400 real Kang cells: one row per vocabulary gene at
    unit scale, and two monocyte markers (LYZ, S100A8) closer to
    each other than LYZ is to a B-cell marker (MS4A1)."""
    module = CellDataModule(
        [kang_adata], labels=["cell_type"], gene_embeddings="pca", gene_embedding_dim=8
    )
    table = module.gene_table.numpy()
    assert table.shape == (len(module.vocab), 8)
    assert np.isfinite(table).all() and table.std() == pytest.approx(1.0, rel=1e-3)
    symbols = pd.Series(kang_adata.var_names, index=kang_adata.var["gene_symbol"].astype(str))
    lyz, s100a8, ms4a1 = (
        table[module.vocab.index_of([symbols[g]])[0]] for g in ("LYZ", "S100A8", "MS4A1")
    )
    assert np.linalg.norm(lyz - s100a8) < np.linalg.norm(lyz - ms4a1)
    with pytest.raises(ValueError, match="gene_embedding_dim"):
        CellDataModule(
            [kang_adata], labels=["cell_type"], gene_embeddings="pca", gene_embedding_dim=0
        )
