"""bengrn's tree and correlation baselines side by side, sized for a 2-core shared machine.

Parts (``--part``, all by default):

* ``grnboost2``: GRNBoost2, ours (compiled, 2 threads) vs ``backend="sklearn"`` (2 processes) vs
  arboreto 0.1.6 (its peer virtualenv, ``_arboreto.py``, ``LocalCluster`` of 2 worker processes),
  on BEELINE dyn-LL (18 genes, all regulators) and on McCalla hESC (Chen, the ``--hesc-genes``
  most expressed genes plus the TFs, the TFs as regulators): wall time, and how
  closely each network's per-target importances correlate with arboreto's (against arboreto's own
  second seed); AUPRC / EPR of each network on the task.
* ``dask``: GENIE3 and GRNBoost2 on a ``LocalCluster`` of 2 worker processes vs threads: equal
  output and the overhead.
* ``pearson``: streamed Pearson on generated sparse counts (``--pearson-cells`` x 2,000 genes,
  2% non-zero) vs numpy's dense ``corrcoef`` on the largest size run here: time, peak memory.

    python benchmarks/bengrn/bench_baselines.py [--part grnboost2,dask,pearson]

Writes ``benchmarks/results/bengrn_baselines.{json,md}``. The machine's 2 cores were shared with
other jobs: every row records the 1-minute load average after it (above 2 = shared cores, wall
times inflated).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _arboreto import arboreto_missing_reason, run_arboreto  # noqa: E402
from _common import data_dir_argument, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.bengrn")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _per_target_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over targets (columns) with any weight of the Pearson correlation of the columns."""
    values = []
    for j in range(a.shape[1]):
        if a[:, j].std() > 0 and b[:, j].std() > 0:
            values.append(np.corrcoef(a[:, j], b[:, j])[0, 1])
    return float(np.mean(values))


def _arboreto_network(X, tfs, seed, workers=2) -> tuple[np.ndarray, float]:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.npz"
        np.savez(path, X=X, tfs=tfs, targets=np.arange(X.shape[1]), seed=seed)
        edges_path = Path(tmp) / "edges.tsv"
        info = run_arboreto("grnboost2", str(path), str(edges_path), str(workers))
        edges = pd.read_csv(edges_path, sep="\t")
    W = np.zeros((X.shape[1], X.shape[1]))
    W[edges["TF"].str[1:].astype(int), edges["target"].str[1:].astype(int)] = edges["importance"]
    return W, info["seconds"]


def _scores(task, unit, adata, W) -> dict[str, float]:
    import scipy.sparse as sp

    import grnndata

    grn = grnndata.GRNAnnData.from_matrix(
        sp.csr_matrix(W.astype(np.float32)), list(adata.var_names)
    )
    row = task.run(grn, unit).to_frame().iloc[0]
    return {"variant": row.get("variant", ""), "auprc": row.get("auprc"), "epr": row.get("epr")}


def part_grnboost2(rows: list[dict], hesc_genes: int) -> None:
    from bengrn.methods import grnboost2
    from bengrn.methods._common import expression_matrix, regulator_indices
    from bengrn.tasks import get_task

    reason = arboreto_missing_reason()
    sets = []
    beeline = get_task("beeline-synthetic")
    unit = next(u for u in beeline.units() if u.endswith("dyn-LL"))
    sets.append(("BEELINE dyn-LL", beeline, unit, beeline.expression(unit), None))
    hesc = get_task("mccalla-hesc", n_genes=hesc_genes)
    adata = hesc.expression()
    regs = hesc.regulators()
    sets.append((f"hESC Chen, {adata.n_vars} genes, {len(regs)} TFs", hesc, None, adata, regs))
    for label, task, task_unit, adata, regulators in sets:
        X = expression_matrix(adata)
        genes = adata.var_names.astype(str)
        tfs = (
            np.arange(len(genes))
            if regulators is None
            else regulator_indices(__import__("pandas").Index(genes), regulators)
        )
        networks = {}
        for name, kwargs in (
            ("bengrn compiled, 2 threads", dict(backend="compiled", n_jobs=2)),
            ("bengrn sklearn, 2 processes", dict(backend="sklearn", n_jobs=2)),
        ):
            start = time.perf_counter()
            W = grnboost2(adata, regulators=regulators, seed=0, **kwargs).grn.toarray()
            networks[name] = (W, time.perf_counter() - start)
        if reason is None:
            networks["arboreto 0.1.6, LocalCluster 2 processes"] = _arboreto_network(X, tfs, 777)
            arboreto_2, _ = _arboreto_network(X, tfs, 778)
        else:
            log.warning("arboreto not run: %s", reason)
        for name, (W, seconds) in networks.items():
            row = {
                "part": "grnboost2",
                "data": label,
                "method": name,
                "seconds": round(seconds, 2),
                "load_avg_1min": _load(),
            }
            if reason is None:
                reference = networks["arboreto 0.1.6, LocalCluster 2 processes"][0]
                other = arboreto_2 if name.startswith("arboreto") else reference
                row["corr_with_arboreto_per_target"] = round(_per_target_correlation(W, other), 3)
            try:
                row.update(_scores(task, task_unit, adata, W))
            except Exception as err:  # noqa: BLE001 - a scoring failure is recorded, not fatal
                row["score_error"] = f"{type(err).__name__}: {err}"[:120]
            rows.append(row)
            log.info("%s", row)


