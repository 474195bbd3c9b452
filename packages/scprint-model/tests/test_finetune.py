"""Fine-tuning: from our checkpoints and the original scPRINT's, new labels and label classes,
freezing, and better held-out labels on real PBMC cells."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

from scprint.data import CellSource, LabelEncoder, build_label_encoders, make_inference_batches
from scprint.model import ModelConfig, ScPrint
from scprint.training import fit, load
from scprint.training.finetune import fine_tuned_network

ORIGINAL = Path(__file__).parent / "fixtures" / "parity" / "v2_gqa_log.ckpt"
CELL_TYPE = "cell_type_ontology_term_id"


def test_an_original_checkpoint_keeps_every_weight_and_grows_new_labels(kang_adata) -> None:
    original = load(ORIGINAL, device="cpu")
    labels = build_label_encoders(
        [CellSource(kang_adata)], [CELL_TYPE, "donor_id"], start_from=original.labels
    )
    assert list(labels) == [*original.labels, "donor_id"]
    network = fine_tuned_network(str(ORIGINAL), ModelConfig(max_len=64), original.vocab, labels)
    state, trained = network.state_dict(), original.model.state_dict()
    for key, tensor in trained.items():
        assert torch.equal(state[key][: len(tensor)] if tensor.dim() else state[key], tensor), key
    # the new label class has its own class token and classifier head
    grown = state["class_encoder.embedding.weight"]
    assert len(grown) == len(trained["class_encoder.embedding.weight"]) + 1
    assert (
        state["cls_decoders.donor_id.out_layer.weight"].shape[0]
        == kang_adata.obs["donor_id"].nunique()
    )
    assert network.config.max_len == 64 and network.config.d_model == original.config.d_model


def test_fine_tuning_freezes_the_gene_table_and_first_blocks(
    kang_adata, tmp_path: Path, quiet_trainer
) -> None:
    """``freeze_gene_embeddings`` holds after loading weights (it used to hold only for a table
    given at construction)."""
    original = load(ORIGINAL, device="cpu")
    path = fit(
        "finetune",
        model={"init_from": str(ORIGINAL), "freeze_blocks": 1, "config": {"max_len": 64}},
        data={"files": [kang_adata], "labels": [CELL_TYPE], "batch_size": 8},
        trainer=quiet_trainer(tmp_path, max_steps=3, val_check_interval=3),
    )
    tuned = load(path, device="cpu").model.state_dict()
    before = original.model.state_dict()
    frozen = ["gene_encoder.embeddings.weight"] + [
        k for k in before if k.startswith("transformer.blocks.0.")
    ]
    for key in frozen:
        assert torch.equal(tuned[key], before[key]), key
    trained = [k for k in before if k.startswith("transformer.blocks.1.") and "weight" in k]
    assert any(not torch.equal(tuned[k], before[k]) for k in trained)


def _leaf_accuracy(model: ScPrint, vocab, encoder: LabelEncoder, cells: ad.AnnData) -> float:
    """Share of held-out cells with a leaf label whose predicted leaf is it."""
    truth = encoder.encode(cells.obs[CELL_TYPE].astype(str))
    predicted = np.empty(cells.n_obs, dtype=np.int64)
    with torch.no_grad():
        for batch in make_inference_batches(cells, vocab, max_len=model.config.max_len, seed=1):
            logits = model(batch["gene_ids"], batch["counts"], batch["depth"]).logits
            predicted[batch["cell_index"].numpy()] = logits["cell_type"].argmax(1).numpy()
    leaves = (truth >= 0) & (truth < len(encoder.classes))
    return float((predicted[leaves] == truth[leaves]).mean())


def test_fine_tuning_on_labelled_cells_improves_held_out_accuracy(
    tiny_checkpoint: Path, data_dir: Path, tmp_path: Path, quiet_trainer
) -> None:
    """The session's model knows Kang's 4 cell types; pbmc3k has 9, 6 of them new (naive and
    memory CD4 T, CD8 T, FCGR3A+ monocytes, DC, platelets). Fine-tuned on 2,000 pbmc3k cells, it
    labels 600 others better than before."""
    pbmc3k = ad.read_h5ad(data_dir / "scrna" / "pbmc3k_2k_hvg.h5ad")
    order = np.random.default_rng(0).permutation(pbmc3k.n_obs)
    train, held_out = pbmc3k[np.sort(order[600:])].copy(), pbmc3k[np.sort(order[:600])].copy()
    path = fit(
        "finetune",
        model={
            "init_from": str(tiny_checkpoint),
            "config": {"max_len": 64},
            # classification only: one pass per step
            "objective": {"noise": [], "generation": 0, "ecs": 0, "cce": 0},
            "optim": {"learning_rate": 0.003, "warmup_steps": 5},
        },
        data={"files": [train], "labels": ["cell_type"], "batch_size": 32, "val_fraction": 0},
        trainer=quiet_trainer(tmp_path, max_steps=80),
    )
    start, tuned = load(tiny_checkpoint, device="cpu"), load(path, device="cpu")
    encoder = tuned.labels["cell_type"]
    assert encoder.classes[:4] == start.labels["cell_type"].classes and len(encoder.classes) == 10
    before = _leaf_accuracy(start.model, start.vocab, encoder, held_out)
    after = _leaf_accuracy(tuned.model, tuned.vocab, encoder, held_out)
    assert after > before + 0.15, (before, after)


def test_fine_tuning_needs_the_checkpoints_vocabulary(kang_adata, tiny_checkpoint: Path) -> None:
    other = load(ORIGINAL, device="cpu")
    labels = {"cell_type": load(tiny_checkpoint, device="cpu").labels["cell_type"]}
    with pytest.raises(ValueError, match="vocabulary is not the checkpoint's"):
        fine_tuned_network(str(tiny_checkpoint), ModelConfig(), other.vocab, labels)
