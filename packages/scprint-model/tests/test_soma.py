"""TileDB-SOMA source on an experiment built from the real Kang counts: same cells as the h5ad,
filters, errors, block streaming (disjoint shares, exact resume) and a short training run."""

from __future__ import annotations

import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from scprint.data import CellSource, SomaSource, Vocabulary, streams
from scprint.data.streams import BlockStream, training_stream, worker_context
from scprint.training import CellDataModule

soma_io = pytest.importorskip("tiledbsoma.io")

#: Cells of the Kang subset written to the SOMA experiment and the h5ad file.
N_CELLS = 300


@pytest.fixture(scope="module")
def census_like(kang_adata: ad.AnnData) -> ad.AnnData:
    """Kang cells spelt like the Census: var indexed by ``feature_id``, symbols in ``feature_name``."""
    adata = kang_adata[:N_CELLS].copy()
    adata.var = pd.DataFrame(
        {"feature_name": adata.var["gene_symbol"].astype(str).to_numpy()},
        index=pd.Index(adata.var_names, name="feature_id"),
    )
    return adata


@pytest.fixture(scope="module")
def h5ad_path(census_like: ad.AnnData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("soma") / "kang.h5ad"
    census_like.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def experiment(h5ad_path: Path) -> str:
    """A SOMA experiment (measurement ``RNA``, layer ``raw``) of the same cells as ``h5ad_path``."""
    uri = str(h5ad_path.parent / "experiment")
    soma_io.from_h5ad(uri, h5ad_path, "RNA", X_layer_name="raw")
    return uri


@pytest.fixture(scope="module")
def vocab(census_like: ad.AnnData) -> Vocabulary:
    return Vocabulary.build([census_like])


def test_soma_source_reads_the_cells_labels_and_genes_of_the_h5ad(
    experiment, h5ad_path, census_like, vocab
) -> None:
    soma = SomaSource(experiment, label_columns=["cell_type"])
    h5ad = CellSource(h5ad_path, in_memory=False)
    soma.bind(vocab)
    h5ad.bind(vocab)
    assert soma.n_cells == h5ad.n_cells == N_CELLS
    assert list(soma.meta.obs.columns) == ["cell_type", "cell_type_ontology_term_id"]
    for column in soma.meta.obs.columns:
        assert (
            soma.meta.obs[column].astype(str).tolist()
            == census_like.obs[column].astype(str).tolist()
        )
    assert np.array_equal(soma.vocab_index, h5ad.vocab_index)
    assert soma.meta.var["gene_symbol"].tolist() == census_like.var["feature_name"].tolist()
    rows = np.array([17, 3, N_CELLS - 1, 3, 0])
    soma_counts, soma_depth = soma.read(rows)
    h5ad_counts, h5ad_depth = h5ad.read(rows)
    assert soma_counts.shape == h5ad_counts.shape and (soma_counts != h5ad_counts).nnz == 0
    np.testing.assert_array_equal(soma_depth, h5ad_depth)


def test_value_filter_selects_the_matching_cells(experiment, census_like, vocab) -> None:
    soma = SomaSource(experiment, value_filter="cell_type == 'B cells'")
    b_cells = np.flatnonzero(census_like.obs["cell_type"].to_numpy() == "B cells")
    assert soma.n_cells == len(b_cells) > 0
    assert set(soma.meta.obs["cell_type"]) == {"B cells"}
    soma.bind(vocab)
    subset = CellSource(census_like[b_cells].copy())
    subset.bind(vocab)
    rows = np.arange(soma.n_cells)
    assert (soma.read(rows)[0] != subset.read(rows)[0]).nnz == 0


def test_soma_errors_name_the_problem(experiment, monkeypatch, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"has no measurement 'ATAC'; available: \['RNA'\]"):
        SomaSource(experiment, measurement="ATAC")
    with pytest.raises(ValueError, match=r"has no X layer 'counts'; available: \['raw'\]"):
        SomaSource(experiment, X_name="counts")
    with pytest.raises(ValueError, match="matches no cells"):
        SomaSource(experiment, value_filter="cell_type == 'neuron'")
    with pytest.raises(ValueError, match="cannot be applied to the obs"):
        SomaSource(experiment, value_filter="no_such_column == 1")
    with pytest.raises(ValueError, match="label column 'tissue' is not in the obs"):
        SomaSource(experiment, label_columns=["cell_type", "tissue"])
    with pytest.raises(ValueError, match="no gene id column 'gene_id'"):
        SomaSource(experiment, var_id_column="gene_id")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SomaSource(str(tmp_path / "missing"))
    monkeypatch.setitem(sys.modules, "tiledbsoma", None)
    with pytest.raises(ImportError, match=r"pip install 'scprint-model\[soma\]'"):
        SomaSource(experiment)


def _module(source, vocab, batch_size=8, balance_weight=None) -> CellDataModule:
    return CellDataModule(
        [source],
        labels=["cell_type"],
        batch_size=batch_size,
        max_len=32,
        balance_weight=balance_weight,
        val_fraction=0.1,
        seed=3,
    )


@pytest.mark.parametrize("buffer_mb", [256.0, 0.2])
def test_blocks_are_dealt_to_ranks_and_workers_without_overlap(
    experiment, vocab, buffer_mb
) -> None:
    module = _module(SomaSource(experiment, buffer_mb=buffer_mb), vocab)
    cells = module.train_cells
    stream = training_stream(cells, module.weights, seed=3, rank=0, world_size=2)
    assert isinstance(stream, BlockStream)
    n_shares = 2 * 3  # ranks x workers
    blocks = stream._blocks(n_shares)
    largest_block = max(map(len, blocks))
    for epoch in (0, 1):
        buffers = [stream._buffers(blocks, share, n_shares, epoch) for share in range(n_shares)]
        # the memory budget: a buffer holds at most one block beyond its cell budget
        assert max(len(b) for share in buffers for b in share) < stream.buffer_cells + largest_block
        shares = [np.concatenate(share) for share in buffers]
        together = np.concatenate(shares)
        assert len(together) == len(np.unique(together)) == len(cells)
        assert min(map(len, shares)) > 0
    first = [np.concatenate(stream._buffers(blocks, 0, n_shares, e)) for e in (0, 1)]
    assert not np.array_equal(np.sort(first[0]), np.sort(first[1]))  # reshuffled per epoch


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_block_stream_resumes_exactly_and_matches_the_h5ad_stream(
    experiment, h5ad_path, vocab
) -> None:
    soma = _module(SomaSource(experiment), vocab)
    stream = iter(training_stream(soma.train_cells, soma.weights, seed=3, rank=1, world_size=2))
    batches = [next(stream) for _ in range(30)]  # several epochs of this rank's share
    resumed = iter(
        training_stream(soma.train_cells, soma.weights, seed=3, rank=1, world_size=2, start_step=23)
    )
    assert all(_same(batches[23 + i], next(resumed)) for i in range(5))
    other_rank = next(iter(training_stream(soma.train_cells, soma.weights, 3, 0, 2)))
    assert not _same(batches[0], other_rank)
    # the same cells from an h5ad file on disk give the same batches
    h5ad = _module(CellSource(h5ad_path, in_memory=False), vocab)
    h5ad_stream = iter(
        training_stream(h5ad.train_cells, h5ad.weights, seed=3, rank=1, world_size=2)
    )
    assert all(_same(batch, next(h5ad_stream)) for batch in batches[:5])


def test_block_stream_workers_give_the_batches_of_a_single_process(
    experiment, vocab, monkeypatch
) -> None:
    module = _module(SomaSource(experiment), vocab, balance_weight=10.0)
    stream = training_stream(module.train_cells, module.weights, seed=3, start_step=4)
    context = worker_context(module.sources, num_workers=2)
    assert context == "spawn"  # TileDB does not survive a fork
    loader = iter(
        DataLoader(stream, batch_size=None, num_workers=2, multiprocessing_context=context)
    )
    got = [next(loader) for _ in range(6)]  # worker processes, each opening the experiment
    # worker w serves steps 4 + w + 2k from its own share: rebuild them in this process
    for worker in (0, 1):
        info = type("WorkerInfo", (), {"id": worker, "num_workers": 2})()
        monkeypatch.setattr(streams, "get_worker_info", lambda info=info: info)
        alone = iter(training_stream(module.train_cells, module.weights, seed=3, start_step=4))
        assert all(_same(got[2 * k + worker], next(alone)) for k in range(3))
    assert not _same(got[0], got[1])
    assert (torch.cat([b["labels"][:, 0] for b in got]) >= 0).all()


def test_fit_trains_from_a_soma_experiment(experiment, tmp_path) -> None:
    from scprint.checkpoints.ours import read_metadata
    from scprint.training import fit

    source = SomaSource(experiment, value_filter="cell_type != 'NK cells'")
    final = fit(  # through the config path: data.soma holds SomaSource's arguments
        "tiny",
        data={
            "soma": {"uri": experiment, "value_filter": "cell_type != 'NK cells'"},
            "labels": ["cell_type"],
            "batch_size": 16,
        },
        trainer={
            "max_steps": 6,
            "default_root_dir": str(tmp_path),
            "val_check_interval": 3,
            "log_every_n_steps": 1,
        },
    )
    metadata = read_metadata(torch.load(final, map_location="cpu", weights_only=True), final)
    assert len(metadata["vocab"]["genes"]) == source.meta.n_vars
    classes = str(metadata["labels"]["cell_type"])
    assert "CL:0000236" in classes and "CL:0000623" not in classes  # B cells kept, NK filtered out
    losses = pd.read_csv(tmp_path / "metrics.csv")["train/loss"].dropna()
    assert len(losses) == 6 and np.isfinite(losses).all()
