"""Storage of :class:`~grnndata.GRNAnnData`: zarr and h5ad, atomic writes, lazy partial reads.

Layout (zarr): the AnnData layout that ``anndata.write_zarr`` produces, so plain
``anndata.read_zarr`` reads the file. The network (rows = regulators, columns = targets) is the
``csr_matrix`` group ``varp/GRN`` (``indptr``, ``indices``, ``data``) with small chunks
(``chunk_size`` elements, default 4096) so that reading the rows of a few genes touches few bytes.
Inside that group a second ``csc_matrix`` group, ``varp/GRN/grnndata_column_index``, holds the same
network in column-major order with larger chunks (``index_chunk_size``, default 65536): one
target's regulators are then about as cheap to read as one regulator's targets. Small chunks cost
write and full-read time (zarr has a per-chunk overhead); the defaults keep a 100-gene query of a
20,000-gene, 10M-edge network under a few percent of the file.
anndata ignores this extra child when it reads ``varp/GRN``. Its attributes carry the number of
edges and checksums that :func:`read_zarr` checks to detect a truncated or corrupted store
(zarr reads a missing chunk as zeros, silently).

Writes go through :mod:`grnndata.atomic`: the new store/file is written beside the target under a
temporary name and swapped in only once complete (a directory exchange on Linux), so a crash
mid-write leaves the previous version intact, and a path that is not a zarr store / HDF5 file
(e.g. a folder of the user's files) is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr
from anndata.experimental import read_dispatched

from ._integrity import (
    check_sparse_group,
    check_sparse_groups,
    new_write_id,
    record_manifest,
    store_token,
    verify_manifest,
)
from ._matrix import GRN_KEY, ORIENTATION, canonical_network, check_unique_genes, examples
from .atomic import atomic_path, recover
from .core import GRNAnnData

try:  # anndata >= 0.11
    from anndata.io import read_elem, write_elem
except ImportError:  # anndata 0.10
    from anndata.experimental import read_elem, write_elem

log = logging.getLogger(__name__)

COLUMN_INDEX = "grnndata_column_index"
DEFAULT_CHUNK_SIZE = 4096
DEFAULT_INDEX_CHUNK_SIZE = 65536
SHARD_ELEMENTS = 1 << 20
_ZARR3 = int(zarr.__version__.split(".")[0]) >= 3

__all__ = [
    "COLUMN_INDEX",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_INDEX_CHUNK_SIZE",
    "GRNStoreError",
    "LazyGRN",
    "open_zarr",
    "read_h5ad",
    "read_zarr",
    "write_h5ad",
    "write_zarr",
]


class GRNStoreError(ValueError):
    """A store or file cannot be read as a network: missing, truncated, corrupted or without one."""


# --------------------------------------------------------------------------- writing
def _plain_anndata(grn: GRNAnnData, *, with_network: bool) -> anndata.AnnData:
    """A plain AnnData sharing ``grn``'s arrays (anndata's writers dispatch on the exact type)."""
    varp = {k: v for k, v in grn.varp.items() if with_network or k != GRN_KEY}
    return anndata.AnnData(
        X=grn.X,
        obs=grn.obs,
        var=grn.var,
        uns=dict(grn.uns),
        layers=dict(grn.layers),
        obsm=dict(grn.obsm),
        varm=dict(grn.varm),
        obsp=dict(grn.obsp),
        varp=varp,
        raw=grn.raw,
    )


def _zarr_format(requested: int | None) -> int:
    """The zarr format to write: ``requested``, else anndata's ``zarr_write_format`` (or 2)."""
    settings = getattr(anndata, "settings", None)  # anndata >= 0.11
    default = getattr(settings, "zarr_write_format", 2)
    fmt = default if requested is None else requested
    if fmt not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {requested!r}")
    if fmt == 3 and not _ZARR3:
        raise ValueError(
            f"zarr_format=3 needs zarr>=3 (installed: zarr {zarr.__version__}); use zarr_format=2"
        )
    return fmt


def _open_group_for_write(path: Path, fmt: int) -> Any:
    if _ZARR3:
        return zarr.open_group(str(path), mode="w", zarr_format=fmt)
    return zarr.open_group(str(path), mode="w")


