"""Pure-PyTorch reference implementations: the readable specification of every kernel.

These functions materialise every attention matrix and compute in float32. They are slow and
memory-hungry on purpose: each line is the maths, and the Triton kernels and the chunked PyTorch
backends are tested against them.

Conventions shared by all backends:

- ``q, k, v`` have shape ``(batch, heads, seq, head_dim)``; ``scale`` defaults to
  ``head_dim ** -0.5``.
- ``bias`` is added to the scores before the softmax and broadcasts against
  ``(batch, heads, seq_q, seq_k)``; ``-inf`` entries mask keys out.
- A query row whose keys are all masked attends to nothing: its output row is zero and its
  log-sum-exp is ``-inf`` (as ``torch.nn.functional.scaled_dot_product_attention`` does).
- Attention maps are oriented rows = query (attending) gene, columns = key (attended) gene.
"""

from __future__ import annotations

import torch

__all__ = ["attention_reference", "attention_to_network_reference", "gene_pair_counts"]


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q kᵀ · scale + bias) v`` and the row log-sum-exp, in float32.

    Args:
        q: ``(batch, heads, seq_q, head_dim)``.
        k, v: ``(batch, heads, seq_k, head_dim)``.
        bias: additive, broadcastable to ``(batch, heads, seq_q, seq_k)``.
        scale: multiplies ``q kᵀ``; default ``head_dim ** -0.5``.

    Returns:
        ``out`` ``(batch, heads, seq_q, head_dim)`` in ``q.dtype`` and ``lse``
        ``(batch, heads, seq_q)`` in float32, ``lse = log Σ_keys exp(scores)``.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = q.float() @ k.float().transpose(-1, -2) * scale
    if bias is not None:
        scores = scores + bias.float()
    lse = torch.logsumexp(scores, dim=-1)
    fully_masked = torch.isneginf(lse)
    safe_lse = torch.where(fully_masked, torch.zeros_like(lse), lse)
    probabilities = torch.exp(scores - safe_lse.unsqueeze(-1))
    out = probabilities @ v.float()
    return out.to(q.dtype), lse


def gene_pair_counts(gene_ids: torch.Tensor, n_genes: int) -> torch.Tensor:
    """Number of cells in which both genes of a pair are present.

    Args:
        gene_ids: ``(batch, seq)`` integer gene index of each position, ``-1`` for padding.
        n_genes: size of the gene vocabulary.

    Returns:
        ``(n_genes, n_genes)`` float32 tensor of exact integer counts; entry ``[i, j]`` counts
        the cells where gene ``i`` and gene ``j`` both occur (a gene repeated within a cell
        counts once). The matrix is symmetric; its diagonal is the number of cells per gene.
    """
    presence = torch.zeros(gene_ids.shape[0], n_genes + 1, device=gene_ids.device)
    slot = torch.where(gene_ids >= 0, gene_ids, torch.full_like(gene_ids, n_genes))
    presence.scatter_(1, slot, 1.0)
    presence = presence[:, :n_genes]
    return presence.T @ presence


def attention_to_network_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    gene_ids: torch.Tensor,
    n_genes: int,
    scale: float | None = None,
    heads: str | list[int] | None = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention maps summed over cells into a gene x gene matrix (the naive method).

    Materialises the ``(batch, heads, seq, seq)`` softmax of ``q kᵀ · scale`` with padding keys
    masked out, then scatter-adds entry ``[cell, head, i, j]`` into
    ``[head, gene_ids[cell, i], gene_ids[cell, j]]`` for every pair of non-padding positions.
    Genes repeated within or across cells accumulate.

    Args:
        q, k: ``(batch, heads, seq, head_dim)``.
        gene_ids: ``(batch, seq)`` int64 in ``[0, n_genes)``, ``-1`` for padding.
        n_genes: size of the gene vocabulary.
        scale: default ``head_dim ** -0.5``.
        heads: ``"mean"`` (average over all heads), a list of head indices, or ``None``
            (every head separately).

    Returns:
        ``summed_maps`` float32, ``(n_genes, n_genes)`` for ``"mean"``, ``(len(heads), n_genes,
        n_genes)`` for a list, ``(heads, n_genes, n_genes)`` for ``None``; rows = query
        (attending) gene, columns = key gene. ``pair_counts`` from :func:`gene_pair_counts`.
    """
    batch, n_heads, seq, head_dim = q.shape
    scale = head_dim**-0.5 if scale is None else scale
    present = gene_ids >= 0
    scores = q.float() @ k.float().transpose(-1, -2) * scale
    scores = scores.masked_fill(~present[:, None, None, :], float("-inf"))
    maps = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    if heads == "mean":
        maps = maps.mean(dim=1, keepdim=True)
    elif heads is not None:
        maps = maps[:, list(heads)]
    summed = torch.zeros(maps.shape[1], n_genes, n_genes, device=q.device)
    for cell in range(batch):
        positions = present[cell].nonzero().squeeze(1)
        genes = gene_ids[cell, positions]
        cell_maps = maps[cell][:, positions][:, :, positions]
        rows = genes[:, None].expand(-1, genes.numel())
        cols = genes[None, :].expand(genes.numel(), -1)
        for out_head in range(maps.shape[1]):
            summed[out_head].index_put_((rows, cols), cell_maps[out_head], accumulate=True)
    if heads == "mean":
        summed = summed[0]
    return summed, gene_pair_counts(gene_ids, n_genes)
