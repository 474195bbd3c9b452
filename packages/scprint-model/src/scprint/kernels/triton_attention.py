"""Triton kernels for non-causal multi-head attention with an additive bias (forward and backward).

The specification is :func:`scprint.kernels.reference.attention_reference`. FlashAttention-2
scheme: the forward pass streams key blocks with an online softmax and stores the row
log-sum-exp; the backward pass recomputes probabilities block by block from it.

- forward: one program per (query block, batch x head).
- backward: ``delta = rowsum(dO ∘ O) - dLSE`` (PyTorch), then one kernel for dK/dV (one program
  per key block, looping over query blocks) and one for dQ (one program per query block, looping
  over key blocks). No atomics: every output element is written by exactly one program.
- bias gradient: ``dBias`` is ``dS = P ∘ (dP - delta)`` summed over the dimensions the bias
  broadcasts over. A per-key bias ``(B|1, H|1, 1, seq_k)`` gets column sums of dS from the dK/dV
  kernel into a ``(batch, heads, seq_k)`` buffer, summed afterwards. A bias with a query
  dimension ``(B|1, H|1, seq_q, seq_k)`` gets a dedicated kernel with one program per
  (query block, key block, bias slice) that loops over the (batch, head) pairs sharing that slice
  and writes the sum once. Both are deterministic.

The bias is read through strides, so broadcast dimensions cost no memory (stride 0).

Compiled (on a GPU), every kernel is autotuned over :data:`TUNING` once per head dimension,
power-of-two length bucket and dtype; in the interpreter the tiles are fixed at 16 x 16.
Supported Tritons: 3.0 (PyTorch 2.4's) to 3.9. This module has no
``from __future__ import annotations``: Triton 3.0's interpreter does not recognise string
``tl.constexpr`` annotations.

Triton 3.9's interpreter (``TRITON_INTERPRET=1``) computes ``tl.dot`` on bfloat16 operands
wrongly; when interpreting, dot operands are upcast to float32 after rounding to the input dtype
(``UPCAST_DOT``), which keeps the kernels' numerics and makes CPU testing possible.
"""

import math

import torch
import triton
import triton.language as tl

from scprint.kernels.dispatch import triton_interpreter_enabled

LOG2E = math.log2(math.e)
LN2 = math.log(2.0)

#: Whether this module's kernels were built for Triton's interpreter (read at import time).
INTERPRETED: bool = triton_interpreter_enabled()


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr):
    if UPCAST_DOT:
        c = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        c = tl.dot(a, b, input_precision=PRECISION)
    return c


