"""The whole model on a CUDA device with ``backend="auto"``: forward, one training step, and the
same numbers as with PyTorch's SDPA. The model is built by :mod:`scprint.testing.synthetic` (the
one place to adapt when the model's constructor changes; the GPU benchmark uses it too)."""

from __future__ import annotations

import pytest
import torch
from gpu_sizes import SIZES, SMOKE

from scprint.kernels import dispatch
from scprint.testing import synthetic

pytestmark = pytest.mark.gpu


def test_model_forward_and_training_step_with_auto(device, monkeypatch):
    monkeypatch.setattr(dispatch, "_self_check_results", {})
    torch.manual_seed(0)
    module = synthetic.build_model(SIZES.model_preset, device)
    batch = synthetic.make_batch(module, SIZES.model_batch, device)
    head_dim = module.config.d_model // module.config.n_heads

    module.eval()
    with torch.no_grad(), synthetic.autocast(device):
        auto_losses = module.losses(batch)
    used = dispatch._self_check_results
    if SMOKE:
        assert used == {}, "auto must not consider Triton for CPU tensors"
    else:
        key = ("attention", str(device), torch.bfloat16, head_dim)
        assert key in used and used[key] is None, f"Triton self-check did not pass: {used}"
    # The same batch through SDPA: auto's kernels change nothing beyond bfloat16 rounding.
    monkeypatch.setattr(dispatch, "_auto_may_use_triton", lambda device: False)
    with torch.no_grad(), synthetic.autocast(device):
        sdpa_losses = module.losses(batch)
    monkeypatch.undo()
    for name, value in sdpa_losses.items():
        assert torch.isfinite(auto_losses[name]), name
        torch.testing.assert_close(auto_losses[name], value, rtol=2e-2, atol=2e-2)

    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in module.parameters()]
    loss = synthetic.training_step(module, optimizer, batch)
    assert torch.isfinite(loss)
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    attention_weights = module.model.transformer.blocks[0].mixer.Wqkv.weight
    assert attention_weights.grad.abs().sum() > 0, "no gradient reached the attention projection"
    changed = sum(not torch.equal(b, p) for b, p in zip(before, module.parameters()))
    assert changed >= len(before) // 2
    embeddings = synthetic.inference_step(module, batch)
    assert embeddings.shape == (SIZES.model_batch, module.config.d_model)
    assert torch.isfinite(embeddings).all()
