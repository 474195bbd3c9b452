"""h5ad storage: anndata's layout with the network in ``varp/GRN`` (CSR), written atomically.

Files of the original grnndata 1.x (dense or sparse ``varp["GRN"]``) and of plain anndata load
as they are.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from pathlib import Path
from typing import Any

import anndata
import h5py

from .._matrix import GRN_KEY
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

log = logging.getLogger(__name__)

__all__ = ["read_h5ad", "write_anndata_h5ad", "write_h5ad"]


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
    (:class:`~grnndata.atomic.OutputExistsError`) unless ``overwrite``. Extra ``kwargs`` are
    HDF5 dataset options (as in :meth:`anndata.AnnData.write_h5ad`); the file is built in memory
    and written in one piece (:func:`write_anndata_h5ad`), so a full disk is a one-line
    ``OSError``.
    """
    if not isinstance(grn, GRNAnnData):
        raise TypeError(f"write_h5ad expects a GRNAnnData, got {type(grn).__name__}")
    path = Path(filename)
    validate_for_writing(grn)
    with atomic_path(path, "h5ad", overwrite=overwrite) as tmp:
        write_anndata_h5ad(
            plain_anndata(grn, with_network=True), tmp, compression=compression, **kwargs
        )
    log.info("wrote %s (%d genes, %d cells)", path, grn.n_vars, grn.n_obs)


def read_h5ad(filename: str | os.PathLike, *, key: str = GRN_KEY) -> GRNAnnData:
    """Read an h5ad file with a network in ``varp[key]`` (grnndata, original grnndata 1.x, anndata).

    ``key`` is ``"GRN"`` by default (the packages' convention); a network under another key of a
    plain AnnData file moves to ``varp["GRN"]`` of the result. Sparse indices stored as 8/16-bit
    unsigned integers are read as int32. :class:`GRNStoreError` for an unreadable file or one
    without a network in ``varp[key]`` (naming the varp keys it has).
    """
    path = existing_path(filename, "h5ad file")
    try:
        adata = anndata.read_h5ad(path)
    except Exception as err:
        raise GRNStoreError(
            f"{str(path)!r} could not be read as an h5ad file ({type(err).__name__}: {err}); "
            "it may be truncated or corrupted"
        ) from err
    out = require_network(adata, repr(str(path)), key)
    upcast_indices(out)
    return out


def write_anndata_h5ad(
    adata: anndata.AnnData,
    path: str | os.PathLike,
    *,
    compression: str | None = None,
    **dataset_kwargs: Any,
) -> None:
    """Write ``adata`` (any AnnData) to the new h5ad file ``path`` without letting HDF5 write to
    the disk.

    The file is built in memory (h5py on a ``BytesIO``, anndata's element writers: the layout of
    :meth:`anndata.AnnData.write_h5ad`) and then written with plain Python I/O. HDF5 closing a
    file it could not flush (a full disk, a file-size limit) can crash the process; here a write
    that fails raises ``OSError`` in one line and removes ``path``. Costs memory of the size of
    the file while writing. Used inside :func:`grnndata.atomic.atomic_path` (``path`` is its
    temporary), as by :func:`write_h5ad`.

    Args:
        adata: the AnnData (its string columns become categoricals, as anndata's writer does).
        path: the file to create (must not exist).
        compression: HDF5 compression of the datasets (``"gzip"``, ``None``...).
        dataset_kwargs: further HDF5 dataset options.

    Raises:
        OSError: the file could not be written (e.g. ``ENOSPC``: no space left on the device).
    """
    from anndata.io import write_elem

    path = Path(path)
    if adata.isbacked:
        raise ValueError("write_anndata_h5ad needs an in-memory AnnData, got a backed one")
    adata.strings_to_categoricals()
    if adata.raw is not None:
        adata.strings_to_categoricals(adata.raw.var)
    options = {**dataset_kwargs, **({"compression": compression} if compression else {})}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        write_elem(handle, "/", adata, dataset_kwargs=options)
    image = buffer.getbuffer()
    try:
        with open(path, "xb") as out:
            out.write(image)
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        path.unlink(missing_ok=True)
        reason = err.strerror or os.strerror(err.errno or errno.EIO)
        raise OSError(
            err.errno,
            f"could not write {str(path)!r} ({len(image) / 1e6:.1f} MB): {reason}",
        ) from None
    finally:
        image.release()
