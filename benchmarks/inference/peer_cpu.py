"""Times the original scPRINT 2.3.8 forward pass on CPU inside its peer virtualenv.

Usage (from the repository root; the venv is made by ``benchmarks/parity/setup_peers.py``)::

    benchmarks/.peer-venvs/scprint-2.3.8/bin/python benchmarks/inference/peer_cpu.py \
        INPUTS.npz OUT.ckpt D_MODEL N_LAYERS N_HEADS THREADS

Builds a randomly initialised original ``scPrint`` (``transformer="normal"``, its CPU attention)
of the given size over the genes of ``INPUTS.npz``, moves its weights off their initialisation
(as ``benchmarks/parity/peer_worker.py`` does), saves it with Lightning to ``OUT.ckpt`` (the
checkpoint our side then loads), loads it back as the original's CLI does and times its forward
pass (``do_class=True``, what its embedding reads) over the batches of ``INPUTS.npz``
(``gene_ids`` / ``counts`` / ``depth`` arrays ``batch_<i>_*``) with ``THREADS`` threads, after one
warm-up batch. Prints JSON: cells, seconds, cells/s, peak RSS (MiB).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))
import peer_worker  # noqa: E402  (installs the stand-ins for imports the forward pass never uses)
import torch  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    inputs_path, out, d_model, n_layers, n_heads, threads = argv
    torch.set_num_threads(int(threads))
    import numpy as np

    inputs = dict(np.load(inputs_path, allow_pickle=False))
    config = {
        **peer_worker.CONFIGS["v2_gqa_log"],
        "d_model": int(d_model),
        "nlayers": int(n_layers),
        "nhead": int(n_heads),
        "num_heads_kv": None,
        "classes": {
            "cell_type_ontology_term_id": peer_worker.CELL_TYPE,
            "sex_ontology_term_id": peer_worker.SEX,
        },
    }
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            model = peer_worker.build(config, inputs, Path(workdir))
        finally:
            os.chdir(cwd)
    peer_worker.perturb(model, torch.Generator().manual_seed(1))
    peer_worker.save(model, Path(out))
    model = peer_worker.load(Path(out)).eval()
    n_batches = int(inputs["n_batches"])
    batches = [
        tuple(torch.as_tensor(inputs[f"batch_{i}_{k}"]) for k in ("gene_ids", "counts", "depth"))
        for i in range(n_batches)
    ]
    with torch.no_grad():
        gene_ids, counts, depth = batches[0]
        model(gene_ids, counts.float(), req_depth=depth.float(), do_class=True)  # warm-up
        start = time.perf_counter()
        for gene_ids, counts, depth in batches:
            model(gene_ids, counts.float(), req_depth=depth.float(), do_class=True)
        seconds = time.perf_counter() - start
    cells = sum(len(b[0]) for b in batches)
    print(
        json.dumps(
            {
                "cells": cells,
                "seconds": seconds,
                "cells_per_s": cells / seconds,
                "threads": torch.get_num_threads(),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peer": f"scprint {peer_worker.PEER_VERSION}",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
