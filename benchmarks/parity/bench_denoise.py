"""Denoising parity: our ``Denoiser`` against the original scPRINT's denoising forward pass.

The same real cells and genes as ``bench_gninfer.py`` (``gninfer_inputs.npz``: 12 Kang 2018 PBMC
cells, 24 genes, each cell's true depth), each 2.x fixture checkpoint, and a depth multiplier of
3 (the original's ``predict_depth_mult``):

* the original (peer venv, ``peer_denoise.py``) runs ``scPrint._predict(predict_mode="denoise")``
  batch by batch as its ``Denoiser`` does, and returns the ZINB means;
* we load the checkpoint with ``scprint.load`` and run ``Denoiser(genes=<the 24 genes>,
  depth_factor=3)`` on an AnnData of the same cells: ``layers["scprint_denoised"]``
  (:func:`scprint.testing.parity.denoised_means`, which the package's tests use too).

The bar is a max abs difference <= 1e-4 of the means as fractions of each cell's denoised library
size (the means themselves reach ~150 counts; float32 rounding is ~1e-5 of that). Without
``--peers`` the committed fixtures (``tests/fixtures/parity/denoise_*.npz``) are the original's
side; ``--peers --write-fixtures`` regenerates them. Writes
``benchmarks/results/parity_denoise.{md,json}``.

Usage::

    python benchmarks/parity/bench_denoise.py [--peers [--write-fixtures]]
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

from _common import write_results  # noqa: E402
from bench_gninfer import CONFIGS, FIXTURES  # noqa: E402
from setup_peers import run_peer  # noqa: E402

from scprint.testing.parity import denoised_means, fractions  # noqa: E402

MULTIPLIER = 3.0
TOLERANCE = 1e-4
log = logging.getLogger("benchmarks.parity.denoise")


def regenerate(folder: Path) -> None:
    shutil.copy2(FIXTURES / "gninfer_inputs.npz", folder / "gninfer_inputs.npz")
    for name, venv in CONFIGS.items():
        run_peer(
            venv,
            HERE / "peer_denoise.py",
            folder / "gninfer_inputs.npz",
            FIXTURES / f"{name}.ckpt",
            folder / f"denoise_{name}.npz",
            MULTIPLIER,
        )


def compare(folder: Path) -> list[dict[str, Any]]:
    import scprint

    inputs = dict(np.load(folder / "gninfer_inputs.npz"))
    rows = []
    for name in CONFIGS:
        reference = dict(np.load(folder / f"denoise_{name}.npz"))
        pretrained = scprint.load(FIXTURES / f"{name}.ckpt", device="cpu")
        got = denoised_means(pretrained, inputs, float(reference["multiplier"]))
        expected = reference["mean"]
        diff = float(np.abs(fractions(got) - fractions(expected)).max())
        rows.append(
            {
                "config": name,
                "shape": "x".join(map(str, expected.shape)),
                "max_abs_diff_fraction": f"{diff:.1e}",
                "max_abs_diff_counts": f"{float(np.abs(got - expected).max()):.1e}",
                "max_mean_counts": f"{float(expected.max()):.1f}",
                "within_1e-4": diff <= TOLERANCE,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", action="store_true", help="rerun the original denoising")
    parser.add_argument(
        "--write-fixtures", action="store_true", help="with --peers: replace the committed fixtures"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.write_fixtures and not args.peers:
        parser.error("--write-fixtures needs --peers")
    with tempfile.TemporaryDirectory() as tmp:
        folder = FIXTURES
        if args.peers:
            folder = Path(tmp)
            regenerate(folder)
        rows = compare(folder)
        if args.write_fixtures:
            for file in folder.glob("denoise_*.npz"):
                shutil.copy2(file, FIXTURES / file.name)
    notes = (
        "The original scprint 2.3.8's _predict(predict_mode='denoise', depth_mult="
        f"{MULTIPLIER:g}) against our Denoiser(depth_factor={MULTIPLIER:g}) on 12 real Kang cells x"
        " 24 genes, float32 on CPU; differences are of the ZINB means as fractions of each cell's"
        " denoised library size (bar 1e-4), with the raw count difference beside them."
    )
    log.info("wrote %s", write_results("parity_denoise", rows, notes=notes))
    return 0 if all(row["within_1e-4"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
