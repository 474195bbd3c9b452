"""``scprint fit | validate | test``: training from YAML configs, through Lightning's LightningCLI.

    scprint fit --config small --data.files '[a.h5ad, b.zarr]' --trainer.max_steps 2000
    scprint fit --config small --config data.yaml --print_config > run.yaml   # complete, re-runnable
    scprint fit --config run.yaml --ckpt_path scprint_run/checkpoints/last.ckpt   # resume
    scprint validate --config scprint_run/config.yaml --ckpt_path scprint_run/scprint.ckpt
    scprint fit --config finetune --model.init_from medium-v1.5.ckpt --data.files '[mine.h5ad]'

Sections: ``model:`` (:class:`~scprint.training.ScPrintLightning`: ``config``, ``objective``,
``optim``, ``init_from``, ``freeze_blocks``), ``data:`` (:class:`~scprint.training.CellDataModule`),
``trainer:`` (:class:`lightning.Trainer`), ``final_checkpoint:``, ``seed_everything`` and
``ckpt_path``. ``--config`` takes a YAML file or a shipped preset's name (``tiny``, ``small``,
``medium``, ``large``, ``finetune``); later ``--config`` files and flags override earlier ones.
The network is built on the data module's vocabulary and label encoders (``data.schema``), and
``model.config.max_len``, ``model.init_from`` and ``seed_everything`` are passed on to the data.

Run folders are append-only (:mod:`scprint.training.runs`): ``fit`` into a folder holding a run
refuses unless it resumes it (``--ckpt_path``; the metrics are appended to its ``metrics.csv``)
or ``--overwrite`` is given; ``validate`` and ``test`` write to ``<run>/<command>/version_<n>/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from grnndata.cli import UsageError

from ..model import ModelConfig
from .datamodule import CellDataModule
from .lightning_module import OptimOptions, ScPrintLightning
from .objective import Objective
from .runs import check_run_folder, command_logger, is_default_logger

log = logging.getLogger(__name__)

COMMANDS = ("fit", "validate", "test")
#: ``trainer:`` defaults: step-based validation on an endless stream of batches, gradient clipping.
TRAINER_DEFAULTS: dict[str, Any] = {
    "default_root_dir": "scprint_run",
    "max_steps": 1000,
    "val_check_interval": 100,
    "check_val_every_n_epoch": None,
    "num_sanity_val_steps": 0,
    "gradient_clip_val": 1.0,
    "log_every_n_steps": 10,
    "use_distributed_sampler": False,
    "enable_model_summary": False,
}

_OVERWRITE_HELP = (
    "Train a scPRINT model. --overwrite: replace an earlier run in --trainer.default_root_dir "
    "(without it, fit refuses a folder that holds a run unless --ckpt_path resumes it)."
)


def presets() -> dict[str, Path]:
    """Shipped config files by name (``scprint/configs/<name>.yaml``)."""
    folder = Path(str(resources.files("scprint.configs")))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


class FinalCheckpoint(L.Callback):
    """Write ``<trainer.default_root_dir>/<filename>`` when training ends (a partial file renamed
    into place, so a crash never leaves a truncated checkpoint under that name).

    Args:
        filename: name of the final checkpoint in the run folder.
    """

    def __init__(self, filename: str = "scprint.ckpt") -> None:
        self.filename = filename

    def path(self, trainer: L.Trainer) -> Path:
        """Where the final checkpoint goes."""
        return Path(trainer.default_root_dir) / self.filename

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        final = self.path(trainer)
        partial = final.with_name(f".{final.name}.partial")
        try:
            trainer.save_checkpoint(partial)
        except OSError as err:  # e.g. a full disk: no partial file left behind
            if trainer.is_global_zero:
                partial.unlink(missing_ok=True)
            reason = err.strerror or str(err) or type(err).__name__
            raise OSError(
                err.errno,
                f"could not write the final checkpoint {str(final)!r}: {reason} (the checkpoints "
                f"of the run in {str(final.parent / 'checkpoints')!r} are kept)",
            ) from None
        if trainer.is_global_zero:
            os.replace(partial, final)
            log.info("step %d: final checkpoint %s", trainer.global_step, final)
        trainer.strategy.barrier()


def _seed(value: bool | int | None) -> int:
    return 0 if value is None or isinstance(value, bool) else int(value)


def _max_len(config: Any) -> int:
    """``model.config.max_len`` (a parsed optional dataclass holds its fields in ``init_args``)."""
    fields = getattr(config, "init_args", config)
    return int(getattr(fields, "max_len", None) or ModelConfig().max_len)


class ScPrintCLI(LightningCLI):
    """LightningCLI over :class:`ScPrintLightning` and :class:`CellDataModule` (see the module)."""

    def __init__(
        self,
        args: Any,
        callbacks: Sequence[L.Callback] = (),
        save_config: bool = True,
        command: str = "fit",
        overwrite: bool = False,
    ):
        self.command, self.overwrite = command, overwrite
        super().__init__(
            ScPrintLightning,
            CellDataModule,
            save_config_callback=SaveConfigCallback if save_config else None,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={**TRAINER_DEFAULTS, "callbacks": list(callbacks)},
            seed_everything_default=0,
            parser_kwargs={
                "prog": f"scprint {command}",
                "exit_on_error": False,
                "description": _OVERWRITE_HELP if command == "fit" else None,
            },
            args=args,
            run=False,
            auto_configure_optimizers=False,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="checkpoint to resume training from (fit) or to evaluate (validate, test)",
        )
        parser.add_lightning_class_args(FinalCheckpoint, "final_checkpoint")
        # printed configs show every field of the objective and optimiser
        parser.set_defaults({"model.objective": Objective(), "model.optim": OptimOptions()})
        parser.link_arguments("model.init_from", "data.init_from")
        parser.link_arguments("model.config", "data.max_len", compute_fn=_max_len)
        parser.link_arguments("seed_everything", "data.seed", compute_fn=_seed)
        parser.link_arguments("seed_everything", "model.seed", compute_fn=_seed)
        parser.link_arguments("data.schema", "model.data_schema", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """As LightningCLI's, without its warning about ``sys.argv`` when called from Python."""
        is_object = isinstance(args, dict | argparse.Namespace)
        self.config = parser.parse_object(args) if is_object else parser.parse_args(args)

    def before_instantiate_classes(self) -> None:
        """The run folder checked (``fit``, :func:`~scprint.training.runs.check_run_folder`) before
        any data are read; metrics to ``<default_root_dir>/metrics.csv`` (``fit``) or
        ``<default_root_dir>/<command>/version_<n>/`` unless a logger is configured; mixed
        precision on GPU unless ``trainer.precision`` is set."""
        trainer = self.config.trainer
        root = trainer.default_root_dir or "."
        keep_before = None
        if self.command == "fit":
            keep_before = check_run_folder(
                root,
                final_name=self.config.final_checkpoint.filename,
                ckpt_path=self.config.ckpt_path,
                overwrite=self.overwrite,
                max_steps=trainer.max_steps,
            )
        self._configured_logger = trainer.logger
        if is_default_logger(trainer.logger):
            trainer.logger = command_logger(root, self.command, keep_before)
        if trainer.precision is None:
            gpu = trainer.accelerator in ("gpu", "cuda") or (
                trainer.accelerator == "auto" and torch.cuda.is_available()
            )
            bf16 = gpu and torch.cuda.is_bf16_supported()
            trainer.precision = ("bf16-mixed" if bf16 else "16-mixed") if gpu else "32-true"

    def instantiate_classes(self) -> None:
        """As LightningCLI's; the logger chosen by :meth:`before_instantiate_classes` is left out
        of the saved ``config.yaml`` (a later ``validate`` or resume chooses its own)."""
        super().instantiate_classes()
        if hasattr(self, "_configured_logger"):
            self.config.trainer.logger = self._configured_logger


