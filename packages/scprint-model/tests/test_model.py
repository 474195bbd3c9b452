"""The network alone: shapes, padding, permutation invariance, read-outs, configs.

Inputs here are synthetic (random gene indices and Poisson counts): these tests check tensor
plumbing, not biology.
"""

from __future__ import annotations

import pytest
import torch

from scprint.model import ModelConfig, ScPrint
from scprint.model.tokens import reduce_gene_table

N_GENES = 200


def synthetic_batch(batch: int = 3, length: int = 12, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Synthetic: random vocabulary indices, Poisson counts, padding at the end of cell 0."""
    g = torch.Generator().manual_seed(seed)
    gene_ids = torch.stack([torch.randperm(N_GENES, generator=g)[:length] for _ in range(batch)])
    gene_ids[0, length - 4 :] = -1
    counts = torch.poisson(torch.full((batch, length), 3.0), generator=g)
    depth = counts.sum(1) * 4 + 10
    return gene_ids, counts, depth


@pytest.fixture()
def model() -> ScPrint:
    torch.manual_seed(0)
    config = ModelConfig.from_yaml("tiny")
    return ScPrint(
        config, N_GENES, {"cell_type": 5, "disease": 3}, torch.arange(N_GENES) // 7
    ).eval()


def test_forward_output_shapes(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth, return_qk=True)
    b, length, d = 3, 12, model.config.d_model
    assert model.cell_token_index == {"depth": 0, "base": 1, "cell_type": 2, "disease": 3}
    assert model.n_cell_tokens == 4
    assert out.cell_tokens.shape == (b, 4, d)
    assert out.cell_embedding.shape == (b, d)
    assert set(out.class_embeddings) == {"cell_type", "disease"}
    assert out.gene_embeddings.shape == (b, length, d)
    for tensor in (out.zinb_mean, out.zinb_dispersion, out.zinb_dropout_logit):
        assert tensor.shape == (b, length)
    assert out.logits["cell_type"].shape == (b, 5) and out.logits["disease"].shape == (b, 3)
    assert len(out.qk) == model.config.n_layers
    heads, head_dim = model.config.n_heads, model.config.head_dim
    assert out.qk[0][0].shape == out.qk[0][1].shape == (b, heads, 4 + length, head_dim)
    torch.testing.assert_close(out.cell_embedding, out.cell_tokens[:, 2:].mean(1))
    assert model(gene_ids, counts, depth).qk is None


def test_padding_is_never_attended_to(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth)
    changed_ids, changed_counts = gene_ids.clone(), counts.clone()
    changed_counts[0, -4:] = 1000.0
    out_changed = model(changed_ids, changed_counts, depth)
    torch.testing.assert_close(out.cell_tokens, out_changed.cell_tokens)
    torch.testing.assert_close(out.gene_embeddings[0, :-4], out_changed.gene_embeddings[0, :-4])
    assert torch.all(out.zinb_mean[0, -4:] == 0)
    truncated = model(gene_ids[:1, :-4], counts[:1, :-4], depth[:1])
    torch.testing.assert_close(truncated.cell_tokens, out.cell_tokens[:1], atol=1e-5, rtol=1e-4)


def test_gene_order_carries_no_information(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch(seed=1)
    permutation = torch.randperm(gene_ids.shape[1], generator=torch.Generator().manual_seed(3))
    out = model(gene_ids, counts, depth)
    out_permuted = model(gene_ids[:, permutation], counts[:, permutation], depth)
    torch.testing.assert_close(out.cell_tokens, out_permuted.cell_tokens, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        out.zinb_mean[:, permutation], out_permuted.zinb_mean, atol=1e-5, rtol=1e-4
    )


def test_zinb_means_sum_to_the_library_size(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth)
    context_counts = counts.masked_fill(gene_ids < 0, 0).sum(1)
    torch.testing.assert_close(out.zinb_mean.sum(1), context_counts)
    doubled = model(gene_ids, counts, depth, target_depth=2 * context_counts)
    torch.testing.assert_close(doubled.zinb_mean, 2 * out.zinb_mean)
    assert torch.all(out.zinb_dispersion > 0)


def test_decode_from_cell_tokens_shapes_and_padding(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth)
    generated = model.decode_from_cell_tokens(out.cell_tokens, gene_ids, depth)
    assert set(generated) == {"mean", "dispersion", "dropout_logit", "cell_tokens", "logits"}
    assert all(
        generated[k].shape == gene_ids.shape for k in ("mean", "dispersion", "dropout_logit")
    )
    assert generated["cell_tokens"].shape == out.cell_tokens.shape
    assert generated["logits"]["disease"].shape == (3, 3)
    assert torch.all(generated["mean"][0, -4:] == 0)
    torch.testing.assert_close(generated["mean"].sum(1), depth)
    with pytest.raises(ValueError, match="cell_tokens must be"):
        model.decode_from_cell_tokens(out.cell_tokens[:, :2], gene_ids, depth)


def test_bad_inputs_raise_clear_errors(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    with pytest.raises(ValueError, match="vocabulary has 200 genes"):
        model(gene_ids.masked_fill(gene_ids == gene_ids.max(), N_GENES + 5), counts, depth)
    with pytest.raises(ValueError, match="counts must have the shape"):
        model(gene_ids, counts[:, :5], depth)
    with pytest.raises(ValueError, match="depth must be"):
        model(gene_ids, counts, depth[:2])
    with pytest.raises(ValueError, match="integer tensor"):
        model(gene_ids.float(), counts, depth)


def test_positions_change_gene_tokens_only_when_known() -> None:
    config = ModelConfig.from_yaml("tiny")
    torch.manual_seed(0)
    with_positions = ScPrint(config, N_GENES, {}, torch.arange(N_GENES))
    unknown = ScPrint(config, N_GENES, {}, torch.full((N_GENES,), -1))
    unknown.gene_encoder.load_state_dict(with_positions.gene_encoder.state_dict())
    ids = torch.tensor([[3, 50]])
    difference = with_positions.gene_tokens(ids) - unknown.gene_encoder(ids)
    assert difference.abs().sum() > 0
    torch.testing.assert_close(unknown.gene_tokens(ids), unknown.gene_encoder(ids))
    assert with_positions.cell_embedding(torch.randn(1, 2, config.d_model)).shape == (
        1,
        config.d_model,
    )


def test_presets_have_the_documented_sizes() -> None:
    """The original's config/pretrain_{small,medium,large}.yml."""
    sizes = {name: ModelConfig.from_yaml(name) for name in ("tiny", "small", "medium", "large")}
    for name, expected in {
        "small": (4, 128, 2),
        "medium": (8, 256, 4),
        "large": (16, 512, 8),
    }.items():
        config = sizes[name]
        assert (config.n_layers, config.d_model, config.n_heads) == expected
        assert config.classifier_layers == [config.d_model] and config.max_len == 2200
    assert sizes["tiny"].d_model < sizes["small"].d_model


def test_config_validation_and_yaml(tmp_path) -> None:
    with pytest.raises(ValueError, match="multiple of n_heads"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="normalisation"):
        ModelConfig(normalisation="zscore")
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        ModelConfig.from_yaml("huge")
    path = tmp_path / "m.yaml"
    path.write_text("d_model: 48\nn_heads: 3\nn_layers: 1\n")
    assert ModelConfig.from_yaml(path).d_model == 48
    path.write_text("model:\n  d_model: 48\n  colour: red\n")
    with pytest.raises(ValueError, match="unknown ModelConfig keys \\['colour'\\]"):
        ModelConfig.from_yaml(path)


def test_gene_embedding_initialisation_can_be_frozen() -> None:
    """A precomputed table is reduced to d_model by adaptive average pooling, as the original."""
    config = ModelConfig.from_yaml("tiny").replace(freeze_gene_embeddings=True)
    init = torch.randn(N_GENES, 3 * config.d_model)
    model = ScPrint(config, N_GENES, {}, gene_embedding_init=init)
    expected = init.view(N_GENES, config.d_model, 3).mean(-1)  # pooling 3 features into one
    torch.testing.assert_close(model.gene_encoder.embeddings.weight, expected)
    torch.testing.assert_close(reduce_gene_table(init, config.d_model), expected)
    assert not model.gene_encoder.embeddings.weight.requires_grad
    assert model.gene_tokens(torch.tensor([[1, 2]])).shape == (1, 2, config.d_model)
    with pytest.raises(ValueError, match="gene table must be"):
        ScPrint(config, N_GENES, {}, gene_embedding_init=torch.randn(N_GENES - 1, 5))


def test_mixed_precision_forward_keeps_read_outs_in_float32(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(gene_ids, counts, depth)
        generated = model.decode_from_cell_tokens(out.cell_tokens, gene_ids, depth)
    for tensor in (out.zinb_mean, out.zinb_dispersion, out.logits["cell_type"], generated["mean"]):
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
    reference = model(gene_ids, counts, depth)
    torch.testing.assert_close(out.zinb_mean, reference.zinb_mean, atol=0.5, rtol=0.1)


def test_original_variants_grouped_heads_decoder_depth_and_fsq_bottleneck() -> None:
    """Grouped-query attention, depth read by the decoder, and the FSQ class-token bottleneck."""
    config = ModelConfig.from_yaml("tiny").replace(
        n_heads=4, n_heads_kv=2, depth_at_input=False, compress_class_dim={"cell_type": 3}
    )
    torch.manual_seed(0)
    model = ScPrint(config, N_GENES, {"cell_type": 5}).eval()
    assert model.cell_token_index == {"base": 0, "cell_type": 1}
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth, return_qk=True)
    q, k = out.qk[0]
    assert q.shape == k.shape == (3, 4, 2 + 12, config.head_dim)
    torch.testing.assert_close(k[:, 0], k[:, 1])  # heads 0 and 1 share key head 0
    fsq = model.bottleneck_mlps["cell_type"]
    codes = torch.tensor([[a, b, c] for a in (-1.0, 0.0) for b in (-1.0, 0.0) for c in (-1.0, 0.0)])
    allowed = fsq.project_out(codes)
    distances = torch.cdist(out.class_embeddings["cell_type"], allowed).min(dim=1).values
    assert torch.all(distances < 1e-5)
    with pytest.raises(ValueError, match="reads the cell depth"):
        model.decode_from_cell_tokens(out.cell_tokens, gene_ids, depth)
    with pytest.raises(ValueError, match="n_heads_kv must divide"):
        config.replace(n_heads_kv=3)
