"""GRN-inference parity: our ``GNInfer`` against the original scPRINT's ``GNInfer`` core.

On real cells (12 Kang 2018 PBMC cells, the 24 fixture-vocabulary genes they express most, each
cell's true depth), with each original-format fixture checkpoint of the 2.x layout:

* the original (peer venv, ``peer_gninfer.py``) runs its own ``GNInfer`` core: queries and keys
  averaged per position by the model's ``Attention`` accumulator (``comp_attn=True``, its
  default), then its ``aggregate`` and ``filter`` for the variants of
  ``peer_gninfer.VARIANTS``;
* we load the same checkpoint with ``scprint.load`` and run ``GNInfer`` with the matching options
  (``aggregation="fast"``, ``cell_tokens=True``,
  :data:`scprint.testing.parity.GNINFER_VARIANTS`) on an AnnData of the same cells
  (:func:`scprint.testing.parity.gninfer_network`, which the package's tests use too).

Our networks have rows = regulators = the original's columns, so ours is compared transposed.
The bar is a max abs difference <= 1e-4 or an identical edge ranking. Without ``--peers`` the
committed fixtures (``packages/scprint-model/tests/fixtures/parity/gninfer_*.npz``) are the
original's side; ``--peers --write-fixtures`` regenerates them.

Writes ``benchmarks/results/parity_gninfer.{md,json}``.

Usage::

    python benchmarks/parity/bench_gninfer.py [--peers [--write-fixtures]] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402
from setup_peers import run_peer  # noqa: E402

from scprint.testing.parity import GNINFER_VARIANTS, gninfer_network, same_ranking  # noqa: E402

FIXTURES = HERE.parents[1] / "packages" / "scprint-model" / "tests" / "fixtures" / "parity"
TOLERANCE = 1e-4
#: fixture configurations with the original 2.x GNInfer (the peer venv that made them)
CONFIGS = {"v2_pos_fsq": "scprint-2.3.8", "v2_gqa_log": "scprint-2.3.8"}
N_CELLS = 12
N_GENES = 24
log = logging.getLogger("benchmarks.parity.gninfer")


def build_grn_inputs(data_dir: Path, vocab_genes: np.ndarray) -> dict[str, np.ndarray]:
    """12 random real Kang cells over the 24 vocabulary genes they express most (vocabulary order)."""
    import anndata as ad

    adata = ad.read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad")
    rows = np.sort(np.random.default_rng(0).choice(adata.n_obs, N_CELLS, replace=False))
    cells = adata[rows]
    columns = adata.var_names.get_indexer(vocab_genes)
    counts = cells.X[:, columns].toarray().astype(np.float32)
    chosen = np.sort(np.argsort(-counts.sum(axis=0), kind="stable")[:N_GENES])
    return {
        "gene_ids": np.broadcast_to(chosen, (N_CELLS, N_GENES)).astype(np.int64),
        "counts": counts[:, chosen],
        "depth": np.asarray(cells.X.sum(axis=1)).ravel().astype(np.float32),
        "batch_size": np.int64(5),
        "cells": np.asarray(cells.obs_names, dtype=str),
    }


def regenerate(folder: Path, data_dir: Path) -> None:
    """Inputs from the real data, then each original writes its networks."""
    vocab = np.load(FIXTURES / "inputs.npz")["genes"]
    np.savez(folder / "gninfer_inputs.npz", **build_grn_inputs(data_dir, vocab))
    for name, venv in CONFIGS.items():
        run_peer(
            venv,
            HERE / "peer_gninfer.py",
            folder / "gninfer_inputs.npz",
            FIXTURES / f"{name}.ckpt",
            folder / f"gninfer_{name}.npz",
        )


def compare(folder: Path) -> list[dict[str, Any]]:
    import scprint

    inputs = dict(np.load(folder / "gninfer_inputs.npz"))
    rows = []
    for name in CONFIGS:
        pretrained = scprint.load(FIXTURES / f"{name}.ckpt", device="cpu")
        reference = dict(np.load(folder / f"gninfer_{name}.npz"))
        for variant in GNINFER_VARIANTS:
            expected = reference[f"network_{variant}"]
            order = reference[f"genes_{variant}"]
            if not np.array_equal(order, inputs["gene_ids"][0]):
                raise AssertionError(f"{name}/{variant}: the original's gene order differs")
            got = gninfer_network(pretrained, inputs, variant)
            diff = float(np.abs(got - expected).max())
            rows.append(
                {
                    "config": name,
                    "variant": variant,
                    "shape": "x".join(map(str, expected.shape)),
                    "max_abs_diff": f"{diff:.1e}",
                    "max_abs_value": f"{float(np.abs(expected).max()):.2e}",
                    "same_edge_ranking": same_ranking(got, expected),
                    "within_1e-4": diff <= TOLERANCE,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", action="store_true", help="rerun the original GNInfer")
    parser.add_argument(
        "--write-fixtures", action="store_true", help="with --peers: replace the committed fixtures"
    )
    data_dir_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.write_fixtures and not args.peers:
        parser.error("--write-fixtures needs --peers")
    with tempfile.TemporaryDirectory() as tmp:
        folder = FIXTURES
        if args.peers:
            folder = Path(tmp)
            regenerate(folder, resolve_data_dir(args.data_dir))
        rows = compare(folder)
        if args.write_fixtures:
            for file in folder.glob("gninfer_*.npz"):
                shutil.copy2(file, FIXTURES / file.name)
    notes = (
        "The original's GNInfer core (scprint 2.3.8, its Attention accumulator with comp_attn=True,"
        " then GNInfer.aggregate / filter) against ours (aggregation='fast', cell_tokens=True) on"
        f" {N_CELLS} real Kang cells x {N_GENES} genes, float32 on CPU; bar: max abs difference"
        f" <= {TOLERANCE:g} or identical edge ranking. The original's comp_attn=False path is not"
        " compared: its Attention.add_attn omits the 1/sqrt(head_dim) scale of the model's own"
        " attention, so it is not the attention the model computes."
    )
    path = write_results("parity_gninfer", rows, notes=notes)
    log.info("wrote %s", path)
    ok = all(row["within_1e-4"] or row["same_edge_ranking"] for row in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
