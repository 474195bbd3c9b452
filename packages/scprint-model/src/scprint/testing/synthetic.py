"""A freshly initialised scPRINT model fed synthetic batches: the one place where the GPU check
builds a whole model.

Used by the GPU test of the full model (``tests/gpu/test_gpu_model.py``) and the GPU benchmark's
throughput rows (``benchmarks/kernels/bench_attention_gpu.py``). When the model's or the
training module's constructor changes, adapt :func:`build_model` (and :func:`make_batch` if the
batch keys change) here only.

Batches are synthetic counts (negative-binomial-like, about 10 % of the cells padded), labelled
as such: they measure speed and check devices, never accuracy (throughput does not depend on the
count values, and a GPU check needs no data folder).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "N_GENES",
    "N_LABELS",
    "autocast",
    "build_model",
    "cells_per_second",
    "inference_step",
    "make_batch",
    "training_step",
]

#: Vocabulary size and leaf cell types of the synthetic setup.
N_GENES = 20_000
N_LABELS = 8


def build_model(preset: str, device: torch.device) -> Any:
    """A freshly initialised ``ScPrintLightning`` around ``ScPrint(ModelConfig.from_yaml(preset))``.

    Args:
        preset: ``"tiny"``, ``"small"``, ``"medium"`` or ``"large"``.
        device: where the module lives.

    Returns:
        The LightningModule (``module.model`` is the ``ScPrint``; ``module.losses(batch)`` gives
        the pretraining loss terms, ``"loss"`` their weighted sum).
    """
    from scprint.model import ModelConfig, ScPrint
    from scprint.training.lightning_module import OptimOptions, ScPrintLightning
    from scprint.training.objective import Objective

    config = ModelConfig.from_yaml(preset)
    model = ScPrint(config, N_GENES, label_sizes={"cell_type": N_LABELS})
    descendants = {"cell_type": torch.eye(N_LABELS, dtype=torch.bool)}
    module = ScPrintLightning.from_network(model, descendants, Objective(), OptimOptions())
    return module.to(device)


def make_batch(
    module: Any, batch_size: int, device: torch.device, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A pretraining batch of ``batch_size`` cells with ``module.config.max_len`` genes each.

    Keys: ``gene_ids`` ``(B, L)`` long (distinct genes per cell, ``-1`` padding on the last 10 %
    of every tenth cell), ``counts`` and ``thinned_counts`` ``(B, L)`` float, ``depth`` ``(B,)``,
    ``labels`` ``(B, 1)`` long.
    """
    generator = torch.Generator().manual_seed(seed)
    length = module.config.max_len
    gene_ids = torch.rand(batch_size, N_GENES, generator=generator).argsort(dim=1)[:, :length]
    gene_ids[::10, int(0.9 * length) :] = -1
    rates = torch.distributions.Gamma(0.5, 0.25).sample((batch_size, length))
    counts = torch.poisson(rates, generator=generator) * (gene_ids >= 0)
    thinned = torch.binomial(counts, torch.full_like(counts, 0.5), generator=generator)
    batch = {
        "gene_ids": gene_ids,
        "counts": counts,
        "thinned_counts": thinned,
        "depth": counts.sum(dim=1) * 4 + 1,
        "labels": torch.randint(0, N_LABELS, (batch_size, 1), generator=generator),
    }
    return {name: tensor.to(device) for name, tensor in batch.items()}


def autocast(device: torch.device) -> Any:
    """bfloat16 mixed precision on CUDA (what a GPU user trains with), none on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def training_step(
    module: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """One optimiser step on the pretraining loss; returns the (detached) loss."""
    module.train()
    optimizer.zero_grad(set_to_none=True)
    with autocast(batch["gene_ids"].device):
        loss = module.losses(batch)["loss"]
    loss.backward()
    optimizer.step()
    return loss.detach()


def inference_step(module: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One forward pass in inference mode; returns the cell embeddings ``(B, d)``."""
    module.eval()
    with torch.inference_mode(), autocast(batch["gene_ids"].device):
        out = module.model(batch["gene_ids"], batch["counts"], batch["depth"])
    return out.cell_embedding


def cells_per_second(
    step: Callable[[], Any], batch_size: int, device: torch.device, warmup: int, steps: int
) -> float:
    """Throughput of ``step`` (one batch per call) after ``warmup`` calls, synchronised."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch_size * steps / (time.perf_counter() - start)
