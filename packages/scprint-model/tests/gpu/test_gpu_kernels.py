"""Compiled Triton kernels against the float32 references, on a CUDA device.

Accuracy criterion: max |ours - reference| <= tolerance x max |reference|, where the tolerance is
the larger of a per-dtype floor and twice the error of PyTorch's own SDPA in the same dtype on
the same inputs (so low precision is judged against what PyTorch achieves, not a guess).

Determinism: the attention kernels use no atomics (the bias gradient included: one program
writes each element), so two runs are bitwise equal; ``attention_to_network`` adds with atomics
and is reproducible to float32 rounding only.
"""

from __future__ import annotations

import pytest
import torch
from gpu_sizes import SIZES, SMOKE

from scprint.kernels import attention, attention_to_network
from scprint.kernels.reference import attention_reference, attention_to_network_reference

pytestmark = pytest.mark.gpu

#: Per-dtype floor of the relative tolerance (out and lse; gradients get twice this).
FLOOR = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
BIAS_KINDS = ("full", "padding")


@pytest.fixture
def fixed_tiles(monkeypatch: pytest.MonkeyPatch):
    """Pin every kernel to its first tuning candidate (fast: no autotuning per case)."""
    from scprint.kernels import triton_attention

    tiles = {name: candidates[0] for name, candidates in triton_attention.TUNING.items()}
    monkeypatch.setattr(triton_attention, "FIXED_TILES", tiles)
    return triton_attention


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().float(), expected.detach().float()
    finite = torch.isfinite(expected)
    assert torch.equal(finite, torch.isfinite(actual)), "non-finite entries differ"
    if not finite.any():
        return 0.0
    scale = max(float(expected[finite].abs().max()), 1e-6)
    return float((actual[finite] - expected[finite]).abs().max()) / scale


def make_case(
    device: torch.device, dtype: torch.dtype, head_dim: int, bias_kind: str | None, seed: int = 0
) -> dict[str, torch.Tensor | None]:
    """q, k, v, a bias requiring grad, and upstream gradients for out and lse."""
    generator = torch.Generator(device=device).manual_seed(seed)
    batch, heads, seq_q, seq_k = SIZES.batch, SIZES.heads, SIZES.seq_q, SIZES.seq_k

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=device)

    case: dict[str, torch.Tensor | None] = {
        "q": randn(batch, heads, seq_q, head_dim).to(dtype),
        "k": randn(batch, heads, seq_k, head_dim).to(dtype),
        "v": randn(batch, heads, seq_k, head_dim).to(dtype),
        "grad_out": randn(batch, heads, seq_q, head_dim).to(dtype),
        "grad_lse": randn(batch, heads, seq_q),
        "bias": None,
    }
    if bias_kind == "full":
        case["bias"] = randn(heads, seq_q, seq_k).to(dtype)
    elif bias_kind == "padding":
        bias = randn(batch, 1, 1, seq_k)
        bias[-1, ..., seq_k - seq_k // 3 :] = float("-inf")
        case["bias"] = bias.to(dtype)
    return case


def run(case: dict, backend: str | None, upcast: bool = False) -> dict[str, torch.Tensor]:
    """out, lse and the gradients of q, k, v (and bias) through ``out`` and ``lse``."""
    names = [n for n in ("q", "k", "v", "bias") if case[n] is not None]
    inputs = {n: case[n].detach().clone() for n in names}
    if upcast:
        inputs = {n: t.float() for n, t in inputs.items()}
    for tensor in inputs.values():
        tensor.requires_grad_()
    if backend is None:
        out, lse = attention_reference(
            inputs["q"], inputs["k"], inputs["v"], bias=inputs.get("bias")
        )
    else:
        out, lse = attention(
            inputs["q"],
            inputs["k"],
            inputs["v"],
            bias=inputs.get("bias"),
            return_lse=True,
            backend=backend,
        )
    finite_lse = torch.isfinite(lse)
    loss = (out.float() * case["grad_out"].float()).sum()
    loss = loss + (torch.where(finite_lse, lse, 0.0) * case["grad_lse"]).sum()
    grads = torch.autograd.grad(loss, list(inputs.values()))
    result = {"out": out, "lse": lse}
    result.update({f"d{n}": g for n, g in zip(inputs, grads)})
    return result


#: Every dtype x head_dim with the full learnable bias, and the per-key (padding) bias shape in
#: bfloat16 at every head_dim (float16 and float32 share its code path).
CASES = [(dtype, head_dim, "full") for dtype in SIZES.dtypes for head_dim in SIZES.head_dims] + [
    (torch.bfloat16, head_dim, "padding") for head_dim in SIZES.head_dims
]


@pytest.mark.parametrize(("dtype", "head_dim", "bias_kind"), CASES, ids=str)
def test_attention_forward_and_gradients_match_reference(
    device, fixed_tiles, dtype, head_dim, bias_kind
):
    case = make_case(device, dtype, head_dim, bias_kind)
    ours = run(case, "triton")
    expected = run(case, None, upcast=True)
    sdpa = run(case, "torch")
    for name, reference in expected.items():
        assert ours[name].shape == reference.shape and ours[name].dtype == sdpa[name].dtype
        factor = 1.0 if name in ("out", "lse") else 2.0
        tolerance = max(factor * FLOOR[dtype], 2 * relative_error(sdpa[name], reference))
        error = relative_error(ours[name], reference)
        assert error <= tolerance, f"{name}: relative error {error:.3g} > {tolerance:.3g}"


def test_every_tuning_candidate_is_correct(device, fixed_tiles, monkeypatch):
    """Each autotuning configuration, pinned alone, gives the reference's results (bfloat16,
    head_dim 64, both bias kinds: every kernel runs)."""
    if SMOKE:
        pytest.skip("the interpreter ignores tile choices (16 x 16 there)")
    expected = {}
    for dtype in (torch.bfloat16,):
        for bias_kind in BIAS_KINDS:
            case = make_case(device, dtype, 64, bias_kind, seed=1)
            expected[dtype, bias_kind] = (case, run(case, None, upcast=True), run(case, "torch"))
    for name, candidates in fixed_tiles.TUNING.items():
        for tile in candidates[1:]:
            monkeypatch.setitem(fixed_tiles.FIXED_TILES, name, tile)
            for (dtype, bias_kind), (case, reference, sdpa) in expected.items():
                if not fixed_tiles._fits(tile, dtype, 64):
                    continue
                ours = run(case, "triton")
                for key, value in reference.items():
                    factor = 1.0 if key in ("out", "lse") else 2.0
                    tolerance = max(factor * FLOOR[dtype], 2 * relative_error(sdpa[key], value))
                    error = relative_error(ours[key], value)
                    assert error <= tolerance, (
                        f"{name} {tile} {dtype} {bias_kind} {key}: {error:.3g}"
                    )
        monkeypatch.setitem(fixed_tiles.FIXED_TILES, name, candidates[0])


def test_autotuned_attention_matches_reference(device):
    """The autotuned launch (what users get) on a longer sequence, bfloat16, learnable bias."""
    case = make_case(device, torch.bfloat16, 64, "full", seed=2)
    ours, expected, sdpa = run(case, "triton"), run(case, None, upcast=True), run(case, "torch")
    for name, reference in expected.items():
        factor = 1.0 if name in ("out", "lse") else 2.0
        tolerance = max(factor * FLOOR[torch.bfloat16], 2 * relative_error(sdpa[name], reference))
        assert relative_error(ours[name], reference) <= tolerance, name


@pytest.mark.parametrize("bias_kind", [None, *BIAS_KINDS])
def test_attention_is_bitwise_deterministic(device, fixed_tiles, bias_kind):
    """No atomics anywhere in attention, the bias gradient included: two runs are identical."""
    case = make_case(device, torch.bfloat16, 64, bias_kind, seed=3)
    first, second = run(case, "triton"), run(case, "triton")
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name} differs between two runs"


