"""Run folders of ``scprint fit | validate | test``: append-only histories.

A run folder (``trainer.default_root_dir``) holds one training run: ``config.yaml``,
``metrics.csv`` (every logged training and validation value, one row per logging step),
``checkpoints/`` and, once training ends, the final ``scprint.ckpt``. Nothing a later command
does loses what is there:

- ``fit`` into a folder that already holds a run (a ``scprint.ckpt`` or a ``metrics.csv``)
  refuses in one line, unless it resumes that run (``--ckpt_path``) or ``--overwrite`` is given
  (the earlier run's metrics, checkpoints and final checkpoint are then removed first);
- resuming (``fit --ckpt_path <checkpoint>``) appends to the folder's ``metrics.csv``: the rows
  logged before the checkpoint's step are kept and the resumed steps follow them. Rows of the
  earlier run past that step (a branch the resume abandons) are not lost: the whole earlier
  file is first kept as ``metrics.<n>.csv``. A resume with ``trainer.max_steps`` not above the
  checkpoint's step is refused (nothing would be trained);
- ``validate`` and ``test`` write to their own version folder,
  ``<run>/<command>/version_<n>/`` (``metrics.csv``, ``config.yaml``), never to the run's files,
  whether they succeed or fail.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from grnndata.atomic import write_text

log = logging.getLogger(__name__)

__all__ = [
    "HistoryLogger",
    "RunFolderError",
    "check_run_folder",
    "command_logger",
    "is_default_logger",
]

#: Files of a run folder that mark it as holding a run (``scprint.ckpt`` is the default name of
#: the final checkpoint, ``final_checkpoint.filename``).
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"


class RunFolderError(ValueError):
    """A training command that would overwrite or lose an earlier run's files."""


def checkpoint_step(path: str | os.PathLike) -> int:
    """The ``global_step`` of a Lightning checkpoint, read without loading its tensors."""
    from ..checkpoints import read_checkpoint

    checkpoint = read_checkpoint(path, mmap=True)
    step = checkpoint.get("global_step")
    if not isinstance(step, int):
        raise RunFolderError(
            f"checkpoint {str(path)!r} has no training step (global_step); resume from a "
            "checkpoint written by scprint fit"
        )
    return step


def check_run_folder(
    root: str | os.PathLike,
    *,
    final_name: str,
    ckpt_path: str | None,
    overwrite: bool,
    max_steps: int | None,
) -> int | None:
    """Decide, before anything is written, whether ``scprint fit`` may use the run folder ``root``.

    Args:
        root: ``trainer.default_root_dir``.
        final_name: file name of the final checkpoint (``final_checkpoint.filename``).
        ckpt_path: the checkpoint resumed, if any.
        overwrite: replace an earlier run in ``root`` (its files are removed here).
        max_steps: ``trainer.max_steps`` (``-1``/``None``: no step limit).

    Returns:
        The step the resumed checkpoint was saved at (rows of ``metrics.csv`` before it are
        kept), or ``None`` for a new run.

    Raises:
        RunFolderError: ``root`` holds a run and neither a resume nor ``overwrite`` was asked
            for; or the resume would train nothing (``max_steps`` not above the checkpoint's step).
    """
    root = Path(root)
    final, metrics = root / final_name, root / METRICS
    if ckpt_path is not None:
        step = checkpoint_step(ckpt_path)
        if max_steps is not None and max_steps >= 0 and max_steps <= step:
            raise RunFolderError(
                f"trainer.max_steps ({max_steps}) is not above the step of checkpoint "
                f"{str(ckpt_path)!r} ({step}): nothing to train; give --trainer.max_steps above {step}"
            )
        return step
    held = [path.name for path in (final, metrics) if path.is_file()]
    if not held:
        return None
    if not overwrite:
        raise RunFolderError(
            f"run folder {str(root)!r} already holds a run ({', '.join(held)}); resume it with "
            f"--ckpt_path {root / CHECKPOINTS}/<checkpoint>.ckpt, choose another "
            "--trainer.default_root_dir, or pass --overwrite to replace it"
        )
    log.warning("--overwrite: removing the earlier run in %s (%s)", root, ", ".join(held))
    for name in (final_name, METRICS, "hparams.yaml"):
        (root / name).unlink(missing_ok=True)
    if (root / CHECKPOINTS).is_dir():
        shutil.rmtree(root / CHECKPOINTS)
    return None


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.nan


class _HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to the rows of ``metrics.csv`` before ``keep_before``
    instead of deleting the file."""

    def __init__(self, log_dir: str, keep_before: int) -> None:
        self._keep_before = keep_before
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows if _step(row) < self._keep_before]
        if len(kept) < len(rows):
            n = 1
            while (path.parent / f"metrics.{n}.csv").exists():
                n += 1
            archive = path.parent / f"metrics.{n}.csv"
            shutil.copyfile(path, archive)
            log.warning(
                "resuming at step %d: %d rows of %s past that step are kept in %s",
                self._keep_before,
                len(rows) - len(kept),
                path,
                archive,
            )
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=header, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
            write_text(path, text.getvalue(), "csv")
        self.metrics_keys = sorted(header)


class HistoryLogger(CSVLogger):
    """A :class:`~lightning.pytorch.loggers.CSVLogger` writing ``<save_dir>/metrics.csv`` that
    keeps the rows logged before step ``keep_before`` (a resumed run appends to its history).

    Args:
        save_dir: the run folder.
        keep_before: first step the resumed run logs again; ``None``: a new history (an existing
            ``metrics.csv`` is replaced, as Lightning's logger does).
    """

    def __init__(self, save_dir: str | os.PathLike, keep_before: int | None = None) -> None:
        super().__init__(save_dir=save_dir, name="", version="")
        self.keep_before = keep_before

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None and self.keep_before is not None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryWriter(self.log_dir, self.keep_before)
        return super().experiment


def is_default_logger(logger: Any) -> bool:
    """Whether ``trainer.logger`` is the default (``None``/``True``), or the run-folder logger a
    config saved by an earlier ``scprint fit`` holds (:class:`HistoryLogger`, or a
    ``CSVLogger`` with empty ``name`` and ``version``): the command then picks its own."""
    if logger is None or logger is True:
        return True
    class_path = str(getattr(logger, "class_path", ""))
    init_args = getattr(logger, "init_args", None)
    if class_path.endswith(".HistoryLogger"):
        return True
    return class_path.endswith(".CSVLogger") and (
        getattr(init_args, "name", None) == "" and getattr(init_args, "version", None) == ""
    )


def command_logger(root: str, command: str, keep_before: int | None) -> Any:
    """The ``trainer.logger`` of a training command run in the folder ``root``: the run's
    history for ``fit``, a new ``<root>/<command>/version_<n>`` folder for ``validate``/``test``."""
    from jsonargparse import Namespace

    if command == "fit":
        return Namespace(
            class_path=f"{HistoryLogger.__module__}.HistoryLogger",
            init_args=Namespace(save_dir=root, keep_before=keep_before),
        )
    return Namespace(
        class_path="lightning.pytorch.loggers.CSVLogger",
        init_args=Namespace(save_dir=root, name=command, version=None),
    )
