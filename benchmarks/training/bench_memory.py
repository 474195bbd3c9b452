"""Peak memory of training from a multi-file h5ad collection and from a TileDB-SOMA experiment.

The Kang PBMC counts (8,684 cells) are repeated into collections of about 10k and 100k+ cells:
``.h5ad`` files of at most 8,684 cells each, and one SOMA experiment of the same cells. Each row
trains the ``tiny`` preset for a fixed number of steps in a fresh process and records that
process's high-water resident memory (``VmHWM``), its memory once the libraries are imported, the
set-up time (opening, scanning, splitting) and the median time of a training step:

- ``h5ad on disk``: ``CellSource(path, in_memory=False)`` per file, read in contiguous blocks;
- ``SOMA``: ``SomaSource`` over the experiment, read in contiguous blocks of ``soma_joinid``;
- ``h5ad in memory``: ``CellSource(path, in_memory=True)``, the fast path whose memory grows with
  the number of cells (for comparison).

Usage: ``python benchmarks/training/bench_memory.py [--sizes 10000,104208] [--steps 40]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402

KANG = "scrna/kang2018_pbmc_8k.h5ad"
KINDS = ("h5ad on disk", "SOMA", "h5ad in memory")
log = logging.getLogger("bench_memory")


def build_collection(data_dir: Path, n_cells: int, folder: Path) -> tuple[list[Path], str]:
    """``n_cells`` Kang cells repeated: h5ad files of at most 8,684 cells, and a SOMA experiment."""
    import anndata as ad
    import pandas as pd
    import tiledbsoma.io

    kang = ad.read_h5ad(data_dir / KANG)
    kang.var = pd.DataFrame(
        {"feature_name": kang.var["gene_symbol"].astype(str).to_numpy()},
        index=pd.Index(kang.var_names, name="feature_id"),
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths, parts, start = [], [], 0
    while start < n_cells:
        part = kang[: min(kang.n_obs, n_cells - start)].copy()
        part.obs_names = [f"c{start + i}" for i in range(part.n_obs)]
        part.obs.index.name = "obs_id"
        paths.append(folder / f"part{len(paths):03d}.h5ad")
        part.write_h5ad(paths[-1])
        parts.append(part)
        start += part.n_obs
    whole = ad.concat(parts, merge="same")
    whole.var = kang.var
    joined = folder / "all.h5ad"
    whole.write_h5ad(joined)
    del whole, parts
    uri = str(folder / "experiment")
    tiledbsoma.io.from_h5ad(uri, joined, "RNA", X_layer_name="raw")
    joined.unlink()
    assert sum(ad.read_h5ad(p, backed="r").n_obs for p in paths) == n_cells
    log.info("%d cells: %d h5ad files and %s", n_cells, len(paths), uri)
    return paths, uri


def peak_rss_mib() -> float:
    """High-water resident memory of this process (``VmHWM``), in MiB.

    Unlike ``ru_maxrss``, which a child inherits from its parent at fork, ``VmHWM`` starts afresh
    at ``exec``.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(
    kind: str, paths: list[str], uri: str, steps: int, out_dir: str, buffer_mb: float
) -> dict:
    """Train ``steps`` steps of ``tiny`` from one kind of source; memory and timings."""
    import lightning as L

    from scprint.data import CellSource, SomaSource
    from scprint.training import fit

    imported = peak_rss_mib()
    step_times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            step_times.append(time.perf_counter() - self.start)

    start = time.perf_counter()
    data: dict = {"labels": ["cell_type"], "batch_size": 32, "val_max_cells": 256}
    if kind == "SOMA":  # opened here to time it apart; fit opens it again from data.soma
        SomaSource(uri, label_columns=["cell_type"], buffer_mb=buffer_mb)
        data["soma"] = {"uri": uri, "buffer_mb": buffer_mb}
    else:
        [CellSource(p, in_memory=False) for p in paths]  # metadata only, timed apart
        data.update(files=[str(p) for p in paths], in_memory=kind == "h5ad in memory")
        data["buffer_mb"] = buffer_mb
    opened = time.perf_counter() - start
    start = time.perf_counter()
    fit(
        "tiny",
        data=data,
        trainer={"max_steps": steps, "default_root_dir": str(out_dir), "val_check_interval": steps},
        callbacks=[StepTimer()],
    )
    total = time.perf_counter() - start
    # the first batch of a stream includes reading its first buffer: report it apart
    return {
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_after_imports_mib": round(imported, 1),
        "open_s": round(opened, 2),
        "fit_s": round(total, 2),
        "first_step_s": round(step_times[0], 3),
        "median_step_s": round(statistics.median(step_times[1:]), 4),
    }