@triton.jit
def _attn_fwd_kernel(
    Q,
    K,
    V,
    Bias,
    Out,
    Lse,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_bb,
    stride_bh,
    stride_bm,
    stride_bn,
    stride_ob,
    stride_oh,
    stride_om,
    stride_od,
    n_heads,
    seq_q,
    seq_k,
    head_dim,
    seq_bucket,
    qk_scale_log2,
    HAS_BIAS: tl.constexpr,
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
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = offs_m < seq_q
    mask_d = offs_d < head_dim

    q_ptrs = Q + off_b * stride_qb + off_h * stride_qh
    q_ptrs += offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=mask_m[:, None] & mask_d[None, :], other=0.0)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh
    bias_base = Bias + off_b * stride_bb + off_h * stride_bh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start_n in range(0, seq_k, BLOCK_N):
        cols = start_n + offs_n
        mask_n = cols < seq_k
        kv_mask = mask_n[:, None] & mask_d[None, :]
        k = tl.load(
            k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
            mask=kv_mask,
            other=0.0,
        )
        v = tl.load(
            v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
            mask=kv_mask,
            other=0.0,
        )
        s = _dot(q, tl.trans(k), PRECISION, UPCAST_DOT) * qk_scale_log2
        if HAS_BIAS:
            b = tl.load(
                bias_base + offs_m[:, None] * stride_bm + cols[None, :] * stride_bn,
                mask=mask_m[:, None] & mask_n[None, :],
                other=0.0,
            )
            s += b.to(tl.float32) * 1.4426950408889634
        s = tl.where(mask_n[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION, UPCAST_DOT)
        m_i = m_new

    empty = l_i == 0.0
    acc = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(
        empty, float("-inf"), (m_i + tl.log2(tl.where(empty, 1.0, l_i))) * 0.6931471805599453
    )
    o_ptrs = Out + off_b * stride_ob + off_h * stride_oh
    o_ptrs += offs_m[:, None] * stride_om + offs_d[None, :] * stride_od
    tl.store(o_ptrs, acc.to(Out.dtype.element_ty), mask=mask_m[:, None] & mask_d[None, :])
    tl.store(Lse + pid_bh.to(tl.int64) * seq_q + offs_m, lse, mask=mask_m)


@triton.jit
def _recompute_probabilities(
    q,
    k,
    bias_base,
    rows,
    cols,
    mask_m,
    mask_n,
    lse_log2,
    stride_bm,
    stride_bn,
    qk_scale_log2,
    HAS_BIAS: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
):
    """P tile ``[rows, cols]`` from the stored log-sum-exp; zero outside the valid region."""
    s = _dot(q, tl.trans(k), PRECISION, UPCAST_DOT) * qk_scale_log2
    if HAS_BIAS:
        b = tl.load(
            bias_base + rows[:, None] * stride_bm + cols[None, :] * stride_bn,
            mask=mask_m[:, None] & mask_n[None, :],
            other=0.0,
        )
        s += b.to(tl.float32) * 1.4426950408889634
    valid = mask_m[:, None] & mask_n[None, :] & (lse_log2 != float("-inf"))[:, None]
    p = tl.exp2(s - tl.where(valid, lse_log2[:, None], 0.0))
    return tl.where(valid, p, 0.0)


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    Bias,
    DO,
    Lse,
    Delta,
    DK,
    DV,
    DBiasCols,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_bb,
    stride_bh,
    stride_bm,
    stride_bn,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dod,
    stride_gb,
    stride_gh,
    stride_gm,
    stride_gd,
    n_heads,
    seq_q,
    seq_k,
    head_dim,
    seq_bucket,
    scale,
    qk_scale_log2,
    HAS_BIAS: tl.constexpr,
    BIAS_COLUMN_GRAD: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    off_b = (pid_bh // n_heads).to(tl.int64)
    off_h = (pid_bh % n_heads).to(tl.int64)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_n = cols < seq_k
    mask_d = offs_d < head_dim
    kv_mask = mask_n[:, None] & mask_d[None, :]

    k = tl.load(
        K
        + off_b * stride_kb
        + off_h * stride_kh
        + cols[:, None] * stride_kn
        + offs_d[None, :] * stride_kd,
        mask=kv_mask,
        other=0.0,
    )
    v = tl.load(
        V
        + off_b * stride_vb
        + off_h * stride_vh
        + cols[:, None] * stride_vn
        + offs_d[None, :] * stride_vd,
        mask=kv_mask,
        other=0.0,
    )
    q_base = Q + off_b * stride_qb + off_h * stride_qh
    do_base = DO + off_b * stride_dob + off_h * stride_doh
    bias_base = Bias + off_b * stride_bb + off_h * stride_bh
    row_base = pid_bh.to(tl.int64) * seq_q

    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dbias_cols = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start_m in range(0, seq_q, BLOCK_M):
        rows = start_m + offs_m
        mask_m = rows < seq_q
        qo_mask = mask_m[:, None] & mask_d[None, :]
        q = tl.load(
            q_base + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd,
            mask=qo_mask,
            other=0.0,
        )
        do = tl.load(
            do_base + rows[:, None] * stride_dom + offs_d[None, :] * stride_dod,
            mask=qo_mask,
            other=0.0,
        )
        lse_log2 = tl.load(Lse + row_base + rows, mask=mask_m, other=0.0) * 1.4426950408889634
        delta = tl.load(Delta + row_base + rows, mask=mask_m, other=0.0)
        p = _recompute_probabilities(
            q,
            k,
            bias_base,
            rows,
            cols,
            mask_m,
            mask_n,
            lse_log2,
            stride_bm,
            stride_bn,
            qk_scale_log2,
            HAS_BIAS,
            PRECISION,
            UPCAST_DOT,
        )
        dv += _dot(tl.trans(p.to(do.dtype)), do, PRECISION, UPCAST_DOT)
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST_DOT)
        ds = p * (dp - delta[:, None])
        dk += _dot(tl.trans(ds.to(q.dtype)), q, PRECISION, UPCAST_DOT)
        if BIAS_COLUMN_GRAD:
            dbias_cols += tl.sum(ds, 0)

    out_offsets = (
        off_b * stride_gb
        + off_h * stride_gh
        + cols[:, None] * stride_gm
        + offs_d[None, :] * stride_gd
    )
    tl.store(DK + out_offsets, (dk * scale).to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + out_offsets, dv.to(DV.dtype.element_ty), mask=kv_mask)
    if BIAS_COLUMN_GRAD:
        tl.store(DBiasCols + pid_bh.to(tl.int64) * seq_k + cols, dbias_cols, mask=mask_n)


@triton.jit
def _attn_bwd_dq_kernel(
    Q,
    K,
    V,
    Bias,
    DO,
    Lse,
    Delta,
    DQ,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_bb,
    stride_bh,
    stride_bm,
    stride_bn,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dod,
    stride_gb,
    stride_gh,
    stride_gm,
    stride_gd,
    n_heads,
    seq_q,
    seq_k,
    head_dim,
    seq_bucket,
    scale,
    qk_scale_log2,
    HAS_BIAS: tl.constexpr,
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
    mask_m = rows < seq_q
    mask_d = offs_d < head_dim
    qo_mask = mask_m[:, None] & mask_d[None, :]

    q_offsets = (
        off_b * stride_qb
        + off_h * stride_qh
        + rows[:, None] * stride_qm
        + offs_d[None, :] * stride_qd
    )
    q = tl.load(Q + q_offsets, mask=qo_mask, other=0.0)
    do = tl.load(
        DO
        + off_b * stride_dob
        + off_h * stride_doh
        + rows[:, None] * stride_dom
        + offs_d[None, :] * stride_dod,
        mask=qo_mask,
        other=0.0,
    )
    row_base = pid_bh.to(tl.int64) * seq_q
    lse_log2 = tl.load(Lse + row_base + rows, mask=mask_m, other=0.0) * 1.4426950408889634
    delta = tl.load(Delta + row_base + rows, mask=mask_m, other=0.0)
    k_base = K + off_b * stride_kb + off_h * stride_kh
    v_base = V + off_b * stride_vb + off_h * stride_vh
    bias_base = Bias + off_b * stride_bb + off_h * stride_bh

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start_n in range(0, seq_k, BLOCK_N):
        cols = start_n + offs_n
        mask_n = cols < seq_k
        kv_mask = mask_n[:, None] & mask_d[None, :]
        k = tl.load(
            k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
            mask=kv_mask,
            other=0.0,
        )
        v = tl.load(
            v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
            mask=kv_mask,
            other=0.0,
        )
        p = _recompute_probabilities(
            q,
            k,
            bias_base,
            rows,
            cols,
            mask_m,
            mask_n,
            lse_log2,
            stride_bm,
            stride_bn,
            qk_scale_log2,
            HAS_BIAS,
            PRECISION,
            UPCAST_DOT,
        )
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST_DOT)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, PRECISION, UPCAST_DOT)
    dq_offsets = (
        off_b * stride_gb
        + off_h * stride_gh
        + rows[:, None] * stride_gm
        + offs_d[None, :] * stride_gd
    )
    tl.store(DQ + dq_offsets, (dq * scale).to(DQ.dtype.element_ty), mask=qo_mask)


