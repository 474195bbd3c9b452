"""Loss functions against their definitions (synthetic tensors; the maths, not the data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from scprint.model import disentanglement_loss, hierarchical_cross_entropy, zinb_nll


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


def test_hierarchical_loss_scores_coarse_target_on_its_descendant_leaves() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    descendants = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=torch.bool)
    leaf = hierarchical_cross_entropy(logits, torch.tensor([1]), descendants)
    coarse = hierarchical_cross_entropy(logits, torch.tensor([3]), descendants)
    assert leaf.item() == pytest.approx(-math.log(0.3), rel=1e-5)
    assert coarse.item() == pytest.approx(-math.log(0.8), rel=1e-5)


def test_hierarchical_loss_ignores_unknown_labels_and_stays_differentiable() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    descendants = torch.eye(3, dtype=torch.bool)
    known_only = hierarchical_cross_entropy(logits[:2], torch.tensor([0, 2]), descendants)
    with_unknown = hierarchical_cross_entropy(logits, torch.tensor([0, 2, -1, -1]), descendants)
    assert with_unknown.item() == pytest.approx(known_only.item())
    nothing = hierarchical_cross_entropy(logits, torch.full((4,), -1), descendants)
    nothing.backward()
    assert nothing.item() == 0.0 and logits.grad is not None


def test_disentanglement_measures_correlation_across_cells_not_shared_offsets() -> None:
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(512, 1, 8, generator=g)
    correlated = torch.cat([signal, 3 * signal + 5], dim=1)
    independent = torch.randn(512, 2, 8, generator=g) + torch.tensor(
        [[[4.0] * 8], [[4.0] * 8]]
    ).transpose(0, 1)
    assert disentanglement_loss(correlated).item() == pytest.approx(1.0, abs=1e-5)
    assert disentanglement_loss(independent).item() < 0.01
    with pytest.raises(ValueError, match="at least 2 cells and 2 tokens"):
        disentanglement_loss(torch.ones(1, 3, 4))
