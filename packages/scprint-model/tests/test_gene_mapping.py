"""Gene matching on real files: symbol- and Ensembl-indexed PBMC data onto an Ensembl-only vocabulary.

The vocabulary used here is scPRINT's own token dictionary (``gene_meta/scprint_token_dictionary.tsv``,
25,424 human Ensembl ids, no symbols), the form of a published checkpoint's gene list.
"""

from __future__ import annotations

from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scprint.data import MIN_OVERLAP_GENES, Vocabulary
from scprint.data.gene_mapping import match_genes
from scprint.tasks._input import model_view, prepare


@pytest.fixture(scope="module")
def token_ids(data_dir) -> list[str]:
    table = pd.read_csv(data_dir / "gene_meta" / "scprint_token_dictionary.tsv", sep="\t")
    return [t for t in table["token"] if t.startswith("ENS")]


@pytest.fixture(scope="module")
def zheng(data_dir) -> ad.AnnData:
    adata = ad.read_h5ad(data_dir / "scrna" / "zheng2017_sorted_pbmc_3k5.h5ad")
    return adata[:60].copy()


@pytest.fixture(scope="module")
def kang(data_dir) -> ad.AnnData:
    adata = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    return adata[:60].copy()


def _model(genes: list[str], symbols: list[str] | None = None) -> SimpleNamespace:
    """What prepare reads of a loaded model: its vocabulary."""
    return SimpleNamespace(vocab=Vocabulary(genes=genes, symbols=symbols or [""] * len(genes)))


def _symbols_only(adata: ad.AnnData) -> ad.AnnData:
    out = adata.copy()
    out.var = pd.DataFrame(index=out.var_names.copy())
    return out


def test_symbol_indexed_data_maps_through_the_data_folder_tables(zheng, token_ids):
    cells = _symbols_only(zheng)
    mapping = match_genes(cells, token_ids)
    assert mapping.by_id == 0 and mapping.by_symbol == mapping.n_known
    assert mapping.n_known > 0.85 * zheng.n_vars
    # agrees with the ids the data folder derived for this file (SOURCES.md) where both exist
    derived = zheng.var["ensembl_id"].to_numpy(dtype=object)
    both = (mapping.vocab_index >= 0) & pd.notna(derived)
    ours = np.asarray(token_ids, dtype=object)[mapping.vocab_index[both]]
    assert (ours == derived[both]).mean() > 0.99


def test_ensembl_indexed_data_maps_by_id_and_versions_are_dropped(kang, token_ids):
    mapping = match_genes(kang, token_ids)
    assert mapping.by_id > 0.95 * kang.n_vars
    versioned = kang.copy()
    versioned.var_names = [f"{g}.7" for g in kang.var_names]
    np.testing.assert_array_equal(
        match_genes(versioned, token_ids).vocab_index, mapping.vocab_index
    )


def test_symbols_in_a_var_column_and_ids_in_a_var_column_are_found(kang, token_ids):
    by_id = match_genes(kang, token_ids).vocab_index
    symbol_named = kang.copy()
    symbol_named.var_names = kang.var["gene_symbol"].astype(str).to_numpy()
    symbol_named.var_names_make_unique()
    symbol_named.var["ensembl_id"] = kang.var_names.to_numpy()
    np.testing.assert_array_equal(match_genes(symbol_named, token_ids).vocab_index, by_id)
    only_symbols = symbol_named.copy()
    only_symbols.var = only_symbols.var.drop(columns=["ensembl_id"])
    by_symbol = match_genes(only_symbols, token_ids)
    assert by_symbol.by_id == 0
    # Kang's ids are hg19-era (10x annotation): about 7% have been renamed or retired since, so a
    # symbol found in today's tables can name another id, e.g. TXNIP is ENSG00000265972 in
    # biomart / GENCODE v44 while Kang holds the retired ENSG00000117289
    same = (by_symbol.vocab_index == by_id) & (by_id >= 0)
    assert same.sum() > 0.9 * (by_id >= 0).sum()
    txnip = int(np.flatnonzero(only_symbols.var_names == "TXNIP")[0])
    assert token_ids[by_id[txnip]] == "ENSG00000117289"
    assert token_ids[by_symbol.vocab_index[txnip]] == "ENSG00000265972"


