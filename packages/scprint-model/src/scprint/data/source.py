"""One dataset of cells, read lazily: rows of its count matrix restricted to vocabulary genes.

A :class:`CellSource` opens an ``.h5ad`` file or a ``.zarr`` store without loading ``X`` (CSR, CSC
or dense on disk), or wraps an in-memory :class:`~anndata.AnnData`. Small matrices are loaded into
memory as CSR over the matched genes (one slice per batch costs microseconds) while the process's
in-memory budget (:data:`IN_MEMORY_MAX_VALUES` stored values over all loaded files) lasts; the rest
stay on disk and are read in contiguous blocks (see :class:`~scprint.data.streams.BlockStream`),
so a collection larger than RAM trains in bounded memory. :class:`~scprint.data.soma.SomaSource`
reads a TileDB-SOMA experiment through the same interface.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from scprint.errors import InputError

from .checks import check_has_cells, check_raw_counts, check_unique_var_names
from .organisms import check_cells_organism, check_organism
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)

#: Files are loaded into memory while all files loaded by default hold at most this many stored
#: values together (about 1.2 GB as CSR); the others are read from disk.
IN_MEMORY_MAX_VALUES = 100_000_000
#: Contiguous cells of a block of the training stream (a source attribute, see ``block_size``);
#: tiledbsoma-ml's ``shuffle_chunk_size`` is 64 as well.
DEFAULT_BLOCK_SIZE = 64
#: Memory for the cells read ahead by the training stream from a source on disk, in MB.
DEFAULT_BUFFER_MB = 256
#: Bytes per stored value of a read-ahead buffer: CSR value and index (8), twice while the
#: pieces are joined, plus the transient of the piece being read.
BYTES_PER_VALUE = 24
#: Sorted rows closer than this are read as one slice from disk.
_SLICE_GAP = 64
_SCAN_ROWS = 4096
_loaded = {"values": 0}
_loaded_lock = threading.Lock()


def _reserve(n_values: int) -> bool:
    """Reserve ``n_values`` of the process's in-memory budget; False when it does not fit."""
    with _loaded_lock:
        if _loaded["values"] + n_values > IN_MEMORY_MAX_VALUES:
            return False
        _loaded["values"] += n_values
        return True


def _release(n_values: int) -> None:
    with _loaded_lock:
        _loaded["values"] -= n_values


def _open_matrix(path: Path) -> tuple[Any, ad.AnnData]:
    """The on-disk ``X`` (sparse dataset or dense array) and an X-less AnnData of obs/var."""
    from anndata.io import read_elem, sparse_dataset

    if path.suffix == ".h5ad":
        backed = ad.read_h5ad(path, backed="r")
        return backed.X, ad.AnnData(obs=backed.obs, var=backed.var, uns=_organism_uns(backed.uns))
    if not (path.suffix == ".zarr" or path.is_dir()):
        raise InputError(f"dataset {str(path)!r}: expected an .h5ad file or a .zarr store")
    import zarr

    store = zarr.open(str(path), mode="r")
    if "X" not in store:
        raise InputError(f"dataset {str(path)!r} has no X matrix")
    node = store["X"]
    encoding = str(node.attrs.get("encoding-type", "array"))
    matrix = sparse_dataset(node) if encoding in ("csr_matrix", "csc_matrix") else node
    uns = {}
    if "uns" in store and "organism" in store["uns"]:
        uns = {"organism": read_elem(store["uns"]["organism"])}
    meta = ad.AnnData(obs=read_elem(store["obs"]), var=read_elem(store["var"]), uns=uns)
    return matrix, meta


def _organism_uns(uns: Any) -> dict[str, Any]:
    """The part of ``uns`` the organism check reads (``uns["organism"]``), nothing else."""
    return {"organism": uns["organism"]} if "organism" in uns else {}


def _to_csr(block: Any) -> sp.csr_matrix:
    if sp.issparse(block):
        return sp.csr_matrix(block)
    return sp.csr_matrix(np.asarray(block))


