"""Denoiser reproduces the original scPRINT's denoising on original-format checkpoints.

Fixtures (``tests/fixtures/parity``, made by ``benchmarks/parity/bench_denoise.py --peers
--write-fixtures``): ``denoise_<config>.npz`` holds the ZINB means the original scPRINT 2.3.8
returned from ``scPrint._predict(predict_mode="denoise", depth_mult=3)`` on the cells and genes of
``gninfer_inputs.npz`` (12 real Kang 2018 PBMC cells, 24 genes), batch by batch as its
``Denoiser`` does, for the checkpoint ``<config>.ckpt`` made by the original code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scprint
from scprint.testing.parity import denoised_means

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


@pytest.mark.parametrize("config", ["v2_pos_fsq", "v2_gqa_log"])
def test_denoiser_equals_the_original_on_its_checkpoint(config):
    inputs = dict(np.load(FIXTURES / "gninfer_inputs.npz"))
    reference = dict(np.load(FIXTURES / f"denoise_{config}.npz"))
    pretrained = scprint.load(FIXTURES / f"{config}.ckpt", device="cpu")
    got = denoised_means(pretrained, inputs, float(reference["multiplier"]))
    expected = reference["mean"]
    assert got.shape == expected.shape == inputs["counts"].shape
    # the means sum to 3x each cell's counts over the genes, as the original's depth_mult
    np.testing.assert_allclose(got.sum(1), 3.0 * inputs["counts"].sum(1), rtol=1e-5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
