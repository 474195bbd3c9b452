"""Runs the original scPRINT's GRN inference core (its ``GNInfer``) inside a peer virtualenv.

Usage (from the repository root, with a peer venv made by ``setup_peers.py``)::

    benchmarks/.peer-venvs/scprint-2.3.8/bin/python benchmarks/parity/peer_gninfer.py \
        GRN_INPUTS.npz CKPT OUT.npz

``GRN_INPUTS.npz`` (made by ``bench_gninfer.py``) holds real cells over a fixed list of genes:
``gene_ids`` ``(n_cells, n_genes)`` vocabulary indices (the same genes, in the same order, in
every cell: the original's ``how="given"``), ``counts`` ``(n_cells, n_genes)`` raw counts and
``depth`` ``(n_cells,)`` each cell's total counts over all its genes, and ``batch_size``.

The checkpoint is loaded as the original CLI does; then, exactly as ``GNInfer.predict`` does for
``how="given"`` with ``comp_attn=True`` (its default), the cells go through
``scPrint._predict(predict_mode=forward_mode, get_attention_layer=layers)`` batch by batch (the model's
``Attention`` accumulator averages each position's queries and keys over the cells), and the
original's own ``GNInfer.aggregate`` and ``GNInfer.filter`` turn them into networks, for each
variant of :data:`VARIANTS`. The networks are written with the cell-token rows and columns removed
(as ``GNInfer.__call__`` does), rows = the original's rows (the attending gene), genes in the
order of ``curr_genes`` (saved as ``genes_<variant>``, vocabulary indices).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import peer_worker  # noqa: E402  (installs the stand-ins and loads checkpoints as the CLI does)
import scipy.sparse  # noqa: E402
import torch  # noqa: E402

from scprint.tasks.grn import GNInfer  # noqa: E402

#: variant -> the original GNInfer's options
VARIANTS = {
    "mean": {"head_agg": "mean", "filtration": "none", "preprocess": "softmax"},
    "heads": {"head_agg": "none", "filtration": "none", "preprocess": "softmax"},
    "max_sym_thresh": {
        "head_agg": "max",
        "filtration": "thresh",
        "symmetrize": True,
        "preprocess": "softmax",
    },
    "scores": {"head_agg": "mean", "filtration": "none", "preprocess": "none"},
    "denoise_mode": {
        "head_agg": "mean",
        "filtration": "none",
        "preprocess": "softmax",
        "forward_mode": "denoise",
    },
}


@torch.no_grad()
def infer(model, inputs: dict, options: dict) -> tuple[np.ndarray, np.ndarray]:
    vocab = list(model.genes)
    gene_ids = torch.as_tensor(inputs["gene_ids"], dtype=torch.long)
    counts = torch.as_tensor(inputs["counts"], dtype=torch.float32)
    depth = torch.as_tensor(inputs["depth"], dtype=torch.float32)
    given = [vocab[i] for i in inputs["gene_ids"][0]]
    gn = GNInfer(how="given", genes=given, num_genes=len(given), comp_attn=True, **options)
    layers = list(range(model.nlayers))
    gn.layer = layers
    gn.n_cell_embs = model.attn.additional_tokens
    gn.curr_genes = given
    model.eval()
    model.on_predict_epoch_start()
    model.attn.comp_attn = True
    batch_size = int(inputs["batch_size"])
    for start in range(0, len(gene_ids), batch_size):
        stop = start + batch_size
        model._predict(
            gene_ids[start:stop],
            counts[start:stop],
            depth[start:stop],
            predict_mode=gn.forward_mode,
            keep_output=False,
            get_attention_layer=layers,
        )
    adjacency = gn.aggregate(model.attn.get(), model.genes)
    n = gn.n_cell_embs
    if gn.head_agg == "none":
        network = adjacency[n:, n:, :]
    else:
        network = gn.filter(adjacency)[n:, n:]
        if scipy.sparse.issparse(network):
            network = network.toarray()
    order = np.array([vocab.index(g) for g in gn.curr_genes], dtype=np.int64)
    return np.asarray(network, dtype=np.float32), order


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    inputs = dict(np.load(argv[0], allow_pickle=False))
    model = peer_worker.load(Path(argv[1]))
    model = model.to(torch.float32)
    out = {}
    for name, options in VARIANTS.items():
        network, order = infer(model, inputs, options)
        out[f"network_{name}"] = network
        out[f"genes_{name}"] = order
    np.savez_compressed(argv[2], **out)
    print(json.dumps({k: list(v.shape) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
