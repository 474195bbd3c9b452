"""An external inference program that leaves a daemon behind:
``python daemon_and_edges.py PIDFILE IN.h5ad OUT_PREFIX``.

Starts ``sleep`` in a new session through an intermediate process that exits at once (a double
fork: the daemon is orphaned, in a session and group of its own), writes its pid to PIDFILE,
writes an edge table like ``write_edges.py`` and exits 0.
"""

import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

launcher = (
    "import subprocess, sys; "
    "p = subprocess.Popen(['sleep', '300'], start_new_session=True, "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(p.pid)"
)
done = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, check=True)
with open(sys.argv[1] + ".part", "w") as handle:
    handle.write(f"{os.getpid()} {done.stdout.strip()}\n")
os.replace(sys.argv[1] + ".part", sys.argv[1])
adata = ad.read_h5ad(sys.argv[2])
X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
corr = np.abs(np.nan_to_num(np.corrcoef(X, rowvar=False)))
genes = np.asarray(adata.var_names)
rows, cols = np.nonzero(~np.eye(len(genes), dtype=bool))
pd.DataFrame({"regulator": genes[rows], "target": genes[cols], "weight": corr[rows, cols]}).to_csv(
    sys.argv[3] + ".tsv", sep="\t", index=False
)
