"""``cells_only=True``: the cell read-outs (embedding, class tokens, logits, codes) equal a full
forward pass's on real cells, for every checkpoint layout, while the last block and the expression
decoder do less work.

Models and cells: the parity fixtures made by the original code (``tests/fixtures/parity``):
scPRINT-1 layouts (``v2_pos_fsq``, ``v2_gqa_log``, ``v2_cell_blocks``: a separate cell
transformer, ``v1_layout``: cross-attention pairs) on 6 real Kang PBMC cells, and scPRINT-2
(``scprint2_*``: with and without cell-specific blocks) on 8 real cells; two cells' contexts are
shortened with padding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import scprint

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
V1 = ("v2_pos_fsq", "v2_gqa_log", "v2_cell_blocks", "v1_layout")
V2 = ("s2_cell_vae_metacell", "s2_shared_fsq_mvc", "s2_gqa_vae_grown")
TOLERANCE = 1e-5


def _case(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    prefix = "" if name in V1 else "scprint2_"
    inputs = dict(np.load(FIXTURES / f"{prefix}inputs.npz"))
    if name in V2:  # the cells of the organisms this checkpoint knows
        rows = np.load(FIXTURES / f"scprint2_{name}.npz")["rows"]
        inputs = {
            k: v[rows] for k, v in inputs.items() if v.ndim and len(v) == len(inputs["depth"])
        }
    model = scprint.load(FIXTURES / f"{prefix}{name}.ckpt", device="cpu").model
    gene_ids = torch.as_tensor(inputs["gene_ids"]).clone()
    gene_ids[0, -10:] = -1  # padded contexts
    gene_ids[1, -3:] = -1
    kwargs = {
        "gene_ids": gene_ids,
        "counts": torch.as_tensor(inputs["counts"]),
        "depth": torch.as_tensor(inputs["depth"]).float(),
    }
    if getattr(model, "uses_neighbours", False):
        kwargs["neighbours"] = torch.as_tensor(inputs["neighbour_counts"])
        kwargs["neighbour_distances"] = torch.as_tensor(inputs["neighbour_distances"])
    return model, kwargs


def _max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("name", V1 + V2)
def test_cells_only_read_outs_equal_the_full_forward_pass(name: str) -> None:
    model, kwargs = _case(name)
    with torch.no_grad():
        full = model(**kwargs)
        fast = model(**kwargs, cells_only=True)
    pairs = {
        "cell_tokens": (fast.cell_tokens, full.cell_tokens),
        "cell_embedding": (fast.cell_embedding, full.cell_embedding),
    }
    pairs |= {f"class_{k}": (fast.class_embeddings[k], v) for k, v in full.class_embeddings.items()}
    pairs |= {f"logits_{k}": (fast.logits[k], v) for k, v in full.logits.items()}
    if getattr(full, "cell_codes", None) is not None:
        pairs |= {f"code_{k}": (fast.cell_codes[k], v) for k, v in full.cell_codes.items()}
        pairs["input_cell_tokens"] = (fast.input_cell_tokens, full.input_cell_tokens)
    assert full.logits and len(pairs) >= 4
    errors = {key: _max_error(a, b) for key, (a, b) in pairs.items()}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{name}: {worst} differs by {errors[worst]:.2e}"
    assert fast.gene_embeddings is None and fast.zinb_mean is None
    assert full.zinb_mean is not None


@pytest.mark.parametrize("name", ["v2_gqa_log", "s2_shared_fsq_mvc", "v2_cell_blocks"])
def test_cells_only_skips_the_gene_read_outs(name: str) -> None:
    """With the cell tokens in the gene sequence the last MLP sees the cell tokens alone; in every
    layout the expression decoder is not run."""
    model, kwargs = _case(name)
    seen: dict[str, list[int]] = {"mlp": [], "decoder": []}
    last_mlp = model.transformer.blocks[-1].mlp
    last_mlp.register_forward_hook(lambda m, a, o: seen["mlp"].append(a[0].shape[1]))
    model.expr_decoder.register_forward_hook(lambda m, a, o: seen["decoder"].append(1))
    with torch.no_grad():
        model(**kwargs, cells_only=True)
    assert seen["decoder"] == []
    if model.cell_transformer is None:
        assert seen["mlp"] == [model.n_cell_tokens]
    else:  # every gene output is the cell transformer's context: the gene stack runs in full
        assert seen["mlp"] == [kwargs["gene_ids"].shape[1]]


def test_cells_only_refuses_outputs_it_does_not_compute() -> None:
    model, kwargs = _case("v2_gqa_log")
    for option in ("return_qk", "return_mvc"):
        with pytest.raises(ValueError, match="cells_only"):
            model(**kwargs, cells_only=True, **{option: True})
