"""The five tasks end to end on real networks, and BenGRN's tidy table."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bengrn import datasets
from bengrn.methods import pearson
from bengrn.tasks import (
    BeelineTask,
    BenGRN,
    EnrichmentTask,
    LiteratureTask,
    PerturbSeqTask,
    get_task,
)
from grnndata import GRNAnnData


def test_mccalla_task_scores_every_variant_on_the_expression_genes(
    hesc_task, hesc_pearson, hesc_expression
):
    result = hesc_task.run(hesc_pearson)
    assert [v.variant for v in result.variants] == ["chip", "knockdown", "union", "intersection"]
    genes = set(hesc_expression.var_names)
    truth = datasets.load_mccalla_network("hESC", "intersection")
    inside = truth[truth["regulator"].isin(genes) & truth["target"].isin(genes)]
    inside = inside[inside["regulator"] != inside["target"]]
    offered = inside[inside["regulator"].isin(hesc_task.regulators())]
    intersection = result.variants[3]
    assert intersection.n_true_edges == len(offered)
    # regulators: the dataset's TFs (what methods were offered) with a true edge
    assert intersection.metrics["n_regulators"] == len(
        set(inside["regulator"]) & set(hesc_task.regulators())
    )
    assert intersection.curve is not None and intersection.curve["recall"].max() == pytest.approx(
        1.0
    )
    union = result.variants[2]
    assert union.n_true_edges >= max(
        result.variants[0].n_true_edges, result.variants[1].n_true_edges
    )
    frame = result.to_frame()
    assert len(frame) == 4 and frame["auprc"].between(0, 1).all()
    assert set(hesc_task.regulators()) <= genes


def test_literature_task_with_and_without_tf_restriction(hesc_pearson):
    task = LiteratureTask(sources=("collectri",))
    result = task.run(hesc_pearson)
    everyone, tfs_only = result.variants
    assert (everyone.variant, tfs_only.variant) == ("collectri", "collectri-tfs")
    assert tfs_only.metrics["n_regulators"] < everyone.metrics["n_regulators"]
    assert tfs_only.metrics["n_universe_edges"] < everyone.metrics["n_universe_edges"]


def test_gene_column_matches_the_truth_by_another_identifier(hesc_pearson):
    renamed = hesc_pearson.copy()
    renamed.var["symbol"] = renamed.var_names.astype(str)
    renamed.var_names = [f"probe_{i}" for i in range(renamed.n_vars)]
    task = LiteratureTask(sources=("dorothea",), tf_only=(False,))
    by_symbol = task.run(renamed, gene_column="symbol").metrics
    direct = task.run(hesc_pearson).metrics
    assert by_symbol["ap"] == pytest.approx(direct["ap"])
    with pytest.raises(Exception, match="share no gene"):
        task.run(renamed)


def test_enrichment_task_reports_tf_marker_and_chip_checks(hesc_pearson):
    result = EnrichmentTask(n_top=50).run(hesc_pearson)
    m = result.metrics
    assert 0 <= m["tf_enrichment_pvalue"] <= 1
    assert m["chip_tfs_tested"] > 0 and 0 <= m["chip_tfs_enriched_share"] <= 1
    assert m["tf_in_top"] <= 50
    assert result.curve is None


def test_enrichment_detects_tfs_among_central_genes_of_a_tf_network(hesc_pearson):
    # pearson with the dataset's TFs as regulators: only they have outgoing edges, so the most
    # central genes are TFs (of the Chen list; most are in the human TF list too)
    m = EnrichmentTask(n_top=30, centrality="out_strength").run(hesc_pearson).metrics
    assert m["tf_in_top"] >= 25 and m["tf_enrichment_pvalue"] < 1e-6


def test_beeline_task_has_one_unit_per_network_and_needs_the_unit(beeline_ll):
    task = BeelineTask("synthetic", networks=["dyn-LL", "dyn-BF"])
    assert task.units() == ["dyn-LL", "dyn-BF"]
    grn = pearson(task.expression("dyn-LL"))
    with pytest.raises(ValueError, match="pass unit="):
        task.run(grn)
    result = task.run(grn, unit="dyn-LL")
    _, edges = beeline_ll
    assert result.n_true_edges == int((edges["regulator"] != edges["target"]).sum())
    assert result.metrics["n_universe_edges"] == 18 * 17


def test_perturbseq_task_on_a_synthetic_miniature(tmp_path):
    # synthetic: 3 perturbed genes, 5 readouts; G1 -> G4 and G2 -> G5 significant
    readouts = ["G1", "G2", "G3", "G4", "G5"]
    table = pd.DataFrame(
        {
            "1_G1_P1_G1": [0.01, 0.5, 0.5, 0.001, 0.9],
            "2_G2_P1_G2": [0.5, 0.01, 0.5, 0.5, 0.02],
            "3_G3_P1_G3": [0.6] * 5,
        },
        index=readouts,
    )
    truth_path = tmp_path / "bh.csv"
    table.to_csv(truth_path)
    cells = ad.AnnData(
        X=np.random.default_rng(0).poisson(3, size=(6, 5)).astype(np.float32),
        obs=pd.DataFrame(
            {"gene_id": ["non-targeting"] * 4 + ["G1", "G2"]}, index=[f"c{i}" for i in range(6)]
        ),
        var=pd.DataFrame(index=readouts),
    )
    cells_path = tmp_path / "cells.h5ad"
    cells.write_h5ad(cells_path)
    task = PerturbSeqTask(truth_path=truth_path, cells_path=cells_path)
    assert task.expression().n_obs == 4
    weights = np.zeros((5, 5), dtype=np.float32)
    weights[0, 3] = 0.9  # G1 -> G4 (true)
    weights[1, 4] = 0.8  # G2 -> G5 (true)
    weights[2, 0] = 0.7  # G3 -> G1 (false)
    result = task.run(GRNAnnData.from_matrix(weights, readouts))
    assert result.n_true_edges == 2  # self effects G1 -> G1, G2 -> G2 excluded
    assert result.metrics["n_universe_edges"] == 3 * 4
    assert result.metrics["ap"] == pytest.approx(1.0)


def test_bengrn_returns_one_row_per_task_and_variant(hesc_pearson):
    frame = BenGRN(hesc_pearson).run(
        tasks=[LiteratureTask(sources=("dorothea",)), EnrichmentTask(n_top=20)]
    )
    assert list(frame["variant"]) == ["dorothea", "dorothea-tfs", "self-assessment"]
    assert {"task", "unit", "variant", "auprc", "epr", "n_true_edges", "universe"} <= set(
        frame.columns
    )


def test_unknown_task_and_variant_names_are_errors():
    with pytest.raises(ValueError, match="unknown task 'mccalla-hsc'"):
        get_task("mccalla-hsc")
    with pytest.raises(ValueError, match="unknown McCalla variants"):
        get_task("mccalla-hesc", variants=("chipseq",))
