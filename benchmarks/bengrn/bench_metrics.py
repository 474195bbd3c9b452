"""Metrics benchmark: bengrn (ours) vs bengrn 1.3.2 ``compute_pr`` on the same synthetic networks.

Synthetic inputs (seeded): a dense float32 network ``N x N`` of uniform scores with +0.3 on the
true edges, and a random truth of density 0.002 (no self-loops); at 20,000 genes also a dense
truth of density 0.005 (2M true edges), where the cost used to grow with the number of true edges. Ours: :func:`bengrn.metrics.score`
(exact AUPRC / AP). Peer: bengrn 1.3.2 ``compute_pr`` (AUPRC on ~130 quantile thresholds), run in
its own virtualenv (``--peers``; see ``_peer.py``). Every case runs in a fresh process so the peak
RSS is its own (it includes the input network held in memory).

    python benchmarks/bengrn/bench_metrics.py            # ours: 2,000 / 5,000 / 20,000 (x2) dense, 10M sparse
    python benchmarks/bengrn/bench_metrics.py --peers    # + bengrn 1.3.2 at 2,000 and 5,000 genes
"""

from __future__ import annotations

import argparse
import json
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
from _common import write_results  # noqa: E402

log = logging.getLogger("benchmarks.bengrn")

DENSITY = 0.002


