"""Filtration of a network (keep its strong edges) and the average product correction.

Every function takes a dense ``(n_genes, n_genes)`` float network, rows = regulators, columns =
targets, and returns one of the same shape and dtype.
"""

from __future__ import annotations

import numpy as np

from scprint.errors import InputError

__all__ = ["FILTRATIONS", "ORIGINAL_FILTRATIONS", "average_product_correction", "filter_network"]

FILTRATIONS: tuple[str, ...] = ("uniform", "topk", "known", "none")
#: The original scPRINT's spellings of our filtrations.
ORIGINAL_FILTRATIONS: dict[str, str] = {"thresh": "uniform", "top-k": "topk"}


def filter_network(
    network: np.ndarray,
    method: str,
    k: int = 20,
    *,
    n_keys: int | None = None,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """Keep the strong edges of a ``(n_genes, n_genes)`` network (rows = regulators); others -> 0.

    ``"uniform"`` keeps weights at or above ``1 / n_keys`` (default ``n_genes``), the weight of
    uniform attention over ``n_keys`` keys; ``"topk"`` keeps the ``k`` largest weights of each
    regulator (row); ``"known"`` keeps the edges of the boolean ``known`` network; ``"none"``
    keeps all.
    """
    if method == "none":
        return network
    if method == "uniform":
        threshold = 1.0 / (network.shape[1] if n_keys is None else n_keys)
        return np.where(network >= threshold, network, 0.0).astype(network.dtype)
    if method == "known":
        if known is None or known.shape != network.shape:
            raise InputError(
                "filtration 'known' needs a boolean known network of the network's shape "
                f"{network.shape} (a ground_truth)"
            )
        return np.where(known, network, 0.0).astype(network.dtype)
    if method == "topk":
        if k < 1:
            raise InputError(f"top-k filtration needs k >= 1, got {k!r}")
        k = min(k, network.shape[1])
        keep = np.argpartition(-network, k - 1, axis=1)[:, :k]
        out = np.zeros_like(network)
        rows = np.arange(network.shape[0])[:, None]
        out[rows, keep] = network[rows, keep]
        return out
    raise InputError(f"filtration must be one of {FILTRATIONS}, got {method!r}")


def average_product_correction(network: np.ndarray) -> np.ndarray:
    """``A - (row sums x column sums) / total``: the average product correction of a network.

    Removes the part of each weight explained by its regulator's and target's overall strength
    (Dunn et al. 2008, as used for attention maps). ``network`` is ``(n_genes, n_genes)``.
    """
    total = network.sum()
    if total == 0:
        return network
    correction = np.outer(network.sum(axis=1), network.sum(axis=0)) / total
    return (network - correction).astype(network.dtype)
