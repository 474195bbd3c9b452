"""Counterfactual expression: :class:`Generator`.

For each source cell the model encodes its counts into cell tokens (one per token class, e.g.
``base``, ``depth``, ``cell_type``); the tokens of the chosen classes are replaced by those of a
target (the mean output token of reference cells carrying the target label, or a given vector;
with ``space="code"``, a scPRINT-2 class's compressed code is replaced instead, the mean code of
the reference cells or a given code, and decoded into its token by the class's compressor), and
the expression of the chosen genes is decoded from the cell tokens alone
(``ScPrint.decode_from_cell_tokens``) at the source cell's depth, in chunks of the model's
context length. The source cells are encoded as in training (up to ``max_len`` genes per cell,
expressed genes first) or over ``input_genes``. The generated profiles are stored beside the
source cells' counts (one row per source cell) under ``key_added``, as :class:`Generator`
describes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from scprint.errors import InputError
from scprint.tasks._batches import iter_model_batches, model_inputs
from scprint.tasks._input import (
    GeneMatch,
    TaskInput,
    check_genes,
    choose_genes,
    gene_matching_options,
    prepare,
    var_names_to_vocab,
)
from scprint.tasks._model import Checkpoint, load_model, model_device
from scprint.tasks._output import provenance, store_result
from scprint.tasks.options import GENERATE_GENES

log = logging.getLogger(__name__)

__all__ = ["SPACES", "Generator", "sample_zinb"]

#: Where :class:`Generator` swaps a class: its output cell ``"token"``, or its compressor's
#: ``"code"`` (scPRINT-2), decoded back into a token by the compressor.
SPACES: tuple[str, ...] = ("token", "code")


def sample_zinb(
    mean: np.ndarray, dispersion: np.ndarray, dropout_logit: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw counts from a zero-inflated negative binomial (same-shaped arrays).

    NB as a gamma-Poisson mixture: ``rate ~ Gamma(shape=theta, scale=mean / theta)``,
    ``x ~ Poisson(rate)`` (variance ``mean + mean² / theta``); then ``x = 0`` with probability
    ``sigmoid(dropout_logit)``. Returns float32 counts.
    """
    theta = np.maximum(dispersion.astype(np.float64), 1e-8)
    rate = rng.gamma(shape=theta, scale=np.maximum(mean.astype(np.float64), 0.0) / theta)
    counts = rng.poisson(rate).astype(np.float32)
    dropped = rng.random(mean.shape) < 1.0 / (1.0 + np.exp(-dropout_logit.astype(np.float64)))
    counts[dropped] = 0.0
    return counts