def synthetic_dense(
    n: int, seed: int = 0, density: float = DENSITY
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic dense network (float32) and boolean truth, both ``(n, n)``, rows = regulators."""
    rng = np.random.default_rng(seed)
    truth = rng.random((n, n), dtype=np.float32) < density
    np.fill_diagonal(truth, False)
    grn = rng.random((n, n), dtype=np.float32)
    grn[truth] += 0.3
    return grn, truth


def synthetic_sparse(n: int, n_edges: int, seed: int = 0):
    """Synthetic sparse network with about ``n_edges`` stored scores, and a sparse truth."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, n_edges)
    cols = rng.integers(0, n, n_edges)
    grn = sp.csr_matrix((rng.random(n_edges, dtype=np.float32), (rows, cols)), shape=(n, n))
    n_true = int(n * n * DENSITY)
    truth = sp.csr_matrix(
        (np.ones(n_true, dtype=bool), (rng.integers(0, n, n_true), rng.integers(0, n, n_true))),
        shape=(n, n),
    )
    # half the true edges get a boosted score
    boost = sp.csr_matrix(
        (
            np.full(n_true // 2, 0.5, np.float32),
            (truth.nonzero()[0][: n_true // 2], truth.nonzero()[1][: n_true // 2]),
        ),
        shape=(n, n),
    )
    return (grn + boost).tocsr(), truth


def case(kind: str, n: int, files: str | None, density: float = DENSITY) -> dict:
    """One measurement in this process (called via ``--case``)."""
    from bengrn.metrics import score

    genes = [f"g{i}" for i in range(n)]
    if kind == "dense":
        if files:
            grn, truth = (
                np.load(Path(files) / f"grn_{n}.npy"),
                np.load(Path(files) / f"truth_{n}.npy"),
            )
        else:
            grn, truth = synthetic_dense(n, density=density)
        import scipy.sparse as sp

        truth = sp.csr_matrix(truth)
    else:
        grn, truth = synthetic_sparse(n, 10_000_000)
    import gc

    gc.collect()
    rss_before = (
        int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    out = score(grn, truth, predicted_genes=genes, truth_genes=genes)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    row = {k: out[k] for k in ("auprc", "ap", "auprc_trapezoid", "epr", "n_true_edges")}
    if kind == "dense" and n <= 2000:
        from sklearn.metrics import average_precision_score

        off = ~np.eye(n, dtype=bool)
        row["sklearn_ap"] = float(average_precision_score(truth.toarray()[off], grn[off]))
    row.update(
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rss_before_call_mb=rss_before,
        load_avg_1min=round(os.getloadavg()[0], 2),
    )
    row["stored_edges"] = int(grn.nnz) if kind == "sparse" else n * n
    return row


def _run_case(kind: str, n: int, files: str | None, density: float = DENSITY) -> dict:
    args = [sys.executable, __file__, "--case", kind, str(n), str(density)] + (
        ["--files", files] if files else []
    )
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers", action="store_true", help="also time bengrn 1.3.2 (its own venv)"
    )
    parser.add_argument("--case", nargs=3, metavar=("KIND", "N", "DENSITY"), help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case[0], int(args.case[1]), args.files, float(args.case[2]))))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from _peer import peer_missing_reason, run_peer

    peer_reason = peer_missing_reason() if args.peers else "not requested (pass --peers)"
    if peer_reason:
        log.info("bengrn 1.3.2 skipped: %s", peer_reason)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bengrn-bench-") as tmp:
        for n in (2000, 5000):
            grn, truth = synthetic_dense(n)
            np.save(Path(tmp) / f"grn_{n}.npy", grn)
            np.save(Path(tmp) / f"truth_{n}.npy", truth)
            del grn, truth
            ours = _run_case("dense", n, tmp)
            rows.append({"implementation": "bengrn (ours)", "input": f"dense {n}x{n}", **ours})
            log.info("ours %d: %.2fs %.0f MiB", n, ours["seconds"], ours["peak_rss_mb"])
            if not peer_reason:
                peer = run_peer(
                    "compute_pr", str(Path(tmp) / f"grn_{n}.npy"), str(Path(tmp) / f"truth_{n}.npy")
                )
                rows.append(
                    {
                        "implementation": "bengrn 1.3.2 compute_pr",
                        "input": f"dense {n}x{n}",
                        "auprc": peer["result"]["auprc"],
                        "ap": peer["result"]["ap"],
                        "seconds": peer["seconds"],
                        "peak_rss_mb": peer["peak_rss_mb"],
                        "speedup_vs_peer": peer["seconds"] / ours["seconds"],
                    }
                )
                rows[-2]["speedup_vs_peer"] = peer["seconds"] / ours["seconds"]
                log.info("peer %d: %.2fs %.0f MiB", n, peer["seconds"], peer["peak_rss_mb"])
    for kind, n, density in (
        ("dense", 20000, DENSITY),
        ("dense", 20000, 0.005),
        ("sparse", 20000, DENSITY),
    ):
        ours = _run_case(kind, n, None, density)
        label = (
            f"dense {n}x{n}" + ("" if density == DENSITY else f", truth density {density:g}")
            if kind == "dense"
            else f"sparse {ours['stored_edges'] / 1e6:.1f}M edges over {n} genes"
        )
        rows.append({"implementation": "bengrn (ours)", "input": label, **ours})
        log.info("ours %s: %.2fs %.0f MiB", label, ours["seconds"], ours["peak_rss_mb"])
    notes = (
        "Synthetic networks (seeded; truth density 0.002 unless stated, +0.3 on true edges). "
        "`seconds` = wall time of the metric call only; `cpu_seconds` = CPU time of the process "
        "during the call, all threads summed (the call uses up to 4 threads for its sort), which "
        "waiting for a core does not inflate; `load_avg_1min` = the load average after the call "
        f"(above the CPU count, {os.cpu_count()}, processes waited for a core and wall times are "
        "inflated); `peak_rss_mb` = peak RSS of the process, input network included (a 20,000 x 20,000 "
        "float32 network is 1,526 MiB by itself); `rss_before_call_mb` = RSS just before the call "
        "(inputs loaded), so the call's own extra memory is at most the difference. Ours is exact "
        "(AP equals scikit-learn's `average_precision_score`, column `sklearn_ap` at 2,000 genes; "
        "`auprc` is the Davis & Goadrich interpolated area, `auprc_trapezoid` scikit-learn's "
        "`auc(precision_recall_curve)`) and excludes self-loops; bengrn 1.3.2 approximates the "
        "trapezoid AUPRC on ~130 quantile thresholds and counts the diagonal, so its values differ "
        "slightly. Peer: "
        + (
            peer_reason
            or "bengrn 1.3.2, numpy "
            "np.trapz -> np.trapezoid patch only (see benchmarks/bengrn/peer_worker.py)."
        )
    )
    write_results("bengrn_metrics", rows, notes)


if __name__ == "__main__":
    main()
