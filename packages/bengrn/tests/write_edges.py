"""An external inference program for the runner tests: ``python write_edges.py IN.h5ad OUT_PREFIX``.

Reads the expression, writes ``OUT_PREFIX.tsv`` with |correlation| edges (regulator, target, weight).
"""

import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

adata = ad.read_h5ad(sys.argv[1])
X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
corr = np.abs(np.nan_to_num(np.corrcoef(X, rowvar=False)))
genes = np.asarray(adata.var_names)
rows, cols = np.nonzero(~np.eye(len(genes), dtype=bool))
pd.DataFrame({"regulator": genes[rows], "target": genes[cols], "weight": corr[rows, cols]}).to_csv(
    sys.argv[2] + ".tsv", sep="\t", index=False
)
