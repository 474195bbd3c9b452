"""The pretraining objective: its options (:class:`Objective`) and its loss terms on a batch
(:func:`pretraining_losses`), computed from the network alone (no Lightning).

One training step follows the original's ``_full_training`` (scPRINT 2.3.8), each pass switchable
through :class:`Objective`:

1. ``full`` pass on the cell's counts: hierarchical classification of each label class, the
   disentanglement of the output cell tokens and the elastic cell similarity (ECS) of the cell
   embeddings; its cell tokens feed the generation.
2. ``denoise`` pass per noise level: the counts down-sampled as the original does
   (:func:`~scprint.model.losses.downsample_counts`; or, with ``noise_model="binomial"``, the
   batch's binomially thinned counts), then the ZINB NLL of the *full* counts (plus, optionally,
   the expected-log-expression MSE), disentanglement and ECS.
3. ``generation``: the profile regenerated from the full pass's cell tokens (the last denoising
   pass's without a full pass) and the gene identities only (bottleneck), scored like a denoising
   pass.
4. contrastive cell embedding (CCE): NT-Xent between the cell embeddings of every pair of passes.

Optional masked passes (``mask_ratios``) run between the full and the denoising passes.
Classification (and the optional MVC decoder's ZINB) runs once, on the first pass. Not ported:
the original's transcription-factor masking (``mask_ratio: ["TF"]``) and its adversarial heads
(``do_adv_cls``, ``do_adv_batch``), all off by default. The ZINB means are expressed at the
summed counts of the context genes, the depth token carries the cell's total counts (both as the
original). The total is the weighted sum of the terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..model import ScPrint, ScPrint2
from ..model.losses import (
    contrastive_cell_loss,
    disentanglement_loss,
    downsample_counts,
    elastic_cell_similarity,
    expected_log_expression_mse,
    hierarchical_classification_loss,
    hierarchical_cross_entropy,
    zinb_nll,
)

__all__ = ["CLASSIFICATION_LOSSES", "NOISE_MODELS", "Objective", "pretraining_losses"]

CLASSIFICATION_LOSSES = ("original", "softmax")
NOISE_MODELS = ("original", "binomial")


@dataclass
class Objective:
    """The pretraining objective: which passes run and the weight of each term (0 disables it).

    Defaults are the original scPRINT 2.3.8's: its ``TrainingMode`` callback's defaults with the
    ``scprint_training`` section of its published ``config/base_v2.yml`` on top
    (``run_full_forward``, ``do_ecs``, ``do_cce`` switched on), except ``zinb_and_mse``: base_v2
    adds a tenth of :func:`~scprint.model.losses.expected_log_expression_mse`, whose scale grows
    with ``(10,000 / context genes)^2``; on 64-gene contexts it dominated the total and the
    denoising ZINB NLL rose (3.96 -> 4.30 over 100 steps of the ``tiny`` preset on 400 Kang cells,
    against 3.20 -> 2.21 without it), so it is off (``TrainingMode``'s default) and
    ``expression_mse=0.1`` restores base_v2. Not ported: base_v2's ``mask_ratio: ["TF"]``
    (masking weighted towards transcription factors) and ``var_context_length``.

    Attributes:
        noise: fraction of reads removed in each denoising pass (``noise``, ``[0.6]``); empty for
            no denoising pass.
        full_forward: run a pass on the full counts (``run_full_forward``, True); without it the
            first denoising pass is classified and feeds the generation.
        denoise: weight of each denoising pass's ZINB NLL (1, implicit in the original).
        expression_mse: weight of the expected-log-expression MSE added to each ZINB term
            (0; the original's ``zinb_and_mse`` adds a tenth: 0.1).
        generation: weight of the bottleneck generation's ZINB NLL (``do_generate``: 1).
        classification: weight of the summed per-class classification losses (``class_scale``: 1).
        classification_loss: ``"original"`` (per-leaf binary cross-entropy with the coarse-label
            term, :func:`~scprint.model.losses.hierarchical_classification_loss`) or ``"softmax"``
            (:func:`~scprint.model.losses.hierarchical_cross_entropy`, this package's earlier
            choice).
        per_class: label class -> extra weight of that class (default 1 each).
        disentanglement: weight of the cell-token disentanglement in each pass
            (``class_embd_diss_scale``: 0.1).
        ecs: weight of the elastic cell similarity in each pass (``ecs_scale``: 0.1).
        ecs_threshold: ECS similarity threshold (``ecs_threshold``: 0.4).
        cce: weight of the contrastive loss between passes (``cce_scale``: 0.1).
        cce_temperature: its temperature (``cce_temp``: 0.2).
        mvc: weight of the MVC decoder's ZINB NLL on the first pass (``do_mvc`` off: 0;
            ``mvc_scale`` is 1); needs a model with an MVC decoder.
        noise_model: ``"original"`` (:func:`~scprint.model.losses.downsample_counts` at each
            ``noise`` level) or ``"binomial"`` (one denoising pass on the batch's
            ``thinned_counts``: each count binomially thinned with a per-cell keep probability
            drawn in ``SamplingOptions.thinning``, 0.1-1 by default; this package's earlier
            choice). Measured on the ``tiny`` preset, 150 steps on 400 Kang cells, denoising 70 %
            thinned cells (``evaluate_denoising``, Spearman to the full counts; the input scores
            0.675): ``"original"`` 0.468, ``"binomial"`` 0.722.
        mask_ratios: one masked pass per ratio (``mask_ratio``, off: ``[]``), after the full pass:
            the counts down-sampled with per-gene dropouts up to 0.5 (when ``noise`` is set), a
            random ``ratio`` of the genes' expression hidden, the ZINB NLL of the down-sampled
            counts (term ``masked``, weighted by ``denoise``), the depth token given the
            down-sampled total (as the original). The original's ``"TF"`` masking is not ported.
    """

    noise: tuple[float, ...] = (0.6,)
    full_forward: bool = True
    denoise: float = 1.0
    expression_mse: float = 0.0
    generation: float = 1.0
    classification: float = 1.0
    classification_loss: str = "original"
    per_class: dict[str, float] = field(default_factory=dict)
    disentanglement: float = 0.1
    ecs: float = 0.1
    ecs_threshold: float = 0.4
    cce: float = 0.1
    cce_temperature: float = 0.2
    mvc: float = 0.0
    mask_ratios: tuple[float, ...] = ()
    noise_model: str = "original"

    def __post_init__(self) -> None:
        self.noise = tuple(float(level) for level in self.noise)
        self.mask_ratios = tuple(float(ratio) for ratio in self.mask_ratios)
        for level in self.noise:
            if not 0.0 <= level <= 1.0:
                raise ValueError(f"Objective.noise levels must be in [0, 1], got {level!r}")
        for ratio in self.mask_ratios:
            if not 0.0 < ratio < 1.0:
                raise ValueError(f"Objective.mask_ratios must be in (0, 1), got {ratio!r}")
        weights = ("denoise", "expression_mse", "generation", "classification")
        for name in (*weights, "disentanglement", "ecs", "cce", "mvc"):
            if getattr(self, name) < 0:
                raise ValueError(f"Objective.{name} must be >= 0, got {getattr(self, name)!r}")
        for name, weight in self.per_class.items():
            if weight < 0:
                raise ValueError(f"Objective.per_class[{name!r}] must be >= 0, got {weight!r}")
        if self.noise_model not in NOISE_MODELS:
            raise ValueError(
                f"Objective.noise_model must be one of {NOISE_MODELS}, got {self.noise_model!r}"
            )
        if self.classification_loss not in CLASSIFICATION_LOSSES:
            raise ValueError(
                f"Objective.classification_loss must be one of {CLASSIFICATION_LOSSES}, "
                f"got {self.classification_loss!r}"
            )
        if self.cce_temperature <= 0:
            raise ValueError(f"Objective.cce_temperature must be > 0, got {self.cce_temperature!r}")
        if not (self.full_forward or self.noise or self.mask_ratios):
            raise ValueError(
                "Objective needs a pass on the cells: set full_forward=True or give noise levels "
                "or mask ratios"
            )


@dataclass
class _Pass:
    """What one forward pass contributes: its output cell tokens (if any) and its loss terms."""

    cell_tokens: torch.Tensor | None
    terms: dict[str, torch.Tensor]


def _zinb_parameters(out: Any) -> dict[str, torch.Tensor]:
    """The ZINB parameters of a forward pass, keyed as the expression loss reads them."""
    return {
        "mean": out.zinb_mean,
        "dispersion": out.zinb_dispersion,
        "dropout_logit": out.zinb_dropout_logit,
    }


def pretraining_losses(
    model: ScPrint | ScPrint2,
    objective: Objective,
    descendants: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    by_pass: bool = False,
) -> dict[str, torch.Tensor]:
    """Every loss term of a batch (unweighted, summed over passes), and the weighted total ``"loss"``.

    Draws the denoising noise from torch's global generator (seeded per step by the trainer
    hooks).

    Args:
        model: the network (:class:`~scprint.model.ScPrint` or :class:`~scprint.model.ScPrint2`).
        objective: which passes run and the weight of each term.
        descendants: label class -> ``(n_labels, n_leaves)`` bool matrix, leaves first then the
            coarse labels (:meth:`scprint.data.LabelEncoder.descendant_matrix`).
        batch: ``gene_ids`` ``(B, L)`` (``-1`` padding), ``counts`` ``(B, L)``, ``depth`` ``(B,)``,
            ``labels`` ``(B, n_classes)`` (leaf, coarse or ``-1``).
        by_pass: also return each pass's terms as ``"<pass>/<term>"`` with pass ``full``,
            ``denoise_<percent>`` or ``generation`` (the original logs them this way).
    """
    gene_ids, counts, depth = batch["gene_ids"], batch["counts"], batch["depth"]
    context = gene_ids >= 0
    context_total = (counts * context).sum(1)
    passes: dict[str, _Pass] = {}
    first = True
    if objective.full_forward:
        out = model(
            gene_ids, counts, depth, target_depth=context_total, return_mvc=objective.mvc > 0
        )
        passes["full"] = _pass_terms(
            model, objective, descendants, out.cell_tokens, batch, logits=out.logits, mvc=out.mvc
        )
        generate_from, first = out.cell_tokens, False
    for ratio in objective.mask_ratios:
        noisy = downsample_counts(counts, 0.5, per_gene_random=True) if objective.noise else counts
        hidden = (torch.rand(gene_ids.shape, device=gene_ids.device) < ratio) & context
        noisy_total = (noisy * context).sum(1)
        out = model(
            gene_ids,
            noisy,
            noisy_total,
            target_depth=noisy_total,
            mask=hidden,
            return_mvc=first and objective.mvc > 0,
        )
        expression = _zinb_parameters(out)
        passes[f"mask_{round(ratio * 100)}"] = _pass_terms(
            model,
            objective,
            descendants,
            out.cell_tokens,
            {**batch, "counts": noisy},
            logits=out.logits if first else None,
            expression=expression,
            expression_term="masked",
            mvc=out.mvc,
        )
        if first or not objective.full_forward:
            generate_from, first = out.cell_tokens, False
    for level in objective.noise if objective.noise_model == "original" else ("binomial",):
        if level == "binomial":
            if "thinned_counts" not in batch:
                raise ValueError(
                    "Objective.noise_model='binomial' needs the batch's 'thinned_counts' "
                    "(made by scprint.training.CellDataModule)"
                )
            noisy, pass_name = batch["thinned_counts"], "denoise_binomial"
        else:
            noisy, pass_name = downsample_counts(counts, level), f"denoise_{round(level * 100)}"
        out = model(
            gene_ids,
            noisy,
            depth,
            target_depth=context_total,
            return_mvc=first and objective.mvc > 0,
        )
        expression = _zinb_parameters(out)
        passes[pass_name] = _pass_terms(
            model,
            objective,
            descendants,
            out.cell_tokens,
            batch,
            logits=out.logits if first else None,
            expression=expression,
            expression_term="denoise",
            mvc=out.mvc,
        )
        if first or not objective.full_forward:
            generate_from, first = out.cell_tokens, False
    if objective.generation > 0:
        generated = model.decode_from_cell_tokens(
            generate_from, gene_ids, context_total, depth=depth
        )
        # with cell-specific blocks the given cell tokens pass through unchanged, and the
        # original scores no cell-token term on them
        regenerated = generated["cell_tokens"] if model.cell_transformer is None else None
        passes["generation"] = _pass_terms(
            model,
            objective,
            descendants,
            regenerated,
            batch,
            expression=generated,
            expression_term="generation",
        )

    weights = {
        "denoise": objective.denoise,
        "masked": objective.denoise,
        "generation": objective.generation,
        "expression_mse": objective.expression_mse,
        "classification": objective.classification,
        "disentanglement": objective.disentanglement,
        "ecs": objective.ecs,
        "cce": objective.cce,
        "mvc": objective.mvc,
    }
    terms: dict[str, torch.Tensor] = {}
    for pass_name, one in passes.items():
        for name, value in one.terms.items():
            terms[name] = terms[name] + value if name in terms else value
            if by_pass:
                terms[f"{pass_name}/{name}"] = value
    embeddings = [p.cell_tokens.mean(dim=1) for p in passes.values() if p.cell_tokens is not None]
    if objective.cce > 0 and len(embeddings) > 1:
        pairs = [
            contrastive_cell_loss(a, b, objective.cce_temperature)
            for i, a in enumerate(embeddings)
            for b in embeddings[i + 1 :]
        ]
        terms["cce"] = torch.stack(pairs).mean()
    total = counts.new_zeros((), dtype=torch.float32)
    for name, weight in weights.items():
        if name in terms:
            total = total + weight * terms[name]
    terms["loss"] = total
    return terms


def _pass_terms(
    model: ScPrint | ScPrint2,
    objective: Objective,
    descendants: dict[str, torch.Tensor],
    cell_tokens: torch.Tensor | None,
    batch: dict[str, torch.Tensor],
    logits: dict[str, torch.Tensor] | None = None,
    expression: dict[str, torch.Tensor] | None = None,
    expression_term: str = "denoise",
    mvc: dict[str, torch.Tensor] | None = None,
) -> _Pass:
    """The loss terms of one pass (the original's ``_compute_loss``), unweighted."""
    counts, context = batch["counts"], batch["gene_ids"] >= 0
    terms: dict[str, torch.Tensor] = {}
    if mvc is not None:
        terms["mvc"] = zinb_nll(counts, mvc["mean"], mvc["disp"], mvc["zero_logits"], context)
    if expression is not None:
        terms[expression_term] = zinb_nll(
            counts,
            expression["mean"],
            expression["dispersion"],
            expression["dropout_logit"],
            context,
        )
        if objective.expression_mse > 0:
            terms["expression_mse"] = expected_log_expression_mse(
                counts, expression["mean"], expression["dropout_logit"], context
            )
    if model.label_classes and cell_tokens is not None:
        if objective.disentanglement > 0:
            terms["disentanglement"] = disentanglement_loss(cell_tokens)
        if logits is not None and objective.classification > 0:
            terms.update(
                _classification_terms(model, objective, descendants, logits, batch["labels"])
            )
    if cell_tokens is not None and objective.ecs > 0:
        terms["ecs"] = elastic_cell_similarity(cell_tokens.mean(dim=1), objective.ecs_threshold)
    return _Pass(cell_tokens, terms)


def _classification_terms(
    model: ScPrint | ScPrint2,
    objective: Objective,
    descendants: dict[str, torch.Tensor],
    logits: dict[str, torch.Tensor],
    labels: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-class losses and their weighted sum ``"classification"``."""
    terms: dict[str, torch.Tensor] = {}
    total = labels.new_zeros((), dtype=torch.float32)
    for j, name in enumerate(model.label_classes):
        below = descendants[name]
        if objective.classification_loss == "original":
            n_leaves = below.shape[1]
            term = hierarchical_classification_loss(logits[name], labels[:, j], below[n_leaves:])
        else:
            term = hierarchical_cross_entropy(logits[name], labels[:, j], below)
        terms[f"classification_{name}"] = term
        total = total + objective.per_class.get(name, 1.0) * term
    terms["classification"] = total
    return terms
