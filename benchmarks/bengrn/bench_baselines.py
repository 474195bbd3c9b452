"""bengrn's tree and correlation baselines side by side, sized for 2 CPU cores.

Parts (``--part``, all by default; a run of some parts keeps the other parts' rows of the
results file, and the notes give each part's command):

* ``grnboost2``: GRNBoost2, ours (compiled, 2 threads) vs ``backend="sklearn"`` (2 processes) vs
  arboreto 0.1.6 (its peer virtualenv, ``_arboreto.py``, ``LocalCluster`` of 2 worker processes),
  on BEELINE dyn-LL (18 genes, all regulators) and on McCalla hESC (Chen, all genes by default or
  the ``--hesc-genes`` most expressed plus the TFs; the TFs as regulators). Ours runs every
  target; the two slow implementations run ``--hesc-target-subset`` random targets (features and
  regulators unchanged) and their time is extrapolated linearly to all targets. Wall time, the
  per-target correlation of importances with arboreto's (against arboreto's own second seed) and
  AUPRC / EPR, all on the common target subset (ours also on all targets).
* ``dask``: GENIE3 and GRNBoost2 on a ``LocalCluster`` of 2 worker processes vs threads: equal
  output and the overhead.
* ``projection``: GENIE3 and GRNBoost2 at 20,000 genes x 10,000 cells with the human TFs as
  regulators, on a ``LocalCluster`` of 2 worker processes: a few random targets timed, the whole
  genome extrapolated, peak RSS per worker.
* ``pearson``: streamed Pearson on generated sparse counts (``--pearson-cells`` x 2,000 genes,
  2% non-zero) vs numpy's dense ``corrcoef`` at ``--dense-cells``: time, peak memory.

    python benchmarks/bengrn/bench_baselines.py [--part grnboost2,dask,projection,pearson]

Writes ``benchmarks/results/bengrn_baselines.{json,md}``. Every row records the 1-minute load
average after it (above the number of cores = busy cores, wall times inflated).
"""

from __future__ import annotations

import argparse
import logging
import os
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

