"""The demo's own bengrn method, passed to bengrn as ``module:function`` (``demo_methods:stored_network``):
bengrn imports it by name in its inference process, so it lives in a module of its own (the demo
folder is on ``sys.path`` when the demo runs)."""

from __future__ import annotations

import anndata as ad

from grnndata import GRNAnnData, read_zarr


def stored_network(adata: ad.AnnData, *, path: str) -> GRNAnnData:
    """A bengrn method that returns the network stored by step 4 (its genes are ``adata``'s), so
    the benchmark scores that very network instead of inferring it again."""
    return read_zarr(path)
