"""Pretraining as a :class:`lightning.LightningModule`: the original scPRINT objective, logging,
optimiser and schedules.

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
original). The total is the weighted sum; every term is logged (``train/<term>``, ``val/<term>``).
The dropout and noise of a step come from a forked RNG seeded by ``(seed, rank, step)``, so
resuming is exact and the global RNG is left alone; validation draws the same noise every time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import numpy as np
import torch

from ..checkpoints.ours import CHECKPOINT_KEY, checkpoint_metadata
from ..checkpoints.reader import check_finite
from ..data.ontology import LabelEncoder
from ..data.vocabulary import Vocabulary
from ..model import (
    ModelConfig,
    ScPrint,
    ScPrint2,
    ScPrint2Config,
    build_network,
    config_from_dict,
)
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
from ..model.tokens import reduce_gene_table
from .finetune import fine_tuned_network

_Options = TypeVar("_Options")

CLASSIFICATION_LOSSES = ("original", "softmax")
NOISE_MODELS = ("original", "binomial")
SCHEDULES = ("plateau", "cosine", "constant")
#: Seed stream of validation noise, apart from the training steps'.
_VALIDATION_STREAM = 1 << 30


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
class OptimOptions:
    """AdamW, a linear warm-up, then a decay: every scheduler a standard ``torch.optim`` one.

    Defaults are the original scPRINT 2.3.8's (``TrainingMode``: ``lr``, ``weight_decay``,
    ``warmup_duration``, ``lr_reduce_factor``, ``lr_reduce_patience``). Gradient clipping is the
    trainer's (``trainer.gradient_clip_val``).

    Attributes:
        learning_rate: peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: steps of linear warm-up (``LinearLR``), step ``s`` at
            ``learning_rate * (s + 1) / warmup_steps``.
        schedule: after the warm-up, ``"plateau"`` (``ReduceLROnPlateau`` on the validation loss,
            the training loss without a validation set, checked at every validation: the
            original's), ``"cosine"`` (``CosineAnnealingLR`` to ``min_lr_ratio * learning_rate``
            at ``trainer.max_steps``) or ``"constant"``.
        plateau_factor: learning-rate multiplier when the monitored loss stops improving.
        plateau_patience: validations without improvement before reducing.
        min_lr_ratio: final learning rate of the cosine schedule, relative to the peak.
    """

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    schedule: str = "plateau"
    plateau_factor: float = 0.6
    plateau_patience: int = 2
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"OptimOptions.schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )


def _as(kind: type[_Options], value: _Options | dict[str, Any] | None) -> _Options:
    """``value`` as a ``kind`` dataclass: itself, built from a dict of its fields (as stored in
    hyper-parameters), or the defaults for ``None``."""
    if value is None:
        return kind()
    if isinstance(value, dict):
        return config_from_dict(value) if kind is ModelConfig else kind(**value)
    return value


@dataclass
class _Pass:
    """What one forward pass contributes: its output cell tokens (if any) and its loss terms."""

    cell_tokens: torch.Tensor | None
    terms: dict[str, torch.Tensor]


class ScPrintLightning(L.LightningModule):
    """Pretrains or fine-tunes :class:`~scprint.model.ScPrint` (or a scPRINT-2 network,
    :class:`~scprint.model.ScPrint2`, fine-tuned from its checkpoint).

    Built from its arguments alone (they are its hyper-parameters), so
    ``ScPrintLightning.load_from_checkpoint(path)`` rebuilds it; ``scprint fit`` fills
    ``data_schema`` from the data module (:attr:`scprint.training.CellDataModule.schema`).

    Args:
        config: the network's sizes and choices (a dict of its fields is accepted); ``None``: the
            original's defaults. With ``init_from`` the architecture is the checkpoint's (a
            :class:`~scprint.model.ScPrint2Config` for a scPRINT-2 checkpoint) and only
            ``dropout``, ``max_len`` and ``freeze_gene_embeddings`` of ``config`` apply. A dict
            (stored hyper-parameters) may describe either generation.
        objective: the training objective (default: the original scPRINT's).
        optim: optimiser and learning-rate schedule.
        init_from: a checkpoint :func:`scprint.load` reads (ours or the original's) to fine-tune:
            every weight is kept; labels new to a label class get new classifier outputs, new
            label classes new heads and class tokens. The data module takes its vocabulary and
            label classes from the same checkpoint.
        freeze_blocks: keep the first this many transformer blocks fixed.
        seed: seed of the dropout and noise randomness.
        data_schema: ``{"vocab": Vocabulary.to_dict(), "labels": {class: LabelEncoder.to_dict()},
            "sampling": {...}}``, the vocabulary and label classes (in class-token order) the
            network is built on.
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        objective: Objective | None = None,
        optim: OptimOptions | None = None,
        init_from: str | None = None,
        freeze_blocks: int = 0,
        seed: int = 0,
        data_schema: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        config, objective = _as(ModelConfig, config), _as(Objective, objective)
        optim = _as(OptimOptions, optim)
        if data_schema is None:
            raise ValueError(
                "ScPrintLightning needs data_schema (the vocabulary and label classes): pass "
                "data_schema=datamodule.schema, or train through scprint.training.fit / scprint fit"
            )
        vocab = Vocabulary.from_dict(data_schema["vocab"])
        labels = {n: LabelEncoder.from_dict(v) for n, v in data_schema["labels"].items()}
        if init_from is None:
            positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
            sizes = {name: len(encoder.classes) for name, encoder in labels.items()}
            model = build_network(config, len(vocab), sizes, gene_positions=positions)
        else:
            model = fine_tuned_network(init_from, config, vocab, labels)
        self.fine_tuned = init_from is not None
        # the network's own config and no init_from: a checkpoint rebuilds it without that file
        hparams = {"config": model.config.to_dict(), "objective": asdict(objective)}
        hparams.update(optim=asdict(optim), init_from=None, freeze_blocks=freeze_blocks)
        self.save_hyperparameters(
            {**hparams, "seed": seed, "data_schema": data_schema}, logger=False
        )
        if not 0 <= freeze_blocks <= model.config.n_layers:
            raise ValueError(
                f"freeze_blocks must be in [0, n_layers={model.config.n_layers}], got {freeze_blocks}"
            )
        for block in model.transformer.blocks[:freeze_blocks]:
            block.requires_grad_(False)
        sampling = dict(data_schema.get("sampling", {}))
        metadata = checkpoint_metadata(model.config, vocab, labels, sampling)
        descendants = {n: torch.from_numpy(e.descendant_matrix()) for n, e in labels.items()}
        self._attach(model, descendants, objective, optim, metadata, seed)

    @classmethod
    def from_network(
        cls,
        model: ScPrint | ScPrint2,
        descendants: dict[str, torch.Tensor],
        objective: Objective | None = None,
        optim: OptimOptions | None = None,
        seed: int = 0,
    ) -> ScPrintLightning:
        """Wrap an existing network (e.g. a loaded one) to compute its training losses.

        Args:
            model: the network.
            descendants: label class -> ``(n_labels, n_leaves)`` bool matrix, leaves first then
                the coarse labels (:meth:`scprint.data.LabelEncoder.descendant_matrix`).
            objective, optim, seed: as for the constructor.

        The module has no hyper-parameters: its checkpoints do not rebuild it alone.
        """
        module = cls.__new__(cls)
        L.LightningModule.__init__(module)
        module.fine_tuned = False
        module._attach(
            model, descendants, objective or Objective(), optim or OptimOptions(), {}, seed
        )
        return module

    def _attach(
        self,
        model: ScPrint | ScPrint2,
        descendants: dict[str, torch.Tensor],
        objective: Objective,
        optim: OptimOptions,
        metadata: dict[str, Any],
        seed: int,
    ) -> None:
        if not model.config.zinb:
            raise ValueError(
                "pretraining needs a model with a ZINB expression decoder (ModelConfig.zinb=True)"
            )
        if objective.mvc > 0 and model.mvc_decoder is None:
            raise ValueError(
                "Objective.mvc > 0 needs a model with an MVC decoder (ModelConfig.mvc_decoder)"
            )
        missing = sorted(set(model.label_classes) - set(descendants))
        if missing:
            raise ValueError(f"no descendant matrix for label classes {missing}")
        for name in model.label_classes:
            n_leaves = model.label_sizes[name]
            if descendants[name].dim() != 2 or descendants[name].shape[1] != n_leaves:
                raise ValueError(
                    f"descendant matrix of {name!r} must be (n_labels, {n_leaves}), "
                    f"got {tuple(descendants[name].shape)}"
                )
        self.model = model
        self.objective, self.optim = objective, optim
        self.metadata, self.seed = metadata, seed
        for name in model.label_classes:
            self.register_buffer(f"descendants_{name}", descendants[name].bool(), persistent=False)

    @property
    def config(self) -> ModelConfig | ScPrint2Config:
        """The model configuration."""
        return self.model.config

    def losses(
        self, batch: dict[str, torch.Tensor], by_pass: bool = False
    ) -> dict[str, torch.Tensor]:
        """Every loss term of a batch (unweighted, summed over passes), and the weighted total ``"loss"``.

        Draws the denoising noise from torch's global generator (seeded per step by the trainer
        hooks).

        Args:
            batch: ``gene_ids`` ``(B, L)`` (``-1`` padding), ``counts`` ``(B, L)``, ``depth`` ``(B,)``,
                ``labels`` ``(B, n_classes)`` (leaf, coarse or ``-1``).
            by_pass: also return each pass's terms as ``"<pass>/<term>"`` with pass ``full``,
                ``denoise_<percent>`` or ``generation`` (the original logs them this way).
        """
        objective = self.objective
        gene_ids, counts, depth = batch["gene_ids"], batch["counts"], batch["depth"]
        context = gene_ids >= 0
        context_total = (counts * context).sum(1)
        passes: dict[str, _Pass] = {}
        first = True
        if objective.full_forward:
            out = self.model(
                gene_ids, counts, depth, target_depth=context_total, return_mvc=objective.mvc > 0
            )
            passes["full"] = self._pass(out.cell_tokens, batch, logits=out.logits, mvc=out.mvc)
            generate_from, first = out.cell_tokens, False
        for ratio in objective.mask_ratios:
            noisy = (
                downsample_counts(counts, 0.5, per_gene_random=True) if objective.noise else counts
            )
            hidden = (torch.rand(gene_ids.shape, device=gene_ids.device) < ratio) & context
            noisy_total = (noisy * context).sum(1)
            out = self.model(
                gene_ids,
                noisy,
                noisy_total,
                target_depth=noisy_total,
                mask=hidden,
                return_mvc=first and objective.mvc > 0,
            )
            expression = {
                "mean": out.zinb_mean,
                "dispersion": out.zinb_dispersion,
                "dropout_logit": out.zinb_dropout_logit,
            }
            passes[f"mask_{round(ratio * 100)}"] = self._pass(
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
            out = self.model(
                gene_ids,
                noisy,
                depth,
                target_depth=context_total,
                return_mvc=first and objective.mvc > 0,
            )
            expression = {
                "mean": out.zinb_mean,
                "dispersion": out.zinb_dispersion,
                "dropout_logit": out.zinb_dropout_logit,
            }
            passes[pass_name] = self._pass(
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
            generated = self.model.decode_from_cell_tokens(
                generate_from, gene_ids, context_total, depth=depth
            )
            # with cell-specific blocks the given cell tokens pass through unchanged, and the
            # original scores no cell-token term on them
            regenerated = generated["cell_tokens"] if self.model.cell_transformer is None else None
            passes["generation"] = self._pass(
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
        embeddings = [
            p.cell_tokens.mean(dim=1) for p in passes.values() if p.cell_tokens is not None
        ]
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

    def _pass(
        self,
        cell_tokens: torch.Tensor | None,
        batch: dict[str, torch.Tensor],
        logits: dict[str, torch.Tensor] | None = None,
        expression: dict[str, torch.Tensor] | None = None,
        expression_term: str = "denoise",
        mvc: dict[str, torch.Tensor] | None = None,
    ) -> _Pass:
        """The loss terms of one pass (the original's ``_compute_loss``), unweighted."""
        objective = self.objective
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
        if self.model.label_classes and cell_tokens is not None:
            if objective.disentanglement > 0:
                terms["disentanglement"] = disentanglement_loss(cell_tokens)
            if logits is not None and objective.classification > 0:
                terms.update(self._classification(logits, batch["labels"]))
        if cell_tokens is not None and objective.ecs > 0:
            terms["ecs"] = elastic_cell_similarity(cell_tokens.mean(dim=1), objective.ecs_threshold)
        return _Pass(cell_tokens, terms)

    def _classification(
        self, logits: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Per-class losses and their weighted sum ``"classification"``."""
        terms: dict[str, torch.Tensor] = {}
        total = labels.new_zeros((), dtype=torch.float32)
        for j, name in enumerate(self.model.label_classes):
            descendants = getattr(self, f"descendants_{name}")
            if self.objective.classification_loss == "original":
                n_leaves = descendants.shape[1]
                term = hierarchical_classification_loss(
                    logits[name], labels[:, j], descendants[n_leaves:]
                )
            else:
                term = hierarchical_cross_entropy(logits[name], labels[:, j], descendants)
            terms[f"classification_{name}"] = term
            total = total + self.objective.per_class.get(name, 1.0) * term
        terms["classification"] = total
        return terms

    @contextlib.contextmanager
    def _step_randomness(self, stream: int) -> Iterator[None]:
        """Dropout and noise of one step drawn from a forked RNG seeded by ``(seed, rank,
        stream)``: resuming replays them exactly, and the global RNG is left as it was."""
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        state = np.random.SeedSequence([self.seed, self.global_rank, stream]).generate_state(1)
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(int(state[0]))
            yield

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        with self._step_randomness(self.global_step):
            terms = self.losses(batch)
        if not torch.isfinite(terms["loss"]):
            bad = [n for n, v in terms.items() if n != "loss" and not torch.isfinite(v).all()]
            raise FloatingPointError(
                f"the training loss is {float(terms['loss'])} at step {self.global_step} "
                f"(non-finite terms: {bad or ['loss']}); training stopped before this step "
                "changed the weights, and the checkpoints already written are kept. Lower "
                "model.optim.learning_rate, or check the data for extreme counts"
            )
        size = batch["gene_ids"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), batch_size=size, prog_bar=name == "loss")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return terms["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _evaluate(self, batch: dict[str, torch.Tensor], batch_idx: int, prefix: str) -> None:
        """Loss terms of a held-out batch; the same noise at every evaluation."""
        with self._step_randomness(_VALIDATION_STREAM + batch_idx):
            terms = self.losses(batch)
        size = batch["gene_ids"].shape[0]
        for name, value in terms.items():
            self.log(
                f"{prefix}/{name}", value, batch_size=size, sync_dist=True, prog_bar=name == "loss"
            )

    def setup(self, stage: str) -> None:
        """Copy the data module's precomputed gene table (if any) into the gene identities, frozen
        when ``config.freeze_gene_embeddings`` (a resumed run then restores its own weights)."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        table = getattr(datamodule, "gene_table", None)
        if stage != "fit" or table is None or self.fine_tuned:
            return
        weight = self.model.gene_table.weight
        with torch.no_grad():
            weight.copy_(reduce_gene_table(table, self.config.d_model))
        weight.requires_grad_(not self.config.freeze_gene_embeddings)

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        optim, schedulers = self.optim, torch.optim.lr_scheduler
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            parameters, lr=optim.learning_rate, weight_decay=optim.weight_decay
        )
        warmup = None
        if optim.warmup_steps > 1:
            start = 1.0 / optim.warmup_steps
            warmup = schedulers.LinearLR(optimizer, start, total_iters=optim.warmup_steps - 1)
        configs: list[dict[str, Any]] = []
        if optim.schedule == "cosine":
            max_steps = self.trainer.max_steps
            if max_steps is None or max_steps < 1:
                raise ValueError(f"the cosine schedule needs trainer.max_steps, got {max_steps}")
            eta_min = optim.min_lr_ratio * optim.learning_rate
            cosine = schedulers.CosineAnnealingLR(
                optimizer, max(1, max_steps - optim.warmup_steps), eta_min=eta_min
            )
            main = cosine
            if warmup is not None:
                main = schedulers.SequentialLR(optimizer, [warmup, cosine], [optim.warmup_steps])
            configs.append({"scheduler": main, "interval": "step"})
        elif warmup is not None:
            configs.append({"scheduler": warmup, "interval": "step"})
        if optim.schedule == "plateau":
            interval = self.trainer.val_check_interval
            has_validation = getattr(self.trainer.datamodule, "has_validation", True)
            plateau = schedulers.ReduceLROnPlateau(
                optimizer, factor=optim.plateau_factor, patience=optim.plateau_patience
            )
            configs.append(
                {
                    "scheduler": plateau,
                    "monitor": "val/loss" if has_validation else "train/loss",
                    "interval": "step",
                    "frequency": interval if isinstance(interval, int) else 1,
                    "strict": False,
                }
            )
        return [optimizer], configs

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            **self.metadata,
            "objective": asdict(self.objective),
            "optim": asdict(self.optim),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to resume a run of another network shape or label classes (naming both), or
        with non-finite weights (naming the tensor)."""
        resumed = getattr(self._trainer, "ckpt_path", None) or "resumed checkpoint"
        check_finite(checkpoint.get("state_dict", {}), Path(str(resumed)))
        meta = checkpoint.get(CHECKPOINT_KEY, {})
        saved = meta.get("config")
        if saved is not None and config_from_dict(saved) != self.config:
            raise ValueError(
                f"the checkpoint was trained with {config_from_dict(saved)}, but the config "
                f"gives {self.config}; pass the same config to resume"
            )
        classes = list(meta.get("labels", self.model.label_classes))
        if classes != self.model.label_classes:
            raise ValueError(
                f"the checkpoint classifies {classes}, but the data's label columns are "
                f"{self.model.label_classes}; pass the same labels to resume"
            )
