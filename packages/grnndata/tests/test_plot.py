"""plot_subgraph on the real Kang x OmniPath network: a PNG-ready figure with the chosen edges."""

from __future__ import annotations

import sys

import matplotlib
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

from grnndata.plot import SEED_COLOR, plot_subgraph, subgraph_edges

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def hub(kang_grn) -> str:
    return str(kang_grn.edges(top_k=1)["regulator"].iloc[0])


def test_subgraph_edges_are_the_strongest_among_the_chosen_genes(kang_grn, hub):
    genes, edges = subgraph_edges(kang_grn, hub, max_genes=8, top_edges=10)
    assert genes[0] == hub and len(genes) == 8
    neighbours = set(kang_grn.targets(hub).index) | set(kang_grn.regulators(hub).index)
    assert set(genes[1:]) <= neighbours
    full = kang_grn.get(genes).edges()
    assert len(edges) == min(10, len(full))
    np.testing.assert_array_equal(
        np.sort(np.abs(edges["weight"]))[::-1], np.sort(np.abs(full["weight"]))[::-1][: len(edges)]
    )


def test_plot_subgraph_draws_the_edges_and_saves_a_png(kang_grn, hub, tmp_path):
    import matplotlib.pyplot as plt

    genes, edges = subgraph_edges(kang_grn, hub, max_genes=8, top_edges=10)
    figure = plot_subgraph(kang_grn, hub, max_genes=8, top_edges=10)
    ax = figure.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(edges)
    node_colors = ax.collections[0].get_facecolors()
    assert matplotlib.colors.to_hex(node_colors[0]) == SEED_COLOR
    assert hub in ax.get_title()
    path = tmp_path / "subgraph.png"
    figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(figure)
    with pytest.raises(KeyError, match="NOT_A_GENE"):
        plot_subgraph(kang_grn, "NOT_A_GENE")


def test_missing_matplotlib_names_the_plot_extra(kang_grn, hub, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"grnndata\[plot\]"):
        plot_subgraph(kang_grn, hub)


def test_any_anndata_with_a_network_under_a_varp_key_is_drawn(kang_grn, hub):
    import anndata
    import matplotlib.pyplot as plt

    plain = anndata.AnnData(X=kang_grn.X, var=kang_grn.var, varp={"scprint_grn": kang_grn.grn})
    genes, edges = subgraph_edges(kang_grn, hub, max_genes=8, top_edges=10)
    same_genes, same_edges = subgraph_edges(
        plain, hub, max_genes=8, top_edges=10, key="scprint_grn"
    )
    assert same_genes == genes and same_edges.equals(edges)
    plt.close(plot_subgraph(plain, hub, max_genes=8, key="scprint_grn"))
    with pytest.raises(ValueError, match=r"its varp keys: \['scprint_grn'\]"):
        plot_subgraph(plain, hub)
    with pytest.raises(TypeError, match="expected an AnnData"):
        subgraph_edges(kang_grn.grn, hub)
