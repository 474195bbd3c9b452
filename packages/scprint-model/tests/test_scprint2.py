"""scPRINT-2 checkpoints (``scprint2`` 1.0.x): loading, equality with the original, refusals.

The fixtures ``tests/fixtures/parity/scprint2_*`` were made by the original scPRINT-2 (scprint2
1.0.3 with simpler-flash 1.3.5) in the peer venv of ``benchmarks/parity``
(``bench_scprint2.py --peers --write-fixtures``): three randomly initialised configurations saved
and reloaded by its own code, its outputs on real cells (``scprint2_inputs.npz``: 6 Kang 2018 PBMC
and 2 Semrau mESC cells with their 6 nearest cells), and its denoising and GRN inference on 12
real Kang cells x 24 genes (``scprint2_task_inputs.npz``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import scprint
from scprint.checkpoints.scprint1 import parity_errors
from scprint.checkpoints.scprint2 import outputs_as_original
from scprint.testing.parity import scprint2_denoise_row, scprint2_gninfer_rows

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
CONFIGS = ("s2_cell_vae_metacell", "s2_shared_fsq_mvc", "s2_gqa_vae_grown")
HUMAN, MOUSE = "NCBITaxon:9606", "NCBITaxon:10090"


def checkpoint(name: str) -> Path:
    return FIXTURES / f"scprint2_{name}.ckpt"


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "scprint2_inputs.npz"))


@pytest.fixture(scope="module")
def loaded() -> dict[str, scprint.Pretrained]:
    return {name: scprint.load(checkpoint(name), device="cpu") for name in CONFIGS}


@pytest.mark.parametrize("name", CONFIGS)
def test_loaded_scprint2_checkpoint_reproduces_every_original_output(name, inputs, loaded):
    reference = dict(np.load(FIXTURES / f"scprint2_{name}.npz"))
    rows = reference.pop("rows")
    network = {k: v for k, v in reference.items() if not k.startswith(("denoise_", "network_"))}
    model = loaded[name].model
    neighbours = distances = None
    if model.uses_neighbours:
        neighbours = torch.as_tensor(inputs["neighbour_counts"][rows])
        distances = torch.as_tensor(inputs["neighbour_distances"][rows])
    ours = outputs_as_original(
        model,
        torch.as_tensor(inputs["gene_ids"][rows]),
        torch.as_tensor(inputs["counts"][rows]),
        torch.as_tensor(inputs["depth"][rows]),
        neighbours,
        distances,
        seed=7,
    )
    errors = parity_errors(ours, network)
    expected = {"mean", "disp", "zero_logits", "input_cell_embs", "output_cell_embs"}
    expected |= {"output_cell_emb", "compressed_cell_embs_1", "gene_embedding", "q_0", "attn_1"}
    expected |= {"generate_mean", f"cls_output_{model.label_classes[0]}"}
    assert expected <= set(errors)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 1e-5, f"{name}: {worst} differs by {errors[worst]:.2e}"


@pytest.mark.parametrize("name", CONFIGS)
def test_our_denoising_and_grn_inference_equal_the_originals(name, loaded):
    task = dict(np.load(FIXTURES / "scprint2_task_inputs.npz"))
    reference = dict(np.load(FIXTURES / f"scprint2_{name}.npz"))
    rows = [scprint2_denoise_row(name, loaded[name], task, reference)]
    rows += scprint2_gninfer_rows(name, loaded[name], task, reference)
    for row in rows:
        assert row["ok"], row
    # the softmax networks are equal within 1e-4, not only in their ranking
    for row in rows[:-1]:
        assert float(row["max_abs_diff"]) <= 1e-4, row
    # raw scores: the original leaves q.k unscaled, ours divide by sqrt(head_dim)
    assert rows[-1]["output"] == "GRN scores (task)"
    assert float(rows[-1]["note"].rsplit(": ", 1)[1]) <= 1e-4, rows[-1]


def test_hyper_parameters_become_config_vocabulary_and_labels(inputs, loaded, caplog):
    with caplog.at_level(logging.INFO, logger="scprint.checkpoints.scprint2"):
        published = scprint.load(checkpoint("s2_cell_vae_metacell"), device="cpu")
    assert "adv_organism_decoder" in caplog.text and "splicing_head" in caplog.text
    assert published.is_original and published.version == "original scPRINT-2"
    assert published.organisms == [HUMAN, MOUSE]
    assert published.vocab.genes == [str(g) for g in inputs["genes"]]
    assert published.genes_by_organism()[MOUSE] == list(range(400, 550))
    config = published.config
    assert config.cell_specific_blocks and config.cell_dim == 16 and config.d_model == 32
    assert config.expression_encoder == "metacell" and config.gene_adapter
    assert config.use_positions and config.normalisation == "log"
    assert (config.n_heads, config.n_heads_kv, config.n_heads_cell, config.n_heads_kv_cell) == (
        4,
        2,
        2,
        1,
    )
    model = published.model
    assert model.cell_token_index == {
        "base": 0,
        "cell_type_ontology_term_id": 1,
        "organism_ontology_term_id": 2,
        "sex_ontology_term_id": 3,
    }
    assert model.qk_cell_tokens == 0 and model.uses_neighbours
    cell_type = published.labels["cell_type_ontology_term_id"]
    assert cell_type.coarse == ["CL:0000084", "CL:0000576"]
    assert cell_type.descendant_leaves("CL:0000576") == [4, 5]

    shared = loaded["s2_shared_fsq_mvc"]
    assert shared.organisms == [HUMAN] and shared.config.metacell_token
    assert shared.model.qk_cell_tokens == 3 + 1  # base + 2 classes, then the metacell token
    assert shared.config.mvc_decoder == "inner product" and shared.normalisation == "sum"

    grown = loaded["s2_gqa_vae_grown"]
    # the assay classifier gained a label after the ``classes`` hyper-parameter was written
    assay = grown.labels["assay_ontology_term_id"]
    assert len(assay.classes) == 4 and assay.classes[-1] == "EFO:0008930"
    # its "concat query" MVC decoder (which the original cannot run) was dropped
    assert grown.config.mvc_decoder is None and grown.model.mvc_decoder is None
    assert grown.config.compress_class_dim["default"] == 8


def _dict(name: str) -> dict:
    return torch.load(checkpoint(name), map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("attention", "performer", r"attention='performer' is not supported"),
        ("attention", "criss-cross", r"attention='criss-cross' is not supported"),
        ("attention", "hyper", r"attention='hyper' is not supported"),
        ("expr_emb_style", "binned", r"expr_emb_style='binned' \(expression encoder\)"),
        ("normalization", "both", r"normalization='both'"),
        ("attn_bias", "/data/bias.npz", r"attn_bias='/data/bias.npz'"),
    ],
)
def test_options_we_do_not_offer_are_refused_naming_them(tmp_path, key, value, message):
    data = _dict("s2_shared_fsq_mvc")
    data["hyper_parameters"][key] = value
    torch.save(data, tmp_path / "refused.ckpt")
    with pytest.raises(scprint.CheckpointError, match=message) as info:
        scprint.load(tmp_path / "refused.ckpt", device="cpu")
    assert "\n" not in str(info.value)


def test_older_key_names_and_a_gene_list_still_load(tmp_path, loaded):
    data = _dict("s2_gqa_vae_grown")
    hparams = data["hyper_parameters"]
    hparams["transformer"] = hparams.pop("attention")  # the older hyper-parameter name
    hparams["genes"] = [g for organism in hparams["organisms"] for g in hparams["genes"][organism]]
    state = data["state_dict"]
    state["gene_encoder.embedding.weight"] = state.pop("gene_encoder.embeddings.weight")
    torch.save(data, tmp_path / "older.ckpt")
    older = scprint.load(tmp_path / "older.ckpt", device="cpu")
    assert older.organisms == [HUMAN, MOUSE]
    assert older.vocab.genes == loaded["s2_gqa_vae_grown"].vocab.genes
    torch.testing.assert_close(
        older.model.gene_table.weight, state["gene_encoder.embedding.weight"]
    )


def test_corrupted_and_incomplete_scprint2_checkpoints_give_one_line_errors(tmp_path):
    source = checkpoint("s2_shared_fsq_mvc")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    with pytest.raises(scprint.CheckpointError, match="truncated or corrupted") as info:
        scprint.load(truncated, device="cpu")
    assert str(truncated) in str(info.value) and "\n" not in str(info.value)
    data = _dict("s2_cell_vae_metacell")
    del data["state_dict"]["cell_transformer.blocks.1.cross_attn.Wkv.weight"]
    torch.save(data, tmp_path / "missing.ckpt")
    with pytest.raises(
        scprint.CheckpointError, match=r"lacks tensor 'cell_transformer.blocks.1.cross_attn.Wkv"
    ):
        scprint.load(tmp_path / "missing.ckpt", device="cpu")
    data = _dict("s2_cell_vae_metacell")
    data["hyper_parameters"]["organisms"].append("NCBITaxon:7955")
    torch.save(data, tmp_path / "organisms.ckpt")
    with pytest.raises(scprint.CheckpointError, match=r"organisms lists 'NCBITaxon:7955'"):
        scprint.load(tmp_path / "organisms.ckpt", device="cpu")
    data = _dict("s2_cell_vae_metacell")
    del data["state_dict"]["cls_decoders.sex_ontology_term_id.out_layer.bias"]
    torch.save(data, tmp_path / "classifier.ckpt")
    with pytest.raises(scprint.CheckpointError, match=r"sex_ontology_term_id.out_layer.bias"):
        scprint.load(tmp_path / "classifier.ckpt", device="cpu")


def test_vae_codes_are_deterministic_unless_a_draw_is_asked_for(inputs, loaded):
    model = loaded["s2_gqa_vae_grown"].model
    rows = np.flatnonzero((inputs["gene_ids"] < model.n_genes).all(1))
    args = [torch.as_tensor(inputs[k][rows]) for k in ("gene_ids", "counts", "depth")]
    with torch.no_grad():
        first, again = model(*args), model(*args)
        drawn = model(*args, sample_latent=True)
    torch.testing.assert_close(first.cell_tokens, again.cell_tokens, rtol=0, atol=0)
    assert not torch.allclose(drawn.cell_tokens, first.cell_tokens)
    # codes (VAE means, FSQ projections) and logits do not depend on the draw
    for name in model.label_classes:
        torch.testing.assert_close(drawn.cell_codes[name], first.cell_codes[name])
        torch.testing.assert_close(drawn.logits[name], first.logits[name])
    # the base token's code is its VAE hidden layer (compress_class_dim["default"] = 8)
    assert first.cell_codes["base"].shape == (len(rows), 8)
    widths = [8, 10, 8, 2]  # base (VAE hidden), cell type, assay (VAE means), sex (FSQ)
    assert first.cell_embedding.shape == (len(rows), sum(widths))
    # a class's output token is its code decoded
    decoded = model.tokens_from_codes(
        {"sex_ontology_term_id": first.cell_codes["sex_ontology_term_id"]}
    )
    index = model.cell_token_index["sex_ontology_term_id"]
    torch.testing.assert_close(decoded["sex_ontology_term_id"], first.cell_tokens[:, index])


def test_padded_contexts_leave_the_real_genes_outputs_unchanged(inputs, loaded):
    """Padding (ours; the original never pads) is never attended to, in both transformers."""
    model = loaded["s2_cell_vae_metacell"].model
    ids, counts, depth = (torch.as_tensor(inputs[k]) for k in ("gene_ids", "counts", "depth"))
    neighbours = torch.as_tensor(inputs["neighbour_counts"])
    distances = torch.as_tensor(inputs["neighbour_distances"])
    pad = 5
    padded_ids = torch.cat([ids, torch.full((ids.shape[0], pad), -1)], 1)
    padded_counts = torch.cat([counts, torch.zeros(ids.shape[0], pad)], 1)
    padded_neighbours = torch.cat([neighbours, torch.ones(*neighbours.shape[:2], pad)], 2)
    with torch.no_grad():
        plain = model(ids, counts, depth, neighbours=neighbours, neighbour_distances=distances)
        padded = model(
            padded_ids,
            padded_counts,
            depth,
            neighbours=padded_neighbours,
            neighbour_distances=distances,
        )
    torch.testing.assert_close(padded.zinb_mean[:, :-pad], plain.zinb_mean, atol=1e-4, rtol=1e-4)
    assert torch.all(padded.zinb_mean[:, -pad:] == 0)
    torch.testing.assert_close(padded.cell_embedding, plain.cell_embedding, atol=1e-5, rtol=1e-5)