_PARTS = ("shapes", "compile", "grnboost2", "dask", "projection", "pearson")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _per_target_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over targets (columns) with any weight of the Pearson correlation of the columns."""
    values = []
    for j in range(a.shape[1]):
        if a[:, j].std() > 0 and b[:, j].std() > 0:
            values.append(np.corrcoef(a[:, j], b[:, j])[0, 1])
    return float(np.mean(values))


def _arboreto_network(X, tfs, seed, targets, workers=2) -> tuple[np.ndarray, float]:
    """arboreto's GRNBoost2 network ``(genes, genes)`` for ``targets`` (other columns 0), and
    its wall time (the dask graph's computation, cluster start and stop excluded)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.npz"
        np.savez(path, X=X, tfs=tfs, targets=targets, seed=seed)
        edges_path = Path(tmp) / "edges.tsv"
        info = run_arboreto("grnboost2", str(path), str(edges_path), str(workers))
        edges = pd.read_csv(edges_path, sep="\t")
    W = np.zeros((X.shape[1], X.shape[1]))
    W[edges["TF"].str[1:].astype(int), edges["target"].str[1:].astype(int)] = edges["importance"]
    return W, info["seconds"]


def _bengrn_network(adata, regulators, targets, backend) -> tuple[np.ndarray, float]:
    """Our GRNBoost2 network for ``targets`` (2 threads compiled, 2 processes sklearn; the other
    columns 0) and its wall time."""
    from bengrn.methods import grnboost2

    names = None if len(targets) == adata.n_vars else list(adata.var_names[targets])
    start = time.perf_counter()
    net = grnboost2(adata, regulators=regulators, targets=names, seed=0, backend=backend, n_jobs=2)
    return net.grn.toarray(), time.perf_counter() - start


def _scores(task, unit, adata, W, targets=None) -> dict[str, float]:
    """AUPRC / EPR of ``W`` on ``task``; with ``targets``, of the sub-network over the
    regulators (rows with any weight) and ``targets``."""
    import scipy.sparse as sp

    import grnndata

    keep = np.arange(adata.n_vars)
    if targets is not None:  # only the targets' columns: a full network has the others too
        W = np.where(np.isin(np.arange(adata.n_vars), targets), W, 0.0)
        keep = np.union1d(targets, np.flatnonzero(W.any(axis=1)))
    grn = grnndata.GRNAnnData.from_matrix(
        sp.csr_matrix(W[np.ix_(keep, keep)].astype(np.float32)), list(adata.var_names[keep])
    )
    row = task.run(grn, unit).to_frame().iloc[0]
    return {"variant": row.get("variant", ""), "auprc": row.get("auprc"), "epr": row.get("epr")}


def _per_target_correlations(a: np.ndarray, b: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Pearson correlation of the importance columns ``targets`` of ``a`` and ``b`` (targets
    with a constant column in either left out)."""
    values = []
    for j in targets:
        if a[:, j].std() > 0 and b[:, j].std() > 0:
            values.append(np.corrcoef(a[:, j], b[:, j])[0, 1])
    return np.asarray(values)


def _sergio(name: str):
    """SERGIO ``name`` (``"DS6"``): noise-free total expression (cells x 100 genes, replicate 0)
    and its true network as a ``(genes, genes)`` 0/1 matrix, rows = regulators."""
    import anndata as ad
    import pandas as pd

    root = Path(os.environ["SCPRINT_DATA_DIR"]) / "simulated" / "sergio"
    folder = next(root.glob(f"*_{name}"))
    expression = pd.read_csv(folder / "simulated_noNoise_T_0.csv.gz", index_col=0)
    adata = ad.AnnData(np.ascontiguousarray(expression.to_numpy(np.float32).T))
    adata.var_names = [f"g{int(g)}" for g in expression.index]
    truth = np.zeros((adata.n_vars, adata.n_vars))
    edges = pd.read_csv(folder / "gt_GRN.csv", header=None).to_numpy(int)
    truth[edges[:, 0], edges[:, 1]] = 1
    return adata, truth


def _shape_sets(hesc_targets: int, sergio_targets: int) -> list[tuple]:
    """``(label, adata, regulators, targets, score)`` for every shape of the agreement and speed
    part; ``score(W, targets)`` = AUPRC of the network against the shape's truth."""
    from sklearn.metrics import average_precision_score

    from bengrn.tasks import get_task

    sets = []

    def task_score(task, unit, adata):
        def score(W, targets):
            cols = None if len(targets) == adata.n_vars else targets
            return _scores(task, unit, adata, W, cols)["auprc"]

        return score

    for kind in ("synthetic", "curated"):
        task = get_task(f"beeline-{kind}")
        names = ["dyn-LL"] if kind == "synthetic" else ["GSD", "HSC", "VSC", "mCAD"]
        for unit in task.units():
            if unit.split("/")[-1] in names:
                adata = task.expression(unit)
                label = f"BEELINE {kind} {unit.split('/')[-1]} ({adata.n_vars} genes x {adata.n_obs:,} cells)"
                sets.append(
                    (label, adata, None, np.arange(adata.n_vars), task_score(task, unit, adata))
                )
    for name in ("DS6", "DS8"):
        adata, truth = _sergio(name)

        def score(W, targets, truth=truth):
            mask = np.zeros(truth.shape, dtype=bool)
            mask[:, targets] = True
            np.fill_diagonal(mask, False)
            return float(average_precision_score(truth[mask], W[mask]))

        targets = np.sort(
            np.random.default_rng(0).choice(adata.n_vars, sergio_targets, replace=False)
        )
        label = f"SERGIO {name} noise-free total ({adata.n_vars} genes x {adata.n_obs:,} cells)"
        sets.append((label, adata, None, targets, score))
    hesc = get_task("mccalla-hesc")
    adata = hesc.expression()
    targets = np.sort(np.random.default_rng(0).choice(adata.n_vars, hesc_targets, replace=False))
    regs = hesc.regulators()
    label = f"hESC Chen ({adata.n_vars:,} genes x {adata.n_obs} cells, {len(regs)} TF regulators)"
    sets.append((label, adata, regs, targets, task_score(hesc, None, adata)))
    return sets


_OPTIONS = {  # the public defaults of grnboost2() (arboreto's) and genie3()
    "grnboost2": dict(
        n_estimators=5000,
        learning_rate=0.01,
        max_features=0.1,
        subsample=0.9,
        max_depth=3,
        early_stopping_rounds=25,
    ),  # fmt: skip
    "genie3": dict(n_trees=100, max_features="sqrt"),
}


def _timed(kind, adata, regulators, targets, seed, backend="compiled", splits="hist", trees=100):
    """The network of ``targets`` (other columns 0) fitted one target after the other on this
    thread by the regressions behind ``genie3`` / ``grnboost2`` (:class:`_Regressions`, the code
    their ``n_jobs`` threads, processes and dask workers run), with the fitting's wall and CPU
    seconds; the shared preparation (bins, or ranks for exact splits) is timed apart."""
    import pandas as pd

    from bengrn.methods._bins import bin_features
    from bengrn.methods._boosting import rank_levels
    from bengrn.methods._common import expression_matrix, regulator_indices
    from bengrn.methods._forest import feature_ranks
    from bengrn.methods.trees import _Regressions

    X = expression_matrix(adata)
    reg_idx = regulator_indices(pd.Index(adata.var_names.astype(str)), regulators)
    options = dict(_OPTIONS[kind], **({"n_trees": trees} if kind == "genie3" else {}))
    prep = time.perf_counter()
    ranks = levels = bins = None
    if backend == "compiled" and splits == "hist":
        bins = bin_features(X[:, reg_idx])
    elif backend == "compiled":
        ranks = feature_ranks(X[:, reg_idx])
        levels = rank_levels(X[:, reg_idx], ranks) if kind == "grnboost2" else None
    prep = time.perf_counter() - prep
    problem = _Regressions(kind, backend, X, reg_idx, options, seed, ranks, levels, bins)
    columns = {}
    wall, cpu = time.perf_counter(), time.process_time()
    for j in targets:
        columns[int(j)] = problem.fit(int(j))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # the network is assembled after the clock stops: writing the columns into a fresh dense
    # genes x genes matrix (590 MB for hESC) page-faults, which is not fitting
    W = np.zeros((adata.n_vars, adata.n_vars))
    for j, importances in columns.items():
        if importances is not None:
            W[reg_idx, j] = importances
    return W, wall, cpu, prep


def part_shapes(
    rows: list[dict],
    hesc_targets: int,
    sergio_targets: int,
    genie3_trees: int,
    timing_rounds: int = 1,
) -> None:
    """Per shape and method, one thread, interleaved: ours binned (default), ours exact
    (``splits="exact"``), scikit-learn (``backend="sklearn"``, seeds 1 and 2, the reference
    algorithm); time, per-target correlation with the reference's seed 1 next to its own seed 2,
    and AUPRC against the shape's truth, all on the same targets."""
    _warm_up()
    for label, adata, regulators, targets, score in _shape_sets(hesc_targets, sergio_targets):
        for kind in ("grnboost2", "genie3"):
            common = dict(trees=genie3_trees)
            kwargs = {"n_trees": genie3_trees} if kind == "genie3" else {}
            load_before = _load()
            runs = {}  # interleaved: ours, reference, ours exact, reference again
            runs["hist"] = _timed(kind, adata, regulators, targets, 0, **common)
            runs["sklearn_1"] = _timed(kind, adata, regulators, targets, 1, "sklearn", **common)
            runs["exact"] = _timed(kind, adata, regulators, targets, 0, splits="exact", **common)
            runs["sklearn_2"] = _timed(kind, adata, regulators, targets, 2, "sklearn", **common)
            reference = runs["sklearn_1"][0]
            sk_cpu = (runs["sklearn_1"][2] + runs["sklearn_2"][2]) / 2
            # further rounds time ours (binned) and the reference (seed 1) again, interleaved:
            # one CPU ratio per round, the first from the runs above
            ratios = [sk_cpu / runs["hist"][2]]
            for _ in range(timing_rounds - 1):
                ours = _timed(kind, adata, regulators, targets, 0, **common)[2]
                theirs = _timed(kind, adata, regulators, targets, 1, "sklearn", **common)[2]
                ratios.append(theirs / ours)
            sk_wall = (runs["sklearn_1"][1] + runs["sklearn_2"][1]) / 2
            seeds_r = _per_target_correlations(runs["sklearn_2"][0], reference, targets)
            for name, title in (
                ("hist", "bengrn compiled, splits='hist' (default)"),
                ("exact", "bengrn compiled, splits='exact'"),
                ("sklearn_2", "bengrn backend='sklearn' (reference), seed 2"),
            ):
                W, wall, cpu, prep = runs[name]
                r = _per_target_correlations(W, reference, targets)
                row = {
                    "part": "shapes",
                    "data": label,
                    "method": f"{kind}: {title}",
                    "settings": str(kwargs or "arboreto defaults"),
                    "targets_run": len(targets),
                    "seconds": round(wall, 2),
                    "cpu_seconds": round(cpu, 2),
                    "seconds_shared_bins_or_ranks": round(prep, 3),
                    "speedup_vs_sklearn_cpu": round(sk_cpu / cpu, 2),
                    "speedup_vs_sklearn_wall": round(sk_wall / wall, 2),
                    "corr_with_reference_per_target": round(float(r.mean()), 3),
                    "reference_seed_to_seed_corr": round(float(seeds_r.mean()), 3),
                    "agrees_within_0.02": bool(r.mean() >= seeds_r.mean() - 0.02),
                    "auprc": round(score(W, targets), 4),
                    "auprc_reference_seed1": round(score(reference, targets), 4),
                    "load_avg_1min_before": load_before,
                    "load_avg_1min": _load(),
                }
                if name == "hist" and timing_rounds > 1:
                    row["speedup_vs_sklearn_cpu_rounds"] = [round(x, 2) for x in ratios]
                    row["speedup_vs_sklearn_cpu_median"] = round(float(np.median(ratios)), 2)
                rows.append(row)
                log.info("%s", row)


_COMPILE_CHILD = """
import os, sys, tempfile, time
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()  # an empty cache: everything compiles
import numpy as np
start = time.perf_counter()
from bengrn.methods._bins import bin_features
from bengrn.methods._boosting import boosting_importances
from bengrn.methods._forest import forest_importances
imported = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.random((200, 10)).astype(np.float32)
bins = bin_features(X)
forest_importances(bins, np.arange(10), rng.random(200), n_trees=2, max_features=3, seed=0)
boosting_importances(bins, None, np.arange(10), rng.random(200), max_features=3, seed=0,
                     n_estimators=30)
print(imported - start, time.perf_counter() - imported)
"""


def part_compile(rows: list[dict]) -> None:
    """numba compile time of the binned builders (an empty cache in a child process); the timed
    parts exclude it (builders loaded before timing)."""
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_CHILD], capture_output=True, text=True, check=True
    )
    imported, compiled = map(float, done.stdout.split())
    rows.append(
        {
            "part": "compile",
            "data": "200 x 10 generated values (first call of each builder)",
            "method": "numba compile of bin_features, forest_importances, boosting_importances (binned)",
            "seconds": round(compiled, 1),
            "seconds_import": round(imported, 1),
            "load_avg_1min": _load(),
        }
    )
    log.info("%s", rows[-1])