def _chunking(chunk: int, size: int, fmt: int) -> dict[str, tuple[int]]:
    """Chunks of ``chunk`` elements; with zarr format 3 also shards of up to ~1M elements
    (one file per shard instead of one per chunk; reads still fetch single chunks)."""
    if fmt != 3:
        return {"chunks": (chunk,)}
    per_shard = max(1, min(SHARD_ELEMENTS // chunk, -(-max(size, 1) // chunk)))
    return {"chunks": (chunk,), "shards": (chunk * per_shard,)}


def write_zarr(
    grn: GRNAnnData,
    store: str | os.PathLike,
    *,
    chunk_size: int | None = None,
    index_chunk_size: int | None = None,
    zarr_format: int | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``grn`` atomically to the zarr store ``store`` (a directory).

    Parameters
    ----------
    grn
        The object to write; its network (rows = regulators, columns = targets) goes to
        ``varp/GRN`` as CSR, plus a CSC column index (see the module docstring).
    store
        Target directory. An existing zarr store there is replaced only once the new one is
        complete (:func:`grnndata.atomic.atomic_path`); any other existing file or non-empty
        directory is refused (:class:`~grnndata.atomic.OutputExistsError`, a
        ``FileExistsError``) unless ``overwrite``.
    chunk_size
        Elements per chunk of the CSR ``indices``/``data`` arrays (default 4096). Smaller chunks
        make multi-gene partial reads (:meth:`LazyGRN.get`) cheaper and writes slower.
    index_chunk_size
        Elements per chunk of the CSC column index (default 65536), read by
        :meth:`LazyGRN.regulators`.
    zarr_format
        2 or 3; default: anndata's ``settings.zarr_write_format`` (2 unless changed). Format 3
        (zarr>=3, read by anndata>=0.11) groups chunks into shards of about 1M elements: a few
        dozen files instead of thousands, with the same partial reads.
    overwrite
        Replace ``store`` even if it is not a zarr store (its contents are deleted).
    """
    if not isinstance(grn, GRNAnnData):
        raise TypeError(f"write_zarr expects a GRNAnnData, got {type(grn).__name__}")
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    index_chunk = DEFAULT_INDEX_CHUNK_SIZE if index_chunk_size is None else int(index_chunk_size)
    if chunk < 1 or index_chunk < 1:
        raise ValueError(
            "chunk_size and index_chunk_size must be positive numbers of elements, got "
            f"{chunk_size!r} and {index_chunk_size!r}"
        )
    path = Path(store)
    fmt = _zarr_format(zarr_format)
    _validate_for_writing(grn)
    with atomic_path(path, "zarr", overwrite=overwrite) as tmp:
        root = _open_group_for_write(tmp, fmt)
        with warnings.catch_warnings():
            # anndata announces a future default; the network's chunking is set explicitly below
            warnings.filterwarnings("ignore", message=".*autosharding", category=UserWarning)
            write_elem(root, "/", _plain_anndata(grn, with_network=False))
        varp = root["varp"]
        if grn.is_stack:
            stack = grn.grn_stack
            side = max(1, min(stack.shape[0], 256))
            write_elem(
                varp, GRN_KEY, stack, dataset_kwargs={"chunks": (side, side, stack.shape[2])}
            )
        else:
            matrix = grn.grn
            write_elem(varp, GRN_KEY, matrix, dataset_kwargs=_chunking(chunk, matrix.nnz, fmt))
            group = varp[GRN_KEY]
            write_elem(
                group,
                COLUMN_INDEX,
                matrix.tocsc(),
                dataset_kwargs=_chunking(index_chunk, matrix.nnz, fmt),
            )
            group[COLUMN_INDEX].attrs.update(_checksums(matrix))
        record_manifest(root, new_write_id())
        if fmt == 2:  # consolidated metadata is not part of the zarr v3 specification
            zarr.consolidate_metadata(str(tmp))
    log.info("wrote %s (%d genes, %d cells)", path, grn.n_vars, grn.n_obs)


def _validate_for_writing(grn: GRNAnnData) -> None:
    """Refuse to write what :func:`read_zarr` / :func:`read_h5ad` would refuse to read.

    The network is checked in full (square, ``n_vars``, finite: writing ``varp["GRN"]`` directly
    bypasses the check on assignment), and gene names must still be unique.
    """
    check_unique_genes(grn.var_names, what="var_names (gene names)")
    canonical_network(grn.varp[GRN_KEY], grn.n_vars, where="the network varp['GRN']")


def _checksums(matrix: sp.csr_matrix) -> dict[str, Any]:
    return {
        "nnz": int(matrix.nnz),
        "shape": [int(s) for s in matrix.shape],
        "data_sum": float(np.sum(matrix.data, dtype=np.float64)),
        "indices_sum": int(np.sum(matrix.indices, dtype=np.int64)),
        "orientation": ORIENTATION,
    }


def write_h5ad(
    grn: GRNAnnData,
    filename: str | os.PathLike,
    *,
    compression: str | None = "gzip",
    overwrite: bool = False,
    **kwargs: Any,
) -> None:
    """Write ``grn`` atomically to an h5ad file (network in ``varp/GRN``, CSR).

    The file is written under a temporary name beside ``filename`` and renamed over it once
    complete (:func:`grnndata.atomic.atomic_path`), so an existing file is never left
    half-written. An existing path that is not an HDF5 file is refused
    (:class:`~grnndata.atomic.OutputExistsError`) unless ``overwrite``. Extra ``kwargs`` go to
    :meth:`anndata.AnnData.write_h5ad`.
    """
    if not isinstance(grn, GRNAnnData):
        raise TypeError(f"write_h5ad expects a GRNAnnData, got {type(grn).__name__}")
    path = Path(filename)
    _validate_for_writing(grn)
    with atomic_path(path, "h5ad", overwrite=overwrite) as tmp:
        _plain_anndata(grn, with_network=True).write_h5ad(tmp, compression=compression, **kwargs)
    log.info("wrote %s (%d genes, %d cells)", path, grn.n_vars, grn.n_obs)


# --------------------------------------------------------------------------- full reads
def _require_network(adata: anndata.AnnData, source: str) -> GRNAnnData:
    if GRN_KEY not in adata.varp:
        raise GRNStoreError(
            f"{source} holds no network: varp has {list(adata.varp.keys())}, expected "
            "varp['GRN'] (regulators x targets)"
        )
    try:
        return GRNAnnData.from_adata(adata)
    except ValueError as err:
        raise GRNStoreError(f"{source} holds an invalid network: {err}") from err


def _existing(path: str | os.PathLike, what: str) -> Path:
    """``path``, restored first from the backup of a writer killed mid-swap if it is missing."""
    path = Path(path)
    if not path.exists() and recover(path) is None:
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    return path


def read_zarr(store: str | os.PathLike) -> GRNAnnData:
    """Read a whole zarr store written by grnndata or plain anndata (``varp["GRN"]`` required).

    Every array of a grnndata store (expression, obs, var, layers, the network, ...) is first
    compared with the manifest recorded at write time (number, size and CRC-32 of its chunk
    objects; see :mod:`grnndata._integrity`), so a missing or damaged chunk raises instead of
    reading as zeros. A store without a manifest (written by plain anndata) has its sparse
    matrices checked for self-consistency. The network is read from its column index (large
    chunks, fast) and converted to CSR, then compared with the edge count and sums recorded at
    write time. Raises :class:`GRNStoreError` for a missing, truncated or corrupted store.
    """
    path = _existing(store, "zarr store")
    source = repr(str(path))
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as err:
        raise GRNStoreError(
            f"{source} is not a readable zarr store ({type(err).__name__}: {err})"
        ) from err
    return _read_root(root, source)


def _verify_store(root: Any, source: str) -> None:
    """Every array against the manifest written with the store; else sparse self-consistency."""
    if not verify_manifest(root, source, error=GRNStoreError):
        check_sparse_groups(root, source, error=GRNStoreError)


def _read_root(root: Any, source: str) -> GRNAnnData:
    _verify_store(root, source)

    def callback(read: Any, elem_name: str, elem: Any, iospec: Any) -> Any:
        if elem_name.rstrip("/").endswith(f"varp/{GRN_KEY}") and _column_index(elem) is not None:
            return sp.csr_matrix(read(elem[COLUMN_INDEX]))
        return read(elem)

    try:
        if _column_index(_network_node(root)) is not None:
            adata = read_dispatched(root, callback)
        else:
            adata = anndata.read_zarr(root)
    except GRNStoreError:
        raise
    except Exception as err:
        raise GRNStoreError(
            f"{source} could not be read as an AnnData zarr store "
            f"({type(err).__name__}: {err}); it may be truncated or corrupted"
        ) from err
    out = _require_network(adata, source)
    _verify_checksums(root, out, source)
    return out


def _network_node(root: Any) -> Any:
    if "varp" in root and GRN_KEY in root["varp"]:
        return root["varp"][GRN_KEY]
    return None


def _column_index(node: Any) -> Any:
    """The grnndata column-index group inside ``varp/GRN``, or ``None``."""
    if not isinstance(node, zarr.Group) or COLUMN_INDEX not in node:
        return None
    index = node[COLUMN_INDEX]
    return index if "nnz" in index.attrs else None


def _verify_checksums(root: Any, grn: GRNAnnData, source: str) -> None:
    if grn.is_stack:
        return
    node = _network_node(root)
    index = _column_index(node)
    if index is None:
        return
    attrs = dict(index.attrs)
    missing = [name for name in ("indptr", "indices", "data") if name not in node]
    if missing:
        raise GRNStoreError(f"{source} is truncated: varp/GRN lacks the array(s) {missing}")
    n_rows = grn.n_vars + 1
    if node["indptr"].shape != (n_rows,) or node["indices"].shape != (attrs["nnz"],):
        raise GRNStoreError(
            f"{source} is corrupted: varp/GRN has indptr {node['indptr'].shape} and indices "
            f"{node['indices'].shape}; expected ({n_rows},) and ({attrs['nnz']},)"
        )
    if int(node["indptr"][-1]) != attrs["nnz"]:
        raise GRNStoreError(
            f"{source} is truncated or corrupted: varp/GRN/indptr ends at "
            f"{int(node['indptr'][-1])}, expected {attrs['nnz']} edges"
        )
    data = node["data"]
    if data.nchunks_initialized < data.nchunks:  # sharded arrays may count more
        raise GRNStoreError(
            f"{source} is truncated: {data.nchunks - data.nchunks_initialized} of "
            f"{data.nchunks} chunks of varp/GRN/data are missing"
        )
    expected = {k: attrs[k] for k in ("nnz", "data_sum", "indices_sum")}
    # the loaded matrix went through canonical_network, which drops stored zeros: a chunk that zarr
    # filled with zeros shows up as missing edges or a different sum
    got = _checksums(grn.grn)
    if got["nnz"] != expected["nnz"] or got["indices_sum"] != expected["indices_sum"]:
        raise GRNStoreError(
            f"{source} is corrupted or truncated: the network should have {expected['nnz']} edges "
            f"(indices sum {expected['indices_sum']}) but {got['nnz']} were read "
            f"(indices sum {got['indices_sum']})"
        )
    if not np.isclose(got["data_sum"], expected["data_sum"], rtol=1e-9, atol=1e-6):
        raise GRNStoreError(
            f"{source} is corrupted or truncated: edge weights sum to {got['data_sum']!r}, "
            f"expected {expected['data_sum']!r}"
        )


def read_h5ad(filename: str | os.PathLike) -> GRNAnnData:
    """Read an h5ad file with a network in ``varp["GRN"]`` (grnndata, original grnndata 1.x, anndata)."""
    path = _existing(filename, "h5ad file")
    try:
        adata = anndata.read_h5ad(path)
    except Exception as err:
        raise GRNStoreError(
            f"{str(path)!r} could not be read as an h5ad file ({type(err).__name__}: {err}); "
            "it may be truncated or corrupted"
        ) from err
    return _require_network(adata, repr(str(path)))


# --------------------------------------------------------------------------- lazy reads
class _CompressedAxis:
    """One compressed sparse group (CSR or CSC) on disk, read range by range.

    ``major`` positions are rows for CSR and columns for CSC; ``indices`` hold the other axis.
    ``canonical`` marks a group that grnndata wrote (indices sorted within each major position,
    no stored zeros): reads are then checked, so that a missing chunk, which zarr returns as
    zeros, raises :class:`GRNStoreError` instead of silently dropping edges.
    """

    def __init__(self, group: Any, *, source: str, canonical: bool) -> None:
        self.indptr_array = group["indptr"]
        self.indices = group["indices"]
        self.data = group["data"]
        self.source = source
        self.canonical = canonical
        self.n_minor = int(group.attrs["shape"][1])  # square: rows and columns are the genes
        self._indptr: np.ndarray | None = None

    @property
    def indptr(self) -> np.ndarray:
        if self._indptr is None:
            self._indptr = np.asarray(self.indptr_array[:], dtype=np.int64)
        return self._indptr

    def bounds(self, majors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of ``majors``; reads only their ``indptr`` chunks when few."""
        if self._indptr is None and len(majors) <= 256:
            needed = np.unique(np.concatenate([majors, majors + 1]))
            values = np.asarray(self.indptr_array.oindex[needed], dtype=np.int64)
            return values[np.searchsorted(needed, majors)], values[
                np.searchsorted(needed, majors + 1)
            ]
        return self.indptr[majors], self.indptr[majors + 1]

    def slices(self, majors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries of the ``majors``: (position in ``majors``, minor index, weight)."""
        starts, ends = self.bounds(majors)
        lengths = ends - starts
        if (lengths < 0).any() or (ends > self.data.shape[0]).any():
            raise GRNStoreError(
                f"{self.source} is corrupted or truncated: indptr is not increasing or points "
                f"past the {self.data.shape[0]} stored edges"
            )
        total = int(lengths.sum())
        owner = np.repeat(np.arange(len(majors)), lengths)
        if total == 0:
            return owner, np.empty(0, np.int64), np.empty(0, np.float32)
        try:
            if len(majors) == 1:
                span = slice(int(starts[0]), int(ends[0]))
                minor, weight = self.indices[span], self.data[span]
            else:
                offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
                coords = offsets + np.arange(total)
                minor, weight = self.indices.oindex[coords], self.data.oindex[coords]
        except Exception as err:
            raise GRNStoreError(
                f"{self.source} is corrupted or truncated: reading edges failed "
                f"({type(err).__name__}: {err})"
            ) from err
        minor = np.asarray(minor, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float32)
        if minor.size and (minor.min() < 0 or minor.max() >= self.n_minor):
            raise GRNStoreError(
                f"{self.source} is corrupted: an edge points to gene {int(minor.max())}, "
                f"outside the {self.n_minor} genes"
            )
        if self.canonical:
            self._check(owner, minor, weight)
        return owner, minor, weight

    def _check(self, owner: np.ndarray, minor: np.ndarray, weight: np.ndarray) -> None:
        same_owner = owner[1:] == owner[:-1]
        if (weight == 0).any() or (same_owner & (minor[1:] <= minor[:-1])).any():
            raise GRNStoreError(
                f"{self.source} is corrupted or truncated: the edges read are not in the order "
                "grnndata wrote them (zero weights or unsorted indices, as from a missing chunk)"
            )

    def scan(self, minor: int) -> tuple[np.ndarray, np.ndarray]:
        """All majors holding ``minor`` (reads every index: the slow path without an index)."""
        indices = np.asarray(self.indices[:], dtype=np.int64)
        hits = np.flatnonzero(indices == minor)
        majors = np.searchsorted(self.indptr, hits, side="right") - 1
        return majors, np.asarray(self.data.oindex[hits], dtype=np.float32)


class LazyGRN:
    """A network in a zarr store, opened without loading it (rows = regulators, columns = targets).

    Queries read only the chunks they need: :meth:`targets` one row of the CSR ``varp/GRN``,
    :meth:`regulators` one column of the CSC column index, :meth:`get` the rows of the requested
    genes. Use :func:`open_zarr` to create one.

    Opening checks that no chunk of the genes, the network or its metadata is missing or
    resized (against the store's manifest; a store without one has its sparse network checked
    for consistency). Every query then checks that the store was not replaced since it was
    opened (new write id, or a new directory at the path) and raises :class:`GRNStoreError`
    if it was: open it again to read the new version.
    """

    _READ_PREFIXES = ("var/", f"varp/{GRN_KEY}/", "uns/grn/")

    def __init__(self, root: Any, source: str) -> None:
        self.source = source
        self._root = root
        self._token = store_token(root)
        has_manifest = verify_manifest(
            root, source, prefixes=self._READ_PREFIXES, contents=False, error=GRNStoreError
        )
        try:
            var = root["var"]
            index_key = var.attrs.get("_index", "_index")
            self.var_names = pd.Index([str(v) for v in read_elem(var[index_key])], dtype=object)
            varp = root["varp"]
        except Exception as err:
            raise GRNStoreError(
                f"{source} is not an AnnData zarr store with genes in var ({type(err).__name__}: {err})"
            ) from err
        check_unique_genes(self.var_names, what=f"gene names in {source}")
        if GRN_KEY not in varp:
            raise GRNStoreError(
                f"{source} holds no network: varp has {list(varp.keys())}, expected varp['GRN']"
            )
        node = varp[GRN_KEY]
        self._rows: _CompressedAxis | None = None
        self._cols: _CompressedAxis | None = None
        self._dense: Any = None
        encoding = dict(node.attrs).get("encoding-type", "array")
        if encoding == "csr_matrix":
            canonical = COLUMN_INDEX in node and "nnz" in node[COLUMN_INDEX].attrs
            self._rows = _CompressedAxis(node, source=source, canonical=canonical)
            if COLUMN_INDEX in node:
                self._cols = _CompressedAxis(node[COLUMN_INDEX], source=source, canonical=canonical)
            self.shape = tuple(int(s) for s in node.attrs["shape"])
            self.nnz = int(node["data"].shape[0])
        elif encoding == "csc_matrix":
            self._cols = _CompressedAxis(node, source=source, canonical=False)
            self.shape = tuple(int(s) for s in node.attrs["shape"])
            self.nnz = int(node["data"].shape[0])
        elif encoding == "array":
            self._dense = node
            self.shape = tuple(int(s) for s in node.shape)
            self.nnz = -1
        else:
            raise GRNStoreError(f"{source}: varp['GRN'] has unsupported encoding {encoding!r}")
        if self.shape[:2] != (len(self.var_names), len(self.var_names)):
            raise GRNStoreError(
                f"{source}: varp['GRN'] has shape {self.shape} but there are {len(self.var_names)} genes"
            )
        if not has_manifest:
            sparse = [(f"varp/{GRN_KEY}", node)] if self._dense is None else []
            if encoding == "csr_matrix" and COLUMN_INDEX in node:
                sparse.append((f"varp/{GRN_KEY}/{COLUMN_INDEX}", node[COLUMN_INDEX]))
            for name, group in sparse:  # indices are range-checked query by query
                check_sparse_group(group, name, source, error=GRNStoreError, read_indices=False)
        self._positions = pd.Series(np.arange(len(self.var_names)), index=self.var_names)
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        """Raise :class:`GRNStoreError` if the store was replaced since it was opened."""
        if store_token(self._root) != self._token:
            raise GRNStoreError(
                f"{self.source} was replaced (rewritten) since it was opened; results could mix "
                "the old and new versions. Open it again with grnndata.open_zarr"
            )

    def __repr__(self) -> str:
        return f"LazyGRN({self.source}, {len(self.var_names)} genes, {self.nnz} edges, regulators x targets)"

    @property
    def n_vars(self) -> int:
        """Number of genes."""
        return len(self.var_names)

    @property
    def metadata(self) -> dict[str, Any]:
        """``uns["grn"]`` of the store (empty dict if absent)."""
        if "uns" not in self._root or "grn" not in self._root["uns"]:
            return {}
        meta = dict(read_elem(self._root["uns"]["grn"]))
        self._check_unchanged()
        return meta

    def _position(self, gene: str) -> int:
        try:
            return int(self._positions[gene])
        except KeyError:
            raise KeyError(
                f"gene {gene!r} is not among the {self.n_vars} genes of {self.source} "
                f"(e.g. {examples(self.var_names)})"
            ) from None

    def _series(self, positions: np.ndarray, weights: np.ndarray, name: str) -> pd.Series:
        keep = weights != 0
        positions, weights = positions[keep], weights[keep]
        order = np.lexsort((positions, -weights.astype(np.float64)))
        self._check_unchanged()
        return pd.Series(
            weights[order].astype(np.float32),
            index=pd.Index(self.var_names.to_numpy()[positions[order]], dtype=object),
            name=name,
        )

    def _single_network(self, what: str) -> None:
        if self._dense is not None and len(self.shape) == 3:
            raise ValueError(
                f"{self.source} holds a stack of {self.shape[2]} networks; {what} needs one "
                "network: use .get(genes) or .load().select_network(i)"
            )

    def targets(self, gene: str) -> pd.Series:
        """Weights from regulator ``gene`` to its targets (one row), sorted by decreasing weight."""
        self._single_network("targets")
        i = self._position(gene)
        name = f"targets of {gene}"
        if self._dense is not None:
            row = np.asarray(self._dense[i, :], dtype=np.float32)
            return self._series(np.arange(row.size), row, name)
        if self._rows is not None:
            _, cols, weights = self._rows.slices(np.array([i]))
            return self._series(cols, weights, name)
        log.info("%s has no row index; scanning all edges for the targets of %s", self.source, gene)
        cols, weights = self._cols.scan(i)
        return self._series(cols, weights, name)

    def regulators(self, gene: str) -> pd.Series:
        """Weights into target ``gene`` from its regulators (one column), sorted by decreasing weight."""
        self._single_network("regulators")
        j = self._position(gene)
        name = f"regulators of {gene}"
        if self._dense is not None:
            column = np.asarray(self._dense[:, j], dtype=np.float32)
            return self._series(np.arange(column.size), column, name)
        if self._cols is not None:
            _, rows, weights = self._cols.slices(np.array([j]))
            return self._series(rows, weights, name)
        log.info(
            "%s has no column index (not written by grnndata); scanning all edges for the "
            "regulators of %s",
            self.source,
            gene,
        )
        rows, weights = self._rows.scan(j)
        return self._series(rows, weights, name)

    def get(self, genes: Sequence[str]) -> GRNAnnData:
        """Sub-network over ``genes`` (caller's order) as a :class:`GRNAnnData` without cells.

        Reads only the requested genes' rows (or columns) and the var metadata rows.
        """
        wanted = pd.Index([str(g) for g in genes], dtype=object)
        check_unique_genes(wanted, what="requested genes")
        positions = self.var_names.get_indexer(wanted)
        if (positions < 0).any():
            unknown = wanted[positions < 0]
            raise KeyError(
                f"{len(unknown)} requested gene(s) are not in {self.source}, e.g. {examples(unknown)}"
            )
        k = len(positions)
        if self._dense is not None:
            block = np.asarray(self._dense.oindex[positions, positions], dtype=np.float32)
        else:
            lookup = np.full(self.n_vars, -1, dtype=np.int64)
            lookup[positions] = np.arange(k)
            axis = self._rows if self._rows is not None else self._cols
            owner, minor, weights = axis.slices(positions.astype(np.int64))
            other = lookup[minor]
            keep = other >= 0
            owner, other, weights = owner[keep], other[keep], weights[keep]
            if axis is self._cols:
                owner, other = other, owner
            block = sp.csr_matrix((weights, (owner, other)), shape=(k, k), dtype=np.float32)
        var = self._read_var_rows(positions)
        out = GRNAnnData(X=sp.csr_matrix((0, k), dtype=np.float32), grn=block, var=var)
        meta = self.metadata  # also checks that the store was not replaced meanwhile
        if meta:
            out.uns["grn"] = meta
        else:
            self._check_unchanged()
        return out

    def _read_var_rows(self, positions: np.ndarray) -> pd.DataFrame:
        var = read_elem(self._root["var"])
        var.index = var.index.astype(str)
        return var.iloc[positions]

    def load(self) -> GRNAnnData:
        """Read the whole store (expression included) with :func:`read_zarr` semantics."""
        self._check_unchanged()
        out = _read_root(self._root, self.source)
        self._check_unchanged()
        return out


def open_zarr(store: str | os.PathLike | Any) -> LazyGRN:
    """Open a network zarr store lazily (nothing but the gene names is read).

    ``store`` is a path or any zarr store / group (e.g. a wrapper that counts bytes read).
    """
    if isinstance(store, str | os.PathLike):
        path = _existing(store, "zarr store")
        source = repr(str(path))
        target: Any = str(path)
    else:
        source = f"<{type(store).__name__}>"
        target = store
    try:
        root = target if isinstance(target, zarr.Group) else zarr.open_group(target, mode="r")
    except Exception as err:
        raise GRNStoreError(
            f"{source} is not a readable zarr store ({type(err).__name__}: {err})"
        ) from err
    return LazyGRN(root, source)
