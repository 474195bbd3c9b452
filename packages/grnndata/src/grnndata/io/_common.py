"""What every storage format shares: the store error, the plain AnnData handed to anndata's
writers, checks before writing and after reading, and the restore of a path whose writer died."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import scipy.sparse as sp

from .._matrix import GRN_KEY, canonical_network, check_unique_genes, missing_network
from ..atomic import recover
from ..core import GRNAnnData

__all__ = ["GRNStoreError", "require_network", "upcast_indices"]


class GRNStoreError(ValueError):
    """A store or file cannot be read as a network: missing, truncated, corrupted or without one."""


def plain_anndata(grn: GRNAnnData, *, with_network: bool) -> anndata.AnnData:
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


def validate_for_writing(grn: GRNAnnData) -> None:
    """Refuse to write what :func:`read_zarr` / :func:`read_h5ad` would refuse to read.

    The network is checked in full (square, ``n_vars``, finite: writing ``varp["GRN"]`` directly
    bypasses the check on assignment), and gene names must still be unique.
    """
    check_unique_genes(grn.var_names, what="var_names (gene names)")
    canonical_network(grn.varp[GRN_KEY], grn.n_vars, where="the network varp['GRN']")


def require_network(adata: anndata.AnnData, source: str, key: str = GRN_KEY) -> GRNAnnData:
    """``adata`` as a :class:`GRNAnnData` (network from ``varp[key]``, moved to ``varp["GRN"]``);
    :class:`GRNStoreError` naming ``source`` and the varp keys if it holds no valid network."""
    message = missing_network(list(adata.varp.keys()), key, source)
    if message is not None:
        raise GRNStoreError(message)
    try:
        return GRNAnnData.from_adata(adata, key=key)
    except ValueError as err:
        raise GRNStoreError(f"{source} holds an invalid network in varp[{key!r}]: {err}") from err


def upcast_indices(adata: anndata.AnnData) -> None:
    """Sparse matrices of ``adata`` with unsigned 8/16-bit indices (written by anndata's
    smallest-dtype option, as grnndata's zarr v3 stores are) get int32 indices, in place: scipy
    operations warn on, or convert, such indices one by one. Costs one copy of the indices."""
    slots: list[Any] = [adata.layers, adata.obsm, adata.varm, adata.obsp, adata.varp]
    for mapping in slots:
        for name in list(mapping.keys()):
            value = mapping[name]
            if _narrow_indices(value):
                mapping[name] = _widened(value)
    if _narrow_indices(adata.X):
        adata.X = _widened(adata.X)
    if adata.raw is not None and _narrow_indices(adata.raw.X):
        raw = adata.raw.to_adata()
        raw.X = _widened(raw.X)
        adata.raw = raw


def _narrow_indices(value: Any) -> bool:
    indices = getattr(value, "indices", None)
    return (
        sp.issparse(value)
        and isinstance(indices, np.ndarray)
        and indices.dtype.kind == "u"
        and indices.dtype.itemsize < 4
    )


def _widened(matrix: Any) -> Any:
    """``matrix`` with int32 indices and indptr (int64 past 2**31 values): scipy's own choice."""
    dtype = np.int32 if matrix.indices.size < 2**31 - 1 else np.int64
    matrix.indices = matrix.indices.astype(dtype)
    matrix.indptr = matrix.indptr.astype(dtype)
    return matrix


def existing_path(path: str | os.PathLike, what: str) -> Path:
    """``path``, restored first from the backup of a writer killed mid-swap if it is missing."""
    path = Path(path)
    if not path.exists() and recover(path) is None:
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    return path
