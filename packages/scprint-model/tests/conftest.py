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


def _quiet_trainer(out_dir: Path, **settings: object) -> dict[str, object]:
    """``trainer:`` settings of a test run in ``out_dir``: every step logged, no progress bar."""
    return {
        "default_root_dir": str(out_dir),
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        **settings,
    }


@pytest.fixture(scope="session")
def quiet_trainer():
    """``quiet_trainer(out_dir, **settings)``: ``trainer:`` settings of a test run."""
    return _quiet_trainer


@pytest.fixture(scope="session")
def kang_file(kang_adata: ad.AnnData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``kang_adata`` written to an ``.h5ad`` file (for the command line)."""
    path = tmp_path_factory.mktemp("kang") / "kang400.h5ad"
    kang_adata.write_h5ad(path)
    return path


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
        "tiny",
        data={"files": [kang_adata], "labels": ["cell_type"]},
        trainer=_quiet_trainer(out_dir, max_steps=TINY_STEPS, val_check_interval=TINY_STEPS // 2),
    )
    return out_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run: Path) -> Path:
    """Checkpoint of the session's tiny model (trained once per session on real Kang counts)."""
    return tiny_run / "scprint.ckpt"
