"""Checks of a user's expression set, made before any method runs.

A benchmark hands its expression set (cells x genes, counts) to every method; a file that cannot
be one (no cell, fewer than two genes, repeated gene names, negative or non-finite values) would
otherwise fail only after inference, or worse be scored. :func:`check_expression` reads ``X`` in
blocks of cells, so a file opened with ``backed="r"`` is checked without loading it whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

__all__ = ["ExpressionError", "check_expression", "check_expression_file"]

_CELLS_PER_BLOCK = 8192


class ExpressionError(ValueError):
    """An expression set that cannot be given to methods (the message says what and why)."""


def _first_bad(values: np.ndarray) -> tuple[str, float] | None:
    """What is wrong with the first offending value (non-finite first), or ``None``."""
    if values.size == 0:
        return None
    finite = np.isfinite(values)
    if not finite.all():
        return "non-finite (NaN or infinite)", float(values[~finite][0])
    negative = values < 0
    if negative.any():
        return "negative", float(values[negative][0])
    return None


def check_expression(adata: ad.AnnData, what: str = "the expression set") -> None:
    """Raise :class:`ExpressionError` (one line naming ``what``) unless ``adata`` holds at least
    one cell, two uniquely named genes and finite counts >= 0 in ``X`` (cells x genes)."""
    if adata.n_obs == 0:
        raise ExpressionError(
            f"{what} has 0 cells ({adata.n_obs} x {adata.n_vars}); expected cells x genes counts "
            "with at least one cell"
        )
    if adata.n_vars < 2:
        raise ExpressionError(
            f"{what} has {adata.n_vars} gene(s); a network needs at least 2 (genes are columns: "
            "cells x genes)"
        )
    repeated = adata.var_names[adata.var_names.duplicated()]
    if len(repeated):
        raise ExpressionError(
            f"{what} repeats {len(repeated)} gene name(s), e.g. {list(repeated[:3])}; expected "
            "unique gene names in var_names"
        )
    if adata.X is None:
        raise ExpressionError(f"{what} has no X; expected cells x genes counts in X")
    for start in range(0, adata.n_obs, _CELLS_PER_BLOCK):
        block = adata.X[start : start + _CELLS_PER_BLOCK]
        values = block.data if sp.issparse(block) else np.asarray(block)
        if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_):
            raise ExpressionError(f"{what} has X of dtype {values.dtype}; expected numeric counts")
        bad = _first_bad(values.ravel())
        if bad is not None:
            kind, value = bad
            raise ExpressionError(
                f"{what} has {kind} values in X (e.g. {value:g}); expected counts >= 0 "
                "(cells x genes, raw or normalised, not log-ratios or z-scores)"
            )


def check_expression_file(path: str | os.PathLike, what: str | None = None) -> None:
    """:func:`check_expression` on an ``.h5ad`` file, read in blocks (``backed="r"``)."""
    path = Path(path)
    what = what or f"the expression set {str(path)!r}"
    try:
        adata = ad.read_h5ad(path, backed="r")
    except Exception as err:  # noqa: BLE001 - any reader failure means: not an h5ad we can use
        raise ExpressionError(
            f"{what} cannot be read as an .h5ad file ({type(err).__name__}: {err}); expected an "
            "AnnData (cells x genes) written by anndata"
        ) from None
    try:
        check_expression(adata, what)
    finally:
        adata.file.close()
