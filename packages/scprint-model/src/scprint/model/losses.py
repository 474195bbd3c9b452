"""The pretraining objective of scPRINT as pure functions of tensors.

Each function computes what the original scPRINT 2.3.8 computes (``scprint/model/loss.py`` and
``scprint/model/utils.py``), with the same parameterisation and reduction; committed fixtures of
the original's outputs check this (``tests/test_model_losses.py``).

- :func:`zinb_nll`: negative log-likelihood of counts under a zero-inflated negative binomial
  (denoising and bottleneck generation; the original's ``zinb``).
- :func:`expected_log_expression_mse`: squared error between the ZINB's expected log expression and
  the observed one, each log2-normalised per cell (the original's ``zinb_and_mse`` term).
- :func:`hierarchical_classification_loss`: per-leaf binary cross-entropy; a coarse label (e.g.
  "T cell") is scored on the log-sum-exp of its descendant leaves' logits (the original's
  ``classification`` with ``labels_hierarchy``).
- :func:`hierarchical_cross_entropy`: softmax cross-entropy, coarse labels scored on their
  descendant leaves' summed probability (this package's earlier choice, kept as an option).
- :func:`disentanglement_loss`: cosine similarity and closeness between the cell tokens of the same
  cell (the original's ``within_sample`` "embedding independence").
- :func:`elastic_cell_similarity`: scGPT's ECS on cell embeddings (the original's ``ecs``).
- :func:`contrastive_cell_loss`: NT-Xent between two views of the same cells (the original's
  ``contrastive_loss``, its "CCE").
- :func:`downsample_counts`: the denoising task's noise (the original's ``downsample_profile``).
"""

from __future__ import annotations

import math

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
    """Mean ZINB negative log-likelihood per gene.

    With ``pi = sigmoid(dropout_logit)`` and ``NB(x; mu, theta)`` of variance ``mu + mu^2/theta``,
    ``p(0) = pi + (1 - pi) NB(0)`` and ``p(x > 0) = (1 - pi) NB(x)``. A count is zero when it is
    below ``eps`` (as the original).

    Args:
        counts: ``(batch, genes)`` observed counts ``x >= 0``.
        mean: ``(batch, genes)`` NB mean ``mu >= 0`` (counts).
        dispersion: ``(batch, genes)`` inverse dispersion ``theta > 0``.
        dropout_logit: ``(batch, genes)`` logit of the zero-inflation probability ``pi``.
        mask: ``(batch, genes)`` bool, the positions that count (e.g. not padding). ``None``: all,
            the original's reduction.
        eps: numerical floor inside the logarithms (the original's ``1e-8``).

    Returns:
        Scalar: NLL in nats per (masked) gene.
    """
    counts, mean = counts.float(), mean.float()
    theta, logit = dispersion.float(), dropout_logit.float()
    softplus_neg_logit = F.softplus(-logit)
    log_theta_mu = torch.log(theta + mean + eps)
    nb_zero_minus_logit = -logit + theta * (torch.log(theta + eps) - log_theta_mu)
    log_prob_zero = F.softplus(nb_zero_minus_logit) - softplus_neg_logit
    log_prob_nonzero = (
        -softplus_neg_logit
        + nb_zero_minus_logit
        + counts * (torch.log(mean + eps) - log_theta_mu)
        + torch.lgamma(counts + theta)
        - torch.lgamma(theta)
        - torch.lgamma(counts + 1.0)
    )
    log_prob = torch.where(
        counts < eps, log_prob_zero, torch.where(counts > eps, log_prob_nonzero, 0.0)
    )
    return -_masked_mean(log_prob, mask)


