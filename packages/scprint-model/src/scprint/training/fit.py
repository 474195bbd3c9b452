"""``fit``: train from Python through the same configs and code as ``scprint fit``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from .cli import build, presets


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, mappings merged key by key (as repeated ``--config`` files)."""
    out = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def _mapping(config: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(config, dict):
        return config
    path = Path(config)
    if not path.is_file():
        shipped = presets()
        if str(config).removesuffix(".yaml") not in shipped:
            raise FileNotFoundError(
                f"config {str(config)!r} is neither a YAML file nor a preset {sorted(shipped)}"
            )
        path = shipped[str(config).removesuffix(".yaml")]
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"config {str(config)!r} holds a {type(content).__name__}, not a mapping")
    return content


def fit(
    *configs: str | Path | dict[str, Any],
    ckpt_path: str | Path | None = None,
    callbacks: Sequence[L.Callback] = (),
    overwrite: bool = False,
    **sections: Any,
) -> Path:
    """Train as ``scprint fit`` does, and return the final checkpoint's path.

    Example::

        fit("tiny", data={"files": [adata]}, trainer={"max_steps": 200, "default_root_dir": "run"})

    Args:
        configs: presets (``"tiny"``, ``"small"``, ``"medium"``, ``"large"``, ``"finetune"``),
            YAML files or mappings with ``model``/``data``/``trainer`` sections; later ones
            override earlier ones. ``data.files`` may hold AnnData objects here.
        ckpt_path: a checkpoint of an earlier run to resume (same config).
        callbacks: extra Lightning callbacks (e.g. timing or early stopping).
        overwrite: replace an earlier run in ``trainer.default_root_dir``; without it a folder
            holding a run (``scprint.ckpt`` or ``metrics.csv``) is refused unless ``ckpt_path``
            resumes it (see :mod:`scprint.training.runs`).
        **sections: top-level keys applied last (``model=``, ``data=``, ``trainer=``,
            ``seed_everything=``, ``final_checkpoint=``).

    Returns:
        ``<trainer.default_root_dir>/scprint.ckpt`` (see ``final_checkpoint``).

    Raises:
        grnndata.cli.UsageError: (a ``ValueError``) a config mistake or a run folder that holds
            a run, in one line.
        FloatingPointError: the loss became NaN or infinite (the run's checkpoints are kept).
    """
    merged: dict[str, Any] = {}
    for config in (*configs, sections):
        merged = _merge(merged, _mapping(config))
    if ckpt_path is not None:
        merged["ckpt_path"] = str(ckpt_path)
    cli = build(merged, callbacks, overwrite=overwrite)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    return cli.config_init.final_checkpoint.path(cli.trainer)