class CellSource:
    """Cells of one dataset, with raw-count checks and per-cell depth.

    Refused on opening with :class:`~scprint.errors.InputError` (:mod:`scprint.data.checks`,
    the tasks' checks): no cell, a duplicated gene name, counts that are not finite,
    non-negative integers, a cell without counts; on :meth:`bind`, cells of another organism
    than the vocabulary's (:func:`~scprint.data.organisms.check_cells_organism`).

    Args:
        data: path to ``.h5ad``/``.zarr`` or an AnnData (raw counts in ``X``).
        name: display name (default: file name).
        in_memory: load ``X`` into memory as CSR (default: an AnnData's ``X`` when it has at most
            :data:`IN_MEMORY_MAX_VALUES` stored values; a file when it fits in what is left of the
            process budget of as many values, shared by all files loaded by default, so the
            memory of a many-file collection stays bounded).

    Attributes:
        meta: AnnData with ``obs`` and ``var`` only.
        depth: ``(n_cells,)`` float32 total counts of each cell over all its genes.
        block_size: cells read together by the training stream when ``X`` stays on disk.
        buffer_mb: memory (MB) for the cells the training stream reads ahead from this source.
    """

    block_size: int = DEFAULT_BLOCK_SIZE
    buffer_mb: float = DEFAULT_BUFFER_MB

    def __init__(
        self, data: str | Path | ad.AnnData, name: str | None = None, in_memory: bool | None = None
    ) -> None:
        if isinstance(data, ad.AnnData):
            self.name = name or "AnnData"
            self.meta = ad.AnnData(
                obs=data.obs.copy(), var=data.var.copy(), uns=_organism_uns(data.uns)
            )
            self._matrix: Any = data.X
        else:
            path = Path(data)
            if not path.exists():
                raise FileNotFoundError(f"dataset {str(path)!r} does not exist")
            self.name = name or path.name
            self._matrix, self.meta = _open_matrix(path)
        if self._matrix is None:
            raise InputError(
                f"dataset {self.name!r} has no X matrix (raw counts are required in X)"
            )
        check_has_cells(self.meta.n_obs, f"dataset {self.name!r}")
        check_unique_var_names(self.meta.var_names, f"dataset {self.name!r}: var_names")
        shape = tuple(self._matrix.shape)
        if shape != (self.meta.n_obs, self.meta.n_vars):
            raise InputError(
                f"dataset {self.name!r}: X has shape {shape} but obs x var is {self.meta.shape}"
            )
        n_values = _stored_values(self._matrix)
        self.values_per_cell = n_values / max(self.n_cells, 1)
        if in_memory is None:
            if isinstance(data, ad.AnnData):  # already in memory: no copy unless small
                in_memory = n_values <= IN_MEMORY_MAX_VALUES
            elif _reserve(n_values):
                in_memory = True
                weakref.finalize(self, _release, n_values)
            else:
                in_memory = False
                log.info(
                    "%s: %d stored values left on disk (in-memory budget of %d values used)",
                    self.name,
                    n_values,
                    IN_MEMORY_MAX_VALUES,
                )
        self.in_memory = in_memory
        if in_memory and not isinstance(self._matrix, sp.csr_matrix):
            self._matrix = _to_csr(
                self._matrix[:] if not sp.issparse(self._matrix) else self._matrix
            )
        self.depth = self._scan()
        self.columns: np.ndarray | None = None
        self.vocab_index: np.ndarray | None = None

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return self.meta.n_obs

    def _scan(self) -> np.ndarray:
        """Check raw counts chunk by chunk and return the depth of each cell."""
        depth = np.empty(self.n_cells, dtype=np.float64)
        for start in range(0, self.n_cells, _SCAN_ROWS):
            stop = min(start + _SCAN_ROWS, self.n_cells)
            block = self._read(np.arange(start, stop), columns=None)
            check_raw_counts(
                block.data,
                f"dataset {self.name!r}: X",
                cells=self.meta.obs_names[start:stop],
                rows=block.indptr,
            )
            depth[start:stop] = np.asarray(block.sum(axis=1)).ravel()
        empty = np.flatnonzero(depth <= 0)
        if empty.size:
            raise InputError(
                f"dataset {self.name!r}: {empty.size} cells have no counts, e.g. "
                f"{self.meta.obs_names[empty[:3]].tolist()}; remove them first "
                "(e.g. adata = adata[adata.X.sum(axis=1).A1 > 0])"
            )
        return depth.astype(np.float32)

    def _read(self, rows: np.ndarray, columns: np.ndarray | None) -> sp.csr_matrix:
        """CSR ``(len(rows), n_columns)`` of the sorted ``rows``, restricted to ``columns``."""
        if isinstance(self._matrix, sp.csr_matrix):
            block = self._matrix[rows]
        elif len(rows) > 1 and np.all(np.diff(rows) >= 0) and not sp.issparse(self._matrix):
            # sorted rows on disk: runs of nearby rows are read as slices (faster than one by one)
            runs = np.split(rows, np.flatnonzero(np.diff(rows) > _SLICE_GAP) + 1)
            block = sp.vstack(
                [_to_csr(self._matrix[int(r[0]) : int(r[-1]) + 1])[r - r[0]] for r in runs],
                format="csr",
            )
        elif sp.issparse(self._matrix):
            block = sp.csr_matrix(self._matrix)[rows]
        elif hasattr(self._matrix, "oindex"):
            block = _to_csr(self._matrix.oindex[rows])
        else:
            block = _to_csr(self._matrix[rows])
        return block if columns is None else block[:, columns]

    def check_organism(self, organism: str) -> None:
        """Raise :class:`~scprint.errors.InputError` when ``organism`` is unknown or the cells
        declare another (:func:`~scprint.data.organisms.check_cells_organism`, as the tasks)."""
        check_organism(organism)
        check_cells_organism(
            self.meta.obs,
            [organism],
            uns=self.meta.uns,
            var_names=self.meta.var_names,
            what=f"dataset {self.name!r}",
        )

    def bind(self, vocab: Vocabulary) -> None:
        """Match this dataset's genes to ``vocab``; afterwards :meth:`rows` returns vocabulary genes."""
        self.check_organism(vocab.organism)
        columns, vocab_index = vocab.match(self.meta)
        self.columns, self.vocab_index = columns, vocab_index
        if (
            self.in_memory
            and isinstance(self._matrix, sp.csr_matrix)
            and len(columns) < self.meta.n_vars
        ):
            self._matrix_matched = self._matrix[:, columns]
        else:
            self._matrix_matched = None
        log.info(
            "%s: %d cells, %d of %d genes in the vocabulary",
            self.name,
            self.n_cells,
            len(columns),
            self.meta.n_vars,
        )

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """Counts of ``rows`` (any order) over the matched genes: CSR ``(len(rows), n_matched)`` float32.

        Column ``j`` is vocabulary gene ``self.vocab_index[j]``.
        """
        if self.columns is None:
            raise RuntimeError(f"dataset {self.name!r}: call bind(vocab) before reading rows")
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        if self._matrix_matched is not None:
            block = self._matrix_matched[rows[order]]
        else:
            block = self._read(rows[order], self.columns)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return block[inverse].astype(np.float32)

    def read(self, rows: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """Counts of ``rows`` over the matched genes (as :meth:`rows`) and their ``(len(rows),)`` depth."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.rows(rows), self.depth[rows]


def _stored_values(matrix: Any) -> int:
    if sp.issparse(matrix):
        return int(matrix.nnz)
    if hasattr(matrix, "group") and "data" in matrix.group:
        return int(matrix.group["data"].shape[0])
    return int(np.prod(matrix.shape))
