"""Reduced precision of the tasks (``precision="bf16" | "int8"``) agrees with float32.

The models are the committed parity fixtures (randomly initialised originals, moved off their
initialisation so that every path matters numerically), run on real Kang PBMC cells. Accuracy
targets: per-cell cosine of the embedding >= 0.99, label agreement >= 99 %, per-cell Spearman of
the denoised expression >= 0.99, Spearman of the network's strongest edges >= 0.95.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import scprint
from scprint.tasks import Denoiser, Embedder, GNInfer, InputError
from scprint.tasks._model import (
    PRECISIONS,
    PrecisionWarning,
    bf16_support,
    int8_support,
    load_model,
    normalise_precision,
)

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
CKPT = FIXTURES / "v2_pos_fsq.ckpt"
REDUCED = ["bf16", "int8"]


@pytest.fixture(scope="module")
def cells(kang_adata):
    return kang_adata[:48].copy()


@pytest.fixture(scope="module")
def reference(cells):
    """float32 results of the fixture model: embedding, labels, denoised layer, network."""
    embedded = Embedder(CKPT, device="cpu", max_len=256)(cells, copy=True)
    denoised = Denoiser(CKPT, device="cpu", genes="hvg", n_genes=100)(cells, copy=True)
    network = GNInfer(CKPT, device="cpu", n_genes=60, n_cells=None).network(cells)
    return embedded, denoised, network


def _expect_used(precision: str) -> str:
    supported, _ = (bf16_support if precision == "bf16" else int8_support)(torch.device("cpu"))
    return precision if supported else "32"


def test_precision_names_and_their_aliases_are_checked():
    assert [normalise_precision(p) for p in (32, "fp32", "bfloat16", "bf16-mixed", "INT8")] == [
        "32",
        "32",
        "bf16",
        "bf16",
        "int8",
    ]
    with pytest.raises(InputError, match=r"precision must be one of \['32', 'bf16', 'int8'\]"):
        normalise_precision("fp16")
    supported, reason = int8_support(torch.device("cuda"))
    assert not supported and "CPU only" in reason


def test_command_line_offers_the_precisions_of_the_tasks():
    import inspect

    from scprint.tasks.cli import COMMANDS, build_parser, command_module
    from scprint.tasks.cli._options import PRECISION_CHOICES, task_class

    assert PRECISION_CHOICES == PRECISIONS
    parser = build_parser()
    for command in COMMANDS:
        args = parser.parse_args([command, "--precision", "int8"])
        assert args.precision == "int8"
        assert parser.parse_args([command]).precision == "32"
        task = task_class(command_module(command).TASK_CLASS)
        assert inspect.signature(task).parameters["precision"].default == "32"
    from grnndata.cli import UsageError

    with pytest.raises(UsageError, match="invalid choice: 'fp16'"):
        parser.parse_args(["embed", "--precision", "fp16"])


@pytest.mark.parametrize("precision", REDUCED)
def test_reduced_precision_embeddings_and_labels_agree_with_float32(cells, reference, precision):
    embedded = reference[0]
    out = Embedder(CKPT, device="cpu", max_len=256, precision=precision)(cells, copy=True)
    a, b = embedded.obsm["X_scprint"], out.obsm["X_scprint"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.99
    for name in scprint.load(CKPT, device="cpu").model.label_classes:
        column = f"scprint_{name}"
        same = (out.obs[column].astype(str) == embedded.obs[column].astype(str)).mean()
        assert same >= 0.99, (name, same)
    record = out.uns["X_scprint"]["precision"]
    assert record["requested"] == precision and record["used"] == _expect_used(precision)
    if record["used"] != "32":
        check = record["first_batch_vs_float32"]
        assert check["passed"] and check["embedding_cosine_min"] >= 0.99
        assert check["n_cells"] == 32
    assert embedded.uns["X_scprint"]["precision"] == {"requested": "32", "used": "32"}


@pytest.mark.parametrize("precision", REDUCED)
def test_reduced_precision_denoising_and_network_agree_with_float32(cells, reference, precision):
    _, denoised, network = reference
    out = Denoiser(CKPT, device="cpu", genes="hvg", n_genes=100, precision=precision)(
        cells, copy=True
    )
    chosen = denoised.var["scprint_denoised"].to_numpy()
    a = denoised.layers["scprint_denoised"][:, chosen].toarray()
    b = out.layers["scprint_denoised"][:, chosen].toarray()
    per_cell = [spearmanr(x, y)[0] for x, y in zip(a, b)]
    assert min(per_cell) >= 0.99
    grn = GNInfer(CKPT, device="cpu", n_genes=60, n_cells=None, precision=precision).network(cells)
    assert list(grn.var_names) == list(network.var_names)
    ref = network.varp["GRN"].toarray().ravel()
    top = np.argsort(-ref)[:1000]
    assert spearmanr(ref[top], grn.varp["GRN"].toarray().ravel()[top])[0] >= 0.95
    assert grn.grn_metadata["parameters"]["precision"]["used"] == _expect_used(precision)


def test_a_loaded_model_given_to_a_task_is_left_in_float32(cells):
    pretrained = scprint.load(CKPT, device="cpu")
    before = Embedder(pretrained, max_len=128)(cells[:8], copy=True).obsm["X_scprint"]
    reduced = load_model(pretrained, "cpu", precision="int8")
    assert reduced is not pretrained and reduced.model is not pretrained.model
    after = Embedder(pretrained, max_len=128)(cells[:8], copy=True).obsm["X_scprint"]
    np.testing.assert_array_equal(before, after)
    with pytest.raises(ValueError, match="loaded with precision 'int8'"):
        load_model(reduced, "cpu", precision="bf16")


def test_a_disagreeing_reduced_precision_warns_with_its_numbers(cells, monkeypatch):
    import scprint.tasks._model as model_module

    monkeypatch.setitem(model_module.AGREEMENT_TARGETS, "embedding_cosine_min", 1.5)
    if not int8_support(torch.device("cpu"))[0]:
        pytest.skip("this PyTorch build has no quantised CPU engine")
    with pytest.warns(PrecisionWarning, match=r"embedding_cosine_min [\d.]+ < 1\.5"):
        out = Embedder(CKPT, device="cpu", max_len=64, precision="int8")(cells[:4], copy=True)
    assert out.uns["X_scprint"]["precision"]["first_batch_vs_float32"]["passed"] is False


def test_an_unsupported_precision_runs_in_float32_and_says_why(cells, monkeypatch):
    import scprint.tasks._model as model_module

    monkeypatch.setattr(model_module, "_cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.warns(PrecisionWarning, match="no native bfloat16 instructions"):
        task = Embedder(CKPT, device="cpu", max_len=64, precision="bf16")
    out = task(cells[:4], copy=True)
    record = out.uns["X_scprint"]["precision"]
    assert record["requested"] == "bf16" and record["used"] == "32"
    assert "first_batch_vs_float32" not in record


@pytest.mark.parametrize("name", ["v2_pos_fsq", "v2_cell_blocks"])
def test_int8_quantises_each_stack_but_its_last_block_per_output_channel(name):
    if not int8_support(torch.device("cpu"))[0]:
        pytest.skip("this PyTorch build has no quantised CPU engine")
    model = load_model(FIXTURES / f"{name}.ckpt", "cpu", precision="int8").model
    stacks = [model.transformer] + ([model.cell_transformer] if model.cell_transformer else [])
    for stack in stacks:
        *quantised, last = stack.blocks
        for block in quantised:
            layer = block.mlp.fc1
            assert layer.weight().qscheme() == torch.per_channel_affine, type(layer)
        assert type(last.mlp.fc1) is torch.nn.Linear and type(last.mixer.Wqkv) is torch.nn.Linear
    assert type(model.expr_decoder.fc[0]) is torch.nn.Linear
