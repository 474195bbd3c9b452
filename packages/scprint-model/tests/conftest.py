"""Session fixtures on real data: the shared data folder, a Kang PBMC subset, a tiny trained model.

``kang_adata`` and the run behind ``tiny_checkpoint`` are shared by every test of the session: do
not modify them in place (``kang_adata.copy()`` first).
"""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

KANG = "scrna/kang2018_pbmc_8k.h5ad"
#: Cells in the Kang subset used by tests.
KANG_CELLS = 400
#: Optimiser steps of the session's tiny model.
TINY_STEPS = 100


def _find_data_dir() -> Path:
    try:
        from grnndata.settings import data_dir as grnndata_data_dir

        return Path(grnndata_data_dir())
    except ImportError:
        env = os.environ.get("SCPRINT_DATA_DIR")
        if env:
            return Path(env)
        raise


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data folder (``SCPRINT_DATA_DIR``)."""
    path = _find_data_dir()
    assert (path / KANG).is_file(), f"real data missing: {path / KANG}"
    return path


@pytest.fixture(scope="session")
def kang_path(data_dir: Path) -> Path:
    """Path of the Kang 2018 PBMC file (8,684 cells, raw counts, Ensembl var_names)."""
    return data_dir / KANG


@pytest.fixture(scope="session")
def kang_adata(kang_path: Path) -> ad.AnnData:
    """``KANG_CELLS`` random Kang cells in memory: raw counts, ``cell_type`` and its CL ids."""
    full = ad.read_h5ad(kang_path)
    rows = np.sort(np.random.default_rng(0).choice(full.n_obs, KANG_CELLS, replace=False))
    return full[rows].copy()


@pytest.fixture(scope="session")
def tiny_steps() -> int:
    """Optimiser steps of the session's tiny model."""
    return TINY_STEPS


@pytest.fixture(scope="session")
def tiny_run(kang_adata: ad.AnnData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny model trained ``TINY_STEPS`` steps on ``kang_adata`` (``scprint.ckpt``, ``metrics.csv``)."""
    from scprint.training import fit

    out_dir = tmp_path_factory.mktemp("tiny_run")
    fit(
        [kang_adata],
        config="tiny",
        label_columns=("cell_type",),
        max_steps=TINY_STEPS,
        out_dir=out_dir,
        seed=0,
        val_every=TINY_STEPS // 2,
        log_every=1,
    )
    return out_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: Path) -> Path:
    """Checkpoint of the session's tiny model (trained once per session on real Kang counts)."""
    return tiny_run / "scprint.ckpt"
