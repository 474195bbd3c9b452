"""The README's Python examples run as written, on real Kang cells, with a fixture checkpoint
(a randomly initialised original scPRINT, ``tests/fixtures/parity``) standing in for the
published ``medium-v1.5.ckpt`` the README names."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FIXTURE = Path(__file__).parent / "fixtures" / "parity" / "v2_pos_fsq.ckpt"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_examples_run_and_write_what_they_say(data_dir, tmp_path, monkeypatch):
    import grnndata

    blocks = _python_blocks()
    assert len(blocks) >= 2
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    names = set(re.findall(r'scprint\.load\("([^"]+)"', "".join(blocks)))
    assert names, "the examples load a checkpoint by name"
    for name in names:
        (tmp_path / name).symlink_to(FIXTURE)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    adata, model = namespace["adata"], namespace["model"]
    assert adata.obsm["X_scprint"].shape == (64, model.config.d_model)
    assert "cell_type_ontology_term_id" in adata.uns["X_scprint"]["metrics"]
    assert "scprint_denoised" not in adata.layers  # copy=True left it untouched
    assert namespace["denoised"].var["scprint_denoised"].sum() == 200
    stored = grnndata.read_zarr(tmp_path / "b_cells_grn.zarr")
    assert stored.grn.shape == (100, 100) and (stored.obs["cell_type"] == "B cells").all()
    chosen = adata.var["GRN"].to_numpy()
    assert chosen.sum() == 100 and not adata.varp["GRN"][~chosen].count_nonzero()
    decoded = adata.var["scprint_generated"].to_numpy()
    assert decoded.sum() == len(set(adata.var_names) & set(model.vocab.genes))
    generated = adata.layers["scprint_generated"][:, decoded]
    assert np.isfinite(generated.data).all() and (generated.data >= 0).all()
    # the SOMA example reads the B cells of the experiment it made (in the example's folder)
    assert (tmp_path / "pbmc_soma").is_dir()
    kang = __import__("anndata").read_h5ad(data_dir / "scrna" / "kang2018_pbmc_8k.h5ad", backed="r")
    assert namespace["source"].n_cells == int((kang.obs["cell_type"] == "B cells").sum()) > 0
    # the training example: 20 steps, then its checkpoint loads like a published one
    assert namespace["trainer"].global_step == 20
    pretrained = namespace["pretrained"]
    assert pretrained.config == namespace["config"]
    assert list(pretrained.vocab.genes) == list(namespace["data"].vocab.genes)


@pytest.mark.parametrize("block", range(4))
def test_readme_examples_use_only_public_names(block):
    text = _python_blocks()[block]
    assert "_common" not in text and "scprint.tasks." not in text.replace(
        "scprint.tasks import", ""
    )
