"""Parity with the original scPRINT: its checkpoints load, and our model reproduces its outputs.

The fixtures in ``tests/fixtures/parity`` were made by the original code (scPRINT 2.3.8 with
simpler-flash 1.0.7, and scPRINT 1.6.4) in the peer venvs of ``benchmarks/parity``: randomly
initialised original models saved with Lightning's ``Trainer.save_checkpoint``, and the
original's outputs on 6 real Kang 2018 PBMC cells over 400 real genes (``inputs.npz``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

import scprint
from scprint.checkpoints.scprint1 import outputs_as_original, parity_errors

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
CONFIGS = ("v2_pos_fsq", "v2_gqa_log", "v2_cell_blocks", "v1_layout")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "inputs.npz"))


def _model_inputs(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return (
        torch.as_tensor(inputs["gene_ids"]),
        torch.as_tensor(inputs["counts"]),
        torch.as_tensor(inputs["depth"]),
    )


@pytest.mark.parametrize("name", CONFIGS)
def test_loaded_original_checkpoint_reproduces_every_original_output(name, inputs) -> None:
    pretrained = scprint.load(FIXTURES / f"{name}.ckpt", device="cpu")
    reference = dict(np.load(FIXTURES / f"{name}.npz"))
    errors = parity_errors(outputs_as_original(pretrained.model, *_model_inputs(inputs)), reference)
    assert {"mean", "cell_embs", "q_0", "attn_0", "denoise_mean", "generate_mean"} <= set(errors)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{name}: {worst} differs by {errors[worst]:.2e}"


def test_original_hyper_parameters_become_our_config_vocabulary_and_labels(inputs) -> None:
    with open(FIXTURES / "v2_pos_fsq.ckpt", "rb") as handle:  # a file object loads too
        v2 = scprint.load(handle, device="cpu")
    assert v2.is_original and v2.version == "original 2.x"
    assert v2.vocab.genes == [str(g) for g in inputs["genes"]]
    assert np.array_equal(v2.vocab.positions, inputs["gene_pos"])
    assert v2.genes_by_organism() == {"NCBITaxon:9606": list(range(len(inputs["genes"])))}
    config = v2.config
    assert (config.d_model, config.n_layers, config.n_heads, config.classifier_layers) == (
        32,
        2,
        4,
        [16],
    )
    assert config.compress_class_dim == {"cell_type_ontology_term_id": 3, "sex_ontology_term_id": 1}
    assert config.mvc_decoder == "inner product" and config.normalisation == "sum"
    cell_type = v2.labels["cell_type_ontology_term_id"]
    assert cell_type.classes[0] == "CL:0000624" and len(cell_type.classes) == 6
    assert cell_type.coarse == ["CL:0000084", "CL:0000576"]  # T cell, monocyte
    assert cell_type.descendant_leaves("CL:0000084") == [0, 1]
    assert cell_type.label_name("CL:0000236") == "B cell"  # from the offline Cell Ontology
    assert v2.model.cell_token_index["depth"] == 0 and v2.model.cell_token_index["base"] == 1

    gqa = scprint.load(FIXTURES / "v2_gqa_log.ckpt", device="cpu")
    assert gqa.config.n_heads_kv == 2 and not gqa.config.depth_at_input
    assert "depth" not in gqa.model.cell_token_index and gqa.normalisation == "log"

    blocks = scprint.load(FIXTURES / "v2_cell_blocks.ckpt", device="cpu")
    assert blocks.config.cell_specific_blocks and blocks.model.cell_transformer is not None
    assert blocks.model.qk_cell_tokens == 0 and v2.model.qk_cell_tokens == v2.model.n_cell_tokens

    v1 = scprint.load(FIXTURES / "v1_layout.ckpt", device="cpu")
    assert v1.version == "original 1.x"
    assert v1.model.cell_token_index["base"] == 0 and v1.model.cell_token_index["depth"] == 1


def test_genes_of_several_organisms_are_split_by_ensembl_prefix(tmp_path) -> None:
    from scprint.checkpoints.scprint1 import vocabulary
    from scprint.data.organisms import genes_by_organism

    genes = ["ENSG00000141510", "ENSMUSG00000059552", "ENSG00000012048"]
    assert genes_by_organism(genes) == {"NCBITaxon:9606": [0, 2], "NCBITaxon:10090": [1]}
    split = {"NCBITaxon:9606": genes[::2], "NCBITaxon:10090": genes[1:2]}
    vocab, organisms = vocabulary({"genes": split}, "x.ckpt")
    assert organisms == ["NCBITaxon:9606", "NCBITaxon:10090"]
    assert vocab.genes == [genes[0], genes[2], genes[1]]


def _original_dict(name: str = "v2_pos_fsq") -> dict:
    return torch.load(FIXTURES / f"{name}.ckpt", map_location="cpu", weights_only=True)


def test_missing_tensor_is_named(tmp_path) -> None:
    checkpoint = _original_dict()
    del checkpoint["state_dict"]["transformer.blocks.1.mlp.fc2.bias"]
    torch.save(checkpoint, tmp_path / "m.ckpt")
    with pytest.raises(
        scprint.CheckpointError, match=r"lacks tensor 'transformer.blocks.1.mlp.fc2.bias'"
    ):
        scprint.load(tmp_path / "m.ckpt", device="cpu")


def test_unexpected_and_misshaped_tensors_are_named(tmp_path) -> None:
    checkpoint = _original_dict()
    checkpoint["state_dict"]["cell_transformer.norm.weight"] = torch.ones(32)
    torch.save(checkpoint, tmp_path / "u.ckpt")
    with pytest.raises(scprint.CheckpointError, match=r"'cell_transformer.norm.weight'"):
        scprint.load(tmp_path / "u.ckpt", device="cpu")
    checkpoint = _original_dict()
    checkpoint["state_dict"]["expr_decoder.pred_var_zero.bias"] = torch.zeros(4)
    torch.save(checkpoint, tmp_path / "s.ckpt")
    with pytest.raises(scprint.CheckpointError, match=r"expr_decoder.pred_var_zero.bias.*\(4,\)"):
        scprint.load(tmp_path / "s.ckpt", device="cpu")


def test_unsupported_hyper_parameter_and_unknown_layout_are_refused(tmp_path) -> None:
    checkpoint = _original_dict()
    checkpoint["hyper_parameters"]["use_metacell_token"] = True
    torch.save(checkpoint, tmp_path / "c.ckpt")
    with pytest.raises(scprint.CheckpointError, match="use_metacell_token=True"):
        scprint.load(tmp_path / "c.ckpt", device="cpu")
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / "unknown.ckpt")
    with pytest.raises(scprint.CheckpointError, match="unknown layout"):
        scprint.load(tmp_path / "unknown.ckpt", device="cpu")


def test_unreadable_files_give_one_line_errors_naming_the_file(tmp_path) -> None:
    source = FIXTURES / "v1_layout.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    folder = tmp_path / "folder.ckpt"
    folder.mkdir()
    for path in (truncated, empty, noise, folder):
        with pytest.raises(scprint.CheckpointError) as info:
            scprint.load(path, device="cpu")
        message = str(info.value)
        assert str(path) in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scprint.load(tmp_path / "absent.ckpt")
    with open(truncated, "rb") as handle, pytest.raises(scprint.CheckpointError, match="truncated"):
        scprint.load(handle, device="cpu")


def test_pickled_objects_are_refused_not_executed(tmp_path) -> None:
    checkpoint = _original_dict("v1_layout")
    checkpoint["hyper_parameters"]["extra"] = argparse.Namespace(lr=1e-4)
    path = tmp_path / "pickled.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(scprint.CheckpointError, match=r"argparse.Namespace.*refusing to unpickle"):
        scprint.load(path, device="cpu")


def test_loaded_original_model_runs_on_padded_contexts(inputs) -> None:
    """Padding (ours; the original never pads) leaves the real genes' outputs unchanged."""
    model = scprint.load(FIXTURES / "v2_pos_fsq.ckpt", device="cpu").model
    gene_ids, counts, depth = _model_inputs(inputs)
    padded_ids = torch.cat([gene_ids, torch.full((gene_ids.shape[0], 5), -1)], dim=1)
    padded_counts = torch.cat([counts, torch.zeros(counts.shape[0], 5)], dim=1)
    with torch.no_grad():
        plain = model(gene_ids, counts, depth)
        padded = model(padded_ids, padded_counts, depth)
    assert torch.allclose(padded.zinb_mean[:, :-5], plain.zinb_mean, atol=1e-4)
    assert torch.all(padded.zinb_mean[:, -5:] == 0)
    assert torch.allclose(padded.cell_tokens, plain.cell_tokens, atol=1e-5)
