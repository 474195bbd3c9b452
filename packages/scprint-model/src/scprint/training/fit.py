"""``fit``: pretrain scPRINT on AnnData files with Lightning, and return the final checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anndata as ad
import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from ..data.datamodule import CellDataModule, SamplingOptions, build_label_encoders
from ..data.soma import SomaSource
from ..data.source import CellSource
from ..data.vocabulary import Vocabulary, check_organism
from ..model import ModelConfig, ScPrint
from .checkpoint import build_model, checkpoint_metadata, read_metadata
from .lightning_module import Objective, OptimOptions, ScPrintLightning

log = logging.getLogger(__name__)

#: Training defaults when neither the arguments nor the config's ``training:`` section set them.
TRAINING_DEFAULTS: dict[str, Any] = {"batch_size": 32, "learning_rate": 1e-3, "warmup_steps": 50}
FINAL_CHECKPOINT = "scprint.ckpt"


def _resolve_config(
    config: str | Path | ModelConfig, overrides: dict[str, Any]
) -> tuple[ModelConfig, dict]:
    from ..model.config import read_config_file

    if isinstance(config, ModelConfig):
        model_config, training = config, {}
    else:
        content = read_config_file(config)
        model_config, training = ModelConfig.from_dict(content["model"]), content["training"]
    unknown = sorted(set(training) - set(TRAINING_DEFAULTS))
    if unknown:
        raise ValueError(
            f"config training section has unknown keys {unknown}; expected a subset of {sorted(TRAINING_DEFAULTS)}"
        )
    return (model_config.replace(**overrides) if overrides else model_config), training


def _gene_embedding_table(
    table: str | Path | pd.DataFrame, vocab: Vocabulary, seed: int
) -> torch.Tensor:
    """``(n_genes, dim)`` initial gene-identity table: rows of ``table`` matched by Ensembl id or symbol."""
    if not isinstance(table, pd.DataFrame):
        path = Path(table)
        if not path.is_file():
            raise FileNotFoundError(f"gene embedding table {str(path)!r} does not exist")
        table = (
            pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, index_col=0)
        )
    values = table.select_dtypes("number")
    if values.shape[1] == 0:
        raise ValueError(
            "gene embedding table has no numeric columns (rows = genes, columns = dimensions)"
        )
    index = vocab.index_of([str(g) for g in values.index])
    found = index >= 0
    if found.sum() == 0:
        raise ValueError(
            f"no gene of the embedding table matches the vocabulary (table index starts {list(values.index[:3])})"
        )
    array = values.to_numpy(np.float32)
    rng = np.random.default_rng(seed)
    init = rng.normal(0.0, float(array[found].std()), size=(len(vocab), array.shape[1])).astype(
        np.float32
    )
    init[index[found]] = array[found]
    log.info(
        "gene embeddings: %d of %d vocabulary genes initialised from the table",
        int(found.sum()),
        len(vocab),
    )
    return torch.from_numpy(init)


def _precision(accelerator: str, precision: str | None) -> str:
    if precision is not None:
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def fit(
    data: Sequence[str | Path | ad.AnnData | CellSource | SomaSource] | str | Path | ad.AnnData,
    config: str | Path | ModelConfig = "tiny",
    label_columns: Sequence[str] = ("cell_type",),
    max_steps: int = 1000,
    out_dir: str | Path = "scprint_run",
    seed: int = 0,
    batch_size: int | None = None,
    *,
    learning_rate: float | None = None,
    warmup_steps: int | None = None,
    weight_decay: float = 0.01,
    gradient_clip: float = 1.0,
    organism: str = "NCBITaxon:9606",
    gene_positions: str | Path | pd.DataFrame | None = None,
    gene_embeddings: str | Path | pd.DataFrame | None = None,
    coarse_labels: Sequence[str] = (),
    objective: Objective | dict[str, Any] | None = None,
    thinning: tuple[float, float] = (0.1, 1.0),
    balance_weight: float | None = 100.0,
    pad_with_unexpressed: bool = True,
    gene_sampling: str = "weighted",
    val_fraction: float = 0.05,
    val_datasets: Sequence[int] = (),
    val_every: int = 100,
    val_max_cells: int = 512,
    checkpoint_every: int | None = None,
    resume_from: str | Path | None = None,
    accelerator: str = "auto",
    devices: int | str = 1,
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str | None = None,
    num_workers: int = 0,
    in_memory: bool | None = None,
    log_every: int = 10,
    progress_bar: bool = False,
    callbacks: Sequence[L.Callback] = (),
    **overrides: Any,
) -> Path:
    """Pretrain an scPRINT model and write a self-contained checkpoint.

    Args:
        data: one or many datasets (``.h5ad``/``.zarr`` paths, read lazily, AnnData objects, or
            sources such as :class:`~scprint.data.SomaSource`) with raw integer counts.
        config: a preset (``"tiny"``, ``"small"``, ``"medium"``, ``"large"``), a YAML file or a
            :class:`~scprint.model.ModelConfig`. A YAML ``training:`` section sets defaults for
            ``batch_size``, ``learning_rate`` and ``warmup_steps``.
        label_columns: obs columns to classify (``<col>_ontology_term_id`` is used when present,
            giving the ontology hierarchy); each must exist in at least one dataset.
        max_steps: optimiser steps.
        out_dir: run folder: ``scprint.ckpt`` (final), ``checkpoints/`` (periodic), ``metrics.csv``.
        seed: seed of initialisation, data split, batches and dropout.
        batch_size: cells per step and process.
        learning_rate, warmup_steps, weight_decay, gradient_clip: optimisation (see
            :class:`OptimOptions`).
        organism: NCBITaxon id of the data.
        gene_positions: table of gene positions (index Ensembl id; ``chromosome_name``,
            ``start_position``) for the genomic-position encoding.
        gene_embeddings: table gene -> vector (index Ensembl id or symbol, numeric columns) to
            initialise the gene-identity embedding (frozen when ``freeze_gene_embeddings=True``).
        coarse_labels: extra ontology terms to accept as coarse targets.
        objective: the training objective, :class:`Objective` or a dict of its fields (default:
            the original scPRINT's).
        thinning, balance_weight, pad_with_unexpressed, gene_sampling: batch sampling (see
            :class:`~scprint.data.SamplingOptions`).
        val_fraction, val_datasets, val_every, val_max_cells: validation split (fraction of cells;
            indices of ``data`` held out whole), interval in steps and size cap.
        checkpoint_every: also keep a checkpoint every this many steps in ``out_dir/checkpoints``.
        resume_from: a checkpoint of an earlier run to continue (same data and arguments); the
            vocabulary, labels and gene embeddings come from it, and a different model config or
            label list raises.
        accelerator, devices, strategy, num_nodes, precision: Lightning trainer settings
            (``strategy="ddp"`` for multi-GPU/multi-node; CPU processes use the gloo backend).
            ``precision`` defaults to bf16/fp16 mixed precision on GPU and fp32 on CPU.
        num_workers: data-loading worker processes.
        in_memory: load datasets into memory (default: when small enough).
        log_every: logging interval in steps.
        progress_bar: show Lightning's progress bar.
        callbacks: extra Lightning callbacks (e.g. timing or early stopping).
        **overrides: :class:`~scprint.model.ModelConfig` fields to change (e.g. ``d_model=64``).

    Returns:
        Path of the final checkpoint (``out_dir/scprint.ckpt``).
    """
    datasets = [data] if isinstance(data, (str, Path, ad.AnnData)) else list(data)
    if not datasets:
        raise ValueError("data must name at least one dataset")
    if max_steps < 1:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    check_organism(organism)
    model_config, training = _resolve_config(config, overrides)
    explicit = {
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "warmup_steps": warmup_steps,
    }
    settings = {
        **TRAINING_DEFAULTS,
        **training,
        **{k: v for k, v in explicit.items() if v is not None},
    }
    out_dir = Path(out_dir)
    L.seed_everything(seed, verbose=False)

    sources = [
        d if isinstance(d, (CellSource, SomaSource)) else CellSource(d, in_memory=in_memory)
        for d in datasets
    ]
    resume_meta = None
    if resume_from is not None:
        resume_meta = read_metadata(
            torch.load(resume_from, map_location="cpu", weights_only=True), resume_from
        )
        model, saved_config, vocab, labels = build_model(resume_meta)
        if saved_config != model_config:
            raise ValueError(
                f"resume_from {str(resume_from)!r} was trained with {saved_config}, but config and overrides "
                f"give {model_config}; pass the same config to resume"
            )
        if tuple(label_columns) != tuple(labels):
            raise ValueError(
                f"resume_from {str(resume_from)!r} classifies {list(labels)}, but label_columns is {list(label_columns)}"
            )
        if gene_positions is not None or gene_embeddings is not None:
            raise ValueError(
                "gene_positions and gene_embeddings cannot change when resuming: the vocabulary and the "
                "gene embeddings come from the checkpoint"
            )
    else:
        vocab = Vocabulary.build(
            [s.meta for s in sources], gene_positions=gene_positions, organism=organism
        )
        labels = build_label_encoders(sources, list(label_columns), coarse_labels)
        init = None
        if gene_embeddings is not None:
            init = _gene_embedding_table(gene_embeddings, vocab, seed)
        positions = None if vocab.positions is None else torch.from_numpy(vocab.positions)
        model = ScPrint(
            model_config,
            len(vocab),
            {n: len(e.classes) for n, e in labels.items()},
            gene_positions=positions,
            gene_embedding_init=init,
        )
    options = SamplingOptions(
        batch_size=int(settings["batch_size"]),
        max_len=model_config.max_len,
        pad_with_unexpressed=pad_with_unexpressed,
        thinning=tuple(thinning),
        balance_weight=balance_weight,
        gene_sampling=gene_sampling,
    )
    datamodule = CellDataModule(
        sources,
        vocab,
        labels,
        options,
        val_fraction=val_fraction,
        val_datasets=val_datasets,
        val_max_cells=val_max_cells,
        seed=seed,
        num_workers=num_workers,
    )
    if isinstance(objective, dict):
        objective = Objective(**objective)
    optim = OptimOptions(
        learning_rate=float(settings["learning_rate"]),
        weight_decay=weight_decay,
        warmup_steps=int(settings["warmup_steps"]),
        gradient_clip=gradient_clip,
    )
    metadata = checkpoint_metadata(model_config, vocab, labels, asdict(options))
    val_every = max(1, min(val_every, max_steps))
    module = ScPrintLightning(
        model,
        {n: torch.from_numpy(e.descendant_matrix()) for n, e in labels.items()},
        objective or Objective(),
        optim,
        metadata,
        seed=seed,
        validation_interval=val_every,
        has_validation=len(datamodule.val_cells) > 0,
    )
    trainer_callbacks: list[L.Callback] = list(callbacks)
    if checkpoint_every:
        trainer_callbacks.append(
            ModelCheckpoint(
                dirpath=out_dir / "checkpoints",
                filename="step{step}",
                every_n_train_steps=checkpoint_every,
                save_top_k=-1,
                auto_insert_metric_name=False,
            )
        )
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=num_nodes,
        precision=_precision(accelerator, precision),
        gradient_clip_val=gradient_clip,
        val_check_interval=val_every,
        check_val_every_n_epoch=None,
        limit_val_batches=None if len(datamodule.val_cells) else 0,
        num_sanity_val_steps=0,
        log_every_n_steps=log_every,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        callbacks=trainer_callbacks,
        enable_checkpointing=bool(checkpoint_every),
        logger=CSVLogger(save_dir=out_dir, name="", version=""),
        use_distributed_sampler=False,
        default_root_dir=out_dir,
    )
    log.info(
        "fit: %d datasets, %d genes, labels %s, model %s, %d steps",
        len(sources),
        len(vocab),
        {n: len(e.classes) for n, e in labels.items()},
        model_config,
        max_steps,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    final = out_dir / FINAL_CHECKPOINT
    partial = out_dir / f".{FINAL_CHECKPOINT}.partial"
    trainer.save_checkpoint(partial)
    if trainer.is_global_zero:
        os.replace(partial, final)
        terms = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
        log.info("fit: step %d, final metrics %s; checkpoint %s", trainer.global_step, terms, final)
    trainer.strategy.barrier()
    return final