class Generator:
    """Generate counterfactual expression profiles.

    Parameters
    ----------
    ckpt
        Checkpoint path or an already loaded model (:func:`scprint.load`; original scPRINT checkpoints too).
    target
        ``{token class: label or embedding}``: a label's token is the mean output token over
        ``reference`` cells (default: the cells generated from) with that label in
        ``obs[label_columns.get(class, class)]``; an embedding is a ``(cell_dim,)`` vector
        (``config.cell_dim``: ``d_model``, or scPRINT-2's ``d_model_cell`` with cell-specific
        blocks). E.g. ``{"cell_type": "B cells"}``.
    reference
        AnnData (raw counts) whose labelled cells define the target labels' tokens; ``None`` =
        the AnnData the task is called on.
    label_columns
        ``{token class: obs column}`` holding the labels (default: the column named like the
        class).
    genes, n_genes
        Genes decoded: ``"all"`` (every gene of the AnnData the model knows), ``"hvg"`` or
        ``"expressed"`` (``n_genes`` of them, chosen on the source cells) or a list of genes
        (``var_names``, Ensembl ids or symbols): :data:`scprint.tasks._input.GENE_CHOICES`.
    sample
        Also draw counts from the decoded ZINB (``layers[key_added]`` then holds the draws,
        ``layers[key_added + "_mean"]`` the means).
    seed
        Seed of the draws.
    max_reference_cells
        At most this many reference cells (the most counts first) define a target label's token.
    context_len
        Genes decoded together (default: the model's training context length ``max_len``); the
        genes are decoded in such chunks, each from the cell tokens alone, so that the cell
        tokens weigh in the attention as they did in training.
    space
        ``"token"``: a class is swapped as its output cell token (a label's token is the mean
        token of its reference cells). ``"code"`` (scPRINT-2 models with compressors): as its
        compressed code, the counterfactual of scPRINT-2's per-class bottleneck: a label's code
        is the mean code (a VAE's mean, an FSQ's projection before rounding) of its reference
        cells, a given target is a code ``(code width,)``, and the class's compressor decodes it
        into the token generation reads. The codes used are in ``uns[key_added]["target_codes"]``.
    input_genes
        Genes every cell (source and reference) is read over, in this order (a list of
        ``var_names``); ``None``: up to the model's context length of each cell's genes,
        expressed ones first, as in training.
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
        target: Mapping[str, str | np.ndarray],
        reference: ad.AnnData | None = None,
        label_columns: Mapping[str, str] | None = None,
        genes: str | Sequence[str] = "all",
        n_genes: int = 2000,
        sample: bool = False,
        seed: int = 0,
        max_reference_cells: int = 256,
        context_len: int | None = None,
        space: str = "token",
        input_genes: Sequence[str] | None = None,
        gene_matching: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "auto",
        precision: str = "32",
    ) -> None:
        genes = check_genes(genes, GENERATE_GENES)
        if n_genes < 1:
            raise InputError(f"n_genes must be a positive integer, got {n_genes!r}")
        if not target:
            raise InputError("target is empty; give e.g. {'cell_type': 'B cells'}")
        if context_len is not None and context_len < 1:
            raise InputError(f"context_len must be a positive integer or None, got {context_len!r}")
        if max_reference_cells < 1:
            raise InputError(f"max_reference_cells must be positive, got {max_reference_cells!r}")
        if space not in SPACES:
            raise InputError(f"space must be one of {SPACES}, got {space!r}")
        if isinstance(input_genes, str):
            raise InputError(
                f"input_genes must be None or a list of var_names, got {input_genes!r}"
            )
        self.gene_matching = gene_matching_options(gene_matching)
        self.pretrained = load_model(ckpt, device, precision)
        model = self.pretrained.model
        if space == "code" and (
            not hasattr(model, "tokens_from_codes") or model.compressor is None
        ):
            raise InputError(
                "space='code' needs a model whose cell tokens pass through compressors "
                "(a scPRINT-2 checkpoint with compress_class_dim); this one has none"
            )
        tokens = model.cell_token_index
        unknown = [token_class for token_class in target if token_class not in tokens]
        if unknown:
            raise InputError(
                f"unknown token class {unknown[0]!r} in target; the model has {list(tokens)}"
            )
        self.target = dict(target)
        self.reference = reference
        self.label_columns = dict(label_columns or {})
        self.space = space
        self.input_genes = None if input_genes is None else [str(g) for g in input_genes]
        self.genes = genes
        self.n_genes = n_genes
        self.sample = sample
        self.seed = seed
        self.max_reference_cells = max_reference_cells
        self.context_len = context_len
        self.batch_size = batch_size

    def _columns(self, data: TaskInput) -> np.ndarray:
        columns = choose_genes(data, self.pretrained.vocab, self.genes, self.n_genes)
        return columns if isinstance(self.genes, list) else np.sort(columns)

    def _code_width(self, token_class: str) -> int:
        """Width of the code of ``token_class`` (``space="code"``); ``InputError`` without one."""
        model = self.pretrained.model
        if token_class not in model.label_classes or token_class not in model.compressor:
            with_one = [c for c in model.label_classes if c in model.compressor]
            raise InputError(
                f"{token_class!r} has no compressor to swap a code in; classes with one: {with_one}"
            )
        compressor = model.compressor[token_class]
        return int(getattr(compressor, "latent_dim", None) or compressor.codebook_dim)

    def _decode_code(self, token_class: str, code: torch.Tensor) -> torch.Tensor:
        """The output token ``(cell_dim,)`` the compressor of ``token_class`` decodes ``code``
        ``(n,)`` into (a VAE's decoder; an FSQ's rounding and projection)."""
        self._code_width(token_class)
        batch = {token_class: code.float().unsqueeze(0)}
        with torch.inference_mode():
            return self.pretrained.model.tokens_from_codes(batch)[token_class][0]

    def _batches(
        self, adata: ad.AnnData, match: GeneMatch, description: str, cells: np.ndarray | None = None
    ) -> Any:
        """The model's batches of ``adata``: over ``input_genes`` for every cell when given, else
        up to the model's context length of each cell's genes, expressed ones first."""
        return iter_model_batches(
            adata,
            self.pretrained,
            match,
            genes=self.input_genes,
            max_len=None if self.input_genes is None else len(self.input_genes),
            batch_size=self.batch_size,
            description=description,
            cells=cells,
        )

    def label_token(
        self,
        reference: ad.AnnData,
        token_class: str,
        label: str,
        column: str | None = None,
        match: GeneMatch | None = None,
    ) -> np.ndarray:
        """Mean output token ``(cell_dim,)`` of class ``token_class`` over reference cells labelled
        ``label``; with ``space="code"`` the mean of their codes ``(code width,)`` instead.

        The label is read from ``reference.obs[column]`` (default: the column named like the class);
        ``match`` is the gene match of ``reference`` (default: :func:`prepare` with this
        generator's ``gene_matching``).
        """
        if match is None:
            match = prepare(reference, self.pretrained, **self.gene_matching).match
        column = column or token_class
        if column not in reference.obs:
            raise InputError(
                f"obs has no column {column!r} to find {label!r}; available: {list(reference.obs.columns)}"
            )
        values = reference.obs[column].astype(str).to_numpy()
        rows = np.flatnonzero(values == str(label))
        if rows.size == 0:
            present = sorted(pd.unique(values))[:10]
            raise InputError(
                f"label {label!r} is absent from obs[{column!r}]; present values include {present}"
            )
        if rows.size > self.max_reference_cells:
            totals = np.asarray(reference.X[rows].sum(axis=1)).ravel()
            rows = np.sort(rows[np.argsort(-totals, kind="stable")[: self.max_reference_cells]])
        model = self.pretrained.model
        position = model.cell_token_index[token_class]
        total = None
        with torch.inference_mode():
            for batch in self._batches(reference, match, f"token {label}", rows):
                # only the cell tokens (or codes) are read: skip the gene read-outs (exact)
                out = model(**model_inputs(batch), cells_only=True)
                if self.space == "code":
                    tokens = out.cell_codes[token_class]
                else:
                    tokens = out.cell_tokens[:, position]
                summed = tokens.float().sum(0)
                total = summed if total is None else total + summed
        return (total / rows.size).cpu().numpy()

    def __call__(
        self, adata: ad.AnnData, *, key_added: str = "scprint_generated", copy: bool = False
    ) -> ad.AnnData | None:
        """Generate the profiles of ``adata``'s cells (raw counts) with their ``target`` tokens.

        Writes into ``adata`` (``None`` returned) or a returned copy
        (``copy=True``): ``layers[key_added]`` CSR float32 ``(n_cells, n_genes)``, each source
        cell's generated ZINB means at its depth in the decoded genes' columns (other columns
        empty; draws with ``sample=True``, the means then in ``layers[key_added + "_mean"]``);
        ``var[key_added]`` (bool) marks the decoded genes; ``uns[key_added]`` the target, the
        settings and provenance.
        """
        data = prepare(adata, self.pretrained, **self.gene_matching)
        match = data.match
        model = self.pretrained.model
        device = model_device(self.pretrained)
        target, label_columns = self.target, self.label_columns
        reference = adata if self.reference is None else self.reference
        replacements: dict[int, torch.Tensor] = {}
        described: dict[str, str] = {}
        codes: dict[str, list[float]] = {}
        d_model = self.pretrained.config.cell_dim
        for token_class, value in target.items():
            if isinstance(value, str):
                reference_match = (
                    match
                    if reference is adata
                    else prepare(reference, self.pretrained, **self.gene_matching).match
                )
                vector = self.label_token(
                    reference, token_class, value, label_columns.get(token_class), reference_match
                )
                described[token_class] = value
            else:
                vector = np.asarray(value, dtype=np.float32)
                width = d_model if self.space == "token" else self._code_width(token_class)
                if vector.shape != (width,):
                    raise InputError(
                        f"target {self.space} of {token_class!r} must have shape ({width},), got {vector.shape}"
                    )
                described[token_class] = "embedding" if self.space == "token" else "code"
            vector = torch.as_tensor(vector, device=device)
            if self.space == "code":
                codes[token_class] = vector.float().cpu().numpy().tolist()
                vector = self._decode_code(token_class, vector)
            replacements[model.cell_token_index[token_class]] = vector
        columns = self._columns(data)
        vocab_ids = torch.as_tensor(var_names_to_vocab(adata, match, columns), device=device)
        context = self.context_len or self.pretrained.config.max_len
        means = np.zeros((adata.n_obs, columns.size), dtype=np.float32)
        dispersion = np.zeros_like(means)
        dropout = np.zeros_like(means)
        with torch.inference_mode():
            for batch in self._batches(adata, match, "generate"):
                out = model(**model_inputs(batch), cells_only=True)
                tokens = out.cell_tokens.clone()
                for position, vector in replacements.items():
                    tokens[:, position] = vector.to(tokens.dtype)
                rows = batch["cell_index"].cpu().numpy()
                for start in range(0, columns.size, context):
                    chunk = vocab_ids[start : start + context].expand(len(rows), -1)
                    decoded = model.decode_from_cell_tokens(
                        tokens, chunk, batch["depth"], depth=batch["depth"]
                    )
                    window = slice(start, start + chunk.shape[1])
                    means[rows, window] = decoded["mean"].float().cpu().numpy()
                    dispersion[rows, window] = decoded["dispersion"].float().cpu().numpy()
                    dropout[rows, window] = decoded["dropout_logit"].float().cpu().numpy()
        layers = {key_added: means}
        if self.sample:
            draws = sample_zinb(means, dispersion, dropout, np.random.default_rng(self.seed))
            layers = {key_added: draws, f"{key_added}_mean": means}
        rows = np.repeat(np.arange(adata.n_obs), columns.size)
        cols = np.tile(columns, adata.n_obs)
        stored = {
            name: sp.csr_matrix((values.ravel(), (rows, cols)), shape=adata.shape, dtype=np.float32)
            for name, values in layers.items()
        }
        decoded = np.zeros(adata.n_vars, dtype=bool)
        decoded[columns] = True
        settings = provenance(
            self.pretrained,
            target=described,
            space=self.space,
            target_codes=codes or None,
            sample=self.sample,
            seed=self.seed,
            n_genes=int(columns.size),
            gene_match=match.summary(),
        )
        return store_result(
            adata, {"layers": stored, "var": {key_added: decoded}}, settings, key_added, copy=copy
        )