def _with_presets(argv: Sequence[str]) -> list[str]:
    """``--config NAME`` -> the shipped preset's file when ``NAME`` is not a file here."""
    shipped, out = presets(), list(argv)
    for i, item in enumerate(out):
        name, inline = (
            (item.split("=", 1)[1], True) if item.startswith("--config=") else (item, False)
        )
        previous = out[i - 1] if i else ""
        if not (inline or previous in ("--config", "-c")) or Path(name).exists():
            continue
        stem = name.removesuffix(".yaml")
        if stem in shipped:
            out[i] = f"--config={shipped[stem]}" if inline else str(shipped[stem])
    return out


def build(
    args: Sequence[str] | dict[str, Any],
    callbacks: Sequence[L.Callback] = (),
    command: str = "fit",
    overwrite: bool = False,
) -> ScPrintCLI:
    """Parse ``args`` (command-line items, or a config mapping) and build the data module, the
    model and the trainer for ``command`` (``fit``, ``validate``, ``test``). A mistake in them
    (unknown key, bad value, missing file, label column missing from a dataset, a run folder
    that holds a run) raises :class:`~grnndata.cli.UsageError` in one line; ``overwrite``
    replaces an earlier run in the run folder (``fit``)."""
    strings = not isinstance(args, dict)
    files = [] if strings else (args.get("data") or {}).get("files", [])
    try:
        return ScPrintCLI(
            _with_presets(args) if strings else args,
            callbacks,
            save_config=all(isinstance(f, str | os.PathLike) for f in files),
            command=command,
            overwrite=overwrite,
        )
    except (argparse.ArgumentError, ValueError, FileNotFoundError) as err:
        raise UsageError(_one_line(str(err)) or type(err).__name__) from err


#: Lines of jsonargparse's nested messages that say nothing about the mistake itself.
_NOISE = ("Does not validate", "Subtypes", "Errors", "Given value", "Problem with")


def _one_line(message: str) -> str:
    """jsonargparse's multi-line message as ``key: reason`` (the ``None`` alternative of an
    optional section and the restated value dropped)."""
    key = re.match(r'Parser key "([^"]+)"', message)
    message = message[key.end() :] if key else message
    lines = [line.strip(" -:") for line in message.splitlines()]
    reasons = [
        line
        for line in lines
        if line and not line.startswith(_NOISE) and line != "Expected a <class 'NoneType'>"
    ]
    return (f"{key.group(1)}: " if key else "") + "; ".join(reasons)


def main(argv: Sequence[str]) -> int:
    """``scprint fit|validate|test ...``; a user mistake raises :class:`~grnndata.cli.UsageError`."""
    command, *args = argv
    if command not in COMMANDS:
        raise UsageError(f"unknown training command {command!r}; expected one of {COMMANDS}")
    overwrite = "--overwrite" in args
    if overwrite and command != "fit":
        raise UsageError(f"--overwrite is an option of scprint fit, not of scprint {command}")
    args = [item for item in args if item != "--overwrite"]
    try:
        cli = build(args, command=command, overwrite=overwrite)
    except SystemExit as stop:  # --help, --print_config
        return int(stop.code or 0)
    getattr(cli.trainer, command)(
        cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path
    )
    return 0
