"""Public attention operations: validate inputs, then dispatch to the Triton or PyTorch backend.

``backend="auto"`` runs the Triton kernels on CUDA tensors when ``triton`` imports, and the
PyTorch backend otherwise. ``backend="triton"`` also runs on CPU tensors when Triton's
interpreter is enabled (``TRITON_INTERPRET=1`` or ``triton.knobs.runtime.interpret = True``);
that is how the kernels are tested without a GPU. Triton is imported lazily: this module works
without it.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Literal, overload

import torch

from scprint.kernels.torch_backend import attention_to_network_torch, attention_torch

__all__ = [
    "attention",
    "attention_to_network",
    "triton_available",
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


def _triton_interpreting() -> bool:
    from triton import knobs

    return bool(knobs.runtime.interpret)


def _triton_language_interpreted() -> bool:
    """Whether ``triton.language`` was first imported with the interpreter enabled.

    Triton builds its library functions (``tl.zeros``, ``tl.sum``, ...) for one mode when
    ``triton.language`` is first imported; the interpreter cannot run compiled-mode ones.
    """
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.zeros, InterpretedFunction)


def _triton_kernels() -> tuple[ModuleType, ModuleType]:
    """The kernel modules, (re)built for the current interpreter setting.

    Triton decides at decoration time whether ``@triton.jit`` compiles or interprets, so a module
    imported before ``TRITON_INTERPRET`` changed is reloaded.
    """
    from scprint.kernels import triton_attention, triton_attn_to_network

    interpreting = _triton_interpreting()
    if triton_attention.INTERPRETED != interpreting:
        log.debug("rebuilding Triton kernels with interpret=%s", interpreting)
        triton_attention = importlib.reload(triton_attention)
        triton_attn_to_network = importlib.reload(triton_attn_to_network)
    elif triton_attn_to_network.INTERPRETED != interpreting:
        triton_attn_to_network = importlib.reload(triton_attn_to_network)
    return triton_attention, triton_attn_to_network


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError(
            "backend='triton' needs the optional dependency triton (Linux: "
            "pip install 'scprint-model[triton]'), which is not importable; use backend='auto' or 'torch'"
        )
    if device.type == "cuda":
        return "triton"
    if device.type != "cpu" or not _triton_interpreting():
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
        backend: ``"auto"`` (Triton on CUDA when importable, else PyTorch SDPA), ``"triton"`` or
            ``"torch"``.

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
    if _resolve_backend(backend, q.device) == "torch":
        return attention_torch(q, k, v, bias, scale, return_lse)
    triton_attention, _ = _triton_kernels()
    out, lse = triton_attention.TritonAttention.apply(q, k, v, bias, scale)
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
        backend: ``"auto"`` (Triton on CUDA when importable, else chunked PyTorch), ``"triton"``
            or ``"torch"``.
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
    resolved = _resolve_backend(backend, q.device)
    with torch.no_grad():
        q, k = q.detach(), k.detach()
        if resolved == "torch":
            head_index = torch.tensor(selected, device=q.device, dtype=torch.long)
            maps = attention_to_network_torch(
                q, k, gene_ids, n_genes, scale, head_index, sum_heads, chunk_size
            )
        else:
            head_index = torch.tensor(selected, device=q.device, dtype=torch.int32)
            _, triton_network = _triton_kernels()
            maps = triton_network.attention_to_network_triton(
                q, k, gene_ids, n_genes, scale, head_index, sum_heads, chunk_size
            )
        counts = gene_pair_counts(gene_ids, n_genes)
    return (maps[0] if sum_heads else maps), counts