def test_ambiguous_symbol_resolves_only_when_one_candidate_is_known():
    # POLR2J3 names ENSG00000168255 and ENSG00000285437 (both on chromosome 7) in the tables
    cells = ad.AnnData(var=pd.DataFrame(index=["POLR2J3", "CD3E"]))
    both = ["ENSG00000168255", "ENSG00000285437", "ENSG00000198851"]
    mapping = match_genes(cells, both)
    assert mapping.vocab_index.tolist() == [-1, 2]
    assert mapping.ambiguous == ["POLR2J3"]
    one = ["ENSG00000285437", "ENSG00000198851"]
    assert match_genes(cells, one).vocab_index.tolist() == [0, 1]
    # PINX1 names ENSG00000258724 (chromosome 8) and ENSG00000284764 (a patch): the standard one
    pinx = ad.AnnData(var=pd.DataFrame(index=["PINX1"]))
    candidates = ["ENSG00000258724", "ENSG00000284764"]
    assert match_genes(pinx, candidates).vocab_index.tolist() == [0]


def test_duplicate_genes_keep_the_first_column(token_ids):
    cells = ad.AnnData(var=pd.DataFrame(index=["CD3E", "ENSG00000198851_dup", "cd3e"]))
    mapping = match_genes(cells, token_ids)
    assert mapping.vocab_index[0] >= 0 and mapping.vocab_index[2] == -1
    assert mapping.duplicates == ["cd3e"]


def test_mouse_genes_map_through_a_users_table_or_human_orthologs(tmp_path, token_ids):
    mouse = ad.AnnData(var=pd.DataFrame(index=["Cd3e", "Actb", "Ms4a1", "Xist"]))
    mouse_vocab = ["ENSMUSG00000032093", "ENSMUSG00000029580", "ENSMUSG00000024673"]
    # no mouse symbol table in the data folder: nothing matches without the user's table
    assert match_genes(mouse, mouse_vocab, organism="NCBITaxon:10090").n_known == 0
    table = tmp_path / "mouse_genes.tsv"
    pd.DataFrame(
        {
            "gene_id": [*mouse_vocab, "ENSMUSG00000086503"],
            "symbol": ["Cd3e", "Actb", "Ms4a1", "Xist"],
        }
    ).to_csv(table, sep="\t", index=False)
    mapping = match_genes(mouse, mouse_vocab, organism="NCBITaxon:10090", gene_table=table)
    assert mapping.vocab_index.tolist() == [0, 1, 2, -1]
    human = match_genes(mouse, token_ids, organism="NCBITaxon:10090", orthologs=True)
    names = np.asarray(token_ids)[human.vocab_index[:3]]
    assert names.tolist() == ["ENSG00000198851", "ENSG00000075624", "ENSG00000156738"]


def test_prepare_reports_the_overlap_and_refuses_data_with_no_known_genes(kang, token_ids, caplog):
    model = _model(token_ids)
    with caplog.at_level("INFO", logger="scprint.tasks._input"):
        match = prepare(kang, model).match
    assert f"of {kang.n_vars} known to the model" in caplog.text
    summary = match.summary()
    assert summary["n_known"] == match.n_known and summary["n_genes"] == kang.n_vars
    assert summary["n_matched_by_id"] + summary["n_matched_by_symbol"] == match.n_known
    unknown = kang.copy()
    unknown.var = pd.DataFrame(index=[f"GENE{i}" for i in range(kang.n_vars)])
    with pytest.raises(ValueError, match=r"only 0 of the AnnData's 2511 genes are known.*GENE0"):
        prepare(unknown, model)
    with pytest.raises(ValueError, match=f"at least {MIN_OVERLAP_GENES}"):
        prepare(kang, model, min_genes=10)
    with pytest.raises(ValueError, match=r"only \d+ of the AnnData's 2511 genes.*at least 2511"):
        prepare(kang, model, min_genes=100_000)


