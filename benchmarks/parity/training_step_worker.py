"""Run the ORIGINAL scPRINT 2.3.8 training objective (``scPrint._full_training``) on fixed batches.

Usage (from the repository root, in the peer venv made by ``setup_peers.py``)::

    benchmarks/.peer-venvs/scprint-2.3.8/bin/python benchmarks/parity/training_step_worker.py

For each 2.x fixture checkpoint of ``packages/scprint-model/tests/fixtures/parity/`` (written by
``peer_worker.py``), on the real cells of ``inputs.npz`` with fixed labels (leaves, coarse labels
and unknowns), the worker loads the model as the original CLI does, sets the objective of the
original's published ``config/base_v2.yml`` (``TrainingMode`` defaults plus ``run_full_forward``,
``do_ecs``, ``do_cce``; masking off), seeds torch and runs ``_full_training`` once with the model
in eval mode (dropout draws differ between implementations; the denoising noise is what the seed
must reproduce), three times: as published with ``zinb_and_mse`` off (our default), on, and
with one masked pass (``mask_ratio: [0.3]``). It writes the total and every
logged component to ``training_step.npz`` next to the fixtures (or the path given as argument); ``tests/test_training.py``
compares our :class:`~scprint.training.ScPrintLightning` on the same checkpoint, batch and seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import peer_worker  # noqa: E402  (installs the stand-in imports)
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "packages" / "scprint-model" / "tests" / "fixtures" / "parity"
CONFIGS = ("v2_gqa_log", "v2_pos_fsq", "v2_cell_blocks")
SEED = 123
#: Per label class, one label per fixture cell: leaves, coarse labels (ids >= n), unknown (-1).
LABELS = {
    "cell_type_ontology_term_id": [0, 6, 3, -1, 7, 5],
    "sex_ontology_term_id": [0, 1, -1, 1, 0, 0],
    "organism_ontology_term_id": [0, 0, 1, -1, 0, 1],
}


#: variant -> (zinb_and_mse, mask_ratio)
VARIANTS = {"zinb": (False, []), "mse": (True, []), "mask": (False, [0.3])}


def objective(model, zinb_and_mse: bool, mask_ratio: list[float]) -> None:
    """The published objective (``TrainingMode`` defaults + ``base_v2.yml``)."""
    model.do_denoise, model.noise = True, [0.6]
    model.run_full_forward, model.mask_ratio = True, mask_ratio
    model.do_cls, model.class_scale = True, 1.0
    model.do_generate, model.do_mvc = True, False
    model.class_embd_diss_scale = 0.1
    model.do_ecs, model.ecs_scale, model.ecs_threshold = True, 0.1, 0.4
    model.do_cce, model.cce_scale, model.cce_temp = True, 0.1, 0.2
    model.do_adv_cls, model.do_adv_batch, model.do_next_tp = False, False, False
    model.zinb_and_mse, model.var_context_length = zinb_and_mse, False


def main(argv: list[str]) -> int:
    out_path = Path(argv[0]) if argv else FIXTURES / "training_step.npz"
    inputs = dict(np.load(FIXTURES / "inputs.npz", allow_pickle=False))
    out: dict[str, np.ndarray] = {}
    for name in CONFIGS:
        model = peer_worker.load(FIXTURES / f"{name}.ckpt").eval()
        labels = np.array([LABELS[c] for c in model.classes], dtype=np.int64).T
        batch = {
            "x": torch.as_tensor(inputs["counts"], dtype=torch.float32),
            "genes": torch.as_tensor(inputs["gene_ids"], dtype=torch.long),
            "depth": torch.as_tensor(inputs["depth"], dtype=torch.float32),
            "class": torch.from_numpy(labels),
        }
        out[f"{name}/labels"] = labels
        for variant, (mse, mask_ratio) in VARIANTS.items():
            objective(model, mse, mask_ratio)
            torch.manual_seed(SEED)
            with torch.no_grad():
                total, losses = model._full_training(
                    batch=batch,
                    do_denoise=model.do_denoise,
                    noise=model.noise,
                    do_next_tp=False,
                    do_cce=model.do_cce,
                    cce_temp=model.cce_temp,
                    do_ecs=model.do_ecs,
                    do_mvc=model.do_mvc,
                    do_adv_cls=False,
                    do_adv_batch=False,
                    do_cls=model.do_cls,
                    do_generate=model.do_generate,
                    run_full_forward=model.run_full_forward,
                    mask_ratio=model.mask_ratio,
                )
            prefix = f"{name}/{variant}"
            out[f"{prefix}/total"] = np.asarray(float(total), dtype=np.float64)
            for key, value in losses.items():
                out[f"{prefix}/{key}"] = np.asarray(float(value), dtype=np.float64)
    out["seed"] = np.asarray(SEED)
    np.savez_compressed(out_path, **out)
    print(json.dumps({k: float(v) for k, v in out.items() if v.ndim == 0}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
