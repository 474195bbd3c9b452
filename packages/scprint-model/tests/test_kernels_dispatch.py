"""``scprint.kernels`` dispatch: input validation, backend choice, and the specification on
hand-computed examples (orientation, duplicates, pair counts). Everything here runs on CPU
without Triton's interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scprint.kernels import attention, attention_to_network, dispatch, gene_pair_counts
from scprint.kernels.reference import attention_to_network_reference


def qkv(batch=2, heads=2, seq=5, head_dim=8, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    return tuple(
        torch.randn(batch, heads, seq, head_dim, generator=generator).to(dtype) for _ in range(3)
    )


def test_torch_attention_matches_definition():
    q, k, v = qkv(heads=3)
    bias = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(1))
    expected = torch.softmax(q @ k.transpose(-1, -2) * 8**-0.5 + bias, dim=-1) @ v
    torch.testing.assert_close(attention(q, k, v, bias=bias, backend="torch"), expected)


def test_attention_returns_lse_only_when_asked():
    q, k, v = qkv()
    assert isinstance(attention(q, k, v, backend="torch"), torch.Tensor)
    out, lse = attention(q, k, v, return_lse=True, backend="torch")
    torch.testing.assert_close(lse, torch.logsumexp(q @ k.transpose(-1, -2) * 8**-0.5, dim=-1))
    assert out.shape == q.shape and lse.shape == q.shape[:3]


def test_gene_pair_counts_counts_cells_containing_both_genes():
    gene_ids = torch.tensor([[0, 1, 1, -1], [1, 2, -1, -1], [-1, -1, -1, -1]])
    expected = torch.tensor([[1.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 1.0]])
    assert torch.equal(gene_pair_counts(gene_ids, 3), expected)


def test_network_accumulates_duplicate_genes_and_ignores_padding():
    """Equal scores: each query spreads 1/3 over the 3 present keys; gene 0 occurs twice."""
    q = torch.zeros(1, 1, 4, 8)
    gene_ids = torch.tensor([[0, 0, 2, -1]])
    expected = torch.zeros(3, 3)
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 4 / 3, 2 / 3, 2 / 3, 1 / 3
    for summed, counts in (
        attention_to_network(q, q, gene_ids, 3, backend="torch"),
        attention_to_network_reference(q, q, gene_ids, 3),
    ):
        torch.testing.assert_close(summed, expected)
        assert counts[0, 2] == 1 and counts[1, 1] == 0


def test_network_rows_are_query_genes_and_columns_key_genes():
    """Gene 5's query matches gene 7's key only: row 5 puts ~all its weight in column 7."""
    q = torch.zeros(1, 1, 2, 2)
    k = torch.zeros(1, 1, 2, 2)
    q[0, 0, 0, 0] = 10.0
    k[0, 0, 1, 0] = 10.0
    summed, _ = attention_to_network(q, k, torch.tensor([[5, 7]]), 8, heads=None, backend="torch")
    assert summed.shape == (1, 8, 8)
    assert summed[0, 5, 7] > 0.999 and summed[0, 5, 5] < 1e-3
    torch.testing.assert_close(summed[0, 7, [5, 7]], torch.tensor([0.5, 0.5]))


def test_network_chunk_size_does_not_change_the_result():
    q, k, _ = qkv(batch=3, heads=2, seq=23)
    gene_ids = torch.randint(-1, 9, (3, 23), generator=torch.Generator().manual_seed(2))
    results = [
        attention_to_network(q, k, gene_ids, 9, heads=None, backend="torch", chunk_size=c)[0]
        for c in (1, 4, None)
    ]
    torch.testing.assert_close(results[0], results[2], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(results[1], results[2], atol=1e-6, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    heads=st.integers(1, 3),
    seq=st.integers(1, 12),
    n_genes=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    head_choice=st.sampled_from(["mean", None, "first"]),
)
def test_torch_network_equals_reference_on_random_cells(
    batch, heads, seq, n_genes, seed, head_choice
):
    generator = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(batch, heads, seq, 4, generator=generator) for _ in range(2))
    gene_ids = torch.randint(-1, n_genes, (batch, seq), generator=generator)
    selection = [0] if head_choice == "first" else head_choice
    summed, counts = attention_to_network(q, k, gene_ids, n_genes, heads=selection, backend="torch")
    expected, expected_counts = attention_to_network_reference(
        q, k, gene_ids, n_genes, heads=selection
    )
    torch.testing.assert_close(summed, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(counts, expected_counts)


# ------------------------------------------------------------------------------ validation

Q, K, V = qkv()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"q": Q[0]}, ValueError, r"q must have 4 dimensions .* got 3 \(shape \(2, 5, 8\)\)"),
        ({"k": K[:, :, :, :4]}, ValueError, r"must agree on batch, heads and head_dim"),
        ({"v": V[:, :, :4]}, ValueError, r"must agree"),
        (
            {"q": Q.double(), "k": K.double(), "v": V.double()},
            TypeError,
            r"float16, bfloat16 or float32, got torch.float64",
        ),
        ({"k": K.half()}, ValueError, r"q and k must share dtype"),
        ({"v": V.half()}, ValueError, r"v must share q's dtype"),
        (
            {
                "q": torch.zeros(2, 2, 5, 160),
                "k": torch.zeros(2, 2, 5, 160),
                "v": torch.zeros(2, 2, 5, 160),
            },
            ValueError,
            r"head_dim must be at most 128, got 160",
        ),
        ({"q": Q[:, :, :0], "k": K[:, :, :0], "v": V[:, :, :0]}, ValueError, r"non-empty"),
        ({"bias": torch.zeros(3, 5, 5)}, ValueError, r"bias must have shape .*got \(3, 5, 5\)"),
        ({"bias": torch.zeros(2, 2, 5, 4)}, ValueError, r"got \(2, 2, 5, 4\)"),
        (
            {"bias": torch.zeros(5, 5)},
            ValueError,
            r"\(heads or 1, seq_q, seq_k\) = \(2 or 1, 5, 5\)",
        ),
        ({"bias": torch.zeros(2, 5, 5, dtype=torch.float64)}, TypeError, r"bias must have dtype"),
        (
            {"bias": torch.zeros(2, 5, 5, dtype=torch.bool)},
            TypeError,
            r"bias must have dtype .* got torch.bool",
        ),
        ({"bias": [[0.0]]}, TypeError, r"bias must be a torch.Tensor"),
        ({"scale": float("nan")}, ValueError, r"scale must be a finite float"),
        (
            {"backend": "cuda"},
            ValueError,
            r"backend must be one of \('auto', 'triton', 'torch'\), got 'cuda'",
        ),
    ],
)
def test_attention_rejects_bad_input_with_specific_message(kwargs, error, message):
    arguments = {"q": Q, "k": K, "v": V, **kwargs}
    with pytest.raises(error, match=message):
        attention(**arguments)


GENE_IDS = torch.tensor([[0, 1, 2, -1, -1], [3, 3, 1, 0, -1]])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gene_ids": GENE_IDS.float()}, TypeError, r"integer tensor .* got torch.float32"),
        (
            {"gene_ids": GENE_IDS[:, :4]},
            ValueError,
            r"shape \(batch, seq\) = \(2, 5\), got \(2, 4\)",
        ),
        (
            {"gene_ids": GENE_IDS + 7},
            ValueError,
            r"in \[0, n_genes=10\) or -1 for padding, found 10",
        ),
        ({"gene_ids": GENE_IDS - 2}, ValueError, r"found -3"),
        ({"n_genes": 0}, ValueError, r"n_genes must be a positive int, got 0"),
        (
            {"heads": "max"},
            ValueError,
            r"heads must be 'mean', a list of head indices or None, got 'max'",
        ),
        ({"heads": [0, 5]}, ValueError, r"head indices must be integers in \[0, 2\), got 5"),
        ({"heads": []}, ValueError, r"non-empty list"),
        ({"chunk_size": 0}, ValueError, r"chunk_size must be a positive int or None, got 0"),
        ({"k": K[:, :, :4]}, ValueError, r"q and k must have the same shape"),
        ({"backend": "gpu"}, ValueError, r"backend must be one of"),
    ],
)
def test_network_rejects_bad_input_with_specific_message(kwargs, error, message):
    arguments = {"q": Q, "k": K, "gene_ids": GENE_IDS, "n_genes": 10, **kwargs}
    with pytest.raises(error, match=message):
        attention_to_network(**arguments)


# ------------------------------------------------------------------------------ backend choice


def test_auto_uses_torch_on_cpu_without_touching_triton(monkeypatch):
    def refuse():
        raise AssertionError("auto must not load the Triton kernels for CPU tensors")

    monkeypatch.setattr(dispatch, "_triton_kernels", refuse)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    torch.testing.assert_close(attention(Q, K, V), attention(Q, K, V, backend="torch"))
    attention_to_network(Q, K, GENE_IDS, 10)


def test_auto_picks_triton_for_cuda_tensors_only_when_importable(monkeypatch):
    monkeypatch.setattr(dispatch, "_self_check_results", {})
    monkeypatch.setattr(dispatch, "_self_check_case", lambda *args: None)
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    assert dispatch._resolve_backend("auto", torch.device("cuda", 0)) == "triton"
    assert dispatch._resolve_backend("auto", torch.device("cpu")) == "torch"
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    assert dispatch._resolve_backend("auto", torch.device("cuda", 0)) == "torch"


def test_triton_backend_without_triton_installed_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    assert not dispatch.triton_available()
    with pytest.raises(RuntimeError, match=r"optional dependency triton .* not importable"):
        attention(Q, K, V, backend="triton")
    torch.testing.assert_close(attention(Q, K, V), attention(Q, K, V, backend="torch"))


def test_triton_backend_on_cpu_without_interpreter_raises(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(
        RuntimeError, match=r"runs on CUDA tensors, got tensors on cpu; .*TRITON_INTERPRET=1"
    ):
        attention(Q, K, V, backend="triton")
    with pytest.raises(RuntimeError, match=r"runs on CUDA tensors"):
        attention_to_network(Q, K, GENE_IDS, 10, backend="triton")


def test_triton_interpreter_enabled_too_late_raises(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setattr(dispatch, "triton_interpreter_enabled", lambda: True)
    monkeypatch.setattr(dispatch, "_triton_language_interpreted", lambda: False)
    with pytest.raises(RuntimeError, match=r"triton.language was imported before"):
        attention(Q, K, V, backend="triton")


def test_importing_kernels_does_not_import_triton():
    code = (
        "import sys, scprint.kernels; assert 'triton' not in sys.modules, 'triton imported eagerly'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
