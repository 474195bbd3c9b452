"""Pretraining losses as pure functions of tensors.

- :func:`zinb_nll`: negative log-likelihood of counts under a zero-inflated negative binomial
  (denoising and bottleneck generation).
- :func:`hierarchical_cross_entropy`: cross-entropy where a coarse target (e.g. "T cell") is scored
  on the summed probability of its descendant leaves: ``-log sum_{leaf in target} p(leaf)``.
- :func:`disentanglement_loss`: squared correlation across cells between the class tokens, pushing
  each class token to carry different information.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def zinb_nll(
    counts: torch.Tensor,
    mean: torch.Tensor,
    dispersion: torch.Tensor,
    dropout_logit: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Mean ZINB negative log-likelihood over the positions where ``mask`` is True.

    Args:
        counts: ``(batch, genes)`` observed counts ``x >= 0``.
        mean: ``(batch, genes)`` NB mean ``mu >= 0`` (counts).
        dispersion: ``(batch, genes)`` inverse dispersion ``theta > 0`` (variance ``mu + mu^2/theta``).
        dropout_logit: ``(batch, genes)`` logit of the zero-inflation probability ``pi``.
        mask: ``(batch, genes)`` bool, positions that count (default: all).

    Returns:
        Scalar: NLL in nats per masked gene.
    """
    counts, mean = counts.float(), mean.float()
    theta, logit = dispersion.float(), dropout_logit.float()
    log_theta_mu = torch.log(theta + mean + eps)
    nb_zero = theta * (torch.log(theta + eps) - log_theta_mu)
    softplus_neg_logit = F.softplus(-logit)
    log_prob_zero = F.softplus(nb_zero - logit) - softplus_neg_logit
    log_prob_nonzero = (
        -softplus_neg_logit
        - logit
        + nb_zero
        + counts * (torch.log(mean + eps) - log_theta_mu)
        + torch.lgamma(counts + theta)
        - torch.lgamma(theta)
        - torch.lgamma(counts + 1.0)
    )
    nll = -torch.where(counts < 0.5, log_prob_zero, log_prob_nonzero)
    if mask is None:
        return nll.mean()
    weight = mask.to(nll.dtype)
    return (nll * weight).sum() / weight.sum().clamp_min(1.0)


def hierarchical_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, descendants: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy with coarse targets scored on their descendant leaves.

    Args:
        logits: ``(batch, n_leaves)`` classifier logits over leaf labels.
        target: ``(batch,)`` long, index into the rows of ``descendants``; ``-1`` = unknown (ignored).
        descendants: ``(n_targets, n_leaves)`` bool; row ``t`` marks the leaves that count as correct
            for target ``t`` (a leaf's row marks only itself; a coarse label's row marks all its
            descendant leaves).

    Returns:
        Scalar mean of ``-log sum_{leaf in descendants[target]} softmax(logits)[leaf]`` over cells with
        a known target; ``0`` (still differentiable) when no cell has one.
    """
    known = target >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    logits = logits[known].float()
    allowed = descendants[target[known]]
    log_total = torch.logsumexp(logits, dim=1)
    log_correct = torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), dim=1)
    return (log_total - log_correct).mean()


def disentanglement_loss(tokens: torch.Tensor) -> torch.Tensor:
    """Squared correlation, across cells, between the tokens of each pair of classes.

    Each token is centred over the batch, so the loss measures whether two tokens *vary* together
    from cell to cell (carry the same information), not whether they share a constant offset.

    Args:
        tokens: ``(batch, k, d)`` with ``batch >= 2`` and ``k >= 2`` (e.g. the base and class output
            tokens).

    Returns:
        Scalar in ``[0, 1]``: mean over pairs ``i != j`` of ``cos(T_i - mean, T_j - mean)^2`` with each
        token's centred values over the batch flattened to one vector; 0 when uncorrelated.
    """
    batch, k, _ = tokens.shape
    if k < 2 or batch < 2:
        raise ValueError(
            f"disentanglement needs at least 2 cells and 2 tokens per cell, got shape {tuple(tokens.shape)}"
        )
    centred = tokens.float() - tokens.float().mean(dim=0, keepdim=True)
    unit = F.normalize(centred.transpose(0, 1).reshape(k, -1), dim=-1)
    similarity = unit @ unit.T
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=tokens.device)
    return similarity[off_diagonal].pow(2).mean()
