"""The canonical stored form of a network matrix (rows = regulators, columns = targets).

Every matrix that enters a :class:`~grnndata.GRNAnnData` goes through :func:`canonical_network`,
which either returns the form ``varp["GRN"]`` stores or raises a :class:`ValueError` that names
the problem (conversion from other forms, edge tables and DataFrames is
:func:`grnndata.as_network`, in :mod:`grnndata.convert`):

- 2-D input (sparse of any format, dense array, ``numpy.matrix``) becomes a
  ``scipy.sparse.csr_matrix`` of float32 with sorted indices, summed duplicates and no explicit
  zeros (a zero weight is not an edge);
- 3-D dense input ``(n_genes, n_genes, k)`` (a stack of ``k`` networks, e.g. one per attention
  head or per sample) stays dense and becomes float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

ORIENTATION = "regulators x targets"
GRN_KEY = "GRN"

__all__ = [
    "GRN_KEY",
    "ORIENTATION",
    "canonical_network",
    "check_unique_genes",
    "examples",
    "missing_network",
]


def examples(values: Sequence[Any] | np.ndarray | pd.Index, k: int = 5) -> str:
    """A short, readable list of the first ``k`` offending values for error messages."""
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:k])
    return f"[{shown}{', ...' if len(values) > k else ''}]"


def missing_network(varp_keys: Sequence[str], key: str, where: str) -> str | None:
    """The error message for a network expected in ``varp[key]`` of ``where``, or ``None`` when
    ``varp_keys`` holds ``key``.

    The convention of the three packages: a network is a square ``(n_genes, n_genes)`` matrix
    (rows = regulators, columns = targets, sparse or dense) in an AnnData's ``varp[key]``,
    ``key="GRN"`` by default.
    """
    keys = [str(k) for k in varp_keys]
    if key in keys:
        return None
    hint = (
        f"; pass key={keys[0]!r}" if len(keys) == 1 else "; pass key= one of them" if keys else ""
    )
    return (
        f"{where} has no network in varp[{key!r}] (its varp keys: {keys}); expected a square "
        f"regulators x targets matrix there{hint}"
    )


def check_unique_genes(genes: pd.Index, *, what: str = "gene names") -> None:
    """Raise ``ValueError`` if ``genes`` holds duplicates (a network needs one row per gene)."""
    if genes.is_unique:
        return
    dup = genes[genes.duplicated()].unique()
    raise ValueError(
        f"{what} must be unique to index a network: {len(dup)} duplicated, e.g. {examples(dup)}; "
        "make them unique first (e.g. adata.var_names_make_unique())"
    )


def _check_finite(values: np.ndarray, where: str) -> None:
    if values.size == 0:
        return
    finite = np.isfinite(values)
    if finite.all():
        return
    bad = values[~finite]
    raise ValueError(
        f"{where} holds {bad.size} non-finite weight(s) (NaN or inf), e.g. {examples(bad.tolist(), 3)}; "
        "network weights must be finite numbers"
    )


def _check_numeric(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in "biuf":
        raise ValueError(
            f"{where} has dtype {dtype} ({dtype.kind!r}); expected a real numeric dtype "
            "(bool, integer or floating point)"
        )


def canonical_network(
    value: Any, n_genes: int, *, where: str = "network"
) -> sp.csr_matrix | np.ndarray:
    """Validate ``value`` as a network over ``n_genes`` genes and return its canonical form.

    Parameters
    ----------
    value
        Shape ``(n_genes, n_genes)`` (sparse or dense, rows = regulators, columns = targets) or
        ``(n_genes, n_genes, k)`` dense (a stack of ``k`` networks).
    n_genes
        The number of genes (``n_vars`` of the AnnData holding the network).
    where
        Name of the value used in error messages.

    Returns
    -------
    ``csr_matrix`` float32 ``(n_genes, n_genes)`` for 2-D input (the input object itself when it
    is already a canonical float32 CSR without stored zeros, else a new matrix); float32
    ``ndarray`` ``(n_genes, n_genes, k)`` for a 3-D stack.
    """
    if isinstance(value, pd.DataFrame):
        raise ValueError(
            f"{where} is a DataFrame; pass its values in gene order, or build the object with "
            "GRNAnnData.from_frame(df) which aligns index (regulators) and columns (targets)"
        )
    if sp.issparse(value):
        shape = value.shape
        if len(shape) != 2:
            raise ValueError(
                f"{where} is a {len(shape)}-D sparse array; expected 2-D (regulators x targets)"
            )
        _check_shape(shape, n_genes, where)
        _check_numeric(value.dtype, where)
        if (
            isinstance(value, sp.csr_matrix)
            and value.dtype == np.float32
            and value.has_canonical_format
            and not (value.data == 0).any()
        ):
            _check_finite(value.data, where)
            return value  # already canonical: kept as is, not copied
        csr = sp.csr_matrix(value, dtype=np.float32, copy=True)
        _check_finite(csr.data, where)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        return csr
    if hasattr(value, "to_memory"):  # anndata views / backed arrays
        value = value.to_memory()
    array = np.asarray(value)
    if array.dtype == object:
        raise ValueError(
            f"{where} could not be read as a numeric array (got dtype object from {type(value).__name__}); "
            "expected a scipy sparse matrix or a numeric numpy array"
        )
    _check_numeric(array.dtype, where)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{where} has {array.ndim} dimension(s) with shape {array.shape}; expected 2-D "
            "(regulators x targets) or a 3-D stack (regulators x targets x k)"
        )
    _check_shape(array.shape, n_genes, where)
    if array.dtype.kind == "f":
        _check_finite(array, where)
    if array.ndim == 3:
        return np.ascontiguousarray(array, dtype=np.float32)
    csr = sp.csr_matrix(array.astype(np.float32, copy=False))
    csr.eliminate_zeros()
    csr.sort_indices()
    return csr


def _check_shape(shape: tuple[int, ...], n_genes: int, where: str) -> None:
    if shape[0] != shape[1]:
        raise ValueError(
            f"{where} must be square (regulators x targets over the same genes), got shape {tuple(shape)}"
        )
    if shape[0] != n_genes:
        raise ValueError(
            f"{where} has shape {tuple(shape)} but the object has {n_genes} genes (n_vars); "
            f"expected ({n_genes}, {n_genes})"
        )
