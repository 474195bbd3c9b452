"""The README's Python examples run as written, in order, on the project's data folder."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import anndata
import pandas as pd
import scipy.sparse as sp

import grnndata

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_examples_run_as_written(tmp_path, monkeypatch, data_root):
    blocks = _python_blocks(README.read_text())
    assert len(blocks) == 3  # use, conversion, atomic writes
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {number + 1}", "exec"), namespace)
    grn, network, truth = namespace["grn"], namespace["network"], namespace["truth"]
    assert isinstance(grn, grnndata.GRNAnnData) and grn.n_edges > 1000
    back = grnndata.read_zarr(tmp_path / "net.zarr")
    assert (back.grn != grn.grn).nnz == 0
    assert (network.matrix != grn.grn).nnz == 0  # from_edges and as_network agree
    assert truth.matrix.dtype == bool and truth.matrix.nnz == grn.n_edges
    assert isinstance(namespace["dense"].matrix, type(grn.grn.toarray()))
    assert not sp.issparse(namespace["dense"].matrix)
    assert anndata.read_zarr(tmp_path / "result.zarr").n_obs == 100
    assert pd.read_json(tmp_path / "metrics.json", typ="series")["auprc"] == 0.31


def test_the_package_ships_its_type_marker():
    assert resources.files(grnndata).joinpath("py.typed").is_file()
