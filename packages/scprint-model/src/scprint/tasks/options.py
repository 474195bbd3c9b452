"""Named choices and defaults of the tasks' options, one home for each.

Torch-free, so that the command line (``scprint <task> --help``) reads them without loading the
model code.
"""

from __future__ import annotations

__all__ = [
    "DENOISE_DEPTH_FACTOR",
    "DENOISE_GENES",
    "GENERATE_GENES",
    "GENE_CHOICES",
    "GNINFER_DENOISE_DEPTH_FACTOR",
]

#: The ``genes`` choices of the tasks, one meaning everywhere (a task offers those that make sense
#: for it, besides a list of genes): ``"all"`` every gene of the AnnData the model knows,
#: ``"hvg"`` the ``n_genes`` most variable of them, ``"expressed"`` the ``n_genes`` of highest
#: mean expression, ``"de"`` the ``n_genes`` most up-regulated in a group of cells (a cell type)
#: versus the others (:mod:`scprint.tasks.genes`). :class:`~scprint.tasks.GNInfer` offers them
#: all; ``"de"`` needs a group of cells, which the other tasks do not have.
GENE_CHOICES: tuple[str, ...] = ("all", "hvg", "expressed", "de")

#: The ``genes`` choices of :class:`~scprint.tasks.Denoiser`.
DENOISE_GENES: tuple[str, ...] = ("all", "hvg", "expressed")

#: The ``genes`` choices of :class:`~scprint.tasks.Generator`.
GENERATE_GENES: tuple[str, ...] = ("all", "hvg", "expressed")

#: The depth multiplier of denoising: the counts expected had each cell been sequenced this many
#: times deeper (the original scPRINT ``Denoiser``'s ``predict_depth_mult``).
DENOISE_DEPTH_FACTOR: float = 4.0

#: The depth multiplier of :class:`~scprint.tasks.GNInfer`'s ``forward_mode="denoise"``: the
#: depth token reads this many times each cell's depth before the attention is read, as the
#: original ``GNInfer``'s ``forward_mode`` does (its ``_predict`` default), which its parity with
#: the original needs.
GNINFER_DENOISE_DEPTH_FACTOR: float = 6.0
