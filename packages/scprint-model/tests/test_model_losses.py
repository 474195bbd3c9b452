"""Loss functions against their definitions and against the original scPRINT 2.3.8.

Synthetic tensors only: these tests check mathematics, not data. ``fixtures/parity/losses.npz`` holds
the original's outputs on fixed synthetic inputs (made by ``benchmarks/parity/losses_fixture.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from scprint.model.losses import (
    contrastive_cell_loss,
    disentanglement_loss,
    downsample_counts,
    elastic_cell_similarity,
    expected_log_expression_mse,
    hierarchical_classification_loss,
    hierarchical_cross_entropy,
    zinb_nll,
)

FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "losses.npz"


@pytest.fixture(scope="module")
def original() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def leaf(values: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=grad)


def close(ours: torch.Tensor, theirs: np.ndarray, tol: float = 1e-6) -> None:
    np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=tol, atol=tol)


def test_zinb_nll_matches_the_zero_inflated_negative_binomial_pmf() -> None:
    counts = torch.tensor([[0.0, 1.0, 5.0, 20.0]])
    mean = torch.tensor([[2.0, 0.5, 4.0, 30.0]])
    theta = torch.tensor([[1.5, 3.0, 0.7, 10.0]])
    logit = torch.tensor([[-1.0, 0.3, 2.0, -3.0]])
    pi = torch.sigmoid(logit).numpy()[0]
    expected = []
    for x, mu, th, p in zip(counts[0].numpy(), mean[0].numpy(), theta[0].numpy(), pi):
        nb = stats.nbinom.pmf(x, th, th / (th + mu))
        expected.append(-math.log((p if x == 0 else 0.0) + (1 - p) * nb))
    assert zinb_nll(counts, mean, theta, logit).item() == pytest.approx(np.mean(expected), rel=1e-5)
    mask = torch.tensor([[True, False, False, True]])
    assert zinb_nll(counts, mean, theta, logit, mask).item() == pytest.approx(
        (expected[0] + expected[3]) / 2, rel=1e-5
    )


def test_zinb_nll_and_its_gradients_equal_the_original(original: dict[str, np.ndarray]) -> None:
    mean = leaf(original["zinb_mean"], grad=True)
    theta = leaf(original["zinb_dispersion"], grad=True)
    logit = leaf(original["zinb_dropout_logit"], grad=True)
    value = zinb_nll(leaf(original["zinb_counts"]), mean, theta, logit)
    value.backward()
    close(value, original["zinb_value"])
    close(mean.grad, original["zinb_grad_mean"])
    close(theta.grad, original["zinb_grad_dispersion"])
    close(logit.grad, original["zinb_grad_dropout_logit"])


def test_expected_log_expression_mse_equals_the_original(original: dict[str, np.ndarray]) -> None:
    value = expected_log_expression_mse(
        leaf(original["zinb_counts"]),
        leaf(original["zinb_mean"]),
        leaf(original["zinb_dropout_logit"]),
    )
    close(value, original["mse_value"])
    padded = torch.ones(original["zinb_counts"].shape, dtype=torch.bool)
    padded[:, -5:] = False
    masked = expected_log_expression_mse(
        leaf(original["zinb_counts"]),
        leaf(original["zinb_mean"]),
        leaf(original["zinb_dropout_logit"]),
        padded,
    )
    unpadded = expected_log_expression_mse(
        leaf(original["zinb_counts"][:, :-5]),
        leaf(original["zinb_mean"][:, :-5]),
        leaf(original["zinb_dropout_logit"][:, :-5]),
    )
    assert masked.item() == pytest.approx(unpadded.item(), rel=1e-6)


@pytest.mark.parametrize("case", ["mixed", "leaves", "unknown"])
def test_hierarchical_classification_equals_the_original(
    original: dict[str, np.ndarray], case: str
) -> None:
    logits = leaf(original[f"cls_{case}_logits"], grad=True)
    value = hierarchical_classification_loss(
        logits,
        torch.from_numpy(original[f"cls_{case}_labels"]),
        torch.from_numpy(original["cls_hierarchy"]),
    )
    value.backward()
    close(value, original[f"cls_{case}_value"])
    close(logits.grad, original[f"cls_{case}_grad"])


def test_coarse_label_is_scored_on_its_descendant_leaves_only() -> None:
    hierarchy = torch.tensor([[True, True, False]])
    logits = torch.tensor([[4.0, -4.0, -4.0]], requires_grad=True)
    hierarchical_classification_loss(logits, torch.tensor([3]), hierarchy).backward()
    # Leaf 0 is a descendant: its logit is pushed up through the coarse term only; leaf 2 is not
    # a descendant and is pushed down.
    assert logits.grad[0, 0] < 0 and logits.grad[0, 2] > 0
    with pytest.raises(ValueError, match=r"labels must be -1 \(unknown\), 0..2 \(leaves\) or 3..3"):
        hierarchical_classification_loss(logits, torch.tensor([4]), hierarchy)
    with pytest.raises(ValueError, match="coarse_leaves must be"):
        hierarchical_classification_loss(logits, torch.tensor([0]), torch.ones(1, 4, dtype=bool))


def test_softmax_hierarchical_option_scores_coarse_target_on_its_descendant_leaves() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    descendants = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=torch.bool)
    leaf_loss = hierarchical_cross_entropy(logits, torch.tensor([1]), descendants)
    coarse = hierarchical_cross_entropy(logits, torch.tensor([3]), descendants)
    assert leaf_loss.item() == pytest.approx(-math.log(0.3), rel=1e-5)
    assert coarse.item() == pytest.approx(-math.log(0.8), rel=1e-5)
    nothing = hierarchical_cross_entropy(logits, torch.tensor([-1]), descendants)
    assert nothing.item() == 0.0


def test_disentanglement_equals_the_original_and_grows_with_similar_tokens(
    original: dict[str, np.ndarray],
) -> None:
    tokens = leaf(original["within_tokens"], grad=True)
    value = disentanglement_loss(tokens)
    value.backward()
    close(value, original["within_value"])
    close(tokens.grad, original["within_grad"])
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(8, 4, 32, generator=g) * 3
    similar = spread[:, :1] + 0.01 * torch.randn(8, 4, 32, generator=g)
    assert disentanglement_loss(similar).item() > 10 * disentanglement_loss(spread).item()
    with pytest.raises(ValueError, match="cell_tokens must be"):
        disentanglement_loss(torch.ones(3, 4))


def test_elastic_cell_similarity_and_contrastive_loss_equal_the_original(
    original: dict[str, np.ndarray],
) -> None:
    embedding, other = leaf(original["ecs_embedding"]), leaf(original["cce_other_view"])
    close(elastic_cell_similarity(embedding, threshold=0.4), original["ecs_value"])
    close(contrastive_cell_loss(embedding, other, temperature=0.2), original["cce_value"])
    # Identical views with distinct cells: the right partner is the most similar one.
    assert contrastive_cell_loss(embedding, embedding, 0.05) < contrastive_cell_loss(
        embedding, embedding.flip(0), 0.05
    )
    with pytest.raises(ValueError, match="same shape"):
        contrastive_cell_loss(embedding, other[:3])


def test_downsampling_noise_draws_what_the_original_draws(original: dict[str, np.ndarray]) -> None:
    counts = leaf(original["noise_counts"])
    torch.manual_seed(11)
    close(downsample_counts(counts, 0.6), original["noise_dropout_0.6_seed_11"], tol=0)
    torch.manual_seed(12)
    randomised = downsample_counts(counts, 0.5, per_gene_random=True)
    close(randomised, original["noise_random_0.5_seed_12"], tol=0)
    assert randomised.dtype == counts.dtype and bool((randomised <= counts).all())
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\]"):
        downsample_counts(counts, 1.5)


def test_downsampling_removes_about_the_expected_share_of_reads() -> None:
    torch.manual_seed(0)
    counts = torch.full((200, 500), 10.0)
    kept = downsample_counts(counts, 0.6).sum() / counts.sum()
    # E[kept] = (1 - 0.33) * (1 - 0.33) with r / 2 = 0.33.
    assert kept.item() == pytest.approx(0.67 * 0.67, abs=0.01)