def part_grnboost2(rows: list[dict], hesc_genes: int, subset: int) -> None:
    """GRNBoost2 three ways. On hESC, ours (compiled) runs every target; the slow
    implementations (sklearn backend, arboreto) run a random ``subset`` of targets (features and
    regulators unchanged), their time extrapolated linearly to every target; correlations and
    AUPRC / EPR of all three are then computed on that subset (sub-network regulators x subset)."""
    import pandas as pd

    from bengrn.methods._common import expression_matrix, regulator_indices
    from bengrn.tasks import get_task

    reason = arboreto_missing_reason()
    if reason is not None:
        log.warning("arboreto not run: %s", reason)
    _warm_up()  # numba's disk cache loaded before timing, as arboreto's workers import sklearn
    sets = []
    beeline = get_task("beeline-synthetic")
    unit = next(u for u in beeline.units() if u.endswith("dyn-LL"))
    sets.append(("BEELINE dyn-LL", beeline, unit, beeline.expression(unit), None, None))
    hesc = get_task("mccalla-hesc", n_genes=hesc_genes or None)
    adata = hesc.expression()
    regs = hesc.regulators()
    scope = "all genes" if not hesc_genes else f"top {hesc_genes} genes + TFs"
    label = f"hESC Chen, {adata.n_vars} genes ({scope}), {len(regs)} TF regulators"
    sample = None
    if subset and subset < adata.n_vars:
        sample = np.sort(np.random.default_rng(0).choice(adata.n_vars, subset, replace=False))
    sets.append((label, hesc, None, adata, regs, sample))
    arboreto = "arboreto 0.1.6, LocalCluster 2 processes"
    for label, task, task_unit, adata, regulators, sample in sets:
        X = expression_matrix(adata)
        genes = pd.Index(adata.var_names.astype(str))
        tfs = regulator_indices(genes, regulators)
        every = np.arange(adata.n_vars)
        slow_targets = every if sample is None else sample
        networks = {}  # name -> (W, seconds, targets run)
        W, seconds = _bengrn_network(adata, regulators, every, "compiled")
        networks["bengrn compiled (splits='hist'), 2 threads"] = (W, seconds, every)
        if sample is not None:
            W, seconds = _bengrn_network(adata, regulators, sample, "compiled")
            subset_label = "bengrn compiled (splits='hist'), 2 threads (target subset)"
            networks[subset_label] = (W, seconds, sample)
        W, seconds = _bengrn_network(adata, regulators, slow_targets, "sklearn")
        networks["bengrn sklearn, 2 processes"] = (W, seconds, slow_targets)
        if reason is None:
            W, seconds = _arboreto_network(X, tfs, 777, slow_targets)
            networks[arboreto] = (W, seconds, slow_targets)
            arboreto_2, _ = _arboreto_network(X, tfs, 778, slow_targets)
        n_all = adata.n_vars
        arboreto_all = None
        if arboreto in networks:
            arboreto_all = networks[arboreto][1] * n_all / len(networks[arboreto][2])
        for name, (W, seconds, targets) in networks.items():
            row = {
                "part": "grnboost2",
                "data": label,
                "method": name,
                "targets_run": len(targets),
                "seconds": round(seconds, 2),
                "seconds_all_targets": round(seconds * n_all / len(targets), 1),
                "all_targets_time": "measured" if len(targets) == n_all else "extrapolated",
                "load_avg_1min": _load(),
            }
            if arboreto_all:
                row["speedup_vs_arboreto"] = round(arboreto_all / row["seconds_all_targets"], 2)
            scored_on = None if sample is None else sample
            if reason is None:
                other = arboreto_2 if name == arboreto else networks[arboreto][0]
                cols = every if sample is None else sample
                row["corr_with_arboreto_per_target"] = round(
                    _per_target_correlation(W[:, cols], other[:, cols]), 3
                )
            scores = {}
            try:
                scores = _scores(task, task_unit, adata, W, scored_on)
                if sample is not None and len(targets) == n_all:
                    full = _scores(task, task_unit, adata, W)
                    scores.update(auprc_all_targets=full["auprc"], epr_all_targets=full["epr"])
            except Exception as err:  # noqa: BLE001 - a scoring failure is recorded, not fatal
                scores["score_error"] = f"{type(err).__name__}: {err}"[:120]
            if sample is not None:
                scores["scored_on"] = f"TF regulators x the {len(sample)} sampled targets"
            row.update(scores)
            rows.append(row)
            log.info("%s", row)


