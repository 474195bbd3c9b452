"""Write bengrn's arboreto-equivalence fixture: arboreto 0.1.6's own GRNBoost2 regressions.

Runs ``arboreto.core.fit_model`` / ``to_links_df`` (GRNBoost2's ``SGBM_KWARGS`` and its
``EarlyStopMonitor``) in the peer virtualenv (see ``_arboreto.py``) on the BEELINE dyn-LL expression
(18 genes, 2,000 cells; bengrn's ``log1p`` transform; every gene a candidate regulator, seed 777)
and writes ``packages/bengrn/tests/data/arboreto_grnboost2_dyn_ll.json``: per target, arboreto's
importances, stages fitted and out-of-bag improvements. Run::

    python benchmarks/bengrn/arboreto_fixture.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _arboreto import arboreto_missing_reason, run_arboreto  # noqa: E402
from _common import data_dir_argument, resolve_data_dir  # noqa: E402

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "packages" / "bengrn" / "tests" / "data" / "arboreto_grnboost2_dyn_ll.json"
)  # fmt: skip
SEED = 777


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_dir_argument(parser)
    args = parser.parse_args()
    os.environ["SCPRINT_DATA_DIR"] = str(resolve_data_dir(args.data_dir))
    reason = arboreto_missing_reason()
    if reason:
        raise SystemExit(reason)
    from bengrn import datasets
    from bengrn.methods._common import expression_matrix

    adata, _ = datasets.load_beeline("beeline-synthetic-dyn-LL")
    X = expression_matrix(adata)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.npz"
        np.savez(path, X=X, tfs=np.arange(X.shape[1]), targets=np.arange(X.shape[1]), seed=SEED)
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        run_arboreto("fixture", str(path), str(FIXTURE))
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