@triton.jit
def _attn_bwd_dbias_kernel(
    Q,
    K,
    V,
    Bias,
    DO,
    Lse,
    Delta,
    DBias,
    stride_qb,
    stride_qh,
    stride_qm,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_vd,
    stride_bb,
    stride_bh,
    stride_bm,
    stride_bn,
    stride_dob,
    stride_doh,
    stride_dom,
    stride_dod,
    n_heads,
    seq_q,
    seq_k,
    head_dim,
    seq_bucket,
    qk_scale_log2,
    bias_heads,
    batch_repeat,
    head_repeat,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST_DOT: tl.constexpr,
):
    """dBias for a bias slice ``(bias_batch, bias_head)``: Σ of dS over the (batch, head) pairs
    that share it (``batch_repeat x head_repeat`` of them), written once, in a fixed order."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_slice = tl.program_id(2)
    slice_b = pid_slice // bias_heads
    slice_h = pid_slice % bias_heads
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = rows < seq_q
    mask_n = cols < seq_k
    mask_d = offs_d < head_dim
    qo_mask = mask_m[:, None] & mask_d[None, :]
    kv_mask = mask_n[:, None] & mask_d[None, :]

    dbias = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for member in range(0, batch_repeat * head_repeat):
        off_b = (slice_b + member // head_repeat).to(tl.int64)
        off_h = (slice_h + member % head_repeat).to(tl.int64)
        q = tl.load(
            Q
            + off_b * stride_qb
            + off_h * stride_qh
            + rows[:, None] * stride_qm
            + offs_d[None, :] * stride_qd,
            mask=qo_mask,
            other=0.0,
        )
        do = tl.load(
            DO
            + off_b * stride_dob
            + off_h * stride_doh
            + rows[:, None] * stride_dom
            + offs_d[None, :] * stride_dod,
            mask=qo_mask,
            other=0.0,
        )
        k = tl.load(
            K
            + off_b * stride_kb
            + off_h * stride_kh
            + cols[:, None] * stride_kn
            + offs_d[None, :] * stride_kd,
            mask=kv_mask,
            other=0.0,
        )
        v = tl.load(
            V
            + off_b * stride_vb
            + off_h * stride_vh
            + cols[:, None] * stride_vn
            + offs_d[None, :] * stride_vd,
            mask=kv_mask,
            other=0.0,
        )
        row_base = (off_b * n_heads + off_h) * seq_q
        lse_log2 = tl.load(Lse + row_base + rows, mask=mask_m, other=0.0) * 1.4426950408889634
        delta = tl.load(Delta + row_base + rows, mask=mask_m, other=0.0)
        p = _recompute_probabilities(
            q,
            k,
            Bias + off_b * stride_bb + off_h * stride_bh,
            rows,
            cols,
            mask_m,
            mask_n,
            lse_log2,
            stride_bm,
            stride_bn,
            qk_scale_log2,
            True,
            PRECISION,
            UPCAST_DOT,
        )
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST_DOT)
        dbias += p * (dp - delta[:, None])
    out_ptrs = (
        DBias + pid_slice.to(tl.int64) * seq_q * seq_k + rows[:, None] * seq_k + cols[None, :]
    )
    tl.store(out_ptrs, dbias, mask=mask_m[:, None] & mask_n[None, :])


def _block_d(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))


#: Autotuning candidates per kernel, (BLOCK_M, BLOCK_N, num_warps, num_stages), chosen for
#: Hopper (sm_90, 228 KiB shared memory per SM) and valid on Ampere: FlashAttention-2's tiles and
#: the Triton fused-attention tutorial's Hopper tiles (forward 128 x 64/128 with 3-4 stages;
#: backward 32 x 128 for dK/dV, 128 x 32 for dQ), plus small ones for float32 / head_dim 128.
#: Tiles too large for a device are skipped by the autotuner (``OutOfResources``). The first
#: entry of each list is the fixed choice when :data:`FIXED_TILES` is used.
TUNING = {
    "forward": [(128, 64, 4, 3), (128, 128, 8, 3), (128, 32, 4, 4), (64, 64, 4, 3), (32, 32, 4, 2)],
    "dkdv": [(64, 64, 4, 2), (32, 128, 8, 3), (64, 128, 8, 2), (32, 32, 4, 2)],
    "dq": [(64, 64, 4, 2), (128, 32, 8, 3), (128, 64, 8, 2), (32, 32, 4, 2)],
    "dbias": [(64, 64, 4, 2), (128, 64, 8, 2), (64, 128, 8, 2), (32, 32, 4, 2)],
}
#: Most tile elements (BLOCK_M x BLOCK_N) for float32 inputs (twice the bytes per element), for
#: head_dim <= 64 and above (the previous fixed float32 tiles: 64 x 64 and 32 x 32).
FLOAT32_MAX_TILE = {64: 64 * 64, 128: 32 * 32}
#: ``None``: autotune. Otherwise kernel name -> the (BLOCK_M, BLOCK_N, num_warps, num_stages) to
#: launch with, replaced by the first fitting :data:`TUNING` entry when it does not fit
#: (tests pin tiles this way: fast, and each candidate can be checked alone).
FIXED_TILES: dict[str, tuple[int, int, int, int]] | None = None
#: Interpreter tiles: small, so that ragged tails are exercised cheaply in CPU tests.
INTERPRETER_TILES = {"BLOCK_M": 16, "BLOCK_N": 16}


def _fits(tile: tuple[int, int, int, int], dtype: torch.dtype, head_dim: int) -> bool:
    """Whether a tile is tried for these inputs (float32 gets smaller tiles)."""
    if dtype != torch.float32:
        return True
    return tile[0] * tile[1] <= FLOAT32_MAX_TILE[64 if head_dim <= 64 else 128]


def _prune_for_dtype(configs: list, named_args: dict, **_: object) -> list:
    """Drop tiles too large for float32 inputs (``Q`` is the first argument of every kernel)."""
    dtype, head_dim = named_args["Q"].dtype, named_args["head_dim"]
    kept = [
        c
        for c in configs
        if _fits((c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], 0, 0), dtype, head_dim)
    ]
    return kept or configs


def _tuned(kernel: "triton.JITFunction", name: str) -> "triton.runtime.Autotuner":
    """``kernel`` autotuned over ``TUNING[name]``, once per (head_dim, power-of-two length bucket,
    dtypes). Every attention kernel stores each output element once (no atomics), so the
    autotuner's repeated launches leave correct results."""
    configs = [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=warps, num_stages=stages)
        for m, n, warps, stages in TUNING[name]
    ]
    return triton.autotune(
        configs=configs,
        key=["head_dim", "seq_bucket"],
        prune_configs_by={"early_config_prune": _prune_for_dtype},
    )(kernel)


