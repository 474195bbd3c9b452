"""Full comparison: every built-in method x every task with data (plus BEELINE), and GENIE3 vs
bengrn 1.3.2's GENIE3 on the same hESC input.

Part 1, the comparison: ``bengrn.runner.run_benchmark`` with genie3, grnboost2, pearson, spearman
and random on mccalla-hesc, mccalla-mesc, literature, enrichment (these four on the McCalla
expression sets; ``--n-genes`` most expressed genes plus the TFs, 2,000 by default to fit the time
budget, ``--n-genes 0`` for all genes), beeline-synthetic and beeline-curated. perturbseq runs only
when its files are present (``--perturbseq-truth``, ``--perturbseq-cells``); the genome-wide files
cannot be downloaded on machines without internet. The runner's work folder (networks, inputs) is
``--work`` (default ``~/.cache/bengrn/bench_runner``, resumable); the table goes to
``benchmarks/results/bengrn_runner.{json,md}`` and the figures to ``benchmarks/results/bengrn/``.

Part 2, ``--peers``: GENIE3 (the compiled default and ``backend="sklearn"``) timed against
bengrn 1.3.2's GENIE3 (its own virtualenv, see ``_peer.py``) on the same matrix (hESC Chen,
``--genie3-genes`` most expressed genes plus TFs, library-size-normalised log1p), the same
regulators (the Chen TF list), the same number of trees and ``max_features="sqrt"``, 2 workers
each; all networks scored on mccalla-hesc.

    python benchmarks/bengrn/bench_runner.py --peers
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import RESULTS_DIR, data_dir_argument, resolve_data_dir, write_results  # noqa: E402

log = logging.getLogger("benchmarks.bengrn")

METHODS = ["genie3", "grnboost2", "pearson", "spearman", "random"]
TREES = 100


def comparison(args: argparse.Namespace) -> None:
    from bengrn.runner import run_benchmark

    n_genes = args.n_genes or None
    tasks = [
        "mccalla-hesc",
        "mccalla-mesc",
        "literature",
        "enrichment",
        "beeline-synthetic",
        "beeline-curated",
    ]
    task_options = {
        t: {"n_genes": n_genes}
        for t in ("mccalla-hesc", "mccalla-mesc", "literature", "enrichment")
    }
    skipped = []
    if args.perturbseq_truth and args.perturbseq_cells:
        tasks.append("perturbseq")
        task_options["perturbseq"] = {
            "truth_path": args.perturbseq_truth,
            "cells_path": args.perturbseq_cells,
        }
    else:
        skipped.append("perturbseq (genome-wide Perturb-seq files not available offline)")
    params = {
        "genie3": {"n_trees": TREES, "n_jobs": 2},
        "grnboost2": {"n_jobs": 2},
    }
    start = time.perf_counter()
    frame = run_benchmark(
        METHODS, tasks, args.work, params=params, task_options=task_options, timeout=args.timeout
    )
    total = time.perf_counter() - start
    figures = RESULTS_DIR / "bengrn"
    figures.mkdir(parents=True, exist_ok=True)
    for png in (Path(args.work) / "figures").glob("*.png"):
        shutil.copy2(png, figures / png.name)
    keep = [
        "task", "unit", "variant", "method", "status", "auprc", "ap", "epr", "auprc_ratio",
        "precision", "recall", "random_precision", "n_true_edges", "tf_enrichment_pvalue",
        "marker_sets_significant", "chip_tfs_enriched_share", "infer_seconds", "peak_rss_mb", "error",
    ]  # fmt: skip
    rows = frame[[c for c in keep if c in frame]].to_dict(orient="records")
    # rows of one inference (several tasks, variants) repeat its time: count each once
    infer_total = frame.drop_duplicates(["method", "infer_seconds"])["infer_seconds"].sum()
    notes = (
        f"Built-in methods x tasks; McCalla-based tasks on the {n_genes or 'all'} most expressed genes "
        "plus the dataset's TFs (candidate regulators = the dataset's TF list, so literature and "
        "enrichment share the hESC networks); genie3 100 trees and grnboost2 with 2 processes. "
        "Skipped: " + ("; ".join(skipped) or "none") + ". McCalla universes use the offered TFs "
        "with a true edge (random ~ 1). Literature variants without '-tfs' count every gene as a "
        "regulator while methods were offered only TFs, so every method, random included, gains "
        "from that TF prior there (ratio ~3); compare methods within a row. `infer_seconds` is the "
        "inference call (sum over distinct inferences: "
        f"{infer_total:.0f} s; this invocation {total:.0f} s, earlier finished runs resumed), "
        "`peak_rss_mb` the peak RSS of the inference process (including ~150 MB of imported "
        f"libraries). Load average at the end of the run: {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs (above the CPU count, processes waited for a core, which "
        "inflates wall times). "
        "`auprc` / `auprc_ratio`: the Davis & Goadrich interpolated AUPRC of bengrn.metrics. "
        "Figures: benchmarks/results/bengrn/."
    )
    write_results("bengrn_runner", rows, notes)


def _cold_compile_seconds(tmp: Path) -> float:
    """Seconds to compile the GENIE3 forest in a new process with an empty numba cache."""
    import os
    import subprocess

    code = (
        "import time, numpy as np; from bengrn.methods._forest import forest_importances; "
        "s = time.perf_counter(); forest_importances(np.zeros((1, 4), np.uint16), "
        "np.zeros(1, np.int64), np.arange(4.0), max_features=1, seed=0, n_trees=1); "
        "print(time.perf_counter() - s)"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp / "numba-cache")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def genie3_vs_peer(args: argparse.Namespace) -> None:
    import anndata as ad
    from _peer import peer_missing_reason, run_peer

    from bengrn.methods import genie3
    from bengrn.methods._common import expression_matrix
    from bengrn.metrics import score
    from bengrn.tasks import McCallaTask

    reason = peer_missing_reason()
    if reason:
        log.info("GENIE3 peer comparison skipped: %s", reason)
        return
    task = McCallaTask(
        "hESC", n_genes=args.genie3_genes, variants=("chip", "knockdown", "union", "intersection")
    )
    adata = task.expression()
    regulators = task.regulators()
    X = expression_matrix(adata, "log1p")
    same_input = ad.AnnData(X=X, var=adata.var.copy())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bengrn-genie3-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "expr.npy", X.astype(np.float64))
        (tmp / "genes.txt").write_text("\n".join(adata.var_names))
        (tmp / "regs.txt").write_text("\n".join(regulators))
        timings = []
        for attempt in range(2):  # ours, peer, ours: CPU sharing varies over time
            start = time.perf_counter()
            ours = genie3(
                same_input, n_trees=TREES, regulators=regulators, n_jobs=2, seed=0, transform="none"
            )
            timings.append(time.perf_counter() - start)
            if attempt == 0:
                peer = run_peer(
                    "genie3",
                    str(tmp / "expr.npy"),
                    str(tmp / "genes.txt"),
                    str(tmp / "regs.txt"),
                    str(TREES),
                    "2",
                    str(tmp / "vim.npy"),
                )
                vim = np.load(tmp / "vim.npy")
        start = time.perf_counter()
        ours_sklearn = genie3(
            same_input,
            n_trees=TREES,
            regulators=regulators,
            n_jobs=2,
            seed=0,
            transform="none",
            backend="sklearn",
        )
        sklearn_seconds = time.perf_counter() - start
        compile_seconds = _cold_compile_seconds(tmp)
        genes = list(adata.var_names)
        for name, network, seconds, peak in (
            ("bengrn (ours) genie3", ours.grn, min(timings), None),
            ("bengrn (ours) genie3, backend='sklearn'", ours_sklearn.grn, sklearn_seconds, None),
            ("bengrn 1.3.2 GENIE3", vim, peer["seconds"], peer["peak_rss_mb"]),
        ):
            row = {
                "implementation": name,
                "genes": len(genes),
                "regulators": len(regulators),
                "trees": TREES,
                "seconds": seconds,
                "speedup_vs_peer": peer["seconds"] / seconds,
            }
            if peak is not None:
                row["peak_rss_mb"] = peak
            for variant, truth in task._truths.items():
                m = score(
                    network,
                    truth,
                    predicted_genes=genes,
                    truth_genes=genes,
                    regulators_in_truth=True,
                )
                row[f"auprc_{variant}"] = m["auprc"]
                row[f"epr_{variant}"] = m["epr"]
            rows.append(row)
        rows[0]["ours_timings"] = ", ".join(f"{t:.1f}" for t in timings)
    notes = (
        f"Same input: hESC Chen, {len(genes)} genes ({args.genie3_genes} most expressed + TFs), "
        "library-size-normalised log1p, float64 for the peer; same regulators (Chen TF list), same "
        f"{TREES} trees, max_features='sqrt' (bootstrap, fully grown trees: scikit-learn's "
        "RandomForestRegressor defaults on all three rows), 2 workers each (ours: threads; "
        "backend='sklearn': joblib processes; peer: multiprocessing Pool). Ours ran twice (before "
        "and after the peer; both times listed, best used) so that a change of the machine's "
        "load during the run hits both sides alike. Our default backend is the compiled (numba) forest "
        "of bengrn.methods._forest; its first call in a fresh environment also compiles it: "
        f"{compile_seconds:.1f} s, measured in a new process with an empty numba cache and not "
        "included above (numba caches the machine code on disk, so later processes load it). "
        "Quality: AUPRC / EPR of each network on the McCalla hESC truths (regulators with a true "
        "edge; the three draw different random numbers, so AUPRCs differ within the noise of "
        "random forests)."
    )
    write_results("bengrn_genie3_vs_peer", rows, notes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data_dir_argument(parser)
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "bengrn" / "bench_runner"))
    parser.add_argument(
        "--n-genes", type=int, default=2000, help="genes of the McCalla sets (0 = all)"
    )
    parser.add_argument(
        "--genie3-genes", type=int, default=1000, help="genes for the GENIE3 peer comparison"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per inference")
    parser.add_argument("--perturbseq-truth", help="BH-corrected.csv(.gz) of Replogle et al. 2022")
    parser.add_argument("--perturbseq-cells", help="K562 single-cell h5ad of Replogle et al. 2022")
    parser.add_argument("--peers", action="store_true", help="also time bengrn 1.3.2's GENIE3")
    parser.add_argument(
        "--skip-comparison", action="store_true", help="only the GENIE3 peer timing"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import os

    os.environ["SCPRINT_DATA_DIR"] = str(resolve_data_dir(args.data_dir))
    if args.peers:
        genie3_vs_peer(args)
    else:
        log.info("GENIE3 peer comparison skipped: not requested (pass --peers)")
    if not args.skip_comparison:
        comparison(args)


if __name__ == "__main__":
    main()
