"""``backend="auto"`` cannot break a run because of Triton: the self-check, the fallback with one
warning, ``backend="triton"`` raising the cause, and importing the kernels on Tritons without
``triton.knobs`` (older than 3.4). Runs on CPU: CUDA eligibility and the kernels are simulated by
monkeypatching where noted."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from scprint.kernels import attention, attention_to_network, dispatch
from scprint.kernels.dispatch import TritonFallbackWarning

GENERATOR = torch.Generator().manual_seed(0)
Q, K, V = (torch.randn(2, 2, 19, 16, generator=GENERATOR) for _ in range(3))
GENE_IDS = torch.randint(-1, 7, (2, 19), generator=GENERATOR)
CAUSE = "simulated compile failure: ptxas exited with status 255"


def failing_kernels() -> tuple[SimpleNamespace, SimpleNamespace]:
    """Stand-ins for the two kernel modules whose compile step fails (as a broken toolchain does)."""

    def fail(*args, **kwargs):
        raise RuntimeError(CAUSE)

    return (
        SimpleNamespace(TritonAttention=SimpleNamespace(apply=fail)),
        SimpleNamespace(attention_to_network_triton=fail),
    )


@pytest.fixture
def cuda_simulated(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` treats CPU tensors as it would CUDA ones; a fresh self-check cache."""
    monkeypatch.setattr(dispatch, "_self_check_results", {})
    monkeypatch.setattr(dispatch, "_auto_may_use_triton", lambda device: True)
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)


def fallback_warnings(records: list[warnings.WarningMessage]) -> list[str]:
    return [str(r.message) for r in records if issubclass(r.category, TritonFallbackWarning)]


def test_auto_falls_back_to_torch_with_one_warning_when_the_compile_step_fails(
    cuda_simulated, monkeypatch
):
    monkeypatch.setattr(dispatch, "_load_triton_kernels", lambda requested: failing_kernels())
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        first = attention(Q, K, V)
        second = attention(Q, K, V)
    messages = fallback_warnings(records)
    assert len(messages) == 1, messages
    assert CAUSE in messages[0] and "SDPA" in messages[0] and "self-check failed" in messages[0]
    expected = attention(Q, K, V, backend="torch")
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)

    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        maps, _ = attention_to_network(Q, K, GENE_IDS, 7)
        attention_to_network(Q, K, GENE_IDS, 7)
    messages = fallback_warnings(records)
    assert len(messages) == 1 and "chunked PyTorch path" in messages[0] and CAUSE in messages[0]
    torch.testing.assert_close(maps, attention_to_network(Q, K, GENE_IDS, 7, backend="torch")[0])


def test_auto_self_check_runs_once_per_device_dtype_and_head_dim(cuda_simulated, monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "_self_check_case", lambda *args: calls.append(args))
    cuda = torch.device("cuda", 0)
    for _ in range(3):
        assert dispatch._resolve_backend("auto", cuda, "attention", torch.bfloat16, 64) == "triton"
    dispatch._resolve_backend("auto", cuda, "attention", torch.float16, 64)
    dispatch._resolve_backend("auto", cuda, "attention", torch.bfloat16, 32)
    dispatch._resolve_backend("auto", cuda, "attention_to_network", torch.bfloat16, 64)
    assert calls == [
        ("attention", cuda, torch.bfloat16, 64),
        ("attention", cuda, torch.float16, 64),
        ("attention", cuda, torch.bfloat16, 32),
        ("attention_to_network", cuda, torch.bfloat16, 64),
    ]


def test_auto_self_check_rejects_kernels_that_disagree_with_sdpa(cuda_simulated, monkeypatch):
    """A kernel that runs but returns wrong numbers is caught by the comparison, not used."""
    from scprint.kernels.torch_backend import attention_torch

    def wrong(q, k, v, bias, scale):
        out, lse = attention_torch(q, k, v, bias, scale, True)
        return out * 1.01, lse

    broken = SimpleNamespace(TritonAttention=SimpleNamespace(apply=wrong))
    monkeypatch.setattr(dispatch, "_load_triton_kernels", lambda requested: (broken, None))
    with pytest.warns(TritonFallbackWarning, match=r"output: max \|error\|"):
        out = attention(Q, K, V)
    torch.testing.assert_close(out, attention(Q, K, V, backend="torch"))


def test_auto_self_check_passes_for_kernels_equal_to_sdpa(cuda_simulated, monkeypatch):
    """The comparison accepts a correct implementation (here PyTorch itself) for every dtype."""
    from scprint.kernels.torch_backend import attention_torch

    class Correct(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, bias, scale):
            with torch.enable_grad():
                inputs = [t.detach().requires_grad_() for t in (q, k, v)]
                b = None if bias is None else bias.detach().requires_grad_(bias.requires_grad)
                out = attention_torch(*inputs, b, scale, False)
            ctx.saved = (inputs, b, out)
            return out.detach(), out.new_zeros(q.shape[:3], dtype=torch.float32)

        @staticmethod
        def backward(ctx, grad_out, grad_lse):
            inputs, b, out = ctx.saved
            wanted = inputs + ([b] if b is not None and b.requires_grad else [])
            grads = torch.autograd.grad(out, wanted, grad_out)
            return (*grads[:3], grads[3] if len(grads) == 4 else None, None)

    correct = SimpleNamespace(TritonAttention=Correct)
    monkeypatch.setattr(dispatch, "_load_triton_kernels", lambda requested: (correct, None))
    for dtype in dispatch.SUPPORTED_DTYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("error", TritonFallbackWarning)
            dispatch._self_check_case("attention", torch.device("cpu"), dtype, 16)


