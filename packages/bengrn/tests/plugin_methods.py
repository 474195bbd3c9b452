"""Plug-in methods used by the runner tests (referenced as ``tests.plugin_methods:<name>``)."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from grnndata import GRNAnnData


def _dense(adata: AnnData) -> np.ndarray:
    return adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)


def mean_product(adata: AnnData, scale: float = 1.0) -> GRNAnnData:
    """|covariance| between genes, times ``scale``: a real (if naive) inference method."""
    X = _dense(adata).astype(np.float64)
    cov = np.abs(np.cov(X, rowvar=False)) * scale
    np.fill_diagonal(cov, 0)
    return GRNAnnData.from_matrix(cov, list(adata.var_names))


def with_prior(adata: AnnData, prior: object = None, weight: float = 1.0) -> GRNAnnData:
    """mean_product, plus ``weight`` on the edges of a prior table (DataFrame[regulator, target])."""
    genes = list(adata.var_names)
    network = mean_product(adata).varp["GRN"].toarray()
    index = {g: i for i, g in enumerate(genes)}
    for regulator, target in zip(prior["regulator"], prior["target"], strict=True):
        if regulator in index and target in index:
            network[index[regulator], index[target]] += weight
    return GRNAnnData.from_matrix(network, genes)


def raises(adata: AnnData) -> GRNAnnData:
    """Always fails."""
    raise RuntimeError("this method is broken on purpose")


def wrong_genes(adata: AnnData) -> GRNAnnData:
    """Returns a network over genes the input does not have."""
    genes = [f"other{i}" for i in range(adata.n_vars)]
    return GRNAnnData.from_matrix(np.ones((adata.n_vars, adata.n_vars)), genes)


def nan_scores(adata: AnnData) -> AnnData:
    """Returns a plain AnnData whose network holds NaN."""
    out = AnnData(var=adata.var.copy())
    weights = np.ones((adata.n_vars, adata.n_vars))
    weights[0, 1] = np.nan
    out.varp["GRN"] = weights
    return out


def sleeps(adata: AnnData) -> GRNAnnData:
    """Never finishes in time."""
    time.sleep(60)
    return mean_product(adata)


def all_zero(adata: AnnData) -> GRNAnnData:
    """A network with no non-zero edge (degenerate)."""
    return GRNAnnData.from_matrix(np.zeros((adata.n_vars, adata.n_vars)), list(adata.var_names))


def constant(adata: AnnData) -> GRNAnnData:
    """The same score on every edge (degenerate)."""
    return GRNAnnData.from_matrix(np.ones((adata.n_vars, adata.n_vars)), list(adata.var_names))


def pearson_half(adata: AnnData, regulators: list[str] | None = None) -> GRNAnnData:
    """The built-in |Pearson| over every other gene of the expression set: a real method whose
    network covers only half of the genes."""
    from bengrn.methods import pearson

    half = adata[:, ::2].copy()
    chosen = set(half.var_names)
    kept = None if regulators is None else [g for g in regulators if g in chosen]
    return pearson(half, regulators=kept)
