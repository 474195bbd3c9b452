"""The attention dispatcher's PyTorch path equals softmax(q k^T * scale + bias) v (tiny synthetic tensors)."""

import torch

from scprint.kernels import attention


def test_torch_attention_matches_definition():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    bias = torch.randn(3, 5, 5, generator=g)
    expected = torch.softmax(q @ k.transpose(-1, -2) * 8**-0.5 + bias, dim=-1) @ v
    torch.testing.assert_close(attention(q, k, v, bias=bias, backend="torch"), expected)
