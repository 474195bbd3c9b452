"""The network alone: shapes, padding, permutation invariance, read-outs, configs.

Inputs here are synthetic (random gene indices and Poisson counts): these tests check tensor
plumbing, not biology.
"""

from __future__ import annotations

import pytest
import torch

from scprint.model import ModelConfig, ScPrint

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
    assert model.cell_token_index == {"base": 0, "depth": 1, "cell_type": 2, "disease": 3}
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


def test_zinb_mean_scales_with_target_depth_and_never_exceeds_it(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth)
    assert torch.all(out.zinb_mean.sum(1) <= depth + 1e-3)
    doubled = model(gene_ids, counts, depth, target_depth=2 * depth)
    torch.testing.assert_close(doubled.zinb_mean, 2 * out.zinb_mean)
    assert torch.all(out.zinb_dispersion > 0)


def test_decode_from_cell_tokens_shapes_and_padding(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    out = model(gene_ids, counts, depth)
    generated = model.decode_from_cell_tokens(out.cell_tokens, gene_ids, depth)
    assert set(generated) == {"mean", "dispersion", "dropout_logit"}
    assert all(v.shape == gene_ids.shape for v in generated.values())
    assert torch.all(generated["mean"][0, -4:] == 0)
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
    unknown.gene_identity.load_state_dict(with_positions.gene_identity.state_dict())
    ids = torch.tensor([[3, 50]])
    difference = with_positions.gene_tokens(ids) - unknown.gene_identity(ids)
    assert difference.abs().sum() > 0
    torch.testing.assert_close(unknown.gene_tokens(ids), unknown.gene_identity(ids))
    assert with_positions.cell_embedding(torch.randn(1, 2, config.d_model)).shape == (
        1,
        config.d_model,
    )


def test_presets_have_the_documented_sizes() -> None:
    sizes = {name: ModelConfig.from_yaml(name) for name in ("tiny", "small", "medium", "large")}
    assert (sizes["small"].n_layers, sizes["small"].d_model) == (4, 128)
    assert (sizes["medium"].n_layers, sizes["medium"].d_model) == (8, 256)
    assert (sizes["large"].n_layers, sizes["large"].d_model) == (16, 512)
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
    config = ModelConfig.from_yaml("tiny").replace(
        freeze_gene_embeddings=True, gene_embedding_dim=8
    )
    init = torch.randn(N_GENES, 8)
    model = ScPrint(config, N_GENES, {}, gene_embedding_init=init)
    torch.testing.assert_close(model.gene_identity.table.weight, init)
    assert not model.gene_identity.table.weight.requires_grad
    assert model.gene_tokens(torch.tensor([[1, 2]])).shape == (1, 2, config.d_model)
    with pytest.raises(ValueError, match="must have shape"):
        ScPrint(config, N_GENES, {}, gene_embedding_init=torch.randn(N_GENES, 5))


def test_mixed_precision_forward_keeps_read_outs_in_float32(model: ScPrint) -> None:
    gene_ids, counts, depth = synthetic_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(gene_ids, counts, depth)
        generated = model.decode_from_cell_tokens(out.cell_tokens, gene_ids, depth)
    for tensor in (out.zinb_mean, out.zinb_dispersion, out.logits["cell_type"], generated["mean"]):
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
    reference = model(gene_ids, counts, depth)
    torch.testing.assert_close(out.zinb_mean, reference.zinb_mean, atol=0.5, rtol=0.1)
