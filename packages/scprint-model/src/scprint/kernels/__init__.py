"""Attention kernels: one public function per operation, choosing the backend.

- :func:`attention`: non-causal multi-head attention with an optional additive bias, forward and
  backward (gradients for q, k, v and bias).
- :func:`attention_to_network`: attention maps of many cells summed straight into a
  ``(n_genes, n_genes)`` matrix (rows = query gene, columns = key gene), never materialising
  ``(batch, heads, seq, seq)``.

Backends: Triton kernels on CUDA (``triton_attention``, ``triton_attn_to_network``), PyTorch
elsewhere (``torch_backend``); the specification is ``reference``.
"""

from scprint.kernels.dispatch import (
    MAX_HEAD_DIM,
    SUPPORTED_DTYPES,
    attention,
    attention_to_network,
    triton_available,
)
from scprint.kernels.reference import gene_pair_counts

__all__ = [
    "MAX_HEAD_DIM",
    "SUPPORTED_DTYPES",
    "attention",
    "attention_to_network",
    "gene_pair_counts",
    "triton_available",
]
