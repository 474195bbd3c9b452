"""The CPU inference benchmark's worker (``benchmarks/inference/bench_cpu.py``) still reads what the
tasks write: it runs every task end to end on a tiny randomly initialised model and 8 real Kang
PBMC cells (a few seconds) and must find each task's precision record and outputs. The worker
broke silently once when the tasks' ``key_added`` became the full key (issue 24)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

INFERENCE = Path(__file__).resolve().parents[1] / "inference"
sys.path.insert(0, str(INFERENCE))

import bench_cpu  # noqa: E402


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random checkpoint (our format) over the genes of 8 Kang PBMC cells, and those cells."""
    import anndata as ad
    import torch

    from scprint.checkpoints.ours import checkpoint_metadata
    from scprint.data import LabelEncoder, Vocabulary
    from scprint.model import ModelConfig, build_network

    data_dir = Path(os.environ.get("SCPRINT_DATA_DIR", ""))
    source = data_dir / "scrna" / "kang2018_pbmc_8k.h5ad"
    if not source.exists():
        pytest.skip(f"real data not found: {source} (set SCPRINT_DATA_DIR)")
    full = ad.read_h5ad(source)
    cells = full[:8].copy()
    folder = tmp_path_factory.mktemp("bench_cpu")
    cells_file = folder / "cells.h5ad"
    cells.write_h5ad(cells_file)
    vocab = Vocabulary(genes=list(cells.var_names), symbols=[""] * cells.n_vars)
    config = ModelConfig.from_yaml("tiny")
    torch.manual_seed(0)
    model = build_network(config, len(vocab), {"cell_type": 3})
    labels = {
        "cell_type": LabelEncoder(
            name="cell_type", classes=["CL:0000236", "CL:0000623", "CL:0000624"]
        )
    }
    ckpt = folder / "tiny.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {"scprint": checkpoint_metadata(config, vocab, labels, {}), "state_dict": state}, ckpt
    )
    return ckpt, cells_file


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("precision", ["32", "int8"])
def test_worker_reads_every_tasks_precision_record_and_outputs(tiny_setup, tmp_path, precision):
    ckpt, cells_file = tiny_setup
    args = argparse.Namespace(
        ckpt=str(ckpt),
        cells_file=str(cells_file),
        out_dir=str(tmp_path),
        precision=precision,
        threads=1,
        batch_size=4,
        context=64,
        denoise_genes=20,
        network_genes=10,
    )
    assert bench_cpu.worker(args) == 0
    timings = json.loads((tmp_path / f"timings_{precision}.json").read_text())
    for task in ("embed", "denoise", "gninfer fast", "gninfer exact"):
        record = timings[task]
        assert record["precision_used"] == precision, task
        assert record["seconds"] > 0 and 0 < record["forward_seconds"] <= record["seconds"]
        if precision == "32":
            assert record["first_batch_check"] == {}
        else:  # the reduced precision's first batch was checked against float32
            assert record["first_batch_check"]["n_cells"] == 4
            assert record["check_seconds"] > 0
    outputs = np.load(tmp_path / f"outputs_{precision}.npz")
    assert outputs["embedding"].shape == (8, 32)
    assert outputs["labels"].shape == (1, 8)
    assert outputs["denoised"].shape == (8, 20)
    n_vars = _n_vars(cells_file)
    for key in ("network_fast", "network_exact"):
        network = outputs[key]
        assert network.shape == (n_vars, n_vars)
        assert 0 < (np.abs(network).sum(1) > 0).sum() <= 10  # the 10 network genes only


def _n_vars(path: Path) -> int:
    import anndata as ad

    return ad.read_h5ad(path, backed="r").n_vars
