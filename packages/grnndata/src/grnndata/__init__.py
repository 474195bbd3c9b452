"""GRnnData: gene regulatory networks stored in AnnData (rows = regulators, columns = targets).

The network of a :class:`GRNAnnData` lives in ``varp["GRN"]`` as a ``scipy.sparse.csr_matrix``
float32 whose entry ``[i, j]`` is the weight of the edge from gene ``i`` (regulator) to gene ``j``
(target).
"""

__version__ = "0.1.0"

from . import analysis, atomic, plot
from .core import GRNAnnData, from_edges
from .io import GRNStoreError, LazyGRN, open_zarr, read_h5ad, read_zarr, write_h5ad, write_zarr

__all__ = [
    "GRNAnnData",
    "GRNStoreError",
    "LazyGRN",
    "__version__",
    "analysis",
    "atomic",
    "from_edges",
    "open_zarr",
    "plot",
    "read_h5ad",
    "read_zarr",
    "write_h5ad",
    "write_zarr",
]
