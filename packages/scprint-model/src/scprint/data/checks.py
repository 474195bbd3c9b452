"""Checks of count data, shared by training (:class:`~scprint.data.CellSource`, so
``scprint fit``) and the tasks (:func:`scprint.tasks._input.prepare`): the same input is
refused the same way, before any compute, with one line naming the problem and what is expected
(:class:`scprint.errors.InputError`, a ``ValueError``: the ``scprint`` command exits 2 on it).

- :func:`check_has_cells`: at least one cell;
- :func:`check_unique_var_names`: each gene one column (a duplicate would silently be dropped);
- :func:`check_finite_counts`: no NaN or infinity in a whole matrix (in memory or backed);
- :func:`check_raw_counts`: a block of stored values holds finite, non-negative integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scprint.errors import InputError

__all__ = [
    "check_finite_counts",
    "check_has_cells",
    "check_raw_counts",
    "check_unique_var_names",
]

#: Cells read at a time by :func:`check_finite_counts` from a backed (on-disk) matrix.
FINITE_CHECK_ROWS = 10_000


def check_has_cells(n_cells: int, what: str = "the AnnData") -> None:
    """Raise :class:`~scprint.errors.InputError` when the data hold no cell (``n_obs == 0``)."""
    if n_cells == 0:
        raise InputError(
            f"{what} has no cells (n_obs == 0); expected raw counts of at least one cell"
        )


def check_unique_var_names(names: Any, what: str = "adata.var_names") -> None:
    """Raise :class:`~scprint.errors.InputError` when a gene name appears twice (one of its
    columns would be dropped).

    Args:
        names: an AnnData (its ``var_names``) or a sequence of gene names.
        what: how the message names them (e.g. ``"dataset 'pbmc.h5ad': var_names"``).
    """
    index = pd.Index(getattr(names, "var_names", names))
    if index.has_duplicates:
        repeated = index[index.duplicated()].unique()
        raise InputError(
            f"{what} has {len(repeated)} duplicated gene name(s), e.g. "
            f"{[str(g) for g in repeated[:3]]}; each gene must be one column. Sum the duplicated "
            "columns or keep one of each, e.g. adata = adata[:, ~adata.var_names.duplicated()]"
        )


def check_finite_counts(matrix: Any, what: str = "X") -> None:
    """Raise :class:`~scprint.errors.InputError` naming a cell when the counts ``matrix``
    (cells x genes) hold NaN or infinity. A backed (on-disk) matrix is read
    :data:`FINITE_CHECK_ROWS` cells at a time."""
    n_rows = matrix.shape[0]
    in_memory = sp.issparse(matrix) or isinstance(matrix, np.ndarray)
    step = max(n_rows, 1) if in_memory else FINITE_CHECK_ROWS
    for start in range(0, n_rows, step):
        block = matrix if in_memory else matrix[start : start + step]
        if sp.issparse(block):
            block = sp.csr_matrix(block)
            values = block.data
        else:
            values = np.asarray(block)
        bad = np.flatnonzero(~np.isfinite(values.ravel()))
        if bad.size:
            first = int(bad[0])
            if sp.issparse(block):
                row = int(np.searchsorted(block.indptr, first, side="right")) - 1
            else:
                row = first // max(values.shape[1] if values.ndim == 2 else 1, 1)
            _non_finite(what, bad.size, float(values.ravel()[first]), start + row)


def _non_finite(what: str, n_bad: int, example: float, cell: Any) -> None:
    raise InputError(
        f"{what} must hold finite raw counts; found {n_bad} non-finite value(s), e.g. "
        f"{example!r} in cell {cell}. Put the raw integer counts in X, e.g. "
        "adata.X = adata.layers['counts']"
    )


def check_raw_counts(
    values: np.ndarray, what: str, cells: Sequence[Any] | None = None, rows: Any = None
) -> None:
    """Raise :class:`~scprint.errors.InputError` when stored count values are not finite,
    non-negative integers.

    Args:
        values: the stored values of a block of cells (CSR ``data`` or a dense block).
        what: how the message names the data (e.g. ``"dataset 'pbmc.h5ad': X"``).
        cells: names of the block's cells; ``rows``: CSR ``indptr`` of the block, to name the
            cell of a non-finite value (both optional).
    """
    values = np.asarray(values).ravel()
    if not values.size:
        return
    finite = np.isfinite(values)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        cell: Any = "?"
        if cells is not None and rows is not None:
            cell = repr(str(cells[int(np.searchsorted(rows, first, side="right")) - 1]))
        _non_finite(what, int((~finite).sum()), float(values[first]), cell)
    bad = (values < 0) | (values != np.round(values))
    if bad.any():
        example = float(values[np.flatnonzero(bad)[0]])
        kind = "negative values" if example < 0 else "non-integer values"
        raise InputError(
            f"{what} must hold raw integer counts, found {example!r} ({kind}: log-normalised "
            "or scaled data?). Put the raw counts in X, e.g. adata.X = adata.layers['counts'] "
            "or adata.raw.X"
        )
