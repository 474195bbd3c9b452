"""scPRINT parity: our model, loading the original's checkpoints, against the original's outputs.

Without ``--peers`` the committed fixtures (``packages/scprint-model/tests/fixtures/parity``,
made by the original code) are compared. With ``--peers`` the original scPRINT 2.3.8 and 1.6.4
(peer venvs from ``setup_peers.py``) rebuild the checkpoints and outputs from the real inputs in
a temporary folder first, and the comparison runs on those; ``--write-fixtures`` then replaces
the committed fixtures with them.

Writes ``benchmarks/results/parity_scprint.{md,json}``: the max abs difference of every output
(means as fractions of their library size) per configuration; the bar is 1e-5 (float32, CPU).

Usage::

    python benchmarks/parity/bench_parity.py [--peers [--write-fixtures]] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402
from inputs import build_inputs  # noqa: E402
from setup_peers import create, peer_python, run_peer  # noqa: E402

FIXTURES = HERE.parents[1] / "packages" / "scprint-model" / "tests" / "fixtures" / "parity"
TOLERANCE = 1e-5
#: configuration -> peer venv that makes it (see peer_worker.CONFIGS)
PEERS = {
    "v2_pos_fsq": "scprint-2.3.8",
    "v2_gqa_log": "scprint-2.3.8",
    "v2_cell_blocks": "scprint-2.3.8",
    "v1_layout": "scprint-1.6.4",
}
log = logging.getLogger("benchmarks.parity")


def regenerate(out_dir: Path, data_dir: Path) -> None:
    """Build inputs from the real data and let each original release write its fixtures."""
    np.savez(out_dir / "inputs.npz", **build_inputs(data_dir))
    for venv in sorted(set(PEERS.values())):
        python = peer_python(venv)
        if not python.exists():
            log.info("creating the peer venv %s (needs a package index)", venv)
            create(venv, None)
        names = [name for name, peer in PEERS.items() if peer == venv]
        stdout = run_peer(venv, HERE / "peer_worker.py", out_dir / "inputs.npz", out_dir, *names)
        log.info("%s: %s", venv, stdout.strip().splitlines()[-1])


def compare(folder: Path) -> list[dict]:
    import scprint
    from scprint.checkpoints.scprint1 import outputs_as_original, parity_errors

    inputs = dict(np.load(folder / "inputs.npz"))
    args = (
        torch.as_tensor(inputs["gene_ids"]),
        torch.as_tensor(inputs["counts"]),
        torch.as_tensor(inputs["depth"]),
    )
    rows = []
    for name in PEERS:
        pretrained = scprint.load(folder / f"{name}.ckpt", device="cpu")
        reference = dict(np.load(folder / f"{name}.npz"))
        errors = parity_errors(outputs_as_original(pretrained.model, *args), reference)
        groups: dict[str, float] = {}
        for key, value in errors.items():
            group = key.split("_")[0] if key.split("_")[0] in ("q", "k", "attn") else key
            groups[group] = max(groups.get(group, 0.0), value)
        worst = max(errors, key=errors.get)
        rows.append(
            {
                "config": name,
                "original": pretrained.version,
                "ckpt_kB": round((folder / f"{name}.ckpt").stat().st_size / 1024),
                "outputs": len(errors),
                "max_abs_diff": f"{errors[worst]:.1e}",
                "worst_output": worst,
                "within_1e-5": errors[worst] <= TOLERANCE,
                "per_output": json.dumps({k: float(f"{v:.2e}") for k, v in groups.items()}),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--peers", action="store_true", help="regenerate with the original releases"
    )
    parser.add_argument(
        "--write-fixtures", action="store_true", help="with --peers: replace the committed fixtures"
    )
    data_dir_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.write_fixtures and not args.peers:
        parser.error("--write-fixtures needs --peers")
    with tempfile.TemporaryDirectory() as tmp:
        folder = FIXTURES
        if args.peers:
            folder = Path(tmp)
            regenerate(folder, resolve_data_dir(args.data_dir))
        rows = compare(folder)
        if args.write_fixtures:
            FIXTURES.mkdir(parents=True, exist_ok=True)
            for path in folder.iterdir():
                shutil.copy2(path, FIXTURES / path.name)
    source = "regenerated live by the original releases" if args.peers else "committed fixtures"
    write_results(
        "parity_scprint",
        rows,
        notes=(
            f"Outputs of the original scPRINT ({source}) vs `scprint.load` + our model on the same "
            "6 real Kang 2018 PBMC cells and 400 real genes, float32 on CPU. Max abs difference per "
            "output; ZINB/MVC means compared as fractions of their library size. Outputs: forward "
            "pass (ZINB mean/dispersion/zero logits, all cell tokens, cell embedding, class logits, "
            "gene embeddings, MVC), per-layer queries/keys and attention probabilities, the "
            "denoising pass (3x depth) and bottleneck generation. Bar: 1e-5."
        ),
    )
    failed = [row["config"] for row in rows if not row["within_1e-5"]]
    if failed:
        log.error("parity above 1e-5 for %s", failed)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
