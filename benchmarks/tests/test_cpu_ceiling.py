"""The FLOP counts of ``benchmarks/inference/cpu_ceiling.py`` are those the transformer performs:
its linear-layer FLOPs equal what PyTorch's ``FlopCounterMode`` counts on a randomly initialised
transformer of 2 layers over 2,204 tokens, for a full pass and a ``cells_only`` one (synthetic
inputs: FLOPs depend only on shapes). PyTorch counts no FLOPs for the CPU attention kernel, so the
attention term is checked against its closed form."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

INFERENCE = Path(__file__).resolve().parents[1] / "inference"
sys.path.insert(0, str(INFERENCE))

import cpu_ceiling  # noqa: E402


@pytest.mark.parametrize("cells_only", [False, True])
def test_linear_flops_per_cell_match_what_the_transformer_runs(cells_only):
    from scprint.model.transformer import Transformer

    d, layers = 32, 2
    torch.manual_seed(0)
    transformer = Transformer(d, layers, n_heads=2, dropout=0.0).eval()
    tokens = torch.randn(1, cpu_ceiling.GENES + cpu_ceiling.CELL_TOKENS, d)
    outputs = cpu_ceiling.CELL_TOKENS if cells_only else None
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        out, _ = transformer(tokens, outputs=outputs)
    assert out.shape[1] == (cpu_ceiling.CELL_TOKENS if cells_only else tokens.shape[1])
    counted = counter.get_flop_counts()["Global"]
    linear = sum(v for k, v in counted.items() if "addmm" in str(k) or "mm" in str(k))
    expected = cpu_ceiling.flops_per_cell(d, layers, cells_only)
    assert linear == expected["linear"]
    seq = tokens.shape[1]
    queries = [seq, cpu_ceiling.CELL_TOKENS if cells_only else seq]
    assert expected["attention"] == sum(4 * q * seq * d for q in queries)
