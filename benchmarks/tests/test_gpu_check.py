"""The one-command GPU check (``benchmarks/kernels/gpu_check.sh``) works without a GPU: a subset
of its benchmark runs end to end in ``--smoke`` mode (CPU, Triton's interpreter, tiny shapes) and
writes its two result files; rows PyTorch cannot run on CPU are marked, not failed. The full
smoke (GPU tests included) is ``bash benchmarks/kernels/gpu_check.sh --smoke`` (about 2 minutes
on 2 cores)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def test_gpu_check_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(KERNELS / "gpu_check.sh")], capture_output=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_gpu_benchmark_smoke_writes_rows_and_targets(tmp_path):
    command = [
        sys.executable,
        str(KERNELS / "bench_attention_gpu.py"),
        "--smoke",
        "--only",
        "bias",
        "--only",
        "network",
        "--out",
        str(tmp_path),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "kernels_attention_gpu.json").read_text())["rows"]
    status = {(row["op"], row["variant"]): row["status"] for row in rows}
    assert status == {
        ("learnable_bias", "triton"): "ok",
        ("learnable_bias", "flex_attention"): "not run on CPU: FlexAttention has no CPU backward",
        ("learnable_bias", "sdpa_mem_efficient"): (
            "not run on CPU: the memory-efficient SDPA backend is CUDA-only"
        ),
        ("attention_to_network", "triton"): "ok",
        ("attention_to_network", "naive"): "ok",
    }
    network = next(
        r for r in rows if r["op"] == "attention_to_network" and r["variant"] == "triton"
    )
    assert network["max_relative_difference"] < 1e-5
    targets = json.loads((tmp_path / "kernels_gpu_targets.json").read_text())["rows"]
    assert len(targets) == 6
    bias_targets = [row for row in targets if row["claim"].startswith("learnable bias")]
    assert [row["measured"] for row in bias_targets] == ["not measured"] * 2
    network_speed = next(r for r in targets if r["claim"].startswith("attention-to-network, 8,000"))
    assert network_speed["result"] in ("pass", "fail") and "24 genes" in network_speed["measured"]
    markdown = (tmp_path / "kernels_gpu_targets.md").read_text()
    assert "| claim | target | measured |" in markdown
