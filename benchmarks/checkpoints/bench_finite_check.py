"""Cost of refusing non-finite weights when a checkpoint is loaded (issue 25).

:func:`scprint.load` checks every floating-point tensor with ``torch.isfinite`` before the
weights go into the model (:func:`scprint.checkpoints.reader.check_finite`). This measures that
check against the whole load, on checkpoints of the ``small`` and ``medium`` presets built on the
Kang PBMC vocabulary (randomly initialised weights: the check's cost depends on the number of
values only).

Usage: ``python benchmarks/checkpoints/bench_finite_check.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import best_of, data_dir_argument, resolve_data_dir, write_results  # noqa: E402

KANG = "scrna/kang2018_pbmc_8k.h5ad"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_argument(parser)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", default="small,medium")
    args = parser.parse_args()
    import anndata as ad
    import torch

    import scprint
    from scprint.checkpoints.ours import checkpoint_metadata
    from scprint.checkpoints.reader import check_finite
    from scprint.data import CellSource, Vocabulary
    from scprint.model import ModelConfig, build_network

    meta = CellSource(ad.read_h5ad(resolve_data_dir(args.data_dir) / KANG)).meta
    vocab = Vocabulary.build([meta])
    rows = []
    for preset in args.presets.split(","):
        config = ModelConfig.from_yaml(preset)
        model = build_network(config, len(vocab), {})
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        n_values = sum(v.numel() for v in state.values() if v.is_floating_point())
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{preset}.ckpt"
            torch.save(
                {"scprint": checkpoint_metadata(config, vocab, {}, {}), "state_dict": state}, path
            )
            size_mb = os.path.getsize(path) / 1e6
            load_s, _ = best_of(lambda p=path: scprint.load(p, device="cpu"), args.repeats)
        check_s, _ = best_of(lambda s=state: check_finite(s, Path("bench")), args.repeats)
        rows.append(
            {
                "preset": preset,
                "float_values": n_values,
                "file_mb": round(size_mb, 1),
                "load_s": round(load_s, 4),
                "finite_check_s": round(check_s, 4),
                "check_share_of_load": round(check_s / load_s, 4),
            }
        )
        print(rows[-1], flush=True)
    load = os.getloadavg()
    write_results(
        "checkpoints_finite_check",
        rows,
        notes=(
            f"Best of {args.repeats} runs on CPU; load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (1/5/15 min) while "
            "measured: absolute times grow with the load, the check's share of the load time is "
            "the number to read."
        ),
    )


if __name__ == "__main__":
    main()
