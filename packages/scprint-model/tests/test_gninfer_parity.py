"""GNInfer reproduces the original scPRINT's GRN inference on original-format checkpoints.

Fixtures (``tests/fixtures/parity``, made by ``benchmarks/parity/bench_gninfer.py --peers
--write-fixtures``): ``gninfer_inputs.npz`` holds 12 real Kang 2018 PBMC cells over 24 genes of
the fixture vocabulary (raw counts and each cell's total depth); ``gninfer_<config>.npz`` the
networks the original scPRINT 2.3.8's own ``GNInfer`` core (its ``Attention`` accumulator with
``comp_attn=True``, then ``GNInfer.aggregate`` / ``GNInfer.filter``) computed from the
checkpoint ``<config>.ckpt`` (made by the original code, see ``benchmarks/parity``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import scprint
from scprint.testing.parity import GNINFER_VARIANTS, gninfer_network

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
CONFIGS = ("v2_pos_fsq", "v2_gqa_log")


@pytest.mark.parametrize("config", CONFIGS)
def test_gninfer_equals_the_original_on_its_checkpoint(config):
    inputs = dict(np.load(FIXTURES / "gninfer_inputs.npz"))
    reference = dict(np.load(FIXTURES / f"gninfer_{config}.npz"))
    pretrained = scprint.load(FIXTURES / f"{config}.ckpt", device="cpu")
    for variant in GNINFER_VARIANTS:
        expected = reference[f"network_{variant}"]
        np.testing.assert_array_equal(reference[f"genes_{variant}"], inputs["gene_ids"][0])
        got = gninfer_network(pretrained, inputs, variant)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=variant)
