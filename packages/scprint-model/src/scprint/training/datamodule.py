"""The Lightning data module of ``scprint fit``: datasets, vocabulary, labels and batch streams.

The streams themselves (label-balanced training batches, block streaming from disk, validation
batches) are :mod:`scprint.data.streams`, which knows nothing of Lightning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anndata as ad
import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from ..data.organisms import check_organism
from ..data.soma import SomaSource
from ..data.source import CellSource
from ..data.streams import (
    CellSet,
    SamplingOptions,
    ValidationBatches,
    build_label_encoders,
    encode_labels,
    gene_embedding_table,
    pca_gene_table,
    training_stream,
    worker_context,
)
from ..data.vocabulary import Vocabulary

log = logging.getLogger(__name__)

__all__ = ["CellDataModule"]


class CellDataModule(L.LightningDataModule):
    """Training and validation cells of one or many datasets, bound to a gene vocabulary.

    The vocabulary and label encoders are built here (or read from ``init_from``); a model is
    built on :attr:`schema`. Every argument is a ``data:`` key of ``scprint fit``.

    Args:
        files: datasets with raw counts: ``.h5ad`` files or ``.zarr`` stores (read lazily), or,
            from Python, AnnData objects or :class:`CellSource` s.
        soma: keyword arguments of :class:`scprint.data.soma.SomaSource` (``uri``,
            ``measurement``, ``X_name``, ``value_filter``, ...): a TileDB-SOMA experiment (e.g.
            the CELLxGENE Census) as one more dataset.
        labels: obs columns to classify (``<column>_ontology_term_id`` is used when present,
            giving the ontology hierarchy).
        coarse_labels: extra ontology terms to accept as coarse targets.
        allow_missing_labels: a dataset without one of ``labels`` trains unlabelled for it;
            otherwise (default) that is an error naming the dataset.
        organism: NCBITaxon id of the data.
        gene_positions: table of gene positions (parquet/CSV; index Ensembl id,
            ``chromosome_name``, ``start_position``) for the genomic-position encoding.
        gene_embeddings: table gene -> vector (parquet/CSV; index Ensembl id or symbol, numeric
            columns) initialising the gene identities (:attr:`gene_table`), or ``"pca"``: a
            PCA of the training cells' log-normalised counts (:func:`pca_gene_table`), for data
            without precomputed gene vectors.
        gene_embedding_dim: components of the ``"pca"`` gene embeddings (make it the model's
            ``d_model``; a wider table is average-pooled down to it).
        init_from: checkpoint to fine-tune (``scprint fit`` links ``model.init_from`` here): its
            vocabulary is used and its label classes are extended with the data's.
        batch_size: cells per batch and process.
        max_len: genes per cell (``scprint fit`` links ``model.config.max_len`` here).
        pad_with_unexpressed, thinning, balance_weight, gene_sampling: batch sampling (see
            :class:`SamplingOptions`).
        val_fraction: fraction of the cells of the training datasets held out for validation.
        val_datasets: indices of the datasets held out entirely for validation.
        val_max_cells: cap on validation cells (a random subset beyond it).
        seed: seed of the split and of every batch (``scprint fit`` links ``seed_everything``).
        num_workers: DataLoader worker processes.
        in_memory: load datasets into memory (default: when small enough).
        buffer_mb: read-ahead buffer (MB) of the sources streamed from disk (``files`` not in
            memory; ``data.soma`` sets its own), default 256.
    """

    def __init__(
        self,
        files: Sequence[str | Path | ad.AnnData | CellSource] = (),
        soma: dict[str, Any] | None = None,
        labels: Sequence[str] = ("cell_type",),
        coarse_labels: Sequence[str] = (),
        allow_missing_labels: bool = False,
        organism: str = "NCBITaxon:9606",
        gene_positions: str | None = None,
        gene_embeddings: str | None = None,
        gene_embedding_dim: int = 64,
        init_from: str | None = None,
        batch_size: int = 32,
        max_len: int = 512,
        pad_with_unexpressed: bool = True,
        thinning: tuple[float, float] = (0.1, 1.0),
        balance_weight: float | None = 100.0,
        gene_sampling: str = "weighted",
        val_fraction: float = 0.05,
        val_datasets: Sequence[int] = (),
        val_max_cells: int = 512,
        seed: int = 0,
        num_workers: int = 0,
        in_memory: bool | None = None,
        buffer_mb: float | None = None,
    ) -> None:
        super().__init__()
        check_organism(organism)
        options = SamplingOptions(
            batch_size=batch_size,
            max_len=max_len,
            pad_with_unexpressed=pad_with_unexpressed,
            thinning=tuple(thinning),
            balance_weight=balance_weight,
            gene_sampling=gene_sampling,
        )
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        sources = [
            f if isinstance(f, CellSource | SomaSource) else CellSource(f, in_memory=in_memory)
            for f in files
        ]
        if buffer_mb is not None:
            if not buffer_mb > 0:
                raise ValueError(f"buffer_mb must be positive, got {buffer_mb!r}")
            for source in sources:
                source.buffer_mb = float(buffer_mb)
        if soma is not None:  # the labels the model needs, unless the user names others
            sources.append(SomaSource(**{"label_columns": list(labels), **soma}))
        if not sources:
            raise ValueError("no data: give data.files (h5ad/zarr paths) or data.soma")
        bad = [i for i in val_datasets if not 0 <= i < len(sources)]
        if bad:
            raise ValueError(f"val_datasets indices {bad} out of range for {len(sources)} datasets")
        if len(set(val_datasets)) >= len(sources):
            raise ValueError(
                "val_datasets holds out every dataset; at least one must remain for training"
            )
        start_from = None
        if init_from is not None:
            from ..checkpoints import load

            pretrained = load(init_from, device="cpu")
            vocab, start_from = pretrained.vocab, pretrained.labels
        else:
            metas = [source.meta for source in sources]
            vocab = Vocabulary.build(metas, gene_positions=gene_positions, organism=organism)
        encoders = build_label_encoders(
            sources, list(labels), coarse_labels, start_from, allow_missing_labels
        )
        self.sources, self.vocab, self.labels = sources, vocab, encoders
        self.options, self.seed, self.num_workers = options, seed, num_workers
        self.gene_table = None
        if gene_embeddings is not None and gene_embeddings != "pca":
            self.gene_table = gene_embedding_table(gene_embeddings, vocab, seed)
        for source in self.sources:
            if source.columns is None:
                source.bind(vocab)
        codes = encode_labels(self.sources, encoders)
        rng = np.random.default_rng([seed, 7])
        train_parts, val_parts = [], []
        for sid, source in enumerate(self.sources):
            ids = np.full(source.n_cells, sid)
            rows = np.arange(source.n_cells)
            if sid in val_datasets:
                val_parts.append((ids, rows))
                continue
            held = rng.random(source.n_cells) < val_fraction
            train_parts.append((ids[~held], rows[~held]))
            val_parts.append((ids[held], rows[held]))
        self.train_cells = CellSet(
            self.sources, codes, *map(np.concatenate, zip(*train_parts)), options
        )
        val_ids, val_rows = map(np.concatenate, zip(*val_parts))
        if len(val_rows) > val_max_cells:
            keep = np.sort(rng.choice(len(val_rows), val_max_cells, replace=False))
            val_ids, val_rows = val_ids[keep], val_rows[keep]
        self.val_cells = CellSet(self.sources, codes, val_ids, val_rows, options)
        if len(self.train_cells) == 0:
            raise ValueError("no training cells left after the validation split")
        if gene_embeddings == "pca":
            train_rows = [
                self.train_cells.row[self.train_cells.source_id == sid]
                for sid in range(len(self.sources))
            ]
            self.gene_table = pca_gene_table(
                self.sources, train_rows, vocab, gene_embedding_dim, seed
            )
        self.weights = self._weights(codes)
        log.info(
            "training cells: %d, validation cells: %d", len(self.train_cells), len(self.val_cells)
        )

    @property
    def schema(self) -> dict[str, Any]:
        """What a model is built on: ``vocab`` (:meth:`Vocabulary.to_dict`), ``labels`` (class ->
        :meth:`LabelEncoder.to_dict`, in class-token order) and ``sampling`` (plain types)."""
        return {
            "vocab": self.vocab.to_dict(),
            "labels": {name: encoder.to_dict() for name, encoder in self.labels.items()},
            "sampling": asdict(self.options),
        }

    @property
    def has_validation(self) -> bool:
        """Whether any cell is held out for validation."""
        return len(self.val_cells) > 0

    def _weights(self, codes: Sequence[np.ndarray]) -> np.ndarray:
        """Sampling probability of each training cell (``w / (n + w)``, normalised)."""
        n = len(self.train_cells)
        if self.options.balance_weight is None or not self.labels:
            return np.full(n, 1.0 / n)
        cell_codes = np.empty((n, len(self.labels)), dtype=np.int64)
        for sid in np.unique(self.train_cells.source_id):
            where = self.train_cells.source_id == sid
            cell_codes[where] = codes[sid][self.train_cells.row[where]]
        _, group, group_size = np.unique(
            cell_codes, axis=0, return_inverse=True, return_counts=True
        )
        w = self.options.balance_weight
        weights = w / (group_size[group.ravel()] + w)
        return weights / weights.sum()

    def _rank(self) -> tuple[int, int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1, 0
        return trainer.global_rank, trainer.world_size, trainer.global_step

    def train_dataloader(self) -> DataLoader:
        rank, world_size, step = self._rank()
        stream = training_stream(self.train_cells, self.weights, self.seed, rank, world_size, step)
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
            multiprocessing_context=worker_context(self.sources, self.num_workers),
        )

    def val_dataloader(self) -> DataLoader:
        rank, world_size, _ = self._rank()
        return DataLoader(
            ValidationBatches(self.val_cells, self.seed, rank, world_size),
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
            multiprocessing_context=worker_context(self.sources, self.num_workers),
        )

    def test_dataloader(self) -> DataLoader:
        """The validation batches (``scprint test`` scores the held-out cells)."""
        return self.val_dataloader()
