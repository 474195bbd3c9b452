"""The cheap inference path: batches padded to their longest cell (not to the context length),
and GNInfer's mean over heads accumulated as it goes (one gene x gene map, not one per head)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import scprint
from scprint.data import make_inference_batches, sample_context, trim_padding
from scprint.data.source import CellSource

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


def test_batches_are_as_wide_as_their_longest_cell_and_give_the_same_outputs(kang_adata):
    pretrained = scprint.load(FIXTURES / "v2_pos_fsq.ckpt", device="cpu")
    cells = kang_adata[:12].copy()
    known = [g for g in cells.var_names if g in set(pretrained.vocab.genes)]
    cells = cells[:, known].copy()
    n_expressed = np.asarray((cells.X > 0).sum(axis=1)).ravel()
    max_len = int(n_expressed.max()) + 300  # longer than any cell's expressed genes
    batch = next(
        make_inference_batches(
            cells, pretrained.vocab, max_len=max_len, batch_size=12, pad_with_unexpressed=False
        )
    )
    ids = batch["gene_ids"].numpy()
    assert ids.shape == (12, n_expressed.max())  # the longest cell, not max_len
    assert ((ids >= 0).sum(1) == n_expressed).all()
    assert all((row[:n] >= 0).all() for row, n in zip(ids, n_expressed))  # genes first
    # the same cells padded to max_len give the same outputs
    source = CellSource(cells)
    source.bind(pretrained.vocab)
    rng = np.random.default_rng(0)
    full_ids, full_counts = sample_context(
        source.rows(np.arange(12)), source.vocab_index, max_len, rng, False
    )
    assert full_ids.shape[1] == max_len
    trimmed_ids, trimmed_counts = trim_padding(full_ids, full_counts)
    np.testing.assert_array_equal(trimmed_ids, ids)
    depth = batch["depth"]
    with torch.no_grad():
        padded = pretrained.model(torch.from_numpy(full_ids), torch.from_numpy(full_counts), depth)
        short = pretrained.model(batch["gene_ids"], batch["counts"], depth)
    torch.testing.assert_close(short.cell_embedding, padded.cell_embedding, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        short.zinb_mean[batch["gene_ids"] >= 0],
        padded.zinb_mean[torch.from_numpy(full_ids >= 0)],
        rtol=1e-4,
        atol=1e-6,
    )


def test_trim_padding_keeps_full_batches_and_each_rows_order():
    ids = np.array([[5, -1, 7, -1], [-1, -1, 3, -1]])
    counts = np.array([[1.0, 0, 2, 0], [0, 0, 4, 0]], dtype=np.float32)
    got_ids, got_counts = trim_padding(ids, counts)
    np.testing.assert_array_equal(got_ids, [[5, 7], [3, -1]])
    np.testing.assert_array_equal(got_counts, [[1, 2], [4, 0]])
    full = np.array([[1, 2], [3, 4]])
    assert trim_padding(full, counts[:, :2])[0] is full


@pytest.mark.parametrize("aggregation", ["exact", "fast"])
def test_gninfer_mean_over_heads_accumulated_equals_the_mean_of_the_head_maps(
    kang_adata, aggregation
):
    from scprint.tasks._input import prepare, var_names_to_vocab
    from scprint.tasks.gninfer.attention import attention_maps

    pretrained = scprint.load(FIXTURES / "v2_gqa_log.ckpt", device="cpu")
    cells = kang_adata[:10].copy()
    data = prepare(cells, pretrained)
    columns = data.match.var_indices[:40]
    names = [str(g) for g in cells.var_names[columns]]
    vocab_ids = var_names_to_vocab(cells, data.match, columns)
    n_layers, n_heads = pretrained.config.n_layers, pretrained.config.n_heads
    options = dict(layers=list(range(n_layers)), heads=list(range(n_heads)), batch_size=4)
    per_head = attention_maps(
        pretrained, cells, data.match, names, vocab_ids, aggregation=aggregation, **options
    )
    mean = attention_maps(
        pretrained,
        cells,
        data.match,
        names,
        vocab_ids,
        aggregation=aggregation,
        mean_heads=True,
        **options,
    )
    assert per_head.shape == (n_layers * n_heads, 40, 40) and mean.shape == (1, 40, 40)
    np.testing.assert_allclose(mean[0], per_head.mean(0), rtol=1e-5, atol=1e-7)
