"""Gene networks from the model's attention: :class:`GNInfer` and the bengrn plug-in :func:`bengrn_method`.

Modules, one concept each: :mod:`.selection` (cells and genes), :mod:`.attention` (attention
accumulated over cells), :mod:`.heads` (head selection), :mod:`.filtration` (strong edges, APC),
:mod:`.truth` (a known network over the chosen genes), :mod:`.infer` (the task) and
:mod:`.plugin` (the ``bengrn.methods`` entry point).

Orientation. The model's attention map of a head is ``softmax(q kᵀ · scale)`` with rows = query
(attending) gene and columns = key (attended-to) gene. Following scPRINT, the key gene is read
as the regulator of the query gene: every map is **transposed**, so the networks returned have
rows = regulators and columns = targets, in both aggregation paths.

Only gene positions take part: the cell-token positions are sliced off the queries and keys
before the softmax, so each query gene's attention is renormalised over the selected genes. The
fast and exact paths share this convention.

Aggregation paths (per selected layer and head):

* ``"fast"``: the queries and keys of each gene are averaged over the cells (``Q̄``, ``K̄``,
  ``(n_genes, head_dim)``), then ``softmax(Q̄ K̄ᵀ · scale)``;
* ``"exact"``: the per-cell attention maps are summed into ``(n_genes, n_genes)`` by
  :func:`scprint.kernels.attention_to_network` (fused, chunked on CPU) and divided by the number
  of cells holding each gene pair: the cell-averaged attention map.

The original scPRINT's ``GNInfer`` (2.x) as options of ours (its name -> ours):
``how`` "most var within" / "most var across" / "most expr" / "given" -> ``genes`` "hvg" / "de" /
"expressed" / a list; ``num_genes`` -> ``n_genes``; ``max_cells`` -> ``n_cells``; ``layer`` ->
``layers``; ``comp_attn`` True / False -> ``aggregation`` "fast" / "exact"; ``preprocess``
"softmax" / "none" -> ``preprocess``; ``head_agg`` "mean" / "max" / "none" -> ``head_aggregation``;
``filtration`` "thresh" / "top-k" / "known" / "none" -> ``filtration`` "uniform" / "topk" /
"known" / "none"; ``forward_mode`` "none" / "denoise" -> ``forward_mode`` (the depth token
reads 6 x the depth in "denoise", as the original's ``_predict``); ``symmetrize`` -> ``symmetrise``; ``apc`` -> ``apc`` (which the original accepted
but did not apply); ``drop_unexpressed`` -> ``drop_unexpressed``. The original normalises each
gene's attention over the cell tokens too; ``cell_tokens=True`` does the same (the threshold of
``"uniform"`` is then ``1 / (n_genes + n_cell_tokens)``, as the original's). Its
``how="random expr"``, ``preprocess="sinkhorn"`` and ``filtration`` "tmfg" / "mst" are not
offered (a clear error).

Head selection on a known network (``head_aggregation="ridge"``) holds out the genes it is
scored on: the genes are split at random (``seed``) into a fitting part and a held-out part,
stratified so that a share ``ridge_holdout`` of the truth's regulators is held out; the heads
are fitted on the rows (regulators) of the fitting part only, and those rows are zeroed in the
returned network, so that the network scored against the same truth holds only edges the head
selection never saw (``var["ridge_held_out"]`` marks the rows kept).
"""

from scprint.tasks.gninfer.attention import (
    AGGREGATIONS,
    DENOISE_DEPTH_FACTOR,
    FORWARD_MODES,
    PREPROCESSING,
)
from scprint.tasks.gninfer.filtration import (
    FILTRATIONS,
    ORIGINAL_FILTRATIONS,
    average_product_correction,
    filter_network,
)
from scprint.tasks.gninfer.heads import HEAD_AGGREGATIONS, ridge_head_weights, split_rows
from scprint.tasks.gninfer.infer import GNInfer
from scprint.tasks.gninfer.plugin import bengrn_method
from scprint.tasks.gninfer.selection import ORIGINAL_GENE_SELECTIONS
from scprint.tasks.gninfer.truth import ground_truth_matrix

__all__ = [
    "AGGREGATIONS",
    "DENOISE_DEPTH_FACTOR",
    "FILTRATIONS",
    "FORWARD_MODES",
    "HEAD_AGGREGATIONS",
    "ORIGINAL_FILTRATIONS",
    "ORIGINAL_GENE_SELECTIONS",
    "PREPROCESSING",
    "GNInfer",
    "average_product_correction",
    "bengrn_method",
    "filter_network",
    "ground_truth_matrix",
    "ridge_head_weights",
    "split_rows",
]
