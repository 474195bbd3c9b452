"""In-silico depth increase: :class:`Denoiser` and its evaluation :func:`evaluate_denoising`.

The model reads a cell's counts of the chosen genes with its sequencing depth ``D`` (total
counts of the cell) and predicts a zero-inflated negative binomial per gene; its mean at depth
``M x D`` is the denoised expression: the counts one would expect had the cell been sequenced
``M`` times deeper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import rankdata

from scprint.errors import InputError
from scprint.tasks._batches import iter_model_batches, model_inputs
from scprint.tasks._input import (
    GeneMatch,
    TaskInput,
    check_genes,
    choose_genes,
    gene_matching_options,
    prepare,
)
from scprint.tasks._model import Checkpoint, load_model
from scprint.tasks._output import provenance, store_result
from scprint.tasks.options import DENOISE_DEPTH_FACTOR, DENOISE_GENES

log = logging.getLogger(__name__)

__all__ = ["Denoiser", "evaluate_denoising"]


class Denoiser:
    """Denoise counts by increasing their depth ``depth_factor`` times.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load`; original scPRINT checkpoints too).
    genes
        ``"all"`` (every gene of the AnnData the model knows), ``"hvg"`` (the ``n_genes`` most
        variable of those), ``"expressed"`` (the ``n_genes`` of highest mean expression; see
        :mod:`scprint.tasks.genes`) or a list of genes (``var_names``, Ensembl ids or symbols):
        :data:`scprint.tasks._input.GENE_CHOICES`. The chosen genes are the model's input for
        every cell.
    n_genes
        Number of genes for ``"hvg"`` and ``"expressed"``.
    depth_factor
        ``M``: the predicted mean is at ``M`` times the cell's observed depth (``M > 0``; default :data:`scprint.tasks.options.DENOISE_DEPTH_FACTOR`).
    context_len
        Genes read per forward pass (default: the model's training context length); the chosen
        genes are denoised in chunks of this size.
    gene_matching
        How the AnnData's genes are matched to the model's: keyword arguments of
        :func:`scprint.tasks._input.prepare` (``organism``, ``gene_column``, ``gene_table``,
        ``orthologs``, ``min_genes``).
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
        genes: str | Sequence[str] = "all",
        n_genes: int = 2000,
        depth_factor: float = DENOISE_DEPTH_FACTOR,
        context_len: int | None = None,
        gene_matching: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str = "32",
    ) -> None:
        genes = check_genes(genes, DENOISE_GENES)
        if not depth_factor > 0:
            raise InputError(f"depth_factor must be positive (e.g. 4.0), got {depth_factor!r}")
        if context_len is not None and context_len < 1:
            raise InputError(f"context_len must be a positive integer or None, got {context_len!r}")
        if n_genes < 1:
            raise InputError(f"n_genes must be a positive integer, got {n_genes!r}")
        self.gene_matching = gene_matching_options(gene_matching)
        self.pretrained = load_model(ckpt, device, precision)
        self.genes = genes
        self.n_genes = n_genes
        self.depth_factor = float(depth_factor)
        self.context_len = context_len
        self.batch_size = batch_size

    def _columns(self, data: TaskInput) -> np.ndarray:
        """Columns of ``data.adata`` to denoise (sorted for the selections)."""
        columns = choose_genes(data, self.pretrained.vocab, self.genes, self.n_genes)
        return columns if isinstance(self.genes, list) else np.sort(columns)

    def denoised_means(
        self, adata: ad.AnnData, columns: np.ndarray, match: GeneMatch
    ) -> np.ndarray:
        """ZINB means ``(n_cells, len(columns))`` float32 at ``depth_factor`` x each cell's depth.

        ``match`` is the gene match of ``adata`` (``prepare(adata, ...).match``).

        The genes of ``columns`` are read in chunks of ``context_len`` (default: the model's
        training context length): each chunk is one forward pass whose context is those genes,
        so attention memory stays bounded and the context looks like the training ones.
        """
        genes = [str(g) for g in adata.var_names[columns]]
        context = self.context_len or self.pretrained.config.max_len
        out = np.zeros((adata.n_obs, len(genes)), dtype=np.float32)
        model = self.pretrained.model
        with torch.inference_mode():
            for batch in iter_model_batches(
                adata,
                self.pretrained,
                match,
                genes=genes,
                max_len=len(genes),
                batch_size=self.batch_size,
                description="denoise",
            ):
                depth = batch["depth"]
                rows = batch["cell_index"].cpu().numpy()
                for start in range(0, len(genes), context):
                    inputs = model_inputs(batch, slice(start, start + context))
                    # as the original's predict_mode="denoise": the depth token reads the scaled
                    # depth and the means sum to the scaled counts of the context
                    inputs["depth"] = depth * self.depth_factor
                    result = model(
                        **inputs, target_depth=inputs["counts"].sum(1) * self.depth_factor
                    )
                    window = slice(start, start + inputs["gene_ids"].shape[1])
                    out[rows, window] = result.zinb_mean.float().cpu().numpy()
        return out

    def __call__(
        self, adata: ad.AnnData, *, key_added: str = "scprint_denoised", copy: bool = False
    ) -> ad.AnnData | None:
        """Denoise ``adata`` (cells x genes, raw counts) in place (``None``), or a returned copy.

        Writes ``layers[key_added]``: CSR float32 ``(n_cells, n_genes)``, the ZINB mean at
        ``depth_factor`` x depth in the chosen genes' columns (other columns empty);
        ``var[key_added]`` (bool) marks the chosen genes; ``uns[key_added]`` the settings and
        provenance.
        """
        data = prepare(adata, self.pretrained, **self.gene_matching)
        columns = self._columns(data)
        means = self.denoised_means(adata, columns, data.match)
        layer = sp.csr_matrix(
            (
                means.ravel(),
                (np.repeat(np.arange(adata.n_obs), columns.size), np.tile(columns, adata.n_obs)),
            ),
            shape=adata.shape,
            dtype=np.float32,
        )
        chosen = np.zeros(adata.n_vars, dtype=bool)
        chosen[columns] = True
        settings = provenance(
            self.pretrained,
            depth_factor=self.depth_factor,
            genes=self.genes if isinstance(self.genes, str) else "list",
            n_genes=int(columns.size),
            gene_match=data.match.summary(),
        )
        return store_result(
            adata,
            {"layers": {key_added: layer}, "var": {key_added: chosen}},
            settings,
            key_added,
            copy=copy,
        )


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``, ignoring NaN entries.

    An entry is used when it is finite in both; NaN for rows with fewer than 3 such entries or
    a constant side.
    """
    keep = ~(np.isnan(a) | np.isnan(b))
    n = keep.sum(axis=1)
    a = np.where(keep, a, 0.0)
    b = np.where(keep, b, 0.0)
    safe_n = np.maximum(n, 1)[:, None]
    a = np.where(keep, a - a.sum(axis=1, keepdims=True) / safe_n, 0.0)
    b = np.where(keep, b - b.sum(axis=1, keepdims=True) / safe_n, 0.0)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / denominator
    return np.where((denominator > 0) & (n >= 3), r, np.nan)


def _rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation per row (Pearson of average ranks), ignoring NaN entries."""
    keep = ~(np.isnan(a) | np.isnan(b))
    a_ranks = rankdata(np.where(keep, a, np.nan), axis=1, nan_policy="omit")
    b_ranks = rankdata(np.where(keep, b, np.nan), axis=1, nan_policy="omit")
    return _rowwise_pearson(a_ranks, b_ranks)


def evaluate_denoising(
    adata: ad.AnnData,
    ckpt: Checkpoint,
    *,
    fraction: float = 0.7,
    n_cells: int | None = 200,
    genes: str | Sequence[str] = "expressed",
    n_genes: int = 200,
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    baselines: Mapping[str, Callable[[ad.AnnData, np.ndarray], np.ndarray]] | None = None,
) -> dict[str, float | int]:
    """Down-sample cells, denoise them, and compare with the full counts.

    ``n_cells`` cells (random, seeded; ``None`` = all) of ``adata`` (raw counts) are thinned
    binomially: each count is kept with probability ``1 - fraction`` (``fraction`` of the counts
    removed). The thinned cells are denoised at ``depth_factor = 1 / (1 - fraction)``, back to the
    original depth. Per cell, over the chosen genes expressed in the cell's full counts (as in
    the scPRINT paper; the zeros of the full profile say little about the truth), the Spearman
    correlation (ranks) and the Pearson correlation of ``log1p`` values with the full counts are
    computed for the denoised and for the thinned (noisy) input. Returns their means over cells (``spearman_denoised``,
    ``spearman_noisy``, ``pearson_denoised``, ``pearson_noisy``), the share of cells whose
    Spearman improved (``improved_fraction``), and ``n_cells``, ``n_genes``, ``fraction``.
    Pass held-out cells (not seen in training) for an honest estimate.

    ``baselines`` maps a name to another denoiser scored on the very same thinned cells and
    genes: ``fn(noisy, columns) -> (n_cells, len(columns))`` expected counts at full depth, where
    ``noisy`` is the thinned AnnData (cells x all genes) and ``columns`` the chosen gene columns.
    Each adds ``spearman_<name>``, ``pearson_<name>`` and ``improved_fraction_<name>``.
    """
    if not 0 < fraction < 1:
        raise InputError(
            f"fraction (share of counts removed) must be in (0, 1), e.g. 0.7; got {fraction!r}"
        )
    denoiser = Denoiser(
        ckpt,
        genes=genes,
        n_genes=n_genes,
        depth_factor=1.0 / (1.0 - fraction),
        batch_size=batch_size,
        device=device,
    )
    data = prepare(adata, denoiser.pretrained)
    rng = np.random.default_rng(seed)
    rows = np.arange(adata.n_obs)
    if n_cells is not None and n_cells < adata.n_obs:
        rows = np.sort(rng.choice(adata.n_obs, size=n_cells, replace=False))
    full = data.counts[rows]
    columns = denoiser._columns(TaskInput(adata[rows], data.match, full))
    thinned = full.copy()
    thinned.data = rng.binomial(thinned.data.astype(np.int64), 1.0 - fraction).astype(np.float32)
    thinned.eliminate_zeros()
    noisy = ad.AnnData(X=thinned, obs=adata.obs.iloc[rows].copy(), var=adata.var.copy())
    denoised = denoiser.denoised_means(noisy, columns, data.match)
    full_genes = full[:, columns].toarray()
    noisy_genes = thinned[:, columns].toarray()
    unexpressed = full_genes == 0
    full_genes[unexpressed] = np.nan
    noisy_genes[unexpressed] = np.nan
    denoised[unexpressed] = np.nan
    spearman_denoised = _rowwise_spearman(denoised, full_genes)
    spearman_noisy = _rowwise_spearman(noisy_genes, full_genes)
    pearson_denoised = _rowwise_pearson(np.log1p(denoised), np.log1p(full_genes))
    pearson_noisy = _rowwise_pearson(np.log1p(noisy_genes), np.log1p(full_genes))
    valid = ~np.isnan(spearman_denoised) & ~np.isnan(spearman_noisy)
    result = {
        "n_cells": int(rows.size),
        "n_genes": int(columns.size),
        "fraction": float(fraction),
        "spearman_denoised": float(np.nanmean(spearman_denoised)),
        "spearman_noisy": float(np.nanmean(spearman_noisy)),
        "pearson_denoised": float(np.nanmean(pearson_denoised)),
        "pearson_noisy": float(np.nanmean(pearson_noisy)),
        "improved_fraction": float((spearman_denoised[valid] > spearman_noisy[valid]).mean()),
    }
    for name, baseline in (baselines or {}).items():
        predicted = np.asarray(baseline(noisy, columns), dtype=np.float64)
        if predicted.shape != full_genes.shape:
            raise InputError(
                f"baseline {name!r} returned shape {predicted.shape}; expected {full_genes.shape} "
                "(cells x chosen genes)"
            )
        predicted[unexpressed] = np.nan
        spearman = _rowwise_spearman(predicted, full_genes)
        pearson = _rowwise_pearson(np.log1p(predicted), np.log1p(full_genes))
        ok = ~np.isnan(spearman) & ~np.isnan(spearman_noisy)
        result[f"spearman_{name}"] = float(np.nanmean(spearman))
        result[f"pearson_{name}"] = float(np.nanmean(pearson))
        result[f"improved_fraction_{name}"] = float((spearman[ok] > spearman_noisy[ok]).mean())
    log.info("denoising evaluation: %s", result)
    return result
