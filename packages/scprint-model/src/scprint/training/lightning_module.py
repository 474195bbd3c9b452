"""Pretraining as a :class:`lightning.LightningModule`: losses, logging, optimiser and schedules.

Per batch (``thinned_counts`` is the binomially down-sampled input, ``counts`` the full profile):

- ``denoise``: ZINB NLL of the full counts given the thinned input and the true depth;
- ``generation``: ZINB NLL of the full counts regenerated from the output cell tokens and the gene
  identities only (bottleneck);
- ``classification``: weighted hierarchical cross-entropy of each label class (unknowns ignored);
- ``disentanglement``: squared correlation across cells between the base and class output tokens
  (batches of two cells or more).

The total is the weighted sum; every term is logged (``train/<term>``, ``val/<term>``).
Dropout randomness is a function of ``(seed, rank, step)`` so resuming is exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch

from ..model import ModelConfig, ScPrint, disentanglement_loss, hierarchical_cross_entropy, zinb_nll
from .checkpoint import CHECKPOINT_KEY


@dataclass
class LossWeights:
    """Weight of each pretraining loss term (0 disables it; classification per label class)."""

    denoise: float = 1.0
    generation: float = 1.0
    classification: float = 1.0
    disentanglement: float = 1.0
    per_class: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("denoise", "generation", "classification", "disentanglement"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss weight {name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class OptimOptions:
    """AdamW with linear warm-up, then a plateau scheduler on the validation loss (the training
    loss when there is no validation set), checked every validation interval.

    Attributes:
        learning_rate: peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: steps of linear warm-up from ``learning_rate / warmup_steps``.
        plateau_factor: learning-rate multiplier when the monitored loss stops improving.
        plateau_patience: validations without improvement before reducing.
        gradient_clip: gradient-norm clipping (applied by the trainer).
    """

    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    gradient_clip: float = 1.0


class ScPrintLightning(L.LightningModule):
    """Wraps :class:`~scprint.model.ScPrint` for pretraining.

    Args:
        model: the network.
        descendants: label class -> ``(n_labels, n_leaves)`` bool matrix (see
            :meth:`scprint.data.LabelEncoder.descendant_matrix`).
        weights: loss weights.
        optim: optimiser options.
        metadata: what the checkpoint must carry to rebuild the model without data (vocabulary,
            labels, config); stored under ``checkpoint["scprint"]``.
        seed: seed of the dropout randomness.
        validation_interval: steps between validations (the plateau scheduler's period).
        has_validation: whether validation runs (else the plateau scheduler watches the
            training loss).
    """

    def __init__(
        self,
        model: ScPrint,
        descendants: dict[str, torch.Tensor],
        weights: LossWeights,
        optim: OptimOptions,
        metadata: dict[str, Any],
        seed: int = 0,
        validation_interval: int = 1,
        has_validation: bool = True,
    ) -> None:
        super().__init__()
        missing = sorted(set(model.label_classes) - set(descendants))
        if missing:
            raise ValueError(f"no descendant matrix for label classes {missing}")
        self.model = model
        self.weights, self.optim = weights, optim
        self.metadata, self.seed = metadata, seed
        self.validation_interval, self.has_validation = validation_interval, has_validation
        for name in model.label_classes:
            self.register_buffer(f"descendants_{name}", descendants[name].bool(), persistent=False)

    @property
    def config(self) -> ModelConfig:
        """The model configuration."""
        return self.model.config

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term of a batch, and their weighted sum under ``"loss"``."""
        gene_ids, counts, depth = batch["gene_ids"], batch["counts"], batch["depth"]
        context = gene_ids >= 0
        out = self.model(gene_ids, batch["thinned_counts"], depth, target_depth=depth)
        terms: dict[str, torch.Tensor] = {
            "denoise": zinb_nll(
                counts, out.zinb_mean, out.zinb_dispersion, out.zinb_dropout_logit, context
            )
        }
        if self.weights.generation > 0:
            generated = self.model.decode_from_cell_tokens(out.cell_tokens, gene_ids, depth)
            terms["generation"] = zinb_nll(
                counts,
                generated["mean"],
                generated["dispersion"],
                generated["dropout_logit"],
                context,
            )
        total = self.weights.denoise * terms["denoise"] + self.weights.generation * terms.get(
            "generation", 0.0
        )
        if self.model.label_classes:
            classification = out.zinb_mean.new_zeros(())
            for j, name in enumerate(self.model.label_classes):
                term = hierarchical_cross_entropy(
                    out.logits[name], batch["labels"][:, j], getattr(self, f"descendants_{name}")
                )
                terms[f"classification_{name}"] = term
                classification = classification + self.weights.per_class.get(name, 1.0) * term
            terms["classification"] = classification
            total = total + self.weights.classification * classification
            if gene_ids.shape[0] > 1:
                keep = [i for n, i in self.model.cell_token_index.items() if n != "depth"]
                tokens = out.cell_tokens[:, keep]
                terms["disentanglement"] = disentanglement_loss(tokens)
                total = total + self.weights.disentanglement * terms["disentanglement"]
        terms["loss"] = total
        return terms

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        seed = np.random.SeedSequence(
            [self.seed, self.global_rank, self.global_step]
        ).generate_state(1)[0]
        torch.manual_seed(int(seed))
        if self.global_step < self.optim.warmup_steps:
            scale = (self.global_step + 1) / self.optim.warmup_steps
            for group in self.optimizers().param_groups:
                group["lr"] = self.optim.learning_rate * scale

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch)
        size = batch["gene_ids"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), batch_size=size, prog_bar=name == "loss")
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return terms["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        terms = self.losses(batch)
        size = batch["gene_ids"].shape[0]
        for name, value in terms.items():
            self.log(f"val/{name}", value, batch_size=size, sync_dist=True, prog_bar=name == "loss")

    def configure_optimizers(self) -> dict[str, Any]:
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            parameters, lr=self.optim.learning_rate, weight_decay=self.optim.weight_decay
        )
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=self.optim.plateau_factor,
            patience=self.optim.plateau_patience,
        )
        monitor = "val/loss" if self.has_validation else "train/loss"
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": plateau,
                "monitor": monitor,
                "interval": "step",
                "frequency": self.validation_interval,
                "strict": False,
            },
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            **self.metadata,
            "loss_weights": asdict(self.weights),
            "optim": asdict(self.optim),
        }
