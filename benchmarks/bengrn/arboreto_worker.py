"""Jobs run inside the arboreto 0.1.6 peer virtualenv (see ``_arboreto.py``); one JSON line out.

``fixture IN.npz OUT.json``: arboreto's own per-target regression
(``arboreto.core.infer_partial_network`` with GRNBoost2's ``SGBM_KWARGS`` and its
``EarlyStopMonitor``) for each target column of ``IN.npz`` (``X``: cells x genes float32, ``tfs``:
TF column indices, ``targets``, ``seed``): importances and stages, plus the out-of-bag
improvements of the fitted model, for bengrn's equivalence tests.

``grnboost2 IN.npz OUT.json``: arboreto's ``grnboost2`` on a ``LocalCluster`` (``workers``
processes of one thread) for all genes, timed; edges written as ``TF, target, importance``.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def fixture(path_in: str, path_out: str) -> None:
    from arboreto import core

    data = np.load(path_in)
    X, tfs, seed = data["X"], data["tfs"], int(data["seed"])
    names = [f"g{i}" for i in range(X.shape[1])]
    tf_names = [names[i] for i in tfs]
    out = []
    for j in data["targets"]:
        tf_matrix, tf_matrix_names = core.clean(X[:, tfs], tf_names, names[j])
        model = core.fit_model("GBM", core.SGBM_KWARGS, tf_matrix, X[:, j], seed=seed)
        links = core.to_links_df("GBM", core.SGBM_KWARGS, model, tf_matrix_names, names[j])
        importances = dict(zip(links["TF"], links["importance"]))
        out.append(
            {
                "target": int(j),
                "regulators": [int(n[1:]) for n in tf_matrix_names],
                "importances": [float(importances.get(n, 0.0)) for n in tf_matrix_names],
                "n_estimators": len(model.estimators_),
                "oob_improvement": [float(v) for v in model.oob_improvement_],
            }
        )
    import sklearn

    with open(path_out, "w") as fh:
        json.dump({"sklearn": sklearn.__version__, "seed": seed, "targets": out}, fh)


def grnboost2(path_in: str, path_out: str, workers: str) -> None:
    """arboreto's ``grnboost2`` (its ``create_graph`` with ``target_genes`` when ``targets`` is a
    subset: the graph ``grnboost2`` builds, restricted to those targets)."""
    import contextlib

    from arboreto import core
    from arboreto.algo import grnboost2 as arboreto_grnboost2
    from distributed import Client, LocalCluster

    data = np.load(path_in)
    X, tfs, seed, targets = data["X"], data["tfs"], int(data["seed"]), data["targets"]
    names = [f"g{i}" for i in range(X.shape[1])]
    tf_names = [names[i] for i in tfs]
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    start = time.perf_counter()
    if len(targets) == X.shape[1]:
        links = arboreto_grnboost2(
            X, gene_names=names, tf_names=tf_names, client_or_address=client, seed=seed
        )
    else:
        graph = core.create_graph(
            X, names, tf_names, regressor_type="GBM", regressor_kwargs=core.SGBM_KWARGS,
            client=client, target_genes=[names[j] for j in targets], seed=seed,
        )  # fmt: skip
        links = client.compute(graph, sync=True)
    seconds = time.perf_counter() - start
    links.to_csv(path_out, sep="\t", index=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "n_edges": len(links)}), flush=True)
    # a slow cluster shutdown on a loaded machine (nanny kill timeouts) must not lose the result
    with contextlib.suppress(Exception):
        client.close()
        cluster.close(timeout=60)


if __name__ == "__main__":
    {"fixture": fixture, "grnboost2": grnboost2}[sys.argv[1]](*sys.argv[2:])