def part_dask(rows: list[dict]) -> None:
    import distributed

    from bengrn import datasets
    from bengrn.methods import genie3, grnboost2

    adata, _ = datasets.load_beeline("beeline-synthetic-dyn-LL")
    _warm_up()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(_warm_up)  # worker start-up (imports, numba cache) outside the timing
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


def _projection_data(n_genes: int = 20_000, n_cells: int = 10_000):
    """CellTypist demo cells repeated to ``n_cells`` with Poisson noise, on its ``n_genes`` most
    expressed genes including every human TF it measures; returns (AnnData, TF names)."""
    import anndata as ad
    import scipy.sparse as sp

    from bengrn import datasets

    demo = ad.read_h5ad(
        Path(os.environ["SCPRINT_DATA_DIR"]) / "scrna" / "celltypist_demo_559cells.h5ad"
    )
    demo.var_names_make_unique()
    counts = sp.csr_matrix(demo.X, dtype=np.float32)
    is_tf = np.asarray(demo.var_names.isin(datasets.load_tfs("human")))
    mean = np.asarray(counts.mean(axis=0)).ravel()
    others = np.flatnonzero(~is_tf)[np.argsort(-mean[~is_tf], kind="stable")]
    keep = np.sort(np.concatenate([np.flatnonzero(is_tf), others[: n_genes - is_tf.sum()]]))
    counts = counts[:, keep]
    rng = np.random.default_rng(0)
    cells = sp.vstack([counts] * -(-n_cells // counts.shape[0]))[:n_cells].tocsr()
    cells.data = rng.poisson(cells.data * rng.uniform(0.8, 1.2, size=cells.nnz)).astype(np.float32)
    cells.eliminate_zeros()
    adata = ad.AnnData(cells)
    adata.var_names = demo.var_names[keep]
    return adata, list(demo.var_names[keep][is_tf[keep]])


def _warm_up() -> None:
    """Import bengrn and load the compiled tree builders (numba's disk cache) in a worker, so
    that the timed run measures fitting, not worker start-up."""
    from bengrn.methods._bins import bin_features
    from bengrn.methods._boosting import boosting_importances, rank_levels
    from bengrn.methods._forest import feature_ranks, forest_importances

    rng = np.random.default_rng(0)
    X = rng.random((200, 10)).astype(np.float32)
    y = rng.random(200)
    ranks = feature_ranks(X)
    bins = bin_features(X)
    keep = np.arange(10)
    for matrix, levels in ((ranks, rank_levels(X, ranks)), (bins, None)):
        forest_importances(matrix, keep, y, n_trees=2, max_features=3, seed=0)
        boosting_importances(
            matrix, levels, keep, y, max_features=3, seed=0, n_estimators=30,
            learning_rate=0.01, subsample=0.9, max_depth=3, window=25,
        )  # fmt: skip


def _worker_peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``: since its ``exec``; ``getrusage``'s max RSS would
    include the forking parent's, here the 3 GB benchmark process)."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def part_projection(rows: list[dict], targets_by_method: dict[str, int]) -> None:
    """GENIE3 and GRNBoost2 at genome scale: 20,000 genes x 10,000 cells, the human TFs among
    them as regulators, on a fresh ``LocalCluster`` of 2 single-threaded worker processes per
    method (the dask path of ``client=``, workers warmed up first); ``targets_by_method`` random
    targets timed (the problem's scatter included), the whole genome extrapolated from the wall
    time and from the workers' CPU time (what 2 dedicated cores would take), and the peak RSS of
    each worker process read inside it. Default histogram splits: the binned regulators are the
    matrix every target shares."""
    import distributed
    import pandas as pd

    from bengrn.methods._bins import bin_features, bins_nbytes
    from bengrn.methods._common import expression_matrix, regulator_indices
    from bengrn.methods._dask import map_batches
    from bengrn.methods.trees import _fit_batch, _Regressions

    adata, tfs = _projection_data()
    start = time.perf_counter()
    X = expression_matrix(adata)
    reg_idx = regulator_indices(pd.Index(adata.var_names), tfs)
    bins = bin_features(X[:, reg_idx])
    prepare = time.perf_counter() - start
    rng = np.random.default_rng(0)
    varying = np.flatnonzero(X.max(axis=0) > X.min(axis=0))  # constant targets are skipped
    settings = {
        "grnboost2": dict(
            n_estimators=5000,
            learning_rate=0.01,
            max_features=0.1,
            subsample=0.9,
            max_depth=3,
            early_stopping_rounds=25,
        ),  # fmt: skip
        "genie3": dict(n_trees=100, max_features="sqrt"),
    }
    for kind, n_targets in targets_by_method.items():
        problem = _Regressions(kind, "compiled", X, reg_idx, settings[kind], 0, bins=bins)
        targets = np.sort(rng.choice(varying, n_targets, replace=False))
        batches = [targets[i : i + 2] for i in range(0, n_targets, 2)]
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.run(_warm_up)
            idle = client.run(_worker_peak_rss_mb)
            cpu_before = client.run(time.process_time)
            start = time.perf_counter()
            done = sum(
                len(result) for _, result in map_batches(client, _fit_batch, problem, batches)
            )
            seconds = time.perf_counter() - start
            cpu = sum(client.run(time.process_time).values()) - sum(cpu_before.values())
            peaks = client.run(_worker_peak_rss_mb)
        rows.append(
            {
                "part": "projection",
                "data": f"{X.shape[1]:,} genes x {X.shape[0]:,} cells (CellTypist demo cells "
                "repeated, Poisson noise), dense float32 "
                f"{X.nbytes / 2**20:,.0f} MB",
                "method": f"bengrn {kind} compiled, splits='hist' ({settings[kind]}), LocalCluster "
                f"2 worker processes x 1 thread, {len(reg_idx):,} TF regulators",
                "targets_timed": n_targets,
                "targets_fitted": done,
                "genes_not_constant": len(varying),
                "seconds": round(seconds, 1),
                "seconds_prepare_transform_and_bins": round(prepare, 1),
                "binned_regulators_mb": round(bins_nbytes(bins) / 2**20, 1),
                "workers_cpu_seconds": round(cpu, 1),
                "projected_hours_20000_targets": round(seconds / n_targets * X.shape[1] / 3600, 2),
                "projected_hours_20000_targets_2_cores_cpu": round(
                    cpu / n_targets * X.shape[1] / 2 / 3600, 2
                ),
                "worker_peak_rss_mb": sorted(round(v) for v in peaks.values()),
                "worker_idle_rss_mb": sorted(round(v) for v in idle.values()),
                "client_peak_rss_mb": round(_worker_peak_rss_mb()),
                "targets_from": "random non-constant genes; projection = time per target x 20,000",
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
import threading, tracemalloc, psutil
from bengrn.methods import pearson  # imported before the clock starts
input_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
me = psutil.Process()
rss_before = me.memory_info().rss / 2**20
peak = [rss_before]
running = threading.Event()
running.set()
def sample():
    while running.is_set():
        peak[0] = max(peak[0], me.memory_info().rss / 2**20)
        time.sleep(0.02)
sampler = threading.Thread(target=sample)
sampler.start()
tracemalloc.start()
start = time.perf_counter()
if kind == "streamed":
    adata = ad.AnnData(X)
    adata.var_names = [f"g{i}" for i in range(n_genes)]
    pearson(adata, transform="none", top_k=50)
else:
    np.corrcoef(X.toarray(), rowvar=False)
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1] / 2**20
running.clear()
sampler.join()
print(seconds, input_mb, traced, rss_before, peak[0])
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
        seconds, input_mb, traced, rss_before, rss_peak = map(float, done.stdout.split())
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
                "rss_mb_before_call": round(rss_before),
                "peak_rss_mb_during_call": round(rss_peak),
                "load_avg_1min": _load(),
            }
        )
        log.info("%s", rows[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_argument(parser)
    parser.add_argument(
        "--part",
        default=",".join(_PARTS),
        help="comma-separated parts to run; the other parts' rows are kept from the results file",
    )
    parser.add_argument(
        "--hesc-genes", type=int, default=0, help="hESC: most expressed genes + TFs (0 = all genes)"
    )
    parser.add_argument(
        "--hesc-target-subset",
        type=int,
        default=1000,
        help="hESC: random targets run by the slow implementations (0 = all), time extrapolated",
    )
    parser.add_argument("--shape-hesc-targets", type=int, default=40, help="shapes: hESC targets")
    parser.add_argument(
        "--shape-sergio-targets", type=int, default=25, help="shapes: SERGIO targets per set"
    )
    parser.add_argument(
        "--shape-timing-rounds",
        type=int,
        default=1,
        help="shapes: rounds of interleaved timing of ours (binned) vs scikit-learn; each gives "
        "one CPU ratio, the median is reported next to the first",
    )
    parser.add_argument("--genie3-trees", type=int, default=100, help="shapes: GENIE3 trees")
    parser.add_argument("--projection-targets", type=int, default=100, help="GRNBoost2 targets")
    parser.add_argument("--projection-genie3-targets", type=int, default=20)
    parser.add_argument("--results-name", default="bengrn_baselines")
    parser.add_argument("--pearson-cells", type=int, default=1_000_000)
    parser.add_argument(
        "--dense-cells",
        type=int,
        default=150_000,
        help="cells of the dense corrcoef row (float64 copy: 16 kB per cell at 2,000 genes)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ["SCPRINT_DATA_DIR"] = str(resolve_data_dir(args.data_dir))
    rows: list[dict] = []
    parts = args.part.split(",")
    unknown = sorted(set(parts) - set(_PARTS))
    if unknown:
        parser.error(f"unknown --part {unknown}; expected some of {list(_PARTS)}")
    if "shapes" in parts:
        part_shapes(
            rows,
            args.shape_hesc_targets,
            args.shape_sergio_targets,
            args.genie3_trees,
            args.shape_timing_rounds,
        )
    if "compile" in parts:
        part_compile(rows)
    if "grnboost2" in parts:
        part_grnboost2(rows, args.hesc_genes, args.hesc_target_subset)
    if "dask" in parts:
        part_dask(rows)
    if "projection" in parts:
        part_projection(
            rows,
            {"grnboost2": args.projection_targets, "genie3": args.projection_genie3_targets},
        )
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
        "shapes: per shape and method, one thread, run interleaved in one process: ours with "
        "histogram splits (the default), ours with exact splits, and backend='sklearn' (the "
        "reference algorithm: scikit-learn's RandomForestRegressor for GENIE3, "
        "GradientBoostingRegressor with arboreto's monitor for GRNBoost2) with seeds 1 and 2; "
        "`cpu_seconds` = the per-target fitting only (the regressions every backend runs; the "
        "shared bins / ranks are `seconds_shared_bins_or_ranks`, the expression transform and "
        "network assembly, equal for all, are left out; numba compile excluded, see the compile "
        "part); `speedup_vs_sklearn_cpu` = mean CPU of the two scikit-learn runs / this row's; "
        "with `--shape-timing-rounds` N > 1, ours (binned) and the reference (seed 1) are timed "
        "again, interleaved, N - 1 times: `speedup_vs_sklearn_cpu_rounds` lists one CPU ratio "
        "per round (the first = `speedup_vs_sklearn_cpu`), `speedup_vs_sklearn_cpu_median` is "
        "their median (the cores are shared, so one round's ratio can be off by 15% either way); "
        "`corr_with_reference_per_target` = mean over the targets of the Pearson correlation of "
        "the importance column with the reference's seed-1 network, next to the reference's own "
        "seed 2 (`reference_seed_to_seed_corr`); `agrees_within_0.02` = the row's correlation is "
        ">= the seed-to-seed one - 0.02; `auprc` against the shape's truth on the targets run "
        "(BEELINE and hESC through the bengrn tasks, SERGIO over the regulator x target pairs of "
        "gt_GRN.csv). SERGIO: only DS6 and DS8 have expression in the data folder (DS1-DS5, DS7: "
        "networks only). projection: `projected_hours_20000_targets_2_cores_cpu` = the workers' "
        "CPU seconds per target x 20,000 / 2 cores, what 2 dedicated cores would take; "
        "`projected_hours_20000_targets` extrapolates the wall time under the recorded load. "
        "Wall times on 2 cores under load (`load_avg_1min` > 2 = the cores were busy; times are "
        "inflated, unevenly, and only comparable within a row group). grnboost2 on hESC: `seconds_all_targets` is measured for our compiled run and "
        "extrapolated linearly from the target subset (`targets_run`) for the others, and "
        "`speedup_vs_arboreto` compares those all-target times; `corr_with_arboreto_per_target`, "
        "`auprc`, `epr` are on the subset (`scored_on`), `auprc_all_targets` / `epr_all_targets` "
        "on our full network. arboreto 0.1.6 ran in benchmarks/.peer-venvs/arboreto016 "
        "(dask/distributed 2023.12.1, scikit-learn 1.9.1; its own `create_graph` with "
        "`target_genes` for a subset), seeds 777 and 778; ours seed 0; "
        "`corr_with_arboreto_per_target`: mean over targets of the Pearson correlation of the "
        "importance columns with arboreto's seed-777 network (arboreto's own row: its seed 778). "
        "Our numba builders are loaded before timing (arboreto's time likewise excludes its "
        "cluster start). Projection: `worker_peak_rss_mb` = each worker process's max RSS "
        "(getrusage inside the worker, after the run), `worker_idle_rss_mb` before it. Pearson: a "
        "child process per row; `peak_rss_mb_during_call` = its RSS sampled every 20 ms during the "
        "correlation call (`rss_mb_before_call` = input + interpreter), "
        "`peak_allocated_mb_during_call` = numpy/Python allocations traced (tracemalloc) in the "
        "call; the dense size is the largest that fits in about 6 GB of memory (float32 matrix + "
        "numpy's float64 copy: 24 kB per cell at 2,000 genes)."
    )
    commands = _merge_earlier_parts(args.results_name, parts, rows)
    notes += " Parts run by separate commands (rows of each part, in the order of the table): " + (
        "; ".join(f"{part}: `{command}`" for part, command in commands.items())
    )
    write_results(args.results_name, rows, notes, extra={"commands_by_part": commands})


def _merge_earlier_parts(name: str, parts: list[str], rows: list[dict]) -> dict[str, str]:
    """Add to ``rows`` the rows of the parts not run now from the earlier ``results/<name>.json``
    (so that parts can be run one at a time); returns the command that produced each part."""
    import json

    from _common import RESULTS_DIR, portable_command

    path = RESULTS_DIR / f"{name}.json"
    earlier = json.loads(path.read_text()) if path.exists() else {"rows": []}
    old_commands = earlier.get("commands_by_part", {})
    kept = [row for row in earlier["rows"] if row.get("part") not in parts]
    commands = {
        p: old_commands.get(p, earlier.get("command", "")) for p in _PARTS if p not in parts
    }
    commands.update({p: portable_command() for p in parts})
    order = {p: i for i, p in enumerate(_PARTS)}
    rows[:] = sorted(kept + rows, key=lambda row: order.get(row.get("part"), len(order)))
    present = {row.get("part") for row in rows}
    return {p: c for p, c in sorted(commands.items(), key=lambda kv: order[kv[0]]) if p in present}


if __name__ == "__main__":
    main()
