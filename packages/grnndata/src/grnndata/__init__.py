"""GRnnData: gene regulatory networks stored in AnnData (rows = regulators, columns = targets).

The network of a :class:`GRNAnnData` lives in ``varp["GRN"]`` as a ``scipy.sparse.csr_matrix``
float32 whose entry ``[i, j]`` is the weight of the edge from gene ``i`` (regulator) to gene ``j``
(target).

One conversion function, :func:`as_network`, turns any network a user holds (edge table, square
DataFrame, dense or sparse matrix with gene names, AnnData with ``varp["GRN"]``) into a validated
:class:`Network`; zarr stores are written as zarr v3 with sharding by default.
"""

__version__ = "0.1.0"

from . import analysis, atomic, plot
from .convert import EmptyEdgeTableError, Network, as_network
from .core import GRNAnnData, from_edges
from .io import GRNStoreError, LazyGRN, open_zarr, read_h5ad, read_zarr, write_h5ad, write_zarr

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
    "write_h5ad",
    "write_zarr",
]
