"""Triton kernels turning attention straight into a gene x gene network.

The specification is :func:`scprint.kernels.reference.attention_to_network_reference`. The
``(batch, heads, seq, seq)`` attention tensor is never stored; two passes over tiles:

1. row statistics: one program per (query block, batch x head) streams key blocks and stores the
   log-sum-exp (base 2) of each query row over the cell's non-padding keys;
2. accumulation: one program per (query block, key block, cell) recomputes each selected head's
   score tile, normalises it with the stored statistics and adds it with ``tl.atomic_add`` at
   ``[gene_ids[query], gene_ids[key]]`` of the float32 output (rows = query gene). For
   ``heads="mean"`` the tile is summed over heads in registers first (one atomic per entry and
   tile). Atomics make duplicate genes, within or across cells, accumulate correctly; on a GPU the
   float32 summation order of atomics varies between runs, so results are reproducible to
   rounding, not bitwise.

As in :mod:`scprint.kernels.triton_attention`, dot operands are upcast to float32 when running in
Triton's interpreter, whose bfloat16 ``tl.dot`` is wrong. The accumulation kernel is not
autotuned (the autotuner's repeated launches would add its atomics more than once); its fixed
64 x 64 tiles suit Ampere and Hopper.
"""

import math

import torch
import triton
import triton.language as tl

from scprint.kernels.dispatch import triton_interpreter_enabled
from scprint.kernels.triton_attention import _block_d, _dot, _dot_precision

LOG2E = math.log2(math.e)

#: Whether this module's kernels were built for Triton's interpreter (read at import time).
INTERPRETED: bool = triton_interpreter_enabled()