def expected_log_expression_mse(
    counts: torch.Tensor,
    mean: torch.Tensor,
    dropout_logit: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared error between expected and observed log expression, normalised per cell.

    The prediction is ``log(1 + mu) * (1 - sigmoid(dropout_logit))``, the target ``log(1 + x)``;
    each then goes through ``v -> log2(1 + v)`` and is scaled to sum to 10,000 over the cell's
    genes (the original's ``mse``; its training step adds a tenth of this to the ZINB loss when
    ``zinb_and_mse`` is set).

    Args:
        counts: ``(batch, genes)`` observed counts.
        mean: ``(batch, genes)`` ZINB mean (counts).
        dropout_logit: ``(batch, genes)`` zero-inflation logit.
        mask: ``(batch, genes)`` bool positions that count; others are zeroed before the per-cell
            scaling and left out of the mean. ``None``: all (the original).

    Returns:
        Scalar mean squared difference (normalised units squared).
    """
    prediction = torch.log(mean.float() + 1) * (1 - torch.sigmoid(dropout_logit.float()))
    target = torch.log(counts.float() + 1)
    if mask is not None:
        prediction, target = prediction * mask, target * mask
    prediction, target = _log2_normalise(prediction), _log2_normalise(target)
    return _masked_mean((prediction - target).pow(2), mask)


def _log2_normalise(values: torch.Tensor) -> torch.Tensor:
    logged = torch.log2(values + 1)
    return logged / logged.sum(dim=1, keepdim=True) * 10000


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    if mask.shape != values.shape:
        raise ValueError(f"mask must have shape {tuple(values.shape)}, got {tuple(mask.shape)}")
    weight = mask.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def hierarchical_classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    coarse_leaves: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-leaf binary cross-entropy with coarse labels, as the original scPRINT trains its classifiers.

    A leaf label is a one-hot target over the leaves. For a cell labelled with a coarse label
    (e.g. "T cell"), its descendant leaves get no per-leaf term (which of them is right is unknown),
    the other leaves are pushed towards 0, and one extra term pushes
    ``logsumexp(logits of the descendant leaves)`` towards 1. Unknown labels (``-1``) contribute
    nothing. The mean runs over every ``batch x leaves`` term (plus the extra column when the batch
    holds a coarse label), zero-weighted ones included, as ``binary_cross_entropy_with_logits``
    with ``weight`` does in the original.

    Args:
        logits: ``(batch, n_leaves)`` classifier logits over the leaf labels.
        labels: ``(batch,)`` long: ``0..n_leaves-1`` a leaf, ``n_leaves + r`` the coarse label of
            row ``r`` of ``coarse_leaves``, ``-1`` unknown.
        coarse_leaves: ``(n_coarse, n_leaves)`` bool, row ``r`` marks the leaves under coarse label
            ``r`` (the original's ``mat_labels_hierarchy``); ``None`` when there is none.

    Returns:
        Scalar loss (nats per term); 0, still differentiable, when every label is unknown.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (batch, n_leaves) and labels (batch,), got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    batch, n_leaves = logits.shape
    n_coarse = 0 if coarse_leaves is None else coarse_leaves.shape[0]
    if coarse_leaves is not None and coarse_leaves.shape[1:] != (n_leaves,):
        raise ValueError(
            f"coarse_leaves must be (n_coarse, {n_leaves}), got {tuple(coarse_leaves.shape)}"
        )
    if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= n_leaves + n_coarse):
        raise ValueError(
            f"labels must be -1 (unknown), 0..{n_leaves - 1} (leaves) or {n_leaves}.."
            f"{n_leaves + n_coarse - 1} (coarse labels), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    logits = logits.float()
    is_leaf = (labels >= 0) & (labels < n_leaves)
    is_coarse = labels >= n_leaves
    target = torch.zeros_like(logits)
    target[is_leaf, labels[is_leaf]] = 1.0
    weight = (labels >= 0).to(logits.dtype).unsqueeze(1).expand(batch, n_leaves).clone()
    if bool(is_coarse.any()):
        allowed = torch.zeros(batch, n_leaves, dtype=torch.bool, device=logits.device)
        allowed[is_coarse] = coarse_leaves[labels[is_coarse] - n_leaves].to(logits.device)
        weight = weight.masked_fill(allowed, 0.0)
        floor = torch.finfo(logits.dtype).min
        coarse_logit = torch.logsumexp(logits.masked_fill(~allowed, floor), dim=1)
        coarse_logit = torch.where(is_coarse, coarse_logit, 0.0)
        logits = torch.cat([logits, coarse_logit.unsqueeze(1)], dim=1)
        target = torch.cat([target, torch.ones_like(coarse_logit).unsqueeze(1)], dim=1)
        weight = torch.cat([weight, is_coarse.to(weight.dtype).unsqueeze(1)], dim=1)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def hierarchical_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, descendants: torch.Tensor
) -> torch.Tensor:
    """Softmax cross-entropy with coarse targets scored on their descendant leaves.

    Not the original's loss (see :func:`hierarchical_classification_loss`); kept as an option.

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


def disentanglement_loss(cell_tokens: torch.Tensor) -> torch.Tensor:
    """Penalise the cell tokens of one cell for pointing the same way or lying close together.

    ``0.5 * mean(cos(t_i, t_j)^2) + 0.5 / mean(|t_i - t_j| / sqrt(d) + 0.001)``, both means over
    every cell and every ordered pair ``(i, j)``, the diagonal ``i = j`` counted as 0 (as the
    original's ``within_sample``).

    Args:
        cell_tokens: ``(batch, k, d)`` output cell tokens of each cell (``k >= 1``).

    Returns:
        Scalar, larger when a cell's tokens are similar.
    """
    if cell_tokens.dim() != 3:
        raise ValueError(
            f"cell_tokens must be (batch, tokens, d), got shape {tuple(cell_tokens.shape)}"
        )
    tokens = cell_tokens.float()
    k, d = tokens.shape[1:]
    unit = F.normalize(tokens, p=2, dim=-1)
    cosine = unit @ unit.transpose(1, 2)
    distance = torch.cdist(tokens, tokens, p=2) / math.sqrt(d)
    off_diagonal = 1 - torch.eye(k, device=tokens.device, dtype=tokens.dtype)
    cosine_term = (cosine * off_diagonal).pow(2).mean()
    distance_term = 1.0 / (distance * off_diagonal + 1e-3).mean()
    return 0.5 * cosine_term + 0.5 * distance_term


def elastic_cell_similarity(cell_embedding: torch.Tensor, threshold: float = 0.4) -> torch.Tensor:
    """scGPT's elastic cell similarity between the cells of a batch.

    ``mean(1 - (relu(cos(e_a, e_b)) - threshold)^2)`` over all ordered pairs of cells, the diagonal
    set to 0 (as the original's ``ecs``): minimising it pushes positive similarities away from
    ``threshold``.

    Args:
        cell_embedding: ``(batch, d)`` cell embeddings.
        threshold: similarity threshold (the original's ``ecs_threshold``, 0.4 by default).

    Returns:
        Scalar, each term at most 1.
    """
    unit = F.normalize(cell_embedding.float(), p=2, dim=1)
    cosine = unit @ unit.T
    cosine = cosine.masked_fill(torch.eye(len(cosine), dtype=torch.bool, device=cosine.device), 0.0)
    return torch.mean(1 - (F.relu(cosine) - threshold) ** 2)


def contrastive_cell_loss(
    view_a: torch.Tensor, view_b: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """NT-Xent (InfoNCE): cell ``i`` of one view should be closest to cell ``i`` of the other.

    Cross-entropy of the rows of ``cos(view_a_i, view_b_j) / temperature`` against the diagonal (the
    original's ``contrastive_loss``).

    Args:
        view_a, view_b: ``(batch, d)`` embeddings of the same cells from two passes.
        temperature: softmax temperature (the original's ``cce_temp``, 0.2 by default).

    Returns:
        Scalar loss in nats.
    """
    if view_a.shape != view_b.shape:
        raise ValueError(
            f"both views must have the same shape, got {tuple(view_a.shape)} and {tuple(view_b.shape)}"
        )
    similarity = (
        F.cosine_similarity(view_a.float().unsqueeze(1), view_b.float().unsqueeze(0), dim=2)
        / temperature
    )
    return F.cross_entropy(similarity, torch.arange(len(view_a), device=view_a.device))


def downsample_counts(
    counts: torch.Tensor, dropout: float, per_gene_random: bool = False
) -> torch.Tensor:
    """Remove counts the way the original's denoising task does (its ``downsample_profile``).

    With ``r = 1.1 * dropout``: ``Poisson(x * r / 2)`` reads are subtracted from each count, then each
    gene is zeroed with probability ``r / 2``; results are clipped at 0. With ``per_gene_random``,
    ``dropout`` is first replaced by ``dropout * U(0, 1)`` drawn per gene (the original's
    ``randsamp``). Draws use torch's global generator in the original's order, so a seeded call
    gives the original's result.

    Args:
        counts: ``(batch, genes)`` float counts.
        dropout: fraction of reads to remove, in ``[0, 1]`` (e.g. 0.6).
        per_gene_random: draw the dropout uniformly per gene up to ``dropout``.

    Returns:
        ``(batch, genes)`` down-sampled counts, same dtype as ``counts``.
    """
    if not 0.0 <= dropout <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {dropout!r}")
    rate: torch.Tensor | float = dropout
    if per_gene_random:
        rate = torch.rand(counts.shape, device=counts.device) * dropout
    rate = rate * 1.1
    removed = torch.poisson(counts * (rate / 2)).int()
    kept = (torch.rand(counts.shape, device=counts.device) >= (rate / 2)).int()
    return torch.clamp_min((counts - removed) * kept, 0).to(counts.dtype)
