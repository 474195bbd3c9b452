"""zarr storage of a :class:`~grnndata.GRNAnnData`: writes (atomic) and whole-store reads.

See :mod:`grnndata.io` for the layout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import scipy.sparse as sp
import zarr
from anndata.experimental import read_dispatched

from .._integrity import (
    check_sparse_groups,
    manifest,
    new_write_id,
    record_manifest,
    store_token,
    verify_manifest,
)
from .._matrix import GRN_KEY, ORIENTATION
from .._verified_store import verified_root
from ..atomic import atomic_path
from ..core import GRNAnnData
from ._common import (
    GRNStoreError,
    existing_path,
    plain_anndata,
    require_network,
    upcast_indices,
    validate_for_writing,
)

try:  # anndata >= 0.11
    from anndata.io import write_elem
except ImportError:  # anndata 0.10
    from anndata.experimental import write_elem

log = logging.getLogger(__name__)

COLUMN_INDEX = "grnndata_column_index"
ZARR3 = int(zarr.__version__.split(".")[0]) >= 3
DEFAULT_ZARR_FORMAT = 3 if ZARR3 else 2
# elements per chunk of the network's indices / data: format 3 (sharded) and format 2
DEFAULT_CHUNK_SIZE = {3: 65536, 2: 4096}
DEFAULT_INDEX_CHUNK_SIZE = {3: 65536, 2: 65536}
# elements per shard (format 3): the whole array up to this size, so one file per array
SHARD_ELEMENTS = 1 << 26

__all__ = [
    "COLUMN_INDEX",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_INDEX_CHUNK_SIZE",
    "DEFAULT_ZARR_FORMAT",
    "open_root",
    "read_zarr",
    "verify_zarr",
    "write_zarr",
]


def _zarr_format(requested: int | None) -> int:
    """The zarr format to write: ``requested``, else 3 (2 with zarr < 3)."""
    fmt = DEFAULT_ZARR_FORMAT if requested is None else requested
    if fmt not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {requested!r}")
    if fmt == 3 and not ZARR3:
        raise ValueError(
            f"zarr_format=3 needs zarr>=3 (installed: zarr {zarr.__version__}); use zarr_format=2"
        )
    return fmt


def _open_group_for_write(path: Path, fmt: int) -> Any:
    if ZARR3:
        return zarr.open_group(str(path), mode="w", zarr_format=fmt)
    return zarr.open_group(str(path), mode="w")


@contextlib.contextmanager
def _anndata_write_settings(fmt: int) -> Iterator[None]:
    """With format 3, sparse ``indices`` in the smallest unsigned type that holds the number of
    genes (``uint16`` up to 65,535 genes: half the bytes of ``int32``; anndata >= 0.12)."""
    settings = getattr(anndata, "settings", None)
    if fmt != 3 or not hasattr(settings, "write_csr_csc_indices_with_min_possible_dtype"):
        yield
        return
    with settings.override(write_csr_csc_indices_with_min_possible_dtype=True):
        yield


def _chunking(chunk: int, size: int, fmt: int) -> dict[str, Any]:
    """Array options of the network's 1-D arrays: chunks of ``chunk`` elements. With format 3
    the chunks are grouped into shards of the whole array (up to :data:`SHARD_ELEMENTS`): one
    file per array, from which a read still fetches single chunks (through the shard's index),
    compressed by a fast compressor (Blosc LZ4 with byte shuffle) and followed by a CRC-32C of
    the compressed bytes (zarr's ``crc32c`` codec), which zarr checks whenever it decodes the
    chunk: a partial read verifies exactly what it reads."""
    if fmt != 3:
        return {"chunks": (chunk,)}
    from zarr.codecs import BloscCodec, Crc32cCodec

    per_shard = max(1, min(SHARD_ELEMENTS // chunk, -(-max(size, 1) // chunk)))
    return {
        "chunks": (chunk,),
        "shards": (chunk * per_shard,),
        "compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()],
    }


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
        Elements per chunk of the CSR ``indices``/``data`` arrays, the unit a partial read
        fetches (default :data:`DEFAULT_CHUNK_SIZE`: 65536 for format 3, 4096 for format 2).
        Smaller chunks make multi-gene partial reads (:meth:`LazyGRN.get`) read fewer bytes and
        writes slower.
    index_chunk_size
        Elements per chunk of the CSC column index (default 65536), read by
        :meth:`LazyGRN.regulators`.
    zarr_format
        3 (default with zarr>=3; read by anndata>=0.11): each array of the network is one
        sharded file (chunks grouped in a shard, found through its index), compressed with
        Blosc LZ4: a few dozen files for the whole store. 2: one file per chunk (thousands for a
        large network), read by any anndata. The other elements (expression, obs, var, ...)
        are written by anndata with its defaults in the same format.
    overwrite
        Replace ``store`` even if it is not a zarr store (its contents are deleted).
    """
    if not isinstance(grn, GRNAnnData):
        raise TypeError(f"write_zarr expects a GRNAnnData, got {type(grn).__name__}")
    fmt = _zarr_format(zarr_format)
    chunk = DEFAULT_CHUNK_SIZE[fmt] if chunk_size is None else int(chunk_size)
    index_chunk = (
        DEFAULT_INDEX_CHUNK_SIZE[fmt] if index_chunk_size is None else int(index_chunk_size)
    )
    if chunk < 1 or index_chunk < 1:
        raise ValueError(
            "chunk_size and index_chunk_size must be positive numbers of elements, got "
            f"{chunk_size!r} and {index_chunk_size!r}"
        )
    path = Path(store)
    validate_for_writing(grn)
    with atomic_path(path, "zarr", overwrite=overwrite) as tmp:
        root = _open_group_for_write(tmp, fmt)
        with warnings.catch_warnings(), _anndata_write_settings(fmt):
            # anndata announces a future default; the network's chunking is set explicitly below
            warnings.filterwarnings("ignore", message=".*autosharding", category=UserWarning)
            write_elem(root, "/", plain_anndata(grn, with_network=False))
            varp = root["varp"]
            if grn.is_stack:
                stack = grn.grn_stack
                side = max(1, min(stack.shape[0], 256))
                write_elem(
                    varp, GRN_KEY, stack, dataset_kwargs={"chunks": (side, side, stack.shape[2])}
                )
            else:
                matrix = grn.grn
                with ThreadPoolExecutor(1) as pool:  # the column index is built meanwhile
                    by_column = pool.submit(matrix.tocsc)
                    write_elem(
                        varp, GRN_KEY, matrix, dataset_kwargs=_chunking(chunk, matrix.nnz, fmt)
                    )
                    group = varp[GRN_KEY]
                    write_elem(
                        group,
                        COLUMN_INDEX,
                        by_column.result(),
                        dataset_kwargs=_chunking(index_chunk, matrix.nnz, fmt),
                    )
                group[COLUMN_INDEX].attrs.update(_checksums(matrix))
        record_manifest(root, new_write_id())
        if fmt == 2:  # consolidated metadata is not part of the zarr v3 specification
            zarr.consolidate_metadata(str(tmp))
    log.info("wrote %s (%d genes, %d cells)", path, grn.n_vars, grn.n_obs)


def _checksums(matrix: sp.csr_matrix) -> dict[str, Any]:
    return {
        "nnz": int(matrix.nnz),
        "shape": [int(s) for s in matrix.shape],
        "data_sum": float(np.sum(matrix.data, dtype=np.float64)),
        "indices_sum": int(np.sum(matrix.indices, dtype=np.int64)),
        "orientation": ORIENTATION,
    }


def open_root(store: str | os.PathLike | Any) -> tuple[Any, str]:
    """The root group of the zarr store ``store`` (a path, or a zarr store / group) opened for
    reading, and how errors name it; :class:`GRNStoreError` when it is not a readable zarr
    store, ``FileNotFoundError`` when a path holds nothing."""
    if isinstance(store, str | os.PathLike):
        path = existing_path(store, "zarr store")
        source, target = repr(str(path)), str(path)
    else:
        source, target = f"<{type(store).__name__}>", store
    if isinstance(target, zarr.Group):
        return target, source
    try:
        return zarr.open_group(target, mode="r"), source
    except Exception as err:
        raise GRNStoreError(
            f"{source} is not a readable zarr store ({type(err).__name__}: {err})"
        ) from err


def read_zarr(store: str | os.PathLike, *, key: str = GRN_KEY) -> GRNAnnData:
    """Read a whole zarr store written by grnndata or plain anndata (a network in ``varp[key]``).

    Parameters
    ----------
    store
        The store's directory.
    key
        Where the store holds its network: ``varp["GRN"]`` (the packages' convention) or any
        other ``varp`` key of a plain AnnData store; the result holds it in ``varp["GRN"]``.

    Every chunk object of a grnndata store (expression, obs, var, layers, the network, ...) is
    checked against the manifest recorded at write time: first their number and sizes, then
    each object's CRC-32 as it is read, and finally those of the objects the read did not need
    (see :mod:`grnndata._integrity`), so a missing or damaged chunk raises instead of reading
    as zeros or as wrong values. A store without a manifest (written by plain anndata) has its
    sparse matrices checked for self-consistency. The network is read from its column index
    (large chunks, fast) and converted to CSR, then compared with the edge count and sums
    recorded at write time. Sparse indices stored as 8/16-bit unsigned integers are read as
    int32.

    Raises
    ------
    GRNStoreError
        A missing, truncated or corrupted store (naming the array), a store replaced by a writer
        while it was read, or no network in ``varp[key]`` (naming the varp keys).
    FileNotFoundError
        Nothing at ``store``.
    """
    root, source = open_root(store)
    return read_root(root, source, key=key)


def verify_zarr(store: str | os.PathLike) -> dict[str, Any]:
    """Check the integrity of a zarr store without loading it; returns what was checked.

    A store written by grnndata is compared with its manifest: every array's number of chunk
    objects and their sizes, and the checksum of every object (all bytes of the store are
    read once, nothing is decoded). A store without a manifest (written by plain anndata) can
    only have its sparse matrices checked for consistency.

    Returns
    -------
    dict: ``manifest_format`` (``None`` without a manifest), ``write_id``, and for a manifest
    the numbers of ``arrays``, ``objects`` and ``bytes`` checked; without one,
    ``sparse_matrices`` (how many were checked for consistency).

    Raises
    ------
    GRNStoreError
        The first array that differs from the manifest (missing, resized or damaged chunk
        objects, naming the array and, for format 2, the object); a store that is not a zarr
        store; a store replaced by a writer while it was checked.
    """
    root, source = open_root(store)
    token = store_token(root)
    try:
        totals = verify_manifest(root, source, error=GRNStoreError)
        if totals is None:
            return {
                "manifest_format": None,
                "write_id": None,
                "sparse_matrices": check_sparse_groups(root, source, error=GRNStoreError),
            }
    except GRNStoreError as err:
        replaced_while_reading(root, token, source, err)
        raise
    recorded = manifest(root) or {}
    return {
        "manifest_format": int(recorded.get("format", 1)),
        "write_id": recorded.get("write_id"),
        **totals,
    }


def replaced_while_reading(root: Any, token: tuple[Any, ...], source: str, err: Exception) -> None:
    """Raise :class:`GRNStoreError` saying the store was replaced if its token changed since
    ``token`` (a writer swapped in a new version while it was read: what was read may mix the
    two); return otherwise, so that the caller raises ``err``."""
    if store_token(root) != token:
        raise GRNStoreError(
            f"{source} was replaced by a writer while it was being read (the objects read "
            "belong to two versions); read it again"
        ) from err


def read_failure(source: str, element: str, err: Exception) -> str:
    """The message of a failed read of ``element``: a chunk that fails zarr's CRC-32C, or the
    decoder's own error (e.g. Blosc's for a damaged chunk of a store without checksums)."""
    if isinstance(err, ValueError) and "checksum do not match" in str(err):
        return (
            f"{source} is corrupted: array {element!r}: a chunk (or its shard's index) fails "
            "its CRC-32C checksum; the store is damaged (restore it from a copy or write it "
            "again)"
        )
    return (
        f"{source} is corrupted or truncated: reading {element!r} failed "
        f"({type(err).__name__}: {err})"
    )


def _damaged_array(root: Any, source: str, element: str) -> GRNStoreError | None:
    """After a failed read of ``element`` (e.g. a sparse group): the error naming its first
    damaged array and chunk object (checked whole against the manifest), if that finds one."""
    prefix = f"{element}/" if element else ""
    try:
        verify_manifest(root, source, prefixes=(prefix,), error=GRNStoreError)
    except GRNStoreError as found:
        return found
    return None


def read_root(root: Any, source: str, *, key: str = GRN_KEY) -> GRNAnnData:
    """Read the store opened as ``root``: see :func:`read_zarr`."""
    token = store_token(root)
    try:
        return _read_checked(root, source, key)
    except GRNStoreError as err:
        replaced_while_reading(root, token, source, err)
        raise


def _read_checked(root: Any, source: str, key: str) -> GRNAnnData:
    if verify_manifest(root, source, contents=False, error=GRNStoreError) is None:
        check_sparse_groups(root, source, error=GRNStoreError)
        checked_root, checks = root, None
    else:
        checked_root, checks = verified_root(root, source, error=GRNStoreError)

    def callback(read: Any, elem_name: str, elem: Any, iospec: Any) -> Any:
        try:
            if elem_name.rstrip("/").endswith(f"varp/{key}") and column_index(elem) is not None:
                return sp.csr_matrix(read(elem[COLUMN_INDEX]))
            return read(elem)
        except GRNStoreError:
            raise
        except Exception as err:
            element = elem_name.strip("/")
            raise _damaged_array(root, source, element) or GRNStoreError(
                read_failure(source, element, err)
            ) from err

    try:
        adata = read_dispatched(checked_root, callback)
    except GRNStoreError:
        raise
    except Exception as err:
        raise GRNStoreError(
            f"{source} could not be read as an AnnData zarr store "
            f"({type(err).__name__}: {err}); it may be truncated or corrupted"
        ) from err
    if checks is not None:  # the objects the read did not need (e.g. the CSR of the network)
        verify_manifest(root, source, error=GRNStoreError, checked=checks.checked)
    out = require_network(adata, source, key)
    upcast_indices(out)
    _verify_checksums(root, out, source, key)
    return out


def _network_node(root: Any, key: str = GRN_KEY) -> Any:
    if "varp" in root and key in root["varp"]:
        return root["varp"][key]
    return None


def column_index(node: Any) -> Any:
    """The grnndata column-index group inside ``varp/GRN``, or ``None``."""
    if not isinstance(node, zarr.Group) or COLUMN_INDEX not in node:
        return None
    index = node[COLUMN_INDEX]
    return index if "nnz" in index.attrs else None


def _verify_checksums(root: Any, grn: GRNAnnData, source: str, key: str) -> None:
    if grn.is_stack:
        return
    node = _network_node(root, key)
    index = column_index(node)
    if index is None:
        return
    attrs = dict(index.attrs)
    missing = [name for name in ("indptr", "indices", "data") if name not in node]
    if missing:
        raise GRNStoreError(f"{source} is truncated: varp/{key} lacks the array(s) {missing}")
    n_rows = grn.n_vars + 1
    if node["indptr"].shape != (n_rows,) or node["indices"].shape != (attrs["nnz"],):
        raise GRNStoreError(
            f"{source} is corrupted: varp/{key} has indptr {node['indptr'].shape} and indices "
            f"{node['indices'].shape}; expected ({n_rows},) and ({attrs['nnz']},)"
        )
    if int(node["indptr"][-1]) != attrs["nnz"]:
        raise GRNStoreError(
            f"{source} is truncated or corrupted: varp/{key}/indptr ends at "
            f"{int(node['indptr'][-1])}, expected {attrs['nnz']} edges"
        )
    data = node["data"]
    if data.nchunks_initialized < data.nchunks:  # sharded arrays may count more
        raise GRNStoreError(
            f"{source} is truncated: {data.nchunks - data.nchunks_initialized} of "
            f"{data.nchunks} chunks of varp/{key}/data are missing"
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