def test_padding_and_fully_masked_cell(device, fixed_tiles):
    """Padded keys get no weight; a cell whose keys are all masked gets zero output and grads."""
    case = make_case(device, torch.bfloat16, 64, "padding", seed=4)
    case["bias"][0] = float("-inf")
    ours = run(case, "triton")
    assert torch.equal(ours["out"][0], torch.zeros_like(ours["out"][0]))
    assert torch.isneginf(ours["lse"][0]).all() and torch.isfinite(ours["lse"][1]).all()
    for name in ("dq", "dk", "dv", "dbias"):
        assert torch.isfinite(ours[name]).all()
        assert torch.equal(ours[name][0], torch.zeros_like(ours[name][0])), name
    expected = run(case, None, upcast=True)
    assert relative_error(ours["out"], expected["out"]) <= FLOOR[torch.bfloat16]
    # Values at padded key positions do not matter.
    padded = torch.isneginf(case["bias"][-1, 0, 0])
    noisy = dict(case)
    noisy["v"] = case["v"].clone()
    noisy["v"][-1, :, padded] = 1e3
    torch.testing.assert_close(run(noisy, "triton")["out"], ours["out"], rtol=0, atol=0)


def network_case(device: torch.device, dtype: torch.dtype):
    """Cells holding every gene once in random order; about 10 % padding, and repeated genes."""
    generator = torch.Generator(device=device).manual_seed(5)
    genes, cells = SIZES.network_genes, SIZES.network_cells
    shape = (cells, 4, genes, 64)
    q = torch.randn(shape, generator=generator, device=device).to(dtype)
    k = torch.randn(shape, generator=generator, device=device).to(dtype)
    gene_ids = torch.rand(cells, genes, generator=generator, device=device).argsort(dim=1)
    gene_ids[:, genes - genes // 10 :] = -1
    gene_ids[0, 1] = gene_ids[0, 0]
    return q, k, gene_ids


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_attention_to_network_matches_reference_with_padding(device, dtype):
    q, k, gene_ids = network_case(device, dtype)
    genes = SIZES.network_genes
    ours, counts = attention_to_network(q, k, gene_ids, genes, backend="triton")
    again, _ = attention_to_network(q, k, gene_ids, genes, backend="triton")
    expected, expected_counts = attention_to_network_reference(q, k, gene_ids, genes)
    assert torch.equal(counts, expected_counts)
    tolerance = 1e-5 if dtype == torch.float32 else FLOOR[dtype]
    assert relative_error(ours, expected) <= tolerance
    # Atomics: reproducible to float32 rounding, not bitwise.
    torch.testing.assert_close(again, ours, rtol=1e-5, atol=1e-6)
    # Every present query row is a probability distribution.
    total = float((gene_ids >= 0).sum())
    assert abs(float(ours.sum()) - total) <= 1e-3 * total
