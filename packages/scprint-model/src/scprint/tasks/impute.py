"""Expression of genes the data did not measure: :class:`Imputer` and :func:`imputed_anndata`.

As the original ``scprint2`` ``Imputer`` (``method="generative"``, its default): each cell is
read over its measured genes (the *input genes*, one fixed list for every cell) with its depth
``D`` (total counts of the cell) times ``depth_factor`` ``M``; its output cell tokens then
generate the genes to impute from the cell tokens alone (``decode_from_cell_tokens``, the
original's ``_generate``), at depth ``M x D``, their means summing to ``M`` times the cell's
counts over the input genes. All genes to impute are generated in one pass, as the original does
(they attend to each other), so the result does not depend on a chunk size.

Where the result goes. The genes to impute are usually *not* columns of the AnnData (a targeted
panel, a spatial assay), so they cannot be a layer: like totalVI's protein counts, they are a
DataFrame in ``obsm[key_added]`` (cells x imputed genes, columns named as the genes were given),
next to the cells' measured genes. :func:`imputed_anndata` turns it into an AnnData of the
imputed genes (same ``obs``, ``obsm``, ``obsp``) for scanpy's plotting and analysis functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from scprint.errors import InputError
from scprint.tasks._batches import iter_model_batches, model_inputs
from scprint.tasks._input import (
    GeneMatch,
    TaskInput,
    gene_matching_options,
    match_vocabulary,
    prepare,
    resolve_gene_list,
    supported_organisms,
)
from scprint.tasks._model import Checkpoint, load_model, model_device
from scprint.tasks._output import provenance, store_result
from scprint.tasks.genes import select_genes

log = logging.getLogger(__name__)

__all__ = ["INPUT_GENES", "Imputer", "imputed_anndata"]

#: ``input_genes`` choices of :class:`Imputer` besides a list of ``var_names``.
INPUT_GENES: tuple[str, ...] = ("all", "hvg", "expressed")


class Imputer:
    """Impute genes the data did not measure, from the genes it did.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load`; scPRINT-1 and
        scPRINT-2 checkpoints).
    genes_to_impute
        Genes to impute (Ensembl ids or symbols of the cells' organism, matched to the model's
        vocabulary as the AnnData's genes are): usually genes absent from ``var_names``. Genes
        the model does not know are left out with a warning and listed in
        ``uns[key_added]["unknown_genes"]``; none known is an :class:`~scprint.tasks.InputError`.
        (The original's ``genes_to_impute``.)
    input_genes, n_genes
        The measured genes the model reads, the same for every cell, in one context (as the
        original; its ``genes_to_use``), never one being imputed: ``"all"`` (every gene of the
        AnnData the model knows), ``"hvg"`` (the ``n_genes`` most variable of those),
        ``"expressed"`` (the ``n_genes`` of highest mean expression; see
        :mod:`scprint.tasks.genes`) or a list of ``var_names``. Attention memory grows with the
        square of the number of input plus imputed genes: on whole-transcriptome data prefer
        ``"hvg"``.
    depth_factor
        ``M``: the imputed means are at ``M`` times each cell's depth (the original's
        ``predict_depth_mult``, default 4).
    zero_inflation
        Multiply each mean by the probability of not being a dropout, ``1 - sigmoid(zero
        logit)`` (the ZINB's expected value; the original's ``apply_zero_pred``, which it applies
        to its correlation metrics). Closer to what the sequencing technology records, further
        from the biological expression. Needs a ZINB decoder.
    gene_matching
        How the AnnData's genes are matched to the model's: keyword arguments of
        :func:`scprint.tasks._input.prepare` (``organism``, ``gene_column``, ``gene_table``,
        ``orthologs``, ``min_genes``); ``organism`` and ``gene_table`` also resolve ``genes``.
    batch_size, device
        Cells per forward pass; ``"auto"`` (GPU if any), ``"cpu"`` or ``"cuda"``.
    precision
        ``"32"`` (float32, default), ``"bf16"`` (bfloat16 autocast) or ``"int8"`` (int8 linear
        layers, CPU only); see :mod:`scprint.tasks._model`. The first batch is checked
        against float32 and the agreement stored in ``uns[key_added]["precision"]``.
    """

    def __init__(
        self,
        ckpt: Checkpoint,
        *,
        genes_to_impute: Sequence[str],
        input_genes: str | Sequence[str] = "all",
        n_genes: int = 2000,
        depth_factor: float = 4.0,
        zero_inflation: bool = False,
        gene_matching: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str = "32",
    ) -> None:
        if isinstance(genes_to_impute, str) or not len(genes_to_impute):
            raise InputError(
                "genes_to_impute must be a non-empty list of genes, e.g. ['CD3E', 'MS4A1'], got "
                f"{genes_to_impute!r}"
            )
        if isinstance(input_genes, str) and input_genes not in INPUT_GENES:
            raise InputError(
                f"input_genes must be one of {INPUT_GENES} or a list of var_names, got {input_genes!r}"
            )
        if not isinstance(input_genes, str) and not len(input_genes):
            raise InputError("the input_genes list is empty; give var_names or 'all'")
        if not isinstance(n_genes, int | np.integer) or n_genes < 1:
            raise InputError(f"n_genes must be a positive integer, got {n_genes!r}")
        if not depth_factor > 0:
            raise InputError(f"depth_factor must be positive (e.g. 4.0), got {depth_factor!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.gene_matching = gene_matching_options(gene_matching)
        self.pretrained = load_model(ckpt, device, precision)
        if zero_inflation and not self.pretrained.config.zinb:
            raise InputError(
                "zero_inflation=True needs a ZINB expression decoder; this model has none"
            )
        genes = [str(g) for g in genes_to_impute]
        if len(set(genes)) != len(genes):
            raise InputError("genes_to_impute lists a gene twice; give each gene once")
        self.genes_to_impute = genes
        self.input_genes = input_genes if isinstance(input_genes, str) else list(input_genes)
        self.n_genes = int(n_genes)
        self.depth_factor = float(depth_factor)
        self.zero_inflation = zero_inflation
        self.batch_size = batch_size

    def vocabulary_ids(self, organism: str | None) -> tuple[list[str], np.ndarray, list[str]]:
        """The genes to impute the model knows, their vocabulary indices ``(n,)`` int64, and the
        genes it does not know (matched by :func:`scprint.tasks._input.match_vocabulary`)."""
        listing = ad.AnnData(var=pd.DataFrame(index=pd.Index(self.genes_to_impute, dtype=str)))
        options = {
            key: self.gene_matching[key]
            for key in ("gene_table", "orthologs")
            if key in self.gene_matching
        }
        match = match_vocabulary(
            listing,
            self.pretrained.vocab,
            organisms=supported_organisms(self.pretrained),
            organism=organism or self.gene_matching.get("organism"),
            **options,
        )
        known = match.var_indices
        found = set(known.tolist())
        unknown = [g for i, g in enumerate(self.genes_to_impute) if i not in found]
        if not known.size:
            raise InputError(
                f"none of the {len(self.genes_to_impute)} genes to impute is known to the model (e.g. "
                f"{self.genes_to_impute[0]!r}); its genes look like {list(self.pretrained.vocab.genes[:3])}"
            )
        if unknown:
            log.warning(
                "%d of %d genes to impute are unknown to the model and left out, e.g. %s",
                len(unknown),
                len(self.genes_to_impute),
                unknown[:5],
            )
        return (
            [self.genes_to_impute[i] for i in known],
            match.vocab_indices.astype(np.int64),
            unknown,
        )

    def _input_columns(self, data: TaskInput, imputed: np.ndarray) -> np.ndarray:
        """Columns of the AnnData read by the model (sorted), never one of the imputed genes."""
        adata, match = data.adata, data.match
        if isinstance(self.input_genes, str):
            columns = np.sort(match.var_indices[~np.isin(match.vocab_indices, imputed)])
            if self.input_genes != "all" and columns.size:
                chosen = select_genes(
                    data.counts, self.input_genes, self.n_genes, candidates=columns
                )
                columns = np.sort(chosen)
        else:
            columns = resolve_gene_list(adata, self.input_genes, match, self.pretrained.vocab)
            vocab = match.columns()[columns]
            if (vocab < 0).any():
                example = adata.var_names[int(columns[np.flatnonzero(vocab < 0)[0]])]
                raise InputError(
                    f"input gene {example!r} is not in the model's vocabulary; choose genes it knows"
                )
            both = np.isin(vocab, imputed)
            if both.any():
                raise InputError(
                    f"input gene {adata.var_names[int(columns[np.flatnonzero(both)[0]])]!r} is "
                    "also a gene to impute; a gene is either read or imputed"
                )
        if not columns.size:
            raise InputError("no measured gene is left to read; give input_genes")
        return columns

    def imputed_means(
        self, adata: ad.AnnData, match: GeneMatch, input_columns: np.ndarray, vocab_ids: np.ndarray
    ) -> np.ndarray:
        """Imputed expression ``(n_cells, len(vocab_ids))`` float32 at ``depth_factor`` x depth.

        ``match`` is the gene match of ``adata``; the model reads the columns ``input_columns``
        of every cell and generates the vocabulary genes ``vocab_ids``.
        """
        model = self.pretrained.model
        device = model_device(self.pretrained)
        genes = [str(g) for g in adata.var_names[input_columns]]
        targets = torch.as_tensor(vocab_ids, dtype=torch.long, device=device)
        out = np.zeros((adata.n_obs, len(vocab_ids)), dtype=np.float32)
        with torch.inference_mode():
            for batch in iter_model_batches(
                adata,
                self.pretrained,
                match,
                genes=genes,
                max_len=len(genes),
                batch_size=self.batch_size,
                description="impute",
            ):
                inputs = model_inputs(batch)
                depth = batch["depth"] * self.depth_factor
                library = inputs["counts"].sum(1) * self.depth_factor
                inputs["depth"] = depth
                # only the cell tokens are decoded from: skip the gene read-outs (exact)
                encoded = model(**inputs, target_depth=library, cells_only=True)
                decoded = model.decode_from_cell_tokens(
                    encoded.cell_tokens,
                    targets.expand(len(depth), -1),
                    library,
                    depth=depth,
                )
                means = decoded["mean"].float()
                if self.zero_inflation:
                    means = means * (1 - torch.sigmoid(decoded["dropout_logit"].float()))
                out[batch["cell_index"].cpu().numpy()] = means.cpu().numpy()
        return out

    def __call__(
        self, adata: ad.AnnData, *, key_added: str = "scprint_imputed", copy: bool = False
    ) -> ad.AnnData | None:
        """Impute the genes of ``genes_to_impute`` in ``adata``'s cells (raw counts).

        Writes into ``adata`` (``None`` returned) or a returned copy (``copy=True``):
        ``obsm[key_added]``, a float32 DataFrame ``(n_cells, n_imputed)`` indexed by
        ``obs_names``, one column per known gene to impute (named as given, in the given order):
        the mean expression at ``depth_factor`` x each cell's depth; ``uns[key_added]``: the
        settings, the vocabulary ids of the imputed genes (``gene_ids``), the genes left out
        (``unknown_genes``), the number of input genes and provenance.
        """
        data = prepare(adata, self.pretrained, **self.gene_matching)
        names, vocab_ids, unknown = self.vocabulary_ids(data.match.organism)
        columns = self._input_columns(data, vocab_ids)
        log.info("impute %d genes from %d measured genes", len(names), columns.size)
        means = self.imputed_means(adata, data.match, columns, vocab_ids)
        table = pd.DataFrame(means, index=adata.obs_names.copy(), columns=pd.Index(names))
        settings = provenance(
            self.pretrained,
            method="generative",
            input_genes=self.input_genes if isinstance(self.input_genes, str) else "list",
            depth_factor=self.depth_factor,
            zero_inflation=self.zero_inflation,
            n_input_genes=int(columns.size),
            gene_ids=[str(self.pretrained.vocab.genes[i]) for i in vocab_ids],
            unknown_genes=unknown,
            gene_match=data.match.summary(),
        )
        return store_result(adata, {"obsm": {key_added: table}}, settings, key_added, copy=copy)


def imputed_anndata(adata: ad.AnnData, key_added: str = "scprint_imputed") -> ad.AnnData:
    """The imputed genes of ``adata`` (:class:`Imputer`'s ``obsm[key_added]``) as an AnnData.

    ``X`` float32 ``(n_cells, n_imputed)`` the imputed expression, ``var_names`` the imputed
    genes (``var["gene_id"]`` their vocabulary ids), and copies of ``adata``'s ``obs``, ``obsm``
    (the imputed table left out) and ``obsp``, so that e.g. ``sc.pl.umap(imputed_anndata(adata),
    color="CD3E")`` works with the measured cells' UMAP.
    """
    if key_added not in adata.obsm:
        raise InputError(
            f"adata.obsm has no {key_added!r}; run Imputer(...)(adata, key_added={key_added!r}) first"
        )
    table = adata.obsm[key_added]
    if not isinstance(table, pd.DataFrame):
        raise InputError(
            f"adata.obsm[{key_added!r}] is not a DataFrame of imputed genes (got {type(table).__name__})"
        )
    var = pd.DataFrame(index=pd.Index(table.columns.astype(str)))
    ids = adata.uns.get(key_added, {}).get("gene_ids")
    if ids is not None and len(ids) == len(var):
        var["gene_id"] = [str(i) for i in ids]
    return ad.AnnData(
        X=table.to_numpy(dtype=np.float32),
        obs=adata.obs.copy(),
        var=var,
        obsm={k: v.copy() for k, v in adata.obsm.items() if k != key_added},
        obsp={k: v.copy() for k, v in adata.obsp.items()},
    )
