"""Public attention operations: validate inputs, then dispatch to the Triton or PyTorch backend.

``backend="auto"`` never breaks a run because of Triton. It considers the Triton kernels for CUDA
tensors only (never on CPU), and uses them only after a one-time self-check per operation,
device, dtype and head dimension in this process: import the kernels, compile and run a small
case (forward and backward), compare with the PyTorch backend computed in float32 within the
dtype's tolerance (:data:`SELF_CHECK_TOLERANCE`). If the import, the compile or the comparison
fails, or a later Triton call fails, ``auto`` uses the PyTorch backend (SDPA, or the chunked path
for attention-to-network) from then on and says so once with a :class:`TritonFallbackWarning`
naming the cause. ``backend="triton"`` skips the self-check and raises the error itself.

``backend="triton"`` also runs on CPU tensors when Triton's interpreter is enabled
(``TRITON_INTERPRET=1`` before triton is first imported); that is how the kernels are tested
without a GPU. Triton is imported lazily: this module works without it, and with Tritons older
than 3.4 (no ``triton.knobs``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Literal, overload

import torch

from scprint.kernels.torch_backend import attention_to_network_torch, attention_torch

__all__ = [
    "attention",
    "attention_to_network",
    "triton_available",
    "triton_interpreter_enabled",
    "TritonFallbackWarning",
    "MAX_HEAD_DIM",
    "SUPPORTED_DTYPES",
]

log = logging.getLogger(__name__)

#: Largest head dimension the kernels (and therefore every backend) accept.
MAX_HEAD_DIM = 128
#: Floating dtypes accepted for ``q``, ``k``, ``v`` and ``bias``.
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

Backend = Literal["auto", "triton", "torch"]
_BACKENDS = ("auto", "triton", "torch")


def triton_available() -> bool:
    """Whether the optional ``triton`` dependency imports."""
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def triton_interpreter_enabled() -> bool:
    """Whether Triton's interpreter is on (``TRITON_INTERPRET=1``).

    Read from ``triton.knobs`` (Triton >= 3.4, where it can also be set in code) and from the
    environment variable on older Tritons, which have no ``knobs``.
    """
    try:
        from triton import knobs
    except ImportError:
        return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")
    return bool(knobs.runtime.interpret)


def _triton_language_interpreted() -> bool:
    """Whether ``triton.language`` was first imported with the interpreter enabled.

    Triton builds its library functions (``tl.zeros``, ``tl.sum``, ...) for one mode when
    ``triton.language`` is first imported; the interpreter cannot run compiled-mode ones.
    """
    import triton.language as tl

    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # Tritons whose interpreter does not wrap library functions
        return True
    return isinstance(tl.zeros, InterpretedFunction)


def _triton_kernels() -> tuple[ModuleType, ModuleType]:
    """The kernel modules, (re)built for the current interpreter setting.

    Triton decides at decoration time whether ``@triton.jit`` compiles or interprets, so a module
    imported before ``TRITON_INTERPRET`` changed is reloaded.
    """
    from scprint.kernels import triton_attention, triton_attn_to_network

    interpreting = triton_interpreter_enabled()
    if triton_attention.INTERPRETED != interpreting:
        log.debug("rebuilding Triton kernels with interpret=%s", interpreting)
        triton_attention = importlib.reload(triton_attention)
        triton_attn_to_network = importlib.reload(triton_attn_to_network)
    elif triton_attn_to_network.INTERPRETED != interpreting:
        triton_attn_to_network = importlib.reload(triton_attn_to_network)
    return triton_attention, triton_attn_to_network


def _load_triton_kernels(requested: str) -> tuple[ModuleType, ModuleType]:
    """The kernel modules; a broken Triton install raises a ``RuntimeError`` naming the cause."""
    try:
        return _triton_kernels()
    except Exception as error:  # an old or broken triton fails in many ways at import
        raise RuntimeError(
            f"backend={requested!r}: the Triton kernels do not import with this triton "
            f"({_describe(error)}); use backend='torch', or install a supported triton "
            "(pip install 'scprint-model[triton]')"
        ) from error


def _describe(error: BaseException) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line[:300]}" if first_line else type(error).__name__


# ----------------------------------------------------------------------- auto: Triton self-check


class TritonFallbackWarning(RuntimeWarning):
    """``backend="auto"`` could not use the Triton kernels and uses the PyTorch backend instead."""


#: Max |Triton - PyTorch| / max |PyTorch| the self-check accepts, per dtype (the PyTorch side
#: computes in float32; the Triton side rounds probabilities to the input dtype before matmuls).
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 6e-2}

Operation = Literal["attention", "attention_to_network"]
#: (operation, device, dtype, head_dim) -> None when the Triton kernels passed, else the cause.
_self_check_results: dict[tuple[str, str, torch.dtype, int], str | None] = {}


def _assert_close(
    actual: torch.Tensor, expected: torch.Tensor, tolerance: float, what: str
) -> None:
    actual, expected = actual.detach().float(), expected.detach().float()
    finite = torch.isfinite(expected)
    if not torch.equal(finite, torch.isfinite(actual)):
        raise AssertionError(f"{what}: non-finite entries differ from PyTorch's")
    error = float((actual[finite] - expected[finite]).abs().max()) if finite.any() else 0.0
    scale = max(float(expected[finite].abs().max()) if finite.any() else 0.0, 1e-6)
    if error > tolerance * scale:
        raise AssertionError(
            f"{what}: max |error| {error:.3g} exceeds {tolerance:g} x max |expected| {scale:.3g}"
        )


def _self_check_case(
    operation: Operation, device: torch.device, dtype: torch.dtype, head_dim: int
) -> None:
    """Compile and run the Triton kernels of ``operation`` on a small case; raise if they fail or
    differ from the PyTorch backend (computed in float32) by more than the dtype's tolerance.

    Attention: forward and backward without bias, with a ``(batch, 1, 1, seq)`` padding mask, and
    with a ``(heads, seq, seq)`` bias that requires grad (every kernel variant the model uses).
    Network: a padded batch with repeated genes. The sequence length (37) is not a tile multiple.
    """
    attention_kernels, network_kernels = _load_triton_kernels("auto")
    batch, n_heads, seq = 2, 2, 37
    scale = head_dim**-0.5
    tolerance = SELF_CHECK_TOLERANCE[dtype]
    on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    # Valid inside a user's no_grad / inference_mode / autocast: those would break the check.
    with (
        on_device,
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.autocast(device.type, enabled=False),
    ):
        generator = torch.Generator(device=device).manual_seed(0)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=generator, device=device, dtype=torch.float32)

        q, k, v = (randn(batch, n_heads, seq, head_dim).to(dtype) for _ in range(3))
        if operation == "attention_to_network":
            gene_ids = torch.randint(0, 23, (batch, seq), generator=generator, device=device)
            gene_ids[1, 30:] = -1
            heads = torch.arange(n_heads, device=device)
            ours = network_kernels.attention_to_network_triton(
                q, k, gene_ids, 23, scale, heads.int(), True, None
            )
            expected = attention_to_network_torch(
                q.float(), k.float(), gene_ids, 23, scale, heads, True, None
            )
            _assert_close(ours, expected, tolerance, "attention_to_network")
            return
        padding = torch.zeros(batch, 1, 1, seq, device=device, dtype=dtype)
        padding[1, ..., 30:] = float("-inf")
        for name, bias in (
            ("no bias", None),
            ("padding mask", padding),
            ("learnable bias", randn(n_heads, seq, seq).to(dtype).requires_grad_()),
        ):
            inputs = [t.detach().requires_grad_() for t in (q, k, v)]
            if bias is not None and bias.requires_grad:
                inputs.append(bias)
            out, _ = attention_kernels.TritonAttention.apply(*inputs[:3], bias, scale)
            grad_out = randn(*out.shape).to(dtype)
            grads = torch.autograd.grad(out, inputs, grad_out)
            expected_inputs = [t.detach().float().requires_grad_() for t in inputs]
            expected_bias = None if bias is None else bias.detach().float()
            if len(expected_inputs) == 4:
                expected_bias = expected_inputs[3]
            expected = attention_torch(*expected_inputs[:3], expected_bias, scale, False)
            expected_grads = torch.autograd.grad(expected, expected_inputs, grad_out.float())
            _assert_close(out, expected, tolerance, f"attention ({name}) output")
            for label, grad, expected_grad in zip("qkvb", grads, expected_grads):
                _assert_close(grad, expected_grad, 2 * tolerance, f"attention ({name}) d{label}")


def _triton_failure(
    operation: Operation, device: torch.device, dtype: torch.dtype, head_dim: int
) -> str | None:
    """Why ``auto`` must not use Triton for this case (``None``: the self-check passed).

    Runs :func:`_self_check_case` once per (operation, device, dtype, head_dim) and process; a
    failure is logged and warned about once (:class:`TritonFallbackWarning`), naming the cause.
    """
    key = (operation, str(device), dtype, head_dim)
    if key not in _self_check_results:
        try:
            _self_check_case(operation, device, dtype, head_dim)
            cause = None
        except Exception as error:  # any failure of the kernels means: do not use them
            cause = _describe(error)
        _self_check_results[key] = cause
        if cause is None:
            log.info(
                "Triton %s kernels passed their self-check on %s (%s)", operation, device, dtype
            )
        else:
            # _warn_fallback <- _triton_failure <- _resolve_backend <- attention <- caller
            _warn_fallback(operation, device, dtype, f"the self-check failed: {cause}", 4)
    return _self_check_results[key]


def _warn_fallback(
    operation: str, device: torch.device, dtype: torch.dtype, cause: str, stacklevel: int
) -> None:
    """Log and warn once; ``stacklevel`` points the warning at the caller of the public function."""
    fallback = "SDPA" if operation == "attention" else "the chunked PyTorch path"
    message = (
        f"scprint.kernels: backend='auto' uses {fallback} instead of the Triton {operation} "
        f"kernels on {device} ({dtype}) for this process, because {cause}. "
        "Results are equivalent (PyTorch computes the same attention), only slower; "
        "backend='triton' raises the error itself."
    )
    log.warning("%s", message)
    warnings.warn(message, TritonFallbackWarning, stacklevel=stacklevel + 1)


def _mark_failed(
    operation: Operation,
    device: torch.device,
    dtype: torch.dtype,
    head_dim: int,
    error: BaseException,
) -> None:
    """Record that the Triton kernels failed on a real call under ``auto`` (after passing the
    self-check, e.g. compiling for a new shape): warn once, use PyTorch from now on."""
    cause = _describe(error)
    _self_check_results[(operation, str(device), dtype, head_dim)] = cause
    # _warn_fallback <- _mark_failed <- attention <- caller
    _warn_fallback(operation, device, dtype, f"the kernels failed: {cause}", 3)


def _auto_may_use_triton(device: torch.device) -> bool:
    """``auto`` considers Triton for CUDA tensors only (never on CPU, even when interpreting)."""
    return device.type == "cuda"


def _resolve_backend(
    backend: str,
    device: torch.device,
    operation: Operation = "attention",
    dtype: torch.dtype = torch.float32,
    head_dim: int = 64,
) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "auto":
        if not _auto_may_use_triton(device) or not triton_available():
            return "torch"
        return "torch" if _triton_failure(operation, device, dtype, head_dim) else "triton"
    if not triton_available():
        raise RuntimeError(
            "backend='triton' needs the optional dependency triton (Linux: "
            "pip install 'scprint-model[triton]'), which is not importable; use backend='auto' or 'torch'"
        )
    if device.type == "cuda":
        return "triton"
    if device.type != "cpu" or not triton_interpreter_enabled():
        raise RuntimeError(
            f"backend='triton' runs on CUDA tensors, got tensors on {device}; for CPU tensors set "
            "TRITON_INTERPRET=1 to use Triton's interpreter (slow, for testing), or use backend='torch'"
        )
    if not _triton_language_interpreted():
        raise RuntimeError(
            "backend='triton' on CPU: TRITON_INTERPRET=1 is set, but triton.language was imported "
            "before it was, so its library functions are built for GPU compilation; set "
            "TRITON_INTERPRET=1 before triton is first imported (importing lightning or "
            "torch._dynamo imports it), e.g. in a fresh process"
        )
    return "triton"


def _check_tensor(name: str, tensor: object, dims: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape {dims}, got {type(tensor).__name__}"
        )
    if tensor.dim() != 4:
        raise ValueError(
            f"{name} must have 4 dimensions {dims}, got {tensor.dim()} (shape {tuple(tensor.shape)})"
        )
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must have dtype float16, bfloat16 or float32, got {tensor.dtype}")
    return tensor


def _check_qk(q: torch.Tensor, k: torch.Tensor) -> None:
    _check_tensor("q", q, "(batch, heads, seq, head_dim)")
    _check_tensor("k", k, "(batch, heads, seq, head_dim)")
    if k.dtype != q.dtype or k.device != q.device:
        raise ValueError(
            f"q and k must share dtype and device, got q {q.dtype} on {q.device}, k {k.dtype} on {k.device}"
        )
    if min(q.shape) == 0 or min(k.shape) == 0:
        raise ValueError(
            f"q and k must be non-empty, got shapes {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if q.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(
            f"head_dim must be at most {MAX_HEAD_DIM}, got {q.shape[-1]} (q shape {tuple(q.shape)})"
        )


def _resolve_scale(scale: float | None, head_dim: int) -> float:
    if scale is None:
        return head_dim**-0.5
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite float or None, got {scale!r}")
    return float(scale)


def _check_bias(bias: object, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    batch, n_heads, seq_q, _ = q.shape
    seq_k = k.shape[2]
    expected = (
        f"(heads or 1, seq_q, seq_k) = ({n_heads} or 1, {seq_q}, {seq_k}) or "
        f"(batch or 1, heads or 1, seq_q or 1, seq_k) = ({batch} or 1, {n_heads} or 1, {seq_q} or 1, {seq_k})"
    )
    if not isinstance(bias, torch.Tensor):
        raise TypeError(
            f"bias must be a torch.Tensor of shape {expected} or None, got {type(bias).__name__}"
        )
    if bias.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"bias must have dtype float16, bfloat16 or float32, got {bias.dtype}")
    if bias.device != q.device:
        raise ValueError(f"bias must be on q's device {q.device}, got {bias.device}")
    shape = tuple(bias.shape)
    if bias.dim() == 3:
        valid = shape[0] in (1, n_heads) and shape[1:] == (seq_q, seq_k)
    elif bias.dim() == 4:
        valid = (
            shape[0] in (1, batch)
            and shape[1] in (1, n_heads)
            and shape[2] in (1, seq_q)
            and shape[3] == seq_k
        )
    else:
        valid = False
    if not valid:
        raise ValueError(f"bias must have shape {expected}, got {shape}")
    return bias


@overload
def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = ...,
    scale: float | None = ...,
    return_lse: Literal[False] = ...,
    backend: Backend = ...,
) -> torch.Tensor: ...


@overload
def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = ...,
    scale: float | None = ...,
    return_lse: Literal[True] = ...,
    backend: Backend = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    return_lse: bool = False,
    backend: Backend = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Non-causal multi-head attention ``softmax(q kᵀ · scale + bias) v``, differentiable.

    Args:
        q: ``(batch, heads, seq_q, head_dim)``, float16/bfloat16/float32, ``head_dim <= 128``.
        k, v: ``(batch, heads, seq_k, head_dim)``, same dtype and device as ``q``.
        bias: optional additive bias, ``(heads or 1, seq_q, seq_k)`` (e.g. a gene-gene prior) or
            ``(batch or 1, heads or 1, seq_q or 1, seq_k)`` (e.g. ``(batch, 1, 1, seq)`` padding
            masks); ``-inf`` masks a key out. Gradients flow to it when it requires grad.
            The PyTorch backend casts it to ``q.dtype``; the Triton kernels read it in float32.
        scale: multiplies ``q kᵀ``; default ``head_dim ** -0.5``.
        return_lse: also return the (differentiable) log-sum-exp of each query's scores.
        backend: ``"auto"`` (Triton on CUDA once its self-check passed, else PyTorch SDPA; see
            the module docstring), ``"triton"`` (raises if the kernels cannot run) or ``"torch"``.

    Returns:
        ``out`` ``(batch, heads, seq_q, head_dim)`` in ``q.dtype``; with ``return_lse`` the pair
        ``(out, lse)``, ``lse`` ``(batch, heads, seq_q)`` float32 (natural log). A query whose
        keys are all masked gets a zero output row and ``lse = -inf``.
    """
    _check_qk(q, k)
    _check_tensor("v", v, "(batch, heads, seq, head_dim)")
    if v.dtype != q.dtype or v.device != q.device:
        raise ValueError(
            f"v must share q's dtype and device, got v {v.dtype} on {v.device}, q {q.dtype} on {q.device}"
        )
    batch, n_heads, _, head_dim = q.shape
    if k.shape[:2] != (batch, n_heads) or k.shape[3] != head_dim or v.shape != k.shape:
        raise ValueError(
            "q (batch, heads, seq_q, head_dim) and k, v (batch, heads, seq_k, head_dim) must agree on "
            f"batch, heads and head_dim, got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if bias is not None:
        _check_bias(bias, q, k)
    scale = _resolve_scale(scale, head_dim)
    if _resolve_backend(backend, q.device, "attention", q.dtype, head_dim) == "torch":
        return attention_torch(q, k, v, bias, scale, return_lse)
    triton_attention, _ = _load_triton_kernels(backend)
    try:
        out, lse = triton_attention.TritonAttention.apply(q, k, v, bias, scale)
    except Exception as error:
        if backend != "auto":
            raise
        _mark_failed("attention", q.device, q.dtype, head_dim, error)
        return attention_torch(q, k, v, bias, scale, return_lse)
    return (out, lse) if return_lse else out


def _head_selection(heads: object, n_heads: int) -> tuple[list[int], bool]:
    """Selected head indices and whether their maps are averaged."""
    if heads is None:
        return list(range(n_heads)), False
    if isinstance(heads, str):
        if heads != "mean":
            raise ValueError(f"heads must be 'mean', a list of head indices or None, got {heads!r}")
        return list(range(n_heads)), True
    if not isinstance(heads, Sequence) or len(heads) == 0:
        raise ValueError(
            f"heads must be 'mean', a non-empty list of head indices or None, got {heads!r}"
        )
    for head in heads:
        if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < n_heads:
            raise ValueError(
                f"head indices must be integers in [0, {n_heads}), got {head!r} in {list(heads)!r}"
            )
    return list(heads), False


def _check_gene_ids(
    gene_ids: object, n_genes: object, batch: int, seq: int, device: torch.device
) -> torch.Tensor:
    if isinstance(n_genes, bool) or not isinstance(n_genes, int) or n_genes < 1:
        raise ValueError(f"n_genes must be a positive int, got {n_genes!r}")
    if not isinstance(gene_ids, torch.Tensor):
        raise TypeError(
            f"gene_ids must be a torch.Tensor of shape (batch, seq), got {type(gene_ids).__name__}"
        )
    if (
        gene_ids.dtype.is_floating_point
        or gene_ids.dtype.is_complex
        or gene_ids.dtype == torch.bool
    ):
        raise TypeError(f"gene_ids must be an integer tensor (int64), got {gene_ids.dtype}")
    if tuple(gene_ids.shape) != (batch, seq):
        raise ValueError(
            f"gene_ids must have shape (batch, seq) = ({batch}, {seq}), got {tuple(gene_ids.shape)}"
        )
    if gene_ids.device != device:
        raise ValueError(f"gene_ids must be on q's device {device}, got {gene_ids.device}")
    gene_ids = gene_ids.long()
    low, high = int(gene_ids.min()), int(gene_ids.max())
    if low < -1 or high >= n_genes:
        bad = low if low < -1 else high
        raise ValueError(
            f"gene_ids must be in [0, n_genes={n_genes}) or -1 for padding, found {bad}"
        )
    return gene_ids


def attention_to_network(
    q: torch.Tensor,
    k: torch.Tensor,
    gene_ids: torch.Tensor,
    n_genes: int,
    scale: float | None = None,
    heads: str | list[int] | None = "mean",
    backend: Backend = "auto",
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention maps of many cells summed into one gene x gene matrix, without materialising them.

    For every cell ``c`` and head ``h``, ``P = softmax(q[c, h] k[c, h]ᵀ · scale)`` over the cell's
    non-padding keys; ``P[i, j]`` is added at ``[gene_ids[c, i], gene_ids[c, j]]``. Rows are
    query (attending) genes, columns key (attended) genes. Padding positions (id ``-1``) are
    neither attended to nor accumulated; genes repeated within or across cells accumulate.
    Divide by ``pair_counts`` (where positive) for the mean map over the cells holding each pair.
    Not differentiable. Accumulation is in float32; the PyTorch backend is deterministic, the
    Triton one adds with atomics (reproducible to rounding on a GPU, not bitwise).

    Args:
        q, k: ``(batch, heads, seq, head_dim)`` queries and keys of one attention layer.
        gene_ids: ``(batch, seq)`` int64, gene index of each position in ``[0, n_genes)`` or ``-1``.
        n_genes: size of the gene vocabulary (side of the output matrices).
        scale: multiplies ``q kᵀ``; default ``head_dim ** -0.5``.
        heads: ``"mean"`` (average of all heads), a list of head indices, or ``None`` (all heads).
        backend: ``"auto"`` (Triton on CUDA once its self-check passed, else chunked PyTorch),
            ``"triton"`` (raises if the kernels cannot run) or ``"torch"``.
        chunk_size: query positions processed per step (bounds temporary memory in the PyTorch
            backend, query rows per kernel launch in the Triton one); ``None`` picks automatically.

    Returns:
        ``summed_maps`` float32 of shape ``(n_genes, n_genes)`` for ``"mean"``,
        ``(len(heads), n_genes, n_genes)`` for a list, ``(heads, n_genes, n_genes)`` for ``None``;
        and ``pair_counts`` ``(n_genes, n_genes)`` float32, the number of cells containing both
        the row gene and the column gene.
    """
    from scprint.kernels.reference import gene_pair_counts

    _check_qk(q, k)
    if k.shape != q.shape:
        raise ValueError(
            f"q and k must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    batch, n_heads, seq, head_dim = q.shape
    gene_ids = _check_gene_ids(gene_ids, n_genes, batch, seq, q.device)
    selected, sum_heads = _head_selection(heads, n_heads)
    scale = _resolve_scale(scale, head_dim)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    resolved = _resolve_backend(backend, q.device, "attention_to_network", q.dtype, head_dim)
    with torch.no_grad():
        q, k = q.detach(), k.detach()
        head_index = torch.tensor(selected, device=q.device, dtype=torch.long)
        maps = None
        if resolved == "triton":
            _, triton_network = _load_triton_kernels(backend)
            try:
                maps = triton_network.attention_to_network_triton(
                    q, k, gene_ids, n_genes, scale, head_index.int(), sum_heads, chunk_size
                )
            except Exception as error:
                if backend != "auto":
                    raise
                _mark_failed("attention_to_network", q.device, q.dtype, head_dim, error)
        if maps is None:
            maps = attention_to_network_torch(
                q, k, gene_ids, n_genes, scale, head_index, sum_heads, chunk_size
            )
        counts = gene_pair_counts(gene_ids, n_genes)
    return (maps[0] if sum_heads else maps), counts
