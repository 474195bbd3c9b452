"""The GPU suite (``pytest -m gpu``): compiled Triton kernels and the whole model on a CUDA device.

Skipped where CUDA is absent. ``SCPRINT_GPU_SMOKE=1`` with ``TRITON_INTERPRET=1`` (both set
before the process starts) runs the same tests on CPU in Triton's interpreter with tiny sizes, to
check the suite itself without a GPU (what ``benchmarks/kernels/gpu_check.sh --smoke`` does).
"""

from __future__ import annotations

import pytest
import torch
from gpu_sizes import SMOKE


def _device() -> tuple[torch.device | None, str]:
    if SMOKE:
        from scprint.kernels.dispatch import triton_interpreter_enabled

        if not triton_interpreter_enabled():
            return (
                None,
                "SCPRINT_GPU_SMOKE=1 needs TRITON_INTERPRET=1 set before the process starts",
            )
        return torch.device("cpu"), ""
    if not torch.cuda.is_available():
        return None, "no CUDA device (CPU check: SCPRINT_GPU_SMOKE=1 TRITON_INTERPRET=1)"
    return torch.device("cuda", torch.cuda.current_device()), ""


DEVICE, SKIP_REASON = _device()


@pytest.fixture(autouse=True)
def _require_device() -> None:
    if DEVICE is None:
        pytest.skip(SKIP_REASON)


@pytest.fixture
def device() -> torch.device:
    """The CUDA device (or the CPU in the interpreter smoke run)."""
    assert DEVICE is not None
    return DEVICE
