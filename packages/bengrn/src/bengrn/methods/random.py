"""The random baseline: uniform scores in (0, 1] for every candidate edge, seeded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from bengrn.methods._common import make_network, regulator_indices, top_k_rows

__all__ = ["random_network"]


def random_network(
    adata: ad.AnnData,
    *,
    regulators: Sequence[str] | None = None,
    top_k: int | None = None,
    seed: int = 0,
) -> Any:
    """Uniform random weights in (0, 1] for ``regulators x genes`` (self-loops 0).

    ``regulators``: candidate regulators (``None`` = all genes); ``top_k``: keep each regulator's
    ``top_k`` highest scores; ``seed``: the same seed gives the same network.
    """
    genes = pd.Index(adata.var_names.astype(str))
    reg_idx = regulator_indices(genes, regulators)
    rng = np.random.default_rng(seed)
    block = (1.0 - rng.random((len(reg_idx), len(genes)), dtype=np.float32)).astype(np.float32)
    block[np.arange(len(reg_idx)), reg_idx] = 0
    return make_network(
        reg_idx, top_k_rows(block, top_k), genes, "random", {"top_k": top_k, "seed": seed}
    )
