"""What every storage format shares: the store error, the plain AnnData handed to anndata's
writers, checks before writing and after reading, and the restore of a path whose writer died."""

from __future__ import annotations

import os
from pathlib import Path

import anndata

from .._matrix import GRN_KEY, canonical_network, check_unique_genes
from ..atomic import recover
from ..core import GRNAnnData

__all__ = ["GRNStoreError"]


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


def require_network(adata: anndata.AnnData, source: str) -> GRNAnnData:
    """``adata`` as a :class:`GRNAnnData`; :class:`GRNStoreError` naming ``source`` if it holds
    no valid network in ``varp["GRN"]``."""
    if GRN_KEY not in adata.varp:
        raise GRNStoreError(
            f"{source} holds no network: varp has {list(adata.varp.keys())}, expected "
            "varp['GRN'] (regulators x targets)"
        )
    try:
        return GRNAnnData.from_adata(adata)
    except ValueError as err:
        raise GRNStoreError(f"{source} holds an invalid network: {err}") from err


def existing_path(path: str | os.PathLike, what: str) -> Path:
    """``path``, restored first from the backup of a writer killed mid-swap if it is missing."""
    path = Path(path)
    if not path.exists() and recover(path) is None:
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    return path
