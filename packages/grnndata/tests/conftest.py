"""Session fixtures on real data from the shared data folder (``SCPRINT_DATA_DIR``).

- ``kang``: Kang 2018 PBMC (8,684 cells x 2,511 genes), genes renamed to their symbols;
- ``kang_small``: its first 600 cells (enough for slicing and I/O tests, cheap to copy);
- ``omnipath_tf``: OmniPath transcriptional TF -> target edges (128,218 rows, weight =
  ``n_sources``);
- ``kang_grn``: ``omnipath_tf`` mapped onto ``kang_small``'s genes with :func:`grnndata.from_edges`;
- ``omnipath_grn``: the whole transcriptional OmniPath network over all its genes (no cells);
- ``markers``: the cell-type marker gene sets of ``gene_sets/celltype_markers.gmt``.

Fixtures are read once per session; tests that modify an object work on a ``.copy()``.
"""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

import grnndata
from grnndata.settings import data_dir


@pytest.fixture(scope="session")
def data_root() -> Path:
    return data_dir()


@pytest.fixture(scope="session")
def kang(data_root: Path) -> anndata.AnnData:
    adata = anndata.read_h5ad(data_root / "scrna" / "kang2018_pbmc_8k.h5ad")
    adata.var["ensembl_id"] = adata.var_names
    adata.var_names = adata.var["gene_symbol"].astype(str).to_numpy()
    adata.var_names_make_unique()
    return adata


@pytest.fixture(scope="session")
def kang_small(kang: anndata.AnnData) -> anndata.AnnData:
    return kang[:600].copy()


@pytest.fixture(scope="session")
def omnipath_tf(data_root: Path) -> pd.DataFrame:
    frame = pd.read_parquet(
        data_root / "grn" / "omnipath_interactions.parquet",
        columns=["source", "target", "type", "n_sources", "sources"],
    )
    frame = frame[frame["type"] == "transcriptional"].reset_index(drop=True)
    return frame


@pytest.fixture(scope="session")
def kang_grn(kang_small: anndata.AnnData, omnipath_tf: pd.DataFrame) -> grnndata.GRNAnnData:
    grn = grnndata.from_edges(
        kang_small, omnipath_tf, source="source", target="target", weight="n_sources"
    )
    grn.set_metadata("omnipath", {"type": "transcriptional", "weight": "n_sources"}, "human")
    return grn


@pytest.fixture(scope="session")
def omnipath_grn(omnipath_tf: pd.DataFrame) -> grnndata.GRNAnnData:
    genes = pd.unique(np.concatenate([omnipath_tf["source"], omnipath_tf["target"]]))
    return grnndata.from_edges(
        list(genes), omnipath_tf, source="source", target="target", weight="n_sources"
    )


@pytest.fixture(scope="session")
def markers(data_root: Path) -> dict[str, list[str]]:
    return grnndata.analysis.read_gmt(data_root / "gene_sets" / "celltype_markers.gmt")


@pytest.fixture(scope="session")
def markers_path(data_root: Path) -> Path:
    return data_root / "gene_sets" / "celltype_markers.gmt"
