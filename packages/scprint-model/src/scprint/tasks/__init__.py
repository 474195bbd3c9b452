"""The user API of scPRINT: AnnData in, AnnData (or GRnnData) out.

- :class:`Embedder`: cell embeddings (``obsm["X_scprint"]``, ``obsm["X_scprint_<class>"]``), label
  predictions (``obs["pred_<class>"]``), gene embeddings (``varm``) and label metrics;
- :class:`Denoiser` (``layers["scprint_denoised"]``) and :func:`evaluate_denoising`;
- :class:`GNInfer`: gene networks from attention (a ``GRNAnnData``, rows = regulators) and
  :func:`bengrn_method`, the ``scprint`` method of bengrn's runner;
- :class:`Generator`: counterfactual expression with replaced cell tokens.

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
