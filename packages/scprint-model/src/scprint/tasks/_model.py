"""The model of a task: loading it (path or an already loaded model), where it runs and in which
numerical precision.

Precision (``precision=`` of every task, ``--precision`` of the command line):

* ``"32"`` (default): float32 throughout.
* ``"bf16"``: the forward pass under :func:`torch.autocast` to bfloat16: matrix products
  (linear layers, attention) in bfloat16 with float32 accumulation; LayerNorm, softmax of the
  read-outs, losses and every output in float32. Used only where the hardware computes
  bfloat16 natively (CUDA GPUs that support it; CPUs with AVX512-BF16 or AMX, or ARM CPUs with
  the BF16 extension); elsewhere bfloat16 would be emulated and slower than float32, so the task
  runs in float32 and says why (a :class:`PrecisionWarning`).
* ``"int8"`` (CPU only): the linear layers of the transformer dynamically quantised to int8
  (:func:`torch.ao.quantization.quantize_dynamic`: int8 weights with one scale per output
  channel, activations quantised per batch), except in each stack's last block; attention
  scores, softmax, LayerNorm, the embeddings and the decoders stay float32.

No silent accuracy loss: with ``"bf16"`` or ``"int8"``, the first forward pass is also run in
float32 and compared (:func:`agreement`): per-cell cosine similarity of the cell embedding,
agreement of the predicted labels and per-cell Spearman correlation of the expected expression
(not for a ``cells_only`` pass such as the Embedder's, which reads out no expression).
The comparison is recorded in ``uns[key_added]["precision"]`` of every task's output, and a
:class:`PrecisionWarning` names the numbers when one falls below :data:`AGREEMENT_TARGETS`.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

import torch

from scprint.checkpoints import Pretrained, resolve_device
from scprint.errors import InputError

__all__ = [
    "AGREEMENT_TARGETS",
    "PRECISIONS",
    "Checkpoint",
    "PrecisionWarning",
    "agreement",
    "bf16_support",
    "int8_support",
    "load_model",
    "model_device",
    "normalise_precision",
    "precision_record",
    "resolve_device",
]

log = logging.getLogger(__name__)

#: What a task takes as its model: a checkpoint path or the object :func:`scprint.load` returns.
Checkpoint: TypeAlias = str | os.PathLike[str] | Pretrained

#: The numerical precisions of a task's forward pass (see the module docstring).
PRECISIONS: tuple[str, ...] = ("32", "bf16", "int8")
_ALIASES = {
    "32": "32",
    "fp32": "32",
    "float32": "32",
    "32-true": "32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "bf16-mixed": "bf16",
    "int8": "int8",
    "qint8": "int8",
}
#: Lowest first-batch agreement with float32 accepted without a warning: per-cell cosine of the
#: cell embedding (the smallest over cells), share of equal label predictions, per-cell Spearman
#: of the expected expression (the smallest over cells).
AGREEMENT_TARGETS: dict[str, float] = {
    "embedding_cosine_min": 0.99,
    "label_agreement": 0.99,
    "expression_spearman_min": 0.99,
}


class PrecisionWarning(UserWarning):
    """A reduced precision was not used (unsupported here) or disagrees with float32."""


def normalise_precision(precision: str | int) -> str:
    """``precision`` as one of :data:`PRECISIONS` (``32``, ``"fp32"``, ``"bfloat16"`` ... accepted)."""
    key = str(precision).strip().lower()
    if key not in _ALIASES:
        raise InputError(
            f"precision must be one of {list(PRECISIONS)} (float32, bfloat16 autocast or int8 "
            f"dynamic quantisation), got {precision!r}"
        )
    return _ALIASES[key]


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return frozenset(flags)


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 natively, and a sentence saying what was found."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(device)} supports bfloat16"
        return False, f"{torch.cuda.get_device_name(device)} has no bfloat16 support"
    if device.type != "cpu":
        return False, f"bfloat16 autocast is not offered on {device.type!r} devices"
    flags = _cpu_flags()
    native = {"avx512_bf16", "amx_bf16", "bf16"} & flags
    if native:
        return True, f"the CPU has {', '.join(sorted(native))} (oneDNN bfloat16 kernels)"
    if not flags and platform.system() == "Darwin" and platform.machine() == "arm64":
        return True, "Apple silicon CPU (bfloat16 through the ARM BF16 extension)"
    capability = torch.backends.cpu.get_cpu_capability()
    return False, (
        f"the CPU has no native bfloat16 instructions (AVX512-BF16, AMX or ARM BF16; PyTorch "
        f"sees {capability}), so bfloat16 would be emulated and slower than float32"
    )


def int8_support(device: torch.device) -> tuple[bool, str]:
    """Whether dynamic int8 quantisation runs on ``device``, and a sentence saying why (not)."""
    if device.type != "cpu":
        return False, "int8 dynamic quantisation runs on the CPU only (use --device cpu)"
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        return False, "this PyTorch build has no quantised CPU engine (fbgemm, x86 or qnnpack)"
    return True, f"quantised engine {torch.backends.quantized.engine}"


def load_model(
    ckpt: Checkpoint, device: str | torch.device = "auto", precision: str | int = "32"
) -> Pretrained:
    """A loaded scPRINT model: ``ckpt`` is a checkpoint path or an already loaded model.

    A path is read by :func:`scprint.load` (ours, and the original scPRINT-1 1.6.x / 2.x and
    scPRINT-2 ones). An already loaded model (the object :func:`scprint.load` returns, with
    ``.model``, ``.vocab`` and ``.labels``) is moved to ``device`` and put in evaluation mode.

    ``precision`` (:data:`PRECISIONS`, see the module docstring) other than ``"32"`` gives a
    model whose forward pass runs in that precision; an already loaded model given here is left
    as it is (the returned object holds a converted copy, or shares its weights for ``"bf16"``).
    Where the precision is not supported (:func:`bf16_support`, :func:`int8_support`) the model
    runs in float32 and a :class:`PrecisionWarning` says why. :func:`precision_record` is what
    the tasks store in ``uns``.
    """
    requested = normalise_precision(precision)
    resolved = resolve_device(device)
    if isinstance(ckpt, str | os.PathLike):
        from scprint.checkpoints import load

        path = Path(ckpt)
        if not path.exists():
            raise InputError(f"checkpoint {str(path)!r} does not exist")
        pretrained = load(path, device=str(resolved))
        owned = True
    elif hasattr(ckpt, "model") and hasattr(ckpt, "vocab"):
        pretrained = ckpt
        pretrained.model.to(resolved)
        owned = False
    else:
        raise InputError(
            "ckpt must be a checkpoint path or the object scprint.load returns, "
            f"got {type(ckpt).__name__}"
        )
    pretrained.model.eval()
    if requested == "32":
        if getattr(pretrained.model, "_scprint_precision", None) is not None:
            raise InputError(
                "this model was loaded with precision "
                f"{pretrained.model._scprint_precision.used!r}; load it again for float32"
            )
        return pretrained
    return _with_precision(pretrained, requested, resolved, owned)


def _with_precision(
    pretrained: Pretrained, requested: str, device: torch.device, owned: bool
) -> Pretrained:
    """``pretrained`` (or a copy sharing what it can) whose model runs in ``requested``."""
    supported, reason = (bf16_support if requested == "bf16" else int8_support)(device)
    model = pretrained.model
    if getattr(model, "_scprint_precision", None) is not None:
        if model._scprint_precision.requested == requested:
            return pretrained
        raise InputError(
            f"this model was loaded with precision {model._scprint_precision.requested!r}; "
            f"load it again for {requested!r}"
        )
    if not owned:
        pretrained = copy.copy(pretrained)
    if not supported:
        message = f"precision {requested!r} is not used: {reason}; running in float32"
        log.warning(message)
        warnings.warn(message, PrecisionWarning, stacklevel=4)
        runner = copy.copy(model)
        _PrecisionRun(runner, requested, "32", reason, reference=None).install()
        pretrained.model = runner
        return pretrained
    if requested == "bf16":
        runner = copy.copy(model)  # shares the weights; only its forward is wrapped
        reference = functools.partial(type(model).forward, model)
    else:
        runner = _quantise_linear(model)
        reference = model.forward
    log.info("precision %s: %s", requested, reason)
    _PrecisionRun(runner, requested, requested, reason, reference=reference).install()
    pretrained.model = runner
    return pretrained


def _quantise_linear(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose transformer linear layers are int8 dynamically quantised.

    The linear layers inside the transformer stacks (attention projections and MLPs, where nearly
    all the arithmetic is) are converted, each weight with one scale per output channel
    (:data:`torch.ao.quantization.per_channel_dynamic_qconfig`), except those of each stack's
    last block, which feed the read-outs directly; the embeddings, the expression / label
    decoders and the attention itself (scores, softmax) stay float32. Agreement with float32 on
    real cells: ``benchmarks/results/inference_cpu.md``.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    kept = tuple(
        f"{name}.blocks.{len(stack.blocks) - 1}."
        for name, stack in model.named_modules()
        if hasattr(stack, "blocks") and len(stack.blocks) > 1
    )
    targets = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and ".blocks." in f".{name}"
        and not name.startswith(kept)
    }
    if not targets:
        raise InputError("int8: the model has no transformer linear layers to quantise")
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_channel", UserWarning)
        return quantize_dynamic(copy.deepcopy(model), targets, dtype=torch.qint8, inplace=True)


class _PrecisionRun:
    """The forward pass of a model in a reduced precision, checked once against float32."""

    def __init__(
        self,
        model: torch.nn.Module,
        requested: str,
        used: str,
        reason: str,
        reference: Callable[..., Any] | None,
    ) -> None:
        self.model = model
        self.requested = requested
        self.used = used
        self.reason = reason
        self.reference = reference
        self.check: dict[str, Any] | None = None
        self._forward = functools.partial(type(model).forward, model)

    def install(self) -> None:
        """Route the model's forward pass (and bottleneck generation) through this object."""
        # plain instance attributes: nn.Module.__call__ looks up self.forward on the instance
        object.__setattr__(self.model, "_scprint_precision", self)
        object.__setattr__(self.model, "forward", self.forward)
        decode = getattr(type(self.model), "decode_from_cell_tokens", None)
        if decode is not None:
            object.__setattr__(
                self.model,
                "decode_from_cell_tokens",
                functools.partial(self._autocast, functools.partial(decode, self.model)),
            )

    def _autocast(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.used != "bf16":
            return fn(*args, **kwargs)
        device_type = next(self.model.parameters()).device.type
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return fn(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self._autocast(self._forward, *args, **kwargs)
        if self.check is None and self.reference is not None:
            start = time.perf_counter()
            reference = self.reference(*args, **kwargs)
            seconds = time.perf_counter() - start
            self.check = agreement(reference, out, kwargs.get("gene_ids"))
            self.check["float32_seconds"] = round(seconds, 3)
            failed = {
                name: self.check[name]
                for name, target in AGREEMENT_TARGETS.items()
                if self.check.get(name) is not None and self.check[name] < target
            }
            self.check["passed"] = not failed
            if failed:
                message = (
                    f"precision {self.used!r} disagrees with float32 on the first batch: "
                    + ", ".join(f"{k} {v:.4f} < {AGREEMENT_TARGETS[k]}" for k, v in failed.items())
                    + "; use precision='32' for exact results"
                )
                log.warning(message)
                warnings.warn(message, PrecisionWarning, stacklevel=2)
            else:
                log.info(
                    "precision %s agrees with float32 on the first batch: %s", self.used, self.check
                )
        return out


def _spearman_rows(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-row Spearman correlation of ``a`` and ``b`` ``(B, L)`` over the ``valid`` positions
    (ties ranked by position, which suits continuous model outputs)."""
    out = []
    for row_a, row_b, keep in zip(a, b, valid):
        x, y = row_a[keep].double(), row_b[keep].double()
        if x.numel() < 3:
            continue
        rx = torch.argsort(torch.argsort(x)).double()
        ry = torch.argsort(torch.argsort(y)).double()
        rx, ry = rx - rx.mean(), ry - ry.mean()
        out.append((rx * ry).sum() / (rx.norm() * ry.norm()).clamp_min(1e-12))
    return torch.stack(out) if out else torch.empty(0, dtype=torch.float64)


def agreement(reference: Any, reduced: Any, gene_ids: torch.Tensor | None) -> dict[str, Any]:
    """How a reduced-precision forward output agrees with the float32 one on the same batch.

    ``embedding_cosine_min`` / ``_mean``: per-cell cosine similarity of ``cell_embedding``;
    ``label_agreement``: share of (cell, label class) predictions equal; and
    ``expression_spearman_min`` / ``_mean``: per-cell Spearman correlation of the expected
    expression (``zinb_mean``) over the cell's genes (not padding), absent for a ``cells_only``
    pass (no expression read out). ``n_cells`` is the batch size.
    (:class:`_PrecisionRun` adds ``float32_seconds``, the time of the float32 pass it cost.)
    """
    record: dict[str, Any] = {"n_cells": int(reference.cell_embedding.shape[0])}
    cosine = torch.nn.functional.cosine_similarity(
        reference.cell_embedding.double(), reduced.cell_embedding.double(), dim=-1
    )
    record["embedding_cosine_min"] = float(cosine.min())
    record["embedding_cosine_mean"] = float(cosine.mean())
    if reference.logits:
        same = [
            (reference.logits[k].argmax(-1) == reduced.logits[k].argmax(-1)).double()
            for k in reference.logits
        ]
        record["label_agreement"] = float(torch.cat(same).mean())
    if reference.zinb_mean is None:  # a cells_only pass: no expression to compare
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}
    valid = (
        torch.ones_like(reference.zinb_mean, dtype=torch.bool)
        if gene_ids is None
        else gene_ids >= 0
    )
    spearman = _spearman_rows(reference.zinb_mean, reduced.zinb_mean, valid)
    if spearman.numel():
        record["expression_spearman_min"] = float(spearman.min())
        record["expression_spearman_mean"] = float(spearman.mean())
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}


def precision_record(pretrained: Pretrained) -> dict[str, Any]:
    """What the tasks store under ``uns[key_added]["precision"]``: the precision requested and
    used, why (when reduced) and the first batch's agreement with float32 (:func:`agreement`)."""
    run = getattr(pretrained.model, "_scprint_precision", None)
    if run is None:
        return {"requested": "32", "used": "32"}
    record: dict[str, Any] = {"requested": run.requested, "used": run.used, "reason": run.reason}
    if run.check is not None:
        record["first_batch_vs_float32"] = dict(run.check)
    return record


def model_device(pretrained: Pretrained) -> torch.device:
    """The device the model's parameters live on."""
    return next(pretrained.model.parameters()).device
