"""Cells of a TileDB-SOMA experiment (the CELLxGENE Census format), read block by block.

:class:`SomaSource` is a :class:`~scprint.data.source.CellSource` for an experiment that does not
fit in memory: at construction it reads only ``obs`` (the ``soma_joinid`` of the cells passing a
``value_filter``, and the label columns) and ``var`` (genes, matched to the vocabulary by Ensembl
id); counts are read on demand, a block of cells at a time, by the training stream
(:class:`~scprint.data.streams.BlockStream`), which shuffles contiguous blocks of cells, reads a
few blocks into a bounded buffer and shuffles within it, each DDP rank and data-loading worker
reading its own blocks — the scheme of cellxgene-census's ``ExperimentDataPipe``.

Needs the optional dependency ``tiledbsoma`` (``pip install 'scprint-model[soma]'``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scprint.errors import InputError

from .organisms import check_cells_organism, check_organism
from .source import DEFAULT_BLOCK_SIZE, DEFAULT_BUFFER_MB
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)

#: obs columns read besides the label columns when the experiment has them.
_OBS_EXTRA = ("organism_ontology_term_id",)


def _tiledbsoma() -> Any:
    try:
        import tiledbsoma
    except ImportError as error:
        raise ImportError(
            "reading a TileDB-SOMA experiment needs tiledbsoma: pip install 'scprint-model[soma]'"
        ) from error
    return tiledbsoma


@dataclass
class SourceMeta:
    """The ``obs`` and ``var`` tables of a source (what :class:`~anndata.AnnData` offers of them).

    ``obs`` has one row per cell of the source, in source order; ``var`` is indexed by gene id.
    """

    obs: pd.DataFrame
    var: pd.DataFrame

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_obs, self.n_vars


class SomaSource:
    """Cells of a TileDB-SOMA experiment passing ``value_filter``, as a training data source.

    Args:
        uri: the experiment (a local folder, ``s3://...`` or ``tiledb://...``; the CELLxGENE Census
            human experiment is ``<census uri>/census_data/homo_sapiens``).
        measurement: measurement (``ms``) holding the counts, e.g. ``"RNA"``.
        X_name: layer of the measurement's ``X`` with raw integer counts (the Census: ``"raw"``).
        value_filter: a SOMA filter on ``obs``, e.g.
            ``"tissue_general == 'blood' and is_primary_data == True"``; ``None`` takes every cell.
        var_id_column: ``var`` column holding the Ensembl gene ids (the Census: ``"feature_id"``).
        symbol_column: ``var`` column of gene symbols, used when present (Census: ``"feature_name"``).
        label_columns: ``obs`` columns to read as labels (``<column>_ontology_term_id`` is read too
            when present); ``None`` reads every ``obs`` column (fine for small experiments only).
        block_size: contiguous cells (``soma_joinid`` s) of a block; a buffer mixes many blocks
            from across the experiment, so small blocks mix datasets well (the Census is ordered
            by dataset); larger ones read faster.
        buffer_mb: memory (MB) for the cells read ahead and shuffled together (one TileDB read
            per eighth of it).
        name: display name (default: the last part of ``uri``).
        tiledb_config: TileDB settings, e.g. ``{"vfs.s3.region": "us-west-2"}`` for the Census.

    Attributes:
        meta: ``obs`` (one row per selected cell, the requested columns, in ``soma_joinid`` order)
            and ``var`` (indexed by Ensembl id) of the experiment.
        joinids: ``(n_cells,)`` int64 ``soma_joinid`` of each cell of the source, ascending.
        in_memory: always ``False`` (counts stay in the experiment).
        fork_safe: ``False``: data-loading workers are spawned, not forked (TileDB's thread pools
            do not survive a fork).

    Raises:
        ImportError: tiledbsoma is not installed.
        FileNotFoundError: nothing at ``uri``.
        InputError: no such measurement or layer, a label column missing from ``obs``, a
            ``value_filter`` that is invalid or matches no cells, no Ensembl id column, or
            non-integer counts in the first block.
    """

    in_memory = False
    fork_safe = False

    def __init__(
        self,
        uri: str,
        *,
        measurement: str = "RNA",
        X_name: str = "raw",
        value_filter: str | None = None,
        var_id_column: str = "feature_id",
        symbol_column: str = "feature_name",
        label_columns: Sequence[str] | None = ("cell_type",),
        block_size: int = DEFAULT_BLOCK_SIZE,
        buffer_mb: float = DEFAULT_BUFFER_MB,
        name: str | None = None,
        tiledb_config: dict[str, str] | None = None,
    ) -> None:
        soma = _tiledbsoma()
        if block_size < 1 or buffer_mb <= 0:
            raise InputError(
                f"block_size and buffer_mb must be positive, got {block_size} and {buffer_mb}"
            )
        self.uri, self.measurement, self.X_name = str(uri), measurement, X_name
        self.value_filter, self.tiledb_config = value_filter, dict(tiledb_config or {})
        self.block_size, self.buffer_mb = int(block_size), float(buffer_mb)
        self.name = name or self.uri.rstrip("/").split("/")[-1]
        if "://" not in self.uri and not Path(self.uri).exists():
            raise FileNotFoundError(f"SOMA experiment {self.uri!r} does not exist")
        self._handles: tuple[int, Any, Any] | None = None
        try:
            experiment = soma.Experiment.open(self.uri, context=self._context())
        except (soma.DoesNotExistError, soma.SOMAError) as error:
            raise FileNotFoundError(
                f"no SOMA experiment at {self.uri!r} ({type(error).__name__}: {error})"
            ) from error
        with experiment:
            measurements = sorted(experiment.ms.keys())
            if measurement not in measurements:
                raise InputError(
                    f"SOMA experiment {self.uri!r} has no measurement {measurement!r}; "
                    f"available: {measurements}"
                )
            ms = experiment.ms[measurement]
            layers = sorted(ms.X.keys()) if "X" in ms else []
            if X_name not in layers:
                raise InputError(
                    f"measurement {measurement!r} of {self.uri!r} has no X layer {X_name!r}; "
                    f"available: {layers}"
                )
            self.meta = SourceMeta(
                obs=self._read_obs(experiment.obs, label_columns),
                var=self._read_var(ms.var, var_id_column, symbol_column),
            )
        self.columns: np.ndarray | None = None
        self.vocab_index: np.ndarray | None = None
        self._column_of: np.ndarray | None = None
        # a sample of cells: raw counts, and stored values per cell for the buffer size (the
        # array's nnz would scan the whole array: 750 MB peak at 100k cells)
        sample = np.unique(
            np.linspace(0, self.n_cells - 1, min(self.n_cells, 256)).astype(np.int64)
        )
        values = self._triplets(sample)[2]
        self._check_counts(values)
        self.values_per_cell = len(values) / len(sample)
        log.info(
            "%s: %d cells pass %r, %d genes",
            self.name,
            self.n_cells,
            value_filter,
            len(self._var_ids),
        )

    def _context(self) -> Any:
        """TileDB context: ``tiledb_config``, with TileDB's memory budget (10 GB by default)
        capped at ``max(buffer_mb, 128)`` MiB unless set there (a 256-cell read of 100k cells
        otherwise peaks at 750 MB)."""
        soma = _tiledbsoma()
        budget = str(int(max(self.buffer_mb, 128.0) * 2**20))
        config = {"sm.mem.total_budget": budget, **self.tiledb_config}
        return soma.SOMATileDBContext(tiledb_config=config)

    def _read_obs(self, obs: Any, label_columns: Sequence[str] | None) -> pd.DataFrame:
        available = [c for c in obs.schema.names if c != "soma_joinid"]
        if label_columns is None:
            wanted = available
        else:
            wanted = []
            for column in label_columns:
                found = [
                    c
                    for c in (column, f"{column}_ontology_term_id")
                    if c in available and c not in wanted
                ]
                if not found and not (set(wanted) & {column, f"{column}_ontology_term_id"}):
                    raise InputError(
                        f"label column {column!r} is not in the obs of SOMA experiment {self.uri!r}; "
                        f"obs columns: {available}"
                    )
                wanted += found
            wanted += [c for c in _OBS_EXTRA if c in available and c not in wanted]
        try:
            table = obs.read(
                column_names=["soma_joinid", *wanted], value_filter=self.value_filter
            ).concat()
        except Exception as error:  # tiledbsoma raises several types for a bad filter
            if self.value_filter is None:
                raise
            raise InputError(
                f"value_filter {self.value_filter!r} cannot be applied to the obs of {self.uri!r} "
                f"({error}); obs columns: {available}"
            ) from error
        frame = table.to_pandas()
        if len(frame) == 0:
            raise InputError(
                f"value_filter {self.value_filter!r} matches no cells of SOMA experiment {self.uri!r} "
                f"({int(obs.count)} cells)"
            )
        frame = frame.sort_values("soma_joinid", kind="stable").reset_index(drop=True)
        self.joinids = frame.pop("soma_joinid").to_numpy(np.int64)
        return frame

    def _read_var(self, var: Any, var_id_column: str, symbol_column: str) -> pd.DataFrame:
        names = var.schema.names
        if var_id_column not in names:
            raise InputError(
                f"var of measurement {self.measurement!r} in {self.uri!r} has no gene id column "
                f"{var_id_column!r}; columns: {[c for c in names if c != 'soma_joinid']} "
                "(pass var_id_column=...)"
            )
        columns = ["soma_joinid", var_id_column] + (
            [symbol_column] if symbol_column in names else []
        )
        frame = var.read(column_names=columns).concat().to_pandas()
        self._var_ids = frame["soma_joinid"].to_numpy(np.int64)
        table = pd.DataFrame(index=pd.Index(frame[var_id_column].astype(str).to_numpy()))
        if symbol_column in frame:
            table["gene_symbol"] = frame[symbol_column].astype(str).to_numpy()
        return table

    @property
    def n_cells(self) -> int:
        """Number of cells passing the filter."""
        return len(self.joinids)

    def check_organism(self, organism: str) -> None:
        """Raise :class:`~scprint.errors.InputError` when ``organism`` is unknown or the cells
        declare another (:func:`~scprint.data.organisms.check_cells_organism`, as the tasks)."""
        check_organism(organism)
        check_cells_organism(
            self.meta.obs,
            [organism],
            var_names=self.meta.var_names,
            what=f"SOMA experiment {self.name!r}",
            hint="; select cells with value_filter",
        )

    def bind(self, vocab: Vocabulary) -> None:
        """Match the experiment's genes to ``vocab``; afterwards :meth:`read` returns vocabulary genes."""
        self.check_organism(vocab.organism)
        columns, vocab_index = vocab.match(self.meta)
        self.columns, self.vocab_index = columns, vocab_index
        column_of = np.full(int(self._var_ids.max()) + 1, -1, dtype=np.int64)
        column_of[self._var_ids[columns]] = np.arange(len(columns))
        self._column_of = column_of
        log.info(
            "%s: %d cells, %d of %d genes in the vocabulary",
            self.name,
            self.n_cells,
            len(columns),
            self.meta.n_vars,
        )

    def _X(self) -> Any:
        """The counts array, opened once per process (handles do not survive a fork)."""
        if self._handles is None or self._handles[0] != os.getpid():
            soma = _tiledbsoma()
            experiment = soma.Experiment.open(self.uri, context=self._context())
            self._handles = (
                os.getpid(),
                experiment,
                experiment.ms[self.measurement].X[self.X_name],
            )
        return self._handles[2]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = None
        return state

    def _triplets(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position in ``rows``, var ``soma_joinid`` and count of each stored value of ``rows``.

        ``rows`` are sorted, distinct source rows; all genes of the measurement are read.
        """
        joinids = self.joinids[rows]
        table = self._X().read(coords=(joinids,)).tables().concat()
        cells = table.column("soma_dim_0").to_numpy()
        genes = table.column("soma_dim_1").to_numpy()
        values = table.column("soma_data").to_numpy().astype(np.float32)
        return np.searchsorted(joinids, cells), genes, values

    def _check_counts(self, values: np.ndarray) -> None:
        bad = (values < 0) | (values != np.round(values))
        if bad.any():
            raise InputError(
                f"SOMA experiment {self.name!r}: X[{self.X_name!r}] must hold raw integer counts, "
                f"found {float(values[np.flatnonzero(bad)[0]])!r}; pick the raw layer with X_name="
            )

    def read(self, rows: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """Counts of ``rows`` (any order) over the matched genes, and their depth.

        Returns:
            CSR ``(len(rows), n_matched)`` float32 (column ``j`` is vocabulary gene
            ``self.vocab_index[j]``) and ``(len(rows),)`` float32 total counts over all genes.

        Raises:
            InputError: a value that is not a raw count, or a cell without counts.
        """
        if self._column_of is None:
            raise RuntimeError(f"dataset {self.name!r}: call bind(vocab) before reading rows")
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        unique, inverse = np.unique(rows[order], return_inverse=True)
        position, genes, values = self._triplets(unique)
        self._check_counts(values)
        depth = np.bincount(position, weights=values, minlength=len(unique)).astype(np.float32)
        empty = np.flatnonzero(depth <= 0)
        if empty.size:
            raise InputError(
                f"SOMA experiment {self.name!r}: cells with soma_joinid "
                f"{self.joinids[unique[empty[:3]]].tolist()} have no counts in X[{self.X_name!r}]; "
                "exclude them with value_filter (e.g. 'nnz > 0')"
            )
        column = self._column_of[np.minimum(genes, len(self._column_of) - 1)]
        column[genes >= len(self._column_of)] = -1
        keep = column >= 0
        block = sp.csr_matrix(
            (values[keep], (position[keep], column[keep])),
            shape=(len(unique), len(self.columns)),
        )
        back = np.empty(len(rows), dtype=np.int64)
        back[order] = inverse
        return block[back], depth[back]

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """Counts of ``rows`` (any order) over the matched genes (see :meth:`read`)."""
        return self.read(rows)[0]