@triton.jit
def _network_row_stats_kernel(
    Q,
    K,
    GeneIds,
    Lse2,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_gb,
    stride_gm,
    n_heads,
    seq,
    head_dim,
    qk_scale_log2,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_b = (pid_bh // n_heads).to(tl.int64)
    off_h = (pid_bh % n_heads).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = rows < seq
    mask_d = offs_d < head_dim
    q = tl.load(
        Q
        + off_b * stride_qb
        + off_h * stride_qh
        + rows[:, None] * stride_qm
        + offs_d[None, :] * stride_qd,
        mask=mask_m[:, None] & mask_d[None, :],
        other=0.0,
    )
    k_base = K + off_b * stride_kb + off_h * stride_kh
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    for start_n in range(0, seq, BLOCK_N):
        cols = start_n + offs_n
        genes_n = tl.load(GeneIds + off_b * stride_gb + cols * stride_gm, mask=cols < seq, other=-1)
        key_present = genes_n >= 0
        k = tl.load(
            k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
            mask=key_present[:, None] & mask_d[None, :],
            other=0.0,
        )
        s = _dot(q, tl.trans(k), PRECISION, UPCAST_DOT) * qk_scale_log2
        s = tl.where(key_present[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        l_i = l_i * tl.exp2(m_i - m_safe) + tl.sum(tl.exp2(s - m_safe[:, None]), 1)
        m_i = m_new
    lse2 = tl.where(l_i == 0.0, float("-inf"), m_i + tl.log2(tl.where(l_i == 0.0, 1.0, l_i)))
    tl.store(Lse2 + pid_bh.to(tl.int64) * seq + rows, lse2, mask=mask_m)


@triton.jit
def _network_accumulate_kernel(
    Q,
    K,
    GeneIds,
    Lse2,
    HeadIndex,
    Out,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_gb,
    stride_gm,
    n_heads,
    n_selected,
    seq,
    row_start,
    row_stop,
    head_dim,
    n_genes,
    n_genes_squared,
    qk_scale_log2,
    head_weight,
    SUM_HEADS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    off_b = tl.program_id(2).to(tl.int64)
    rows = row_start + pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < head_dim
    genes_m = tl.load(
        GeneIds + off_b * stride_gb + rows * stride_gm, mask=rows < row_stop, other=-1
    )
    genes_n = tl.load(GeneIds + off_b * stride_gb + cols * stride_gm, mask=cols < seq, other=-1)
    query_present = genes_m >= 0
    key_present = genes_n >= 0
    pair_present = query_present[:, None] & key_present[None, :]
    out_offsets = genes_m.to(tl.int64)[:, None] * n_genes + genes_n.to(tl.int64)[None, :]

    total = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    out_head = Out
    for selected in range(0, n_selected):
        off_h = tl.load(HeadIndex + selected).to(tl.int64)
        q = tl.load(
            Q
            + off_b * stride_qb
            + off_h * stride_qh
            + rows[:, None] * stride_qm
            + offs_d[None, :] * stride_qd,
            mask=query_present[:, None] & mask_d[None, :],
            other=0.0,
        )
        k = tl.load(
            K
            + off_b * stride_kb
            + off_h * stride_kh
            + cols[:, None] * stride_kn
            + offs_d[None, :] * stride_kd,
            mask=key_present[:, None] & mask_d[None, :],
            other=0.0,
        )
        lse2 = tl.load(Lse2 + (off_b * n_heads + off_h) * seq + rows, mask=query_present, other=0.0)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST_DOT) * qk_scale_log2
        p = tl.where(pair_present, tl.exp2(s - lse2[:, None]), 0.0)
        if SUM_HEADS:
            total += p
        else:
            tl.atomic_add(out_head + out_offsets, p, mask=pair_present, sem="relaxed")
            out_head += n_genes_squared
    if SUM_HEADS:
        tl.atomic_add(Out + out_offsets, total * head_weight, mask=pair_present, sem="relaxed")


def _launch_options(head_dim: int, dtype: torch.dtype) -> dict[str, int]:
    if INTERPRETED:
        return {"BLOCK_M": 16, "BLOCK_N": 16}
    block = 32 if dtype == torch.float32 and head_dim > 64 else 64
    return {
        "BLOCK_M": block,
        "BLOCK_N": block,
        "num_warps": 4 if head_dim <= 64 else 8,
        "num_stages": 2,
    }


def attention_to_network_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    gene_ids: torch.Tensor,
    n_genes: int,
    scale: float,
    head_index: torch.Tensor,
    sum_heads: bool,
    chunk_size: int | None,
) -> torch.Tensor:
    """Summed attention maps ``(n_out, n_genes, n_genes)`` float32 (``n_out = 1`` if ``sum_heads``).

    ``head_index``: int32 indices of the selected heads; with ``sum_heads`` their maps are
    averaged. ``chunk_size``: query positions per accumulation launch (``None``: all).
    """
    batch, n_heads, seq, head_dim = q.shape
    n_selected = head_index.numel()
    options = _launch_options(head_dim, q.dtype)
    common = dict(
        BLOCK_D=_block_d(head_dim),
        PRECISION=_dot_precision(q.dtype),
        UPCAST_DOT=INTERPRETED,
        **options,
    )
    lse2 = torch.empty(batch, n_heads, seq, device=q.device, dtype=torch.float32)
    _network_row_stats_kernel[(triton.cdiv(seq, options["BLOCK_M"]), batch * n_heads)](
        q,
        k,
        gene_ids,
        lse2,
        *q.stride(),
        *k.stride(),
        *gene_ids.stride(),
        n_heads,
        seq,
        head_dim,
        scale * LOG2E,
        **common,
    )
    out = torch.zeros(
        1 if sum_heads else n_selected, n_genes, n_genes, device=q.device, dtype=torch.float32
    )
    step = seq if chunk_size is None else chunk_size
    for row_start in range(0, seq, step):
        row_stop = min(seq, row_start + step)
        grid = (
            triton.cdiv(row_stop - row_start, options["BLOCK_M"]),
            triton.cdiv(seq, options["BLOCK_N"]),
            batch,
        )
        _network_accumulate_kernel[grid](
            q,
            k,
            gene_ids,
            lse2,
            head_index,
            out,
            *q.stride(),
            *k.stride(),
            *gene_ids.stride(),
            n_heads,
            n_selected,
            seq,
            row_start,
            row_stop,
            head_dim,
            n_genes,
            n_genes * n_genes,
            scale * LOG2E,
            1.0 / n_selected,
            SUM_HEADS=sum_heads,
            **common,
        )
    return out
