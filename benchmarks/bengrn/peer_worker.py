"""Runs bengrn 1.3.2 code inside its own virtualenv (benchmarks/.peer-venvs/bengrn132).

bengrn 1.3.2 cannot be imported as a package here (its ``__init__`` pulls gdown, gseapy, scanpy,
pyscenic, lamindb's bionty ...), so it is installed with ``pip install --no-deps`` plus numpy,
scipy, scikit-learn, pandas, tqdm and matplotlib, and this worker loads exactly the two pieces
benchmarked, unchanged, from the installed files:

* ``compute_pr`` from ``bengrn/base.py`` (its source extracted with ``ast`` and executed with the
  names it uses). The one patch: numpy 2 removed ``np.trapz``, which ``compute_pr`` calls, so
  ``np.trapz`` is set to ``np.trapezoid`` (the same function under its new name) when missing;
* ``GENIE3`` from ``bengrn/tools/genie3.py`` (imported as a file; it needs only numpy,
  scikit-learn and tqdm).

Usage (prints one JSON line: wall seconds, peak RSS in MiB, and the result's summary)::

    python peer_worker.py compute_pr GRN.npy TRUTH.npy
    python peer_worker.py genie3 EXPR.npy GENES.txt REGULATORS.txt N_TREES N_THREADS OUT.npy
"""

import ast
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tqdm  # noqa: E402
from scipy.sparse import csc_matrix, csr_matrix  # noqa: E402

SITE = Path(importlib.util.find_spec("numpy").origin).parents[1]
PACKAGE = SITE / "bengrn"


def load_compute_pr():
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # noqa: NPY201 - the patch itself: restore the old name
    tree = ast.parse((PACKAGE / "base.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "compute_pr")
    namespace = {
        "np": np,
        "csr_matrix": csr_matrix,
        "csc_matrix": csc_matrix,
        "tqdm": tqdm,
        "plt": plt,
    }
    exec(
        compile(ast.Module(body=[node], type_ignores=[]), str(PACKAGE / "base.py"), "exec"),
        namespace,
    )
    return namespace["compute_pr"]


def load_genie3():
    spec = importlib.util.spec_from_file_location("peer_genie3", PACKAGE / "tools" / "genie3.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_genie3"] = module
    spec.loader.exec_module(module)
    return module.GENIE3


def main(argv):
    kind = argv[0]
    if kind == "compute_pr":
        grn, truth = np.load(argv[1]), np.load(argv[2])
        compute_pr = load_compute_pr()
        start = time.perf_counter()
        metrics = compute_pr(grn, truth, do_auc=True, doplot=False)
        seconds = time.perf_counter() - start
        result = {k: float(v) for k, v in metrics.items()}
    elif kind == "genie3":
        expr = np.load(argv[1])
        genes = Path(argv[2]).read_text().split("\n")
        regulators = Path(argv[3]).read_text().split("\n")
        genie3 = load_genie3()
        start = time.perf_counter()
        vim = genie3(
            expr,
            gene_names=genes,
            regulators=regulators,
            ntrees=int(argv[4]),
            nthreads=int(argv[5]),
        )
        seconds = time.perf_counter() - start
        np.save(argv[6], vim.astype(np.float32))
        result = {"shape": list(vim.shape)}
    else:
        raise SystemExit(f"unknown job {kind!r}")
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "result": result}))


if __name__ == "__main__":
    main(sys.argv[1:])