_KERNELS = {
    "forward": _attn_fwd_kernel,
    "dkdv": _attn_bwd_dkdv_kernel,
    "dq": _attn_bwd_dq_kernel,
    "dbias": _attn_bwd_dbias_kernel,
}
_AUTOTUNED = (
    {} if INTERPRETED else {name: _tuned(kernel, name) for name, kernel in _KERNELS.items()}
)


def _launch(name: str, grid, *args, tile_head_dim: int, **constexprs) -> None:
    """Launch kernel ``name``; ``grid(meta)`` gives the grid from the chosen ``BLOCK_M``/``BLOCK_N``.

    Interpreter: 16 x 16 tiles. Compiled: autotuned, or :data:`FIXED_TILES` when set
    (``tile_head_dim`` decides which tiles fit float32 inputs).
    """
    if INTERPRETED:
        _KERNELS[name][grid(INTERPRETER_TILES)](*args, **constexprs, **INTERPRETER_TILES)
    elif FIXED_TILES is None:
        _AUTOTUNED[name][grid](*args, **constexprs)
    else:
        dtype = args[0].dtype
        tile = FIXED_TILES[name]
        if not _fits(tile, dtype, tile_head_dim):
            tile = next(t for t in TUNING[name] if _fits(t, dtype, tile_head_dim))
        block_m, block_n, num_warps, num_stages = tile
        tiles = {"BLOCK_M": block_m, "BLOCK_N": block_n}
        _KERNELS[name][grid(tiles)](
            *args, **constexprs, **tiles, num_warps=num_warps, num_stages=num_stages
        )


