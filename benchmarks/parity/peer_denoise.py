"""Runs the original scPRINT's denoising (its ``Denoiser`` forward pass) inside a peer virtualenv.

Usage (from the repository root, with a peer venv made by ``setup_peers.py``)::

    benchmarks/.peer-venvs/scprint-2.3.8/bin/python benchmarks/parity/peer_denoise.py \
        GRN_INPUTS.npz CKPT OUT.npz MULTIPLIER

``GRN_INPUTS.npz`` is the input of ``peer_gninfer.py`` (real cells over a fixed gene list, the
original ``Denoiser``'s ``how="most var"`` context: the same genes in every cell). The checkpoint
is loaded as the original CLI does, and the cells go through
``scPrint._predict(predict_mode="denoise", depth_mult=MULTIPLIER)`` batch by batch, exactly as
``Denoiser.__call__`` feeds them; the ZINB parameters it returns (``expr``: mean, dispersion,
zero logits, ``(n_cells, n_genes)``) are written to ``OUT.npz``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import peer_worker  # noqa: E402  (installs the stand-ins and loads checkpoints as the CLI does)
import torch  # noqa: E402


@torch.no_grad()
def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    inputs = dict(np.load(argv[0], allow_pickle=False))
    model = peer_worker.load(Path(argv[1])).to(torch.float32)
    multiplier = float(argv[3])
    model.eval()
    model.on_predict_epoch_start()
    gene_ids = torch.as_tensor(inputs["gene_ids"], dtype=torch.long)
    counts = torch.as_tensor(inputs["counts"], dtype=torch.float32)
    depth = torch.as_tensor(inputs["depth"], dtype=torch.float32)
    batch_size = int(inputs["batch_size"])
    parts: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, len(gene_ids), batch_size):
        stop = start + batch_size
        result = model._predict(
            gene_ids[start:stop],
            counts[start:stop],
            depth[start:stop],
            predict_mode="denoise",
            depth_mult=multiplier,
            keep_output=False,
        )
        for part, value in zip(parts, result["expr"]):
            part.append(value.float().cpu().numpy())
    out = {
        "mean": np.concatenate(parts[0]),
        "disp": np.concatenate(parts[1]),
        "zero_logits": np.concatenate(parts[2]),
        "multiplier": np.float32(multiplier),
    }
    np.savez_compressed(argv[2], **out)
    print(json.dumps({k: list(np.shape(v)) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