def part_dask(rows: list[dict]) -> None:
    import distributed

    from bengrn import datasets
    from bengrn.methods import genie3, grnboost2

    adata, _ = datasets.load_beeline("beeline-synthetic-dyn-LL")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(lambda: None)
        for name, fn, kwargs in (
            ("genie3 (100 trees)", genie3, {}),
            ("grnboost2", grnboost2, {}),
        ):
            start = time.perf_counter()
            local = fn(adata, n_jobs=2, seed=0, **kwargs).grn.toarray()
            t_threads = time.perf_counter() - start
            start = time.perf_counter()
            remote = fn(adata, seed=0, client=client, **kwargs).grn.toarray()
            t_dask = time.perf_counter() - start
            rows.append(
                {
                    "part": "dask",
                    "data": "BEELINE dyn-LL (18 genes, 2,000 cells)",
                    "method": name,
                    "seconds_threads_2": round(t_threads, 2),
                    "seconds_localcluster_2_processes": round(t_dask, 2),
                    "identical": bool(np.array_equal(local, remote)),
                    "load_avg_1min": _load(),
                }
            )
            log.info("%s", rows[-1])


def part_projection(rows: list[dict], n_targets: int) -> None:
    """GRNBoost2 at genome scale: 20,000 genes x 10,000 cells, 1,600 regulators; ``n_targets``
    targets timed on 2 threads, the whole genome extrapolated."""
    from concurrent.futures import ThreadPoolExecutor

    import anndata as ad
    import scipy.sparse as sp

    from bengrn.methods._boosting import rank_levels
    from bengrn.methods._common import expression_matrix
    from bengrn.methods._forest import feature_ranks
    from bengrn.methods.trees import _Regressions

    demo = ad.read_h5ad(
        Path(os.environ["SCPRINT_DATA_DIR"]) / "scrna" / "celltypist_demo_559cells.h5ad"
    )
    counts = sp.csr_matrix(demo.X, dtype=np.float32)
    order = np.argsort(-np.asarray(counts.sum(axis=0)).ravel(), kind="stable")[:20_000]
    counts = counts[:, np.sort(order)]
    rng = np.random.default_rng(0)
    repeats = -(-10_000 // counts.shape[0])
    cells = sp.vstack([counts] * repeats)[:10_000].tocsr()
    cells.data = rng.poisson(cells.data * rng.uniform(0.8, 1.2, size=cells.nnz)).astype(np.float32)
    cells.eliminate_zeros()
    adata = ad.AnnData(cells)
    start = time.perf_counter()
    X = expression_matrix(adata)
    reg_idx = np.sort(rng.choice(X.shape[1], size=1_600, replace=False))
    ranks = feature_ranks(X[:, reg_idx])
    levels = rank_levels(X[:, reg_idx], ranks)
    prepare = time.perf_counter() - start
    options = dict(
        n_estimators=5000, learning_rate=0.01, max_features=0.1, subsample=0.9, max_depth=3,
        early_stopping_rounds=25,
    )  # fmt: skip
    problem = _Regressions("grnboost2", "compiled", X, reg_idx, options, 0, ranks, levels)
    targets = rng.choice(np.setdiff1d(np.arange(X.shape[1]), reg_idx), n_targets, replace=False)
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(problem.fit_batch, [[j] for j in targets]))
    seconds = time.perf_counter() - start
    rows.append(
        {
            "part": "projection",
            "data": "20,000 genes x 10,000 cells (CellTypist demo cells repeated, Poisson noise)",
            "method": "bengrn grnboost2 compiled, 2 threads, 1,600 random regulators",
            "targets_timed": n_targets,
            "seconds": round(seconds, 1),
            "seconds_prepare_transform_and_ranks": round(prepare, 1),
            "projected_hours_20000_targets": round(seconds / n_targets * 20_000 / 3600, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "load_avg_1min": _load(),
        }
    )
    log.info("%s", rows[-1])


_PEARSON_CHILD = """
import resource, sys, time, numpy as np, scipy.sparse as sp, anndata as ad
kind, n_cells, n_genes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
per_cell = n_genes // 50  # 2% non-zero: counts 1-10 at random genes of each cell
indices = np.sort(rng.integers(0, n_genes, size=(n_cells, per_cell), dtype=np.int32), axis=1)
data = rng.integers(1, 11, size=n_cells * per_cell).astype(np.float32)
indptr = np.arange(0, n_cells * per_cell + 1, per_cell, dtype=np.int64)
X = sp.csr_matrix((data, indices.ravel(), indptr), shape=(n_cells, n_genes))
X.sum_duplicates()
del indices, data
import tracemalloc
input_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
tracemalloc.start()
start = time.perf_counter()
if kind == "streamed":
    from bengrn.methods import pearson
    adata = ad.AnnData(X)
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    pearson(adata, transform="none", top_k=50)
else:
    np.corrcoef(X.toarray(), rowvar=False)
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1] / 2**20
print(seconds, input_mb, traced)
"""


def part_pearson(rows: list[dict], sizes: list[tuple[str, int]]) -> None:
    for kind, n_cells in sizes:
        done = subprocess.run(
            [sys.executable, "-c", _PEARSON_CHILD, kind, str(n_cells), "2000"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            rows.append(
                {"part": "pearson", "method": kind, "cells": n_cells, "error": done.stderr[-200:]}
            )
            continue
        seconds, input_mb, traced = map(float, done.stdout.split())
        rows.append(
            {
                "part": "pearson",
                "data": f"{n_cells:,} x 2,000 sparse (2% non-zero, generated counts, transform none)",
                "method": "bengrn pearson (streamed, top_k=50)"
                if kind == "streamed"
                else "numpy corrcoef (dense)",
                "seconds": round(seconds, 2),
                "input_csr_mb": round(input_mb),
                "peak_allocated_mb_during_call": round(traced),
                "load_avg_1min": _load(),
            }
        )
        log.info("%s", rows[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_argument(parser)
    parser.add_argument("--part", default="grnboost2,dask,projection,pearson")
    parser.add_argument("--hesc-genes", type=int, default=1000)
    parser.add_argument("--projection-targets", type=int, default=100)
    parser.add_argument("--results-name", default="bengrn_baselines")
    parser.add_argument("--pearson-cells", type=int, default=1_000_000)
    parser.add_argument("--dense-cells", type=int, default=50_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ["SCPRINT_DATA_DIR"] = str(resolve_data_dir(args.data_dir))
    rows: list[dict] = []
    parts = args.part.split(",")
    if "grnboost2" in parts:
        part_grnboost2(rows, args.hesc_genes)
    if "dask" in parts:
        part_dask(rows)
    if "projection" in parts:
        part_projection(rows, args.projection_targets)
    if "pearson" in parts:
        part_pearson(
            rows,
            [
                ("streamed", args.dense_cells),
                ("dense", args.dense_cells),
                ("streamed", args.pearson_cells),
            ],
        )
    notes = (
        "Wall times on a 2-core machine shared with other jobs (`load_avg_1min` > 2 = the cores "
        "were shared; times are inflated and only comparable within a row group). Peak memory = "
        "the benchmark process's max RSS (projection); for Pearson (a child process per row, whose "
        "max RSS Linux inherits from its parent) `peak_allocated_mb_during_call` = numpy/Python "
        "allocations traced (tracemalloc) during the correlation call alone. "
        "arboreto 0.1.6 ran in benchmarks/.peer-venvs/arboreto016 (dask/distributed 2023.12.1, "
        "scikit-learn 1.9.1), seeds 777 and 778; ours seed 0. `corr_with_arboreto_per_target`: "
        "mean over targets of the Pearson correlation of the importance columns with arboreto's "
        "seed-777 network (arboreto's own row: its seed 778 vs 777)."
    )
    write_results(args.results_name, rows, notes)


if __name__ == "__main__":
    main()
