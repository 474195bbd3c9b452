"""Storage of :class:`~grnndata.GRNAnnData`: zarr and h5ad, atomic writes, lazy partial reads.

One module per concept: :mod:`.zarr` (zarr writes and whole-store reads), :mod:`.h5ad`,
:mod:`.lazy` (:func:`open_zarr`: partial reads), :mod:`._common` (what they share).

Layout (zarr): the AnnData layout that ``anndata.write_zarr`` produces, so plain
``anndata.read_zarr`` reads the file. The network (rows = regulators, columns = targets) is the
``csr_matrix`` group ``varp/GRN`` (``indptr``, ``indices``, ``data``). Inside that group a second
``csc_matrix`` group, ``varp/GRN/grnndata_column_index``, holds the same network in column-major
order: one target's regulators are then as cheap to read as one regulator's targets. anndata
ignores this extra child when it reads ``varp/GRN``; its attributes carry the number of edges and
checksums that :func:`read_zarr` checks (zarr reads a missing chunk as zeros, silently).

Format: zarr v3 by default (zarr>=3; read by anndata>=0.11). Each 1-D array of the network is
one *sharded* file: 65536-element chunks, each compressed on its own (Blosc LZ4, byte shuffle),
stored back to back with an index, so a query fetches only the chunks it needs and a
20,000-gene, 10M-edge store is a few dozen files. ``zarr_format=2`` writes the previous layout:
one file per 4096-element chunk. Both formats, and stores written by plain anndata, are read.

Writes go through :mod:`grnndata.atomic`: the new store/file is written beside the target under a
temporary name and swapped in only once complete (a directory exchange on Linux), so a crash
mid-write leaves the previous version intact, and a path that is not a zarr store / HDF5 file
(e.g. a folder of the user's files) is refused unless ``overwrite=True``.
"""

from ._common import GRNStoreError
from .h5ad import read_h5ad, write_h5ad
from .lazy import LazyGRN, open_zarr
from .zarr import (
    COLUMN_INDEX,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_INDEX_CHUNK_SIZE,
    DEFAULT_ZARR_FORMAT,
    read_zarr,
    verify_zarr,
    write_zarr,
)

__all__ = [
    "COLUMN_INDEX",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_INDEX_CHUNK_SIZE",
    "DEFAULT_ZARR_FORMAT",
    "GRNStoreError",
    "LazyGRN",
    "open_zarr",
    "read_h5ad",
    "read_zarr",
    "verify_zarr",
    "write_h5ad",
    "write_zarr",
]
