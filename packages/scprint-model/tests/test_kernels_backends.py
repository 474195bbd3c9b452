"""Both backends of ``scprint.kernels`` equal the references, forward and backward.

- ``attention``: out, log-sum-exp and the gradients of q, k, v and bias against
  ``attention_reference`` (float32: tight; float16/bfloat16: relative tolerance).
- ``attention_to_network``: summed maps against ``attention_to_network_reference`` with padding,
  duplicate genes within and across cells, head selections and chunking.

The ``triton`` cases (select them with ``-m triton``) run the Triton kernels on CPU in Triton's
interpreter, inside one spawned worker process started with ``TRITON_INTERPRET=1``: Triton picks
interpreter or compiler mode when ``triton.language`` is first imported, and other test modules
(anything importing lightning) import it earlier in this process. Shapes are small because the
interpreter is slow; kernel tiles are 16 wide there, so the sequence lengths below span several
tiles with ragged tails.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from scprint.kernels import attention, attention_to_network
from scprint.kernels.reference import attention_reference, attention_to_network_reference

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]
# Max |error| / max |expected| per dtype, about twice the worst error observed for either backend
# (low precision rounds P and dS before the matmuls); gradients get 1.5x this.
RELATIVE_TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
WORKER_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def interpreter_worker() -> Iterator[ProcessPoolExecutor]:
    """A spawned process whose environment has ``TRITON_INTERPRET=1`` from the start."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        executor.submit(os.getpid).result(timeout=WORKER_TIMEOUT_S)
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(params=BACKENDS)
def run(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``run(case, *args)`` calls ``case(backend, *args)``, in the interpreter worker for Triton."""
    if request.param == "torch":
        return lambda case, *args: case("torch", *args)
    worker = request.getfixturevalue("interpreter_worker")
    return lambda case, *args: worker.submit(case, "triton", *args).result(timeout=WORKER_TIMEOUT_S)


def assert_relatively_close(
    actual: torch.Tensor, expected: torch.Tensor, tolerance: float, what: str
) -> None:
    """Same shape, same non-finite entries, and max |error| <= tolerance x max |expected|."""
    actual, expected = actual.float(), expected.float()
    assert actual.shape == expected.shape, (
        f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    finite = torch.isfinite(expected)
    assert torch.equal(finite, torch.isfinite(actual)), f"{what}: non-finite entries differ"
    if not finite.any():
        return
    error = (actual[finite] - expected[finite]).abs().max().item()
    scale = max(expected[finite].abs().max().item(), 1e-6)
    assert error <= tolerance * scale, (
        f"{what}: max error {error:.3g} > {tolerance:g} x {scale:.3g}"
    )


# ----------------------------------------------------------------------------- attention cases


def check_attention_against_reference(
    backend: str,
    shape_q: tuple[int, int, int, int],
    seq_k: int,
    dtype: torch.dtype,
    bias_shape: tuple[int, ...] | None,
    mask_key: int | None,
) -> None:
    """Forward (out, lse) and the gradients of q, k, v, bias (through out and lse)."""
    batch, heads, seq_q, head_dim = shape_q
    generator = torch.Generator().manual_seed(seq_q * 131 + head_dim)
    q = torch.randn(shape_q, generator=generator).to(dtype).requires_grad_()
    k = torch.randn(batch, heads, seq_k, head_dim, generator=generator).to(dtype).requires_grad_()
    v = torch.randn(batch, heads, seq_k, head_dim, generator=generator).to(dtype).requires_grad_()
    bias = None
    if bias_shape is not None:
        bias = torch.randn(bias_shape, generator=generator)
        if mask_key is not None:
            bias[..., mask_key] = float("-inf")
        bias.requires_grad_()
    grad_out = torch.randn(shape_q, generator=generator)
    grad_lse = torch.randn(batch, heads, seq_q, generator=generator)
    inputs = [t for t in (q, k, v, bias) if t is not None]

    out, lse = attention(q, k, v, bias=bias, return_lse=True, backend=backend)
    assert out.dtype == dtype and lse.dtype == torch.float32
    ((out.float() * grad_out).sum() + (lse * grad_lse).sum()).backward()

    reference_inputs = [t.detach().float().requires_grad_() for t in inputs]
    reference_bias = reference_inputs[3] if bias is not None else None
    expected_out, expected_lse = attention_reference(*reference_inputs[:3], bias=reference_bias)
    ((expected_out * grad_out).sum() + (expected_lse * grad_lse).sum()).backward()

    tolerance = RELATIVE_TOLERANCE[dtype]
    assert_relatively_close(out, expected_out, tolerance, "out")
    assert_relatively_close(lse, expected_lse, 1e-5 if dtype == torch.float32 else 1e-3, "lse")
    for name, tensor, reference in zip(("q", "k", "v", "bias"), inputs, reference_inputs):
        assert tensor.grad.dtype == tensor.dtype and tensor.grad.shape == tensor.shape
        assert_relatively_close(tensor.grad, reference.grad, 1.5 * tolerance, f"d{name}")


def check_strided_inputs(backend: str) -> None:
    """Sequence-major views (``.transpose(1, 2)``) and non-dense slices, forward and backward."""
    generator = torch.Generator().manual_seed(1)
    base = [torch.randn(2, 29, 4, 32, generator=generator, requires_grad=True) for _ in range(3)]
    q, k, v = (tensor.transpose(1, 2)[:, 1:, 2:] for tensor in base)
    assert not q.is_contiguous()
    grad_out = torch.randn(q.shape, generator=generator)
    out = attention(q, k, v, backend=backend)
    grads = torch.autograd.grad(out, base, grad_out)
    expected = attention_reference(q, k, v)[0]
    expected_grads = torch.autograd.grad(expected, base, grad_out)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def check_fully_masked_cell(backend: str) -> None:
    generator = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 2, 20, 16, generator=generator).requires_grad_() for _ in range(3))
    bias = torch.zeros(2, 1, 1, 20)
    bias[1] = float("-inf")
    bias.requires_grad_()
    out, lse = attention(q, k, v, bias=bias, return_lse=True, backend=backend)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert torch.isneginf(lse[1]).all() and torch.isfinite(lse[0]).all()
    out.sum().backward()
    for tensor in (q, k, v, bias):
        assert torch.isfinite(tensor.grad).all()
        assert torch.equal(tensor.grad[1], torch.zeros_like(tensor.grad[1]))
    expected, _ = attention_reference(q, k, v, bias)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def check_bias_gradient_by_finite_differences(backend: str) -> None:
    generator = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 18, 16, generator=generator) for _ in range(3))
    bias = torch.randn(1, 18, 18, generator=generator, requires_grad=True)
    weights = torch.randn(2, 2, 18, 16, generator=generator)
    direction = torch.randn(1, 18, 18, generator=generator)

    def loss(b: torch.Tensor) -> torch.Tensor:
        return (attention(q, k, v, bias=b, backend=backend) * weights).sum()

    loss(bias).backward()
    step = 1e-2
    with torch.no_grad():
        numeric = (loss(bias + step * direction) - loss(bias - step * direction)) / (2 * step)
    analytic = (bias.grad * direction).sum()
    torch.testing.assert_close(analytic, numeric, rtol=2e-3, atol=2e-3)


def check_constant_bias_gets_no_gradient(backend: str) -> None:
    generator = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, 17, 16, generator=generator).requires_grad_() for _ in range(3))
    bias = torch.randn(2, 17, 17, generator=generator)
    attention(q, k, v, bias=bias, backend=backend).sum().backward()
    assert bias.grad is None
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, k, v))


def check_explicit_scale(backend: str) -> None:
    generator = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 1, 17, 16, generator=generator) for _ in range(3))
    expected, _ = attention_reference(q, k, v, scale=0.9)
    torch.testing.assert_close(
        attention(q, k, v, scale=0.9, backend=backend), expected, atol=1e-5, rtol=1e-5
    )
    assert not torch.allclose(attention(q, k, v, backend=backend), expected, atol=1e-3)


def check_kernels_rebuilt_when_interpreter_setting_changed(backend: str) -> None:
    """Kernel modules built for the other mode (imported before TRITON_INTERPRET changed) are rebuilt."""
    from scprint.kernels import triton_attention, triton_attn_to_network

    triton_attention.INTERPRETED = not triton_attention.INTERPRETED
    check_explicit_scale(backend)
    import scprint.kernels.triton_attention as rebuilt

    assert rebuilt.INTERPRETED and triton_attn_to_network.INTERPRETED


@pytest.mark.triton
def test_triton_kernels_rebuilt_when_interpreter_setting_changed(interpreter_worker):
    interpreter_worker.submit(
        check_kernels_rebuilt_when_interpreter_setting_changed, "triton"
    ).result(timeout=WORKER_TIMEOUT_S)


@pytest.mark.parametrize(
    ("shape_q", "bias_shape"),
    [
        ((2, 2, 17, 16), None),
        ((1, 2, 1, 32), None),
        ((2, 2, 37, 24), (2, 37, 37)),
        ((2, 3, 33, 64), (1, 33, 33)),
        ((2, 2, 41, 128), (2, 1, 1, 41)),
        ((2, 2, 19, 40), (2, 2, 19, 19)),
        ((2, 2, 23, 16), (1, 2, 1, 23)),
    ],
)
def test_attention_float32_forward_and_gradients_match_reference(run, shape_q, bias_shape):
    seq = shape_q[2]
    mask_key = 3 if bias_shape is not None and seq > 3 else None
    run(check_attention_against_reference, shape_q, seq, torch.float32, bias_shape, mask_key)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    ("shape_q", "bias_shape"),
    [((2, 2, 29, 16), (2, 29, 29)), ((2, 2, 45, 64), (2, 1, 1, 45)), ((1, 2, 18, 128), None)],
)
def test_attention_half_precision_close_to_float32_reference(run, dtype, shape_q, bias_shape):
    run(check_attention_against_reference, shape_q, shape_q[2], dtype, bias_shape, 5)


def test_attention_with_different_key_length(run):
    run(check_attention_against_reference, (1, 2, 21, 32), 35, torch.float32, (1, 2, 1, 35), 0)


def test_attention_accepts_sequence_major_strided_inputs(run):
    run(check_strided_inputs)


def test_attention_fully_masked_cell_gives_zero_output_and_gradients(run):
    run(check_fully_masked_cell)


def test_attention_bias_gradient_matches_finite_differences(run):
    run(check_bias_gradient_by_finite_differences)


def test_attention_constant_bias_gets_no_gradient(run):
    run(check_constant_bias_gets_no_gradient)


def test_attention_explicit_scale_is_applied(run):
    run(check_explicit_scale)


# ------------------------------------------------------------------- attention_to_network cases


def make_network_inputs(
    batch: int, heads: int, seq: int, head_dim: int, n_genes: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cells with ragged padding (-1), genes shared across cells and repeated within cells."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, seq, head_dim, generator=generator).to(dtype)
    k = torch.randn(batch, heads, seq, head_dim, generator=generator).to(dtype)
    gene_ids = torch.randint(0, n_genes, (batch, seq), generator=generator)
    if seq > 5:
        gene_ids[0, 1] = gene_ids[0, 0]
        gene_ids[:, 2] = gene_ids[0, 2]
        for cell in range(1, batch):
            gene_ids[cell, max(5, seq - 1 - 3 * cell) :] = -1
        gene_ids[-1, 4] = -1
    return q, k, gene_ids


def check_network_against_reference(
    backend: str,
    shape: tuple[int, int, int, int],
    n_genes: int,
    dtype: torch.dtype,
    heads: str | list[int] | None,
    chunk_size: int | None,
) -> None:
    q, k, gene_ids = make_network_inputs(*shape, n_genes, dtype, seed=sum(shape))
    summed, counts = attention_to_network(
        q, k, gene_ids, n_genes, heads=heads, backend=backend, chunk_size=chunk_size
    )
    expected, expected_counts = attention_to_network_reference(q, k, gene_ids, n_genes, heads=heads)
    assert summed.dtype == torch.float32 and summed.shape == expected.shape
    assert torch.equal(counts, expected_counts)
    tolerance = 1e-5 if dtype == torch.float32 else RELATIVE_TOLERANCE[dtype]
    assert_relatively_close(summed, expected, tolerance, "summed_maps")
    # Each present query position contributes a probability row summing to one (per head).
    n_present = float((gene_ids >= 0).sum())
    per_head = summed.reshape(-1, n_genes * n_genes).sum(-1)
    torch.testing.assert_close(per_head, torch.full_like(per_head, n_present), rtol=1e-4, atol=1e-3)


def check_network_skips_fully_padded_cell(backend: str) -> None:
    q, k, gene_ids = make_network_inputs(3, 2, 20, 16, 12, torch.float32, seed=7)
    gene_ids[1] = -1
    summed, counts = attention_to_network(q, k, gene_ids, 12, backend=backend)
    without, counts_without = attention_to_network(
        q[[0, 2]], k[[0, 2]], gene_ids[[0, 2]], 12, backend=backend
    )
    assert torch.isfinite(summed).all()
    torch.testing.assert_close(summed, without, atol=1e-6, rtol=1e-6)
    assert torch.equal(counts, counts_without)


def check_network_padding_values_are_ignored(backend: str) -> None:
    """Changing q/k at padding positions changes nothing."""
    q, k, gene_ids = make_network_inputs(2, 2, 25, 16, 9, torch.float32, seed=8)
    padding = gene_ids < 0
    assert padding.any()
    first, _ = attention_to_network(q, k, gene_ids, 9, heads=None, backend=backend)
    noise = torch.randn_like(q) * 100 * padding[:, None, :, None]
    second, _ = attention_to_network(q + noise, k - noise, gene_ids, 9, heads=None, backend=backend)
    torch.testing.assert_close(first, second, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    ("shape", "n_genes", "heads", "chunk_size"),
    [
        ((3, 2, 41, 16), 10, "mean", None),
        ((3, 3, 41, 16), 10, [2, 0], None),
        ((2, 2, 37, 32), 50, None, 7),
        ((2, 2, 17, 128), 6, "mean", 16),
        ((1, 2, 1, 16), 3, None, None),
    ],
)
def test_network_float32_matches_reference(run, shape, n_genes, heads, chunk_size):
    run(check_network_against_reference, shape, n_genes, torch.float32, heads, chunk_size)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_network_half_precision_close_to_float32_reference(run, dtype):
    run(check_network_against_reference, (2, 2, 33, 64), 20, dtype, "mean", None)


def test_network_skips_fully_padded_cell(run):
    run(check_network_skips_fully_padded_cell)


def test_network_ignores_values_at_padding_positions(run):
    run(check_network_padding_values_are_ignored)
