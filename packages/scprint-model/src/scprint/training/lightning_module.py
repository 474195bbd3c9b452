"""Pretraining as a :class:`lightning.LightningModule`: the hooks that run the objective of
:mod:`scprint.training.objective` on each batch, logging, optimiser and schedules, checkpoint
metadata.

Every term is logged (``train/<term>``, ``val/<term>``). The dropout and noise of a step come
from a forked RNG seeded by ``(seed, rank, step)``, so resuming is exact and the global RNG is
left alone; validation draws the same noise every time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
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
from ..model.tokens import reduce_gene_table
from .finetune import fine_tuned_network
from .objective import Objective, pretraining_losses

_Options = TypeVar("_Options")

SCHEDULES = ("plateau", "cosine", "constant")
#: Seed stream of validation noise, apart from the training steps'.
_VALIDATION_STREAM = 1 << 30


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
        """Every loss term of a batch and the weighted total ``"loss"``
        (:func:`~scprint.training.objective.pretraining_losses` with this module's network,
        objective and label hierarchy); the noise comes from torch's global generator (seeded
        per step by the trainer hooks)."""
        descendants = {n: getattr(self, f"descendants_{n}") for n in self.model.label_classes}
        return pretraining_losses(self.model, self.objective, descendants, batch, by_pass)

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