def _seq_bucket(seq_q: int, seq_k: int) -> int:
    """Autotuning bucket of a problem: the next power of two of its longest length."""
    return triton.next_power_of_2(max(seq_q, seq_k))


def _dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs get exact IEEE products (like torch's default, which disables TF32 matmuls).
    return "ieee" if dtype == torch.float32 else "tf32"


def _bias_view(
    bias: torch.Tensor | None, q: torch.Tensor, seq_k: int
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The bias as a ``(batch, heads, seq_q, seq_k)`` view (stride 0 on broadcast dims)."""
    if bias is None:
        return q, (0, 0, 0, 0)
    bias4 = bias if bias.dim() == 4 else bias.unsqueeze(0)
    view = bias4.expand(q.shape[0], q.shape[1], q.shape[2], seq_k)
    return view, tuple(view.stride())


def attention_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. Returns ``out`` (like ``q``) and ``lse`` ``(batch, heads, seq_q)`` fp32."""
    batch, n_heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty(batch, n_heads, seq_q, device=q.device, dtype=torch.float32)
    bias_view, bias_strides = _bias_view(bias, q, seq_k)
    _launch(
        "forward",
        lambda meta: (triton.cdiv(seq_q, meta["BLOCK_M"]), batch * n_heads),
        q,
        k,
        v,
        bias_view,
        out,
        lse,
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *bias_strides,
        *out.stride(),
        n_heads,
        seq_q,
        seq_k,
        head_dim,
        _seq_bucket(seq_q, seq_k),
        scale * LOG2E,
        HAS_BIAS=bias is not None,
        BLOCK_D=_block_d(head_dim),
        PRECISION=_dot_precision(q.dtype),
        UPCAST_DOT=INTERPRETED,
        tile_head_dim=head_dim,
    )
    return out, lse


def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    grad_lse: torch.Tensor | None,
    bias_needs_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients ``(dq, dk, dv, dbias)``; ``dbias`` has ``bias``'s shape, or is ``None``."""
    batch, n_heads, seq_q, head_dim = q.shape
    seq_k = k.shape[2]
    grad_out = grad_out.contiguous()
    delta = (grad_out.float() * out.float()).sum(-1)
    if grad_lse is not None:
        delta = delta - grad_lse.float()
    delta = delta.contiguous()
    bias_view, bias_strides = _bias_view(bias, q, seq_k)
    bias_needs_grad = bias_needs_grad and bias is not None
    bias4_shape = (
        bias_view.shape if bias is None else (bias if bias.dim() == 4 else bias.unsqueeze(0)).shape
    )
    # A per-key bias (no query dimension) gets column sums of dS from the dK/dV kernel.
    column_grad = bias_needs_grad and bias4_shape[2] == 1
    dq = torch.empty_like(q, memory_format=torch.contiguous_format)
    dk = torch.empty_like(k, memory_format=torch.contiguous_format)
    dv = torch.empty_like(v, memory_format=torch.contiguous_format)
    dbias_cols = (
        torch.empty(batch, n_heads, seq_k, device=q.device, dtype=torch.float32)
        if column_grad
        else lse  # not written: BIAS_COLUMN_GRAD is off
    )
    common = dict(
        BLOCK_D=_block_d(head_dim),
        PRECISION=_dot_precision(q.dtype),
        UPCAST_DOT=INTERPRETED,
        tile_head_dim=head_dim,
    )
    bucket = _seq_bucket(seq_q, seq_k)
    strides = (*q.stride(), *k.stride(), *v.stride(), *bias_strides, *grad_out.stride())
    _launch(
        "dkdv",
        lambda meta: (triton.cdiv(seq_k, meta["BLOCK_N"]), batch * n_heads),
        q,
        k,
        v,
        bias_view,
        grad_out,
        lse,
        delta,
        dk,
        dv,
        dbias_cols,
        *strides,
        *dk.stride(),
        n_heads,
        seq_q,
        seq_k,
        head_dim,
        bucket,
        scale,
        scale * LOG2E,
        HAS_BIAS=bias is not None,
        BIAS_COLUMN_GRAD=column_grad,
        **common,
    )
    _launch(
        "dq",
        lambda meta: (triton.cdiv(seq_q, meta["BLOCK_M"]), batch * n_heads),
        q,
        k,
        v,
        bias_view,
        grad_out,
        lse,
        delta,
        dq,
        *strides,
        *dq.stride(),
        n_heads,
        seq_q,
        seq_k,
        head_dim,
        bucket,
        scale,
        scale * LOG2E,
        HAS_BIAS=bias is not None,
        **common,
    )
    dbias = None
    if bias_needs_grad:
        bias_batch, bias_heads = bias4_shape[0], bias4_shape[1]
        if column_grad:
            reduce_dims = [dim for dim, size in ((0, bias_batch), (1, bias_heads)) if size == 1]
            dbias4 = dbias_cols.sum(dim=reduce_dims, keepdim=True) if reduce_dims else dbias_cols
            dbias4 = dbias4.unsqueeze(2)
        else:
            dbias4 = torch.empty(
                bias_batch, bias_heads, seq_q, seq_k, device=q.device, dtype=torch.float32
            )
            _launch(
                "dbias",
                lambda meta: (
                    triton.cdiv(seq_q, meta["BLOCK_M"]),
                    triton.cdiv(seq_k, meta["BLOCK_N"]),
                    bias_batch * bias_heads,
                ),
                q,
                k,
                v,
                bias_view,
                grad_out,
                lse,
                delta,
                dbias4,
                *strides,
                n_heads,
                seq_q,
                seq_k,
                head_dim,
                bucket,
                scale * LOG2E,
                bias_heads,
                batch // bias_batch,
                n_heads // bias_heads,
                **common,
            )
        dbias = dbias4.reshape(bias.shape).to(bias.dtype)
    return dq, dk, dv, dbias


class TritonAttention(torch.autograd.Function):
    """Autograd wrapper: ``(q, k, v, bias, scale) -> (out, lse)`` with gradients for q, k, v, bias."""

    @staticmethod
    def forward(ctx, q, k, v, bias, scale):
        out, lse = attention_forward(q, k, v, bias, scale)
        ctx.save_for_backward(q, k, v, bias, out, lse)
        ctx.scale = scale
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, bias, out, lse = ctx.saved_tensors
        dq, dk, dv, dbias = attention_backward(
            q,
            k,
            v,
            bias,
            ctx.scale,
            out,
            lse,
            grad_out,
            grad_lse,
            bias_needs_grad=ctx.needs_input_grad[3],
        )
        return dq, dk, dv, dbias, None