def test_auto_falls_back_when_a_later_triton_call_fails(cuda_simulated, monkeypatch):
    """The self-check passed, then a real call fails (e.g. compiling for a new shape)."""
    monkeypatch.setattr(dispatch, "_self_check_case", lambda *args: None)
    monkeypatch.setattr(dispatch, "_load_triton_kernels", lambda requested: failing_kernels())
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        out = attention(Q, K, V)
        attention(Q, K, V)
    messages = fallback_warnings(records)
    assert len(messages) == 1 and "the kernels failed" in messages[0] and CAUSE in messages[0]
    torch.testing.assert_close(out, attention(Q, K, V, backend="torch"))


def test_triton_backend_raises_the_cause_instead_of_falling_back(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setattr(dispatch, "triton_interpreter_enabled", lambda: True)
    monkeypatch.setattr(dispatch, "_triton_language_interpreted", lambda: True)
    monkeypatch.setattr(dispatch, "_load_triton_kernels", lambda requested: failing_kernels())
    with pytest.raises(RuntimeError, match=CAUSE):
        attention(Q, K, V, backend="triton")
    with pytest.raises(RuntimeError, match=CAUSE):
        attention_to_network(Q, K, GENE_IDS, 7, backend="triton")


def test_kernel_import_failure_falls_back_under_auto_and_raises_under_triton(
    cuda_simulated, monkeypatch
):
    def broken_import():
        raise ImportError("cannot import name 'knobs' from 'triton'")

    monkeypatch.setattr(dispatch, "_triton_kernels", broken_import)
    with pytest.warns(TritonFallbackWarning, match=r"ImportError: cannot import name 'knobs'"):
        attention(Q, K, V)
    monkeypatch.setattr(dispatch, "triton_interpreter_enabled", lambda: True)
    monkeypatch.setattr(dispatch, "_triton_language_interpreted", lambda: True)
    with pytest.raises(RuntimeError, match=r"do not import with this triton .*knobs"):
        attention(Q, K, V, backend="triton")


def test_auto_never_runs_the_self_check_for_cpu_tensors(monkeypatch):
    monkeypatch.setattr(dispatch, "_self_check_results", {})
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setattr(dispatch, "triton_interpreter_enabled", lambda: True)

    def refuse(*args):
        raise AssertionError("auto must not self-check Triton for CPU tensors")

    monkeypatch.setattr(dispatch, "_self_check_case", refuse)
    assert dispatch._resolve_backend("auto", torch.device("cpu")) == "torch"
    attention(Q, K, V)
    attention_to_network(Q, K, GENE_IDS, 7)


def run_python(code: str, extra_path: str | None = None, **env: str) -> str:
    environment = {**os.environ, **env}
    if extra_path:
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (extra_path, environment.get("PYTHONPATH")) if p
        )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_kernel_modules_import_on_a_triton_without_knobs():
    """Tritons before 3.4 have no ``triton.knobs``: simulated by removing it before the import."""
    pytest.importorskip("triton")
    code = (
        "import sys, triton\n"
        "if hasattr(triton, 'knobs'): del triton.knobs\n"
        "sys.modules['triton.knobs'] = None\n"
        "from scprint.kernels import triton_attention, triton_attn_to_network\n"
        "from scprint.kernels.dispatch import triton_interpreter_enabled\n"
        "print(triton_interpreter_enabled(), triton_attention.INTERPRETED,"
        " triton_attn_to_network.INTERPRETED)\n"
    )
    assert run_python(code, TRITON_INTERPRET="1").split() == ["True"] * 3
    assert run_python(code, TRITON_INTERPRET="0").split() == ["False"] * 3


FLOOR_CHECK = """
import torch, triton
from scprint.kernels import attention, attention_to_network
from scprint.kernels.reference import attention_reference, attention_to_network_reference
generator = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 2, 21, 16, generator=generator, requires_grad=True) for _ in range(3))
bias = torch.randn(2, 21, 21, generator=generator, requires_grad=True)
out = attention(q, k, v, bias=bias, backend="triton")
out.sum().backward()
grads = [t.grad for t in (q, k, v, bias)]
for t in (q, k, v, bias):
    t.grad = None
attention_reference(q, k, v, bias)[0].sum().backward()
errors = [float((a - t.grad).abs().max()) for a, t in zip(grads, (q, k, v, bias))]
gene_ids = torch.randint(-1, 7, (1, 21), generator=generator)
maps = attention_to_network(q.detach(), k.detach(), gene_ids, 7, backend="triton")[0]
expected = attention_to_network_reference(q.detach(), k.detach(), gene_ids, 7)[0]
errors.append(float((maps - expected).abs().max()))
print(triton.__version__, hasattr(triton, "knobs"), max(errors))
"""


@pytest.mark.skipif(
    not os.environ.get("SCPRINT_TRITON_FLOOR_PATH"),
    reason="set SCPRINT_TRITON_FLOOR_PATH to a folder holding triton==3.0.0 (pip install "
    "--no-deps --target DIR triton==3.0.0 'numpy<2'); its interpreter needs numpy < 2",
)
def test_kernels_run_on_the_triton_floor_in_its_interpreter():
    """The ``[triton]`` extra's floor (3.0, PyTorch 2.4's): import and run forward, backward and
    the network kernel in its interpreter, against the reference."""
    version, has_knobs, error = run_python(
        FLOOR_CHECK, os.environ["SCPRINT_TRITON_FLOOR_PATH"], TRITON_INTERPRET="1"
    ).split()
    assert version.startswith("3.0.") and has_knobs == "False"
    assert float(error) < 1e-5


def test_declared_triton_floor_is_the_one_tested():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert "triton>=3.0" in text and "torch>=2.4" in text