def test_prepare_reads_the_organism_from_the_argument_or_obs(kang, token_ids):
    model = _model(token_ids)
    with pytest.raises(ValueError, match="unsupported organism.*NCBITaxon:10090"):
        prepare(kang, model, organism="NCBITaxon:10090")
    with pytest.raises(ValueError, match="unknown organism 'NCBITaxon:1'"):
        prepare(kang, model, organism="NCBITaxon:1")
    mixed = kang.copy()
    mixed.obs["organism_ontology_term_id"] = ["NCBITaxon:9606"] * 59 + ["NCBITaxon:10090"]
    with pytest.raises(ValueError, match="unsupported organism"):
        prepare(mixed, model)
    labelled = kang.copy()
    labelled.obs["organism_ontology_term_id"] = "NCBITaxon:9606"
    with pytest.raises(ValueError, match="given but obs"):
        prepare(labelled, _model(token_ids), organism="mouse")
    assert prepare(labelled, model, organism="human").match.organism == "NCBITaxon:9606"


def test_model_view_names_columns_by_their_vocabulary_gene_and_shares_counts(zheng, token_ids):
    cells = _symbols_only(zheng)
    model = _model(token_ids)
    match = prepare(cells, model).match
    view = model_view(cells, match, model.vocab)
    assert view.X is cells.X or (sp.issparse(view.X) and (view.X != cells.X).nnz == 0)
    known = match.var_indices
    assert view.var_names[known].tolist() == [token_ids[i] for i in match.vocab_indices]
    columns, vocab_index = model.vocab.match(view)
    np.testing.assert_array_equal(columns, known)
    np.testing.assert_array_equal(vocab_index, match.vocab_indices)


def test_training_and_the_tasks_map_the_same_anndata_identically(kang, zheng, token_ids):
    """One resolver: the data layer's ``Vocabulary.match`` (training) and the tasks' ``prepare``
    give the same columns and vocabulary genes, for Ensembl ids, symbols and ids in a column."""
    ids_in_column = kang.copy()
    ids_in_column.var["ensembl_id"] = ids_in_column.var_names.to_numpy()
    ids_in_column.var_names = [f"gene{i}" for i in range(kang.n_vars)]
    model = _model(token_ids)
    for adata in (kang, _symbols_only(zheng), ids_in_column):
        columns, vocab_index = model.vocab.match(adata, min_overlap=1)
        match = prepare(adata, model).match
        assert columns.size > 0.5 * adata.n_vars
        np.testing.assert_array_equal(columns, match.var_indices)
        np.testing.assert_array_equal(vocab_index, match.vocab_indices)


def test_mouse_cells_on_a_human_model_through_orthologs(data_dir, token_ids):
    """The documented mouse route: ``organism="mouse", orthologs=True`` on a human model maps
    mouse symbols to their human orthologs; the organism is checked after that mapping."""
    from scprint.tasks import InputError
    from scprint.testing import mouse_cells

    counts, symbols = mouse_cells(data_dir)
    cells = ad.AnnData(X=sp.csr_matrix(counts[:30]), var=pd.DataFrame(index=symbols))
    cells.var_names_make_unique()
    model = _model(token_ids)  # a human vocabulary
    match = prepare(cells, model, organism="mouse", orthologs=True).match
    assert match.organism == "NCBITaxon:10090" and match.by_symbol == match.n_known
    assert match.n_known > 0.5 * cells.n_vars
    cells.obs["organism_ontology_term_id"] = "NCBITaxon:10090"  # as `--organism mouse` records
    assert prepare(cells, model, organism="mouse", orthologs=True).match.n_known == match.n_known
    with pytest.raises(InputError, match="unsupported organism"):
        prepare(cells, model, organism="mouse")
