"""Reading checkpoint files safely, and the device a model goes to.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, plus
Lightning's ``AttributeDict`` and numpy scalars/arrays that original hyper-parameters may hold.
Anything else pickled in a file is refused, never executed. Nothing here imports Lightning (its
``AttributeDict`` is allowed only when Lightning is already imported or importable).
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = [
    "CheckpointError",
    "check_finite",
    "load_state_strict",
    "read_checkpoint",
    "resolve_device",
    "source_path",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded (unreadable file, unknown layout, missing tensor...)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA GPU when there is one, else the CPU; otherwise ``torch.device(device)``.

    Raises ``ValueError`` when a CUDA device is asked for on a machine without one.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except RuntimeError as err:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
            ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(resolved)!r} was asked for but no CUDA GPU is available")
    return resolved


def _safe_globals() -> list[Any]:
    """Types original hyper-parameters may pickle that are plain data (no code runs on load)."""
    # Lightning's AttributeDict (a dict with attribute access) in original hyper-parameters is
    # read as a plain dict, so that reading a checkpoint never imports Lightning
    allowed: list[Any] = [
        (dict, f"{module}.AttributeDict")
        for module in (
            "lightning.fabric.utilities.data",
            "lightning_fabric.utilities.data",
            "lightning.pytorch.utilities.parsing",
            "pytorch_lightning.utilities.parsing",
        )
    ]
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed += [np.dtype, np.ndarray, multiarray._reconstruct, multiarray.scalar]
    allowed += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")]
    return allowed


def source_path(source: str | os.PathLike | BinaryIO) -> Path:
    """The path of a checkpoint source (a file object's ``name``, else ``<file object>``)."""
    if isinstance(source, str | os.PathLike):
        return Path(source)
    return Path(str(getattr(source, "name", "<file object>")))


def read_checkpoint(source: str | os.PathLike | BinaryIO, *, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint dictionary of a file (path or binary file object), read without unsafe
    unpickling.

    ``mmap=True`` (a path only) maps the tensors instead of reading them: cheap when only the
    plain entries (``global_step``, ``scprint``...) are needed.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a directory, an empty, truncated or non-torch file, or a file holding
            pickled objects outside the allowed data types (one line naming the file).
    """
    path = source_path(source)
    if isinstance(source, str | os.PathLike):
        if path.is_dir():
            raise CheckpointError(f"checkpoint {str(path)!r} is a directory, expected a .ckpt file")
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        if path.stat().st_size == 0:
            raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes)")
        source = path
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(
                source, map_location="cpu", weights_only=True, mmap=mmap and path.is_file()
            )
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_global(str(err))
        if unsafe:
            raise CheckpointError(
                f"checkpoint {str(path)!r} pickles {unsafe}, which is not plain data; "
                "refusing to unpickle it (a checkpoint holds tensors and plain values only)"
            ) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable torch checkpoint (truncated or corrupted?)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable torch checkpoint (truncated or corrupted?): {reason}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, expected a checkpoint dictionary"
        )
    return checkpoint


#: How torch's safe unpickler names what it refused (``GLOBAL module.name`` in every message:
#: "Unsupported global: GLOBAL x", "unsupported GLOBAL x whose module y is blocked", ...).
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_REFUSED_OTHER = re.compile(r"(Unsupported operand [^\n.]*|unsupported [^\n]*|Trying to [^\n]*)")


def _unsafe_global(message: str) -> str | None:
    """What the safe unpickler refused, from its message (``None`` when it refused nothing)."""
    found = _REFUSED_GLOBAL.search(message)
    if found:
        return f"a Python object of type {found.group(1)}"
    other = _REFUSED_OTHER.search(message)
    return f"something the safe unpickler refuses ({other.group(1).strip()})" if other else None


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _sum_is_finite(tensor: torch.Tensor) -> bool:
    """Whether the sum of ``tensor`` is finite: it is NaN or infinite whenever a value is (and,
    for real weights, only then). numpy's single-threaded sum of a CPU tensor is 10 to 60 times
    faster than ``torch.isfinite(t).all()`` on a busy CPU
    (``benchmarks/results/checkpoints_finite_check.md``)."""
    tensor = tensor.detach()
    if tensor.device.type == "cpu" and tensor.dtype in _NUMPY_FLOATS:
        import numpy as np

        return bool(np.isfinite(tensor.numpy().sum()))
    return bool(torch.isfinite(tensor.sum()))


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`CheckpointError` naming the first floating-point tensor of ``state`` that
    holds NaN or infinity (a diverged or corrupted training run), with how many values are bad."""
    for key, tensor in state.items():
        if not (torch.is_tensor(tensor) and tensor.is_floating_point()) or tensor.numel() == 0:
            continue
        if _sum_is_finite(tensor):
            continue
        values = tensor.detach().reshape(-1)
        if torch.isfinite(values).all():  # the sum overflowed, the values are finite
            continue
        n_nan = int(torch.isnan(values).sum())
        n_inf = int(torch.isinf(values).sum())
        raise CheckpointError(
            f"checkpoint {str(path)!r}: tensor {key!r} holds {n_nan} NaN and {n_inf} infinite "
            f"values of {values.numel()} (a diverged or damaged run); a model needs finite weights, "
            "use an earlier checkpoint of the run"
        )


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Strict load; a missing, unexpected, mis-shaped or non-finite tensor raises naming it."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} lacks tensor {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if unexpected:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has tensor {unexpected[0]!r}, which this model layout does not have"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint {str(path)!r}: tensor {key!r} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[key].shape)}"
            )
    check_finite(state, path)
    model.load_state_dict(state, strict=True)