def summarise(rows: list[dict], steps: int, buffer_mb: float) -> str:
    """What the rows show: growth of peak memory with the cells, step time against in-memory data."""
    lines = [
        f"Each row is a fresh process training the `tiny` preset for {steps} steps (batch 32, one "
        "validation pass over 256 cells) through `scprint.training.fit`. Peak RSS is the "
        "process's high-water resident memory (`VmHWM`); `rss_after_imports_mib` is its floor "
        "(torch, lightning, tiledbsoma imported). The collections repeat the Kang PBMC counts "
        "(8,684 cells x 2,511 genes, about 440 stored values per cell). `h5ad on disk` and `SOMA` "
        "stream shuffled blocks of 64 contiguous cells through a read-ahead buffer of "
        f"`buffer_mb={buffer_mb:g}` (256 by default; small here so that it is full at the smallest "
        "size too, as it is on any atlas); `h5ad in memory` holds every count in memory.",
        "",
    ]
    by = {(r["source"], r["cells"]): r for r in rows}
    loads = [r["load_avg_1min"] for r in rows]
    sizes = sorted({r["cells"] for r in rows})
    for source in dict.fromkeys(r["source"] for r in rows):
        have = [by[(source, n)] for n in sizes if (source, n) in by]
        if len(have) >= 2:
            small, large = have[0], have[-1]
            grow = large["peak_rss_mib"] - small["peak_rss_mib"]
            lines.append(
                f"- {source}: peak {small['peak_rss_mib']:.0f} MiB at {small['cells']:,} cells, "
                f"{large['peak_rss_mib']:.0f} MiB at {large['cells']:,} ({grow:+.0f} MiB for "
                f"{large['cells'] / small['cells']:.1f}x the cells); median step "
                f"{small['median_step_s']:.2f} s / {large['median_step_s']:.2f} s."
            )
    lines += [
        "",
        "Per-cell metadata (obs labels, indices, sampling weights) is tens of bytes per cell, a "
        "few MiB at 100k cells; a streamed source's growth beyond that is not explained by its "
        "buffer, which is full at both sizes (for `h5ad on disk` the larger collection also opens "
        "12 files instead of 2; per-file HDF5/anndata state is a candidate, not verified). The "
        "first step of a streamed source "
        f"includes reading its first buffer. The 1-minute load average was {min(loads):.0f}-"
        f"{max(loads):.0f} on {os.cpu_count()} CPUs while this ran (in each row): "
        "the times are inflated and noisy, and per-step differences between sources of less than "
        "about 2x are within that noise; the memory figures are not affected.",
    ]
    return "\n".join(lines)


def _run(args: list[str], what: str) -> str:
    """Run this script with ``args`` in a fresh process; the last line of its output."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_argument(parser)
    parser.add_argument(
        "--sizes", default="10000,104208", help="cells per collection, comma-separated"
    )
    parser.add_argument("--steps", type=int, default=20, help="training steps per row")
    parser.add_argument(
        "--buffer-mb",
        type=float,
        default=32.0,
        help="read-ahead buffer of the streamed sources (small enough to fill at the smallest size)",
    )
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"sources to measure, from {KINDS}"
    )
    parser.add_argument(
        "--work-dir", default=None, help="folder for the collections (default: a temporary one)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--build", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(**spec)))
        return
    if args.build:
        spec = json.loads(args.build)
        paths, uri = build_collection(Path(spec["data_dir"]), spec["n_cells"], Path(spec["folder"]))
        print(json.dumps({"paths": [str(p) for p in paths], "uri": uri}))
        return
    data_dir = resolve_data_dir(args.data_dir)
    os.environ["SCPRINT_DATA_DIR"] = str(data_dir)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_memory_"))
    rows = []
    try:
        for n_cells in [int(s) for s in args.sizes.split(",")]:
            # built in another process, so that this one stays small while the rows run
            spec = {
                "data_dir": str(data_dir),
                "n_cells": n_cells,
                "folder": str(work / f"cells{n_cells}"),
            }
            built = json.loads(_run(["--build", json.dumps(spec)], f"building {n_cells} cells"))
            paths, uri = built["paths"], built["uri"]
            for kind in args.kinds.split(","):
                spec = {
                    "kind": kind,
                    "paths": [str(p) for p in paths],
                    "uri": uri,
                    "steps": args.steps,
                    "buffer_mb": args.buffer_mb,
                    "out_dir": str(work / f"run_{n_cells}_{kind.replace(' ', '_')}"),
                }
                load = os.getloadavg()[0]
                measured = json.loads(
                    _run(["--child", json.dumps(spec)], f"{kind} at {n_cells} cells")
                )
                row = {
                    "source": kind,
                    "cells": n_cells,
                    "files": len(paths) if "h5ad" in kind else 1,
                }
                row |= measured
                row["load_avg_1min"] = round(max(load, os.getloadavg()[0]), 2)
                log.info("%s", row)
                rows.append(row)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    notes = summarise(rows, args.steps, args.buffer_mb)
    write_results("training_memory", rows, notes)


if __name__ == "__main__":
    main()
