"""h5ad storage: anndata's layout with the network in ``varp/GRN`` (CSR), written atomically.

Files of the original grnndata 1.x (dense or sparse ``varp["GRN"]``) and of plain anndata load
as they are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import anndata

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

__all__ = ["read_h5ad", "write_h5ad"]


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
    validate_for_writing(grn)
    with atomic_path(path, "h5ad", overwrite=overwrite) as tmp:
        plain_anndata(grn, with_network=True).write_h5ad(tmp, compression=compression, **kwargs)
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
