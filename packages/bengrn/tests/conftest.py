"""Session fixtures: real data from the shared data folder, loaded once.

The data folder is found by :func:`grnndata.settings.find_data_dir` (``SCPRINT_DATA_DIR``, which
the nox sessions set, or the per-user data folder); without it, the data-backed tests are skipped
with a message saying what to set.
"""

from __future__ import annotations

import os

import pytest

from bengrn import datasets
from bengrn.tasks import McCallaTask

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def data_dir():
    from grnndata.settings import find_data_dir

    found = find_data_dir()
    if found is None:
        pytest.skip("real data folder not found: set SCPRINT_DATA_DIR to the shared data folder")
    return found


@pytest.fixture(scope="session")
def hesc_task(data_dir):
    """McCalla hESC task on the 400 most expressed Chen genes plus the dataset's TFs."""
    return McCallaTask(cell="hESC", n_genes=400)


@pytest.fixture(scope="session")
def hesc_expression(hesc_task):
    return hesc_task.expression()


@pytest.fixture(scope="session")
def hesc_pearson(hesc_task, hesc_expression):
    """A real network: |Pearson| on the hESC Chen subset, the dataset's TFs as regulators."""
    from bengrn.methods import pearson

    return pearson(hesc_expression, regulators=hesc_task.regulators())


@pytest.fixture(scope="session")
def hesc_intersection(data_dir):
    return datasets.load_mccalla_network("hESC", "intersection")


@pytest.fixture(scope="session")
def beeline_ll(data_dir):
    """BEELINE synthetic dyn-LL (18 genes, 2,000 cells) and its reference network."""
    return datasets.load_beeline("beeline-synthetic-dyn-LL")
