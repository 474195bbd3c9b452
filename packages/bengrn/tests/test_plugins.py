"""Plug-in methods: found through the ``bengrn.methods`` entry-point group of installed
distributions (here a temporary ``*.dist-info`` folder on ``sys.path``), never by a package name."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bengrn.cli import main
from bengrn.methods import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    MethodUnavailableError,
    available_methods,
    check_params,
    resolve_method,
)

PLUGIN_MODULE = '''
"""A third-party inference method (test plug-in)."""
import numpy as np
from grnndata import GRNAnnData


def infer(adata, scale: float = 1.0):
    """|covariance| between genes, times scale."""
    X = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=float)
    cov = np.abs(np.cov(X, rowvar=False)) * scale
    np.fill_diagonal(cov, 0)
    return GRNAnnData.from_matrix(cov, list(adata.var_names))


NOT_CALLABLE = 42
'''


def _install(root: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """Write a minimal installed distribution (``<dist>-<version>.dist-info``) into ``root``."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Two installed distributions: one with a working and a non-callable method, one whose
    module fails to import."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "bengrn_testplugin_mod.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (site / "bengrn_broken_mod.py").write_text("raise ImportError('needs libfoo 2.0')\n")
    _install(
        site,
        "bengrn-testplugin",
        "1.2.3",
        {
            "covar": "bengrn_testplugin_mod:infer",
            "notcallable": "bengrn_testplugin_mod:NOT_CALLABLE",
        },
    )
    _install(site, "broken-dist", "0.0.1", {"broken": "bengrn_broken_mod:infer"})
    _install(site, "greedy-dist", "9.9", {"pearson": "bengrn_testplugin_mod:infer"})
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def test_entry_point_methods_are_discovered_with_their_distribution(plugins, beeline_ll):
    methods = available_methods()
    covar = methods["covar"]
    assert covar.origin == "entry point"
    assert (covar.distribution, covar.version) == ("bengrn-testplugin", "1.2.3")
    assert covar.target == "bengrn_testplugin_mod:infer"
    assert methods["pearson"].origin == "built-in"  # a plug-in cannot take a built-in's name
    name, fn = resolve_method("covar")
    assert name == "covar" and fn.__module__ == "bengrn_testplugin_mod"
    adata, _ = beeline_ll
    grn = fn(adata, scale=2.0)
    X = np.asarray(adata.X, dtype=float)
    expected = np.abs(np.cov(X, rowvar=False)) * 2.0
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(grn.grn.toarray(), expected, rtol=1e-5)
    check_params("covar", fn, {"scale": 3.0})
    with pytest.raises(TypeError, match="no parameter 'scal'"):
        check_params("covar", fn, {"scal": 3.0})
    assert resolve_method("pearson")[1] is BUILTIN["pearson"]


def test_a_broken_plugin_is_a_clear_error_naming_it(plugins):
    with pytest.raises(MethodUnavailableError) as err:
        resolve_method("broken")
    message = str(err.value)
    assert "'broken'" in message and "broken-dist 0.0.1" in message
    assert "bengrn_broken_mod:infer" in message and "needs libfoo 2.0" in message
    with pytest.raises(MethodUnavailableError, match="not a callable"):
        resolve_method("notcallable")
    # listing does not import plug-ins, so a broken one is still listed
    assert available_methods()["broken"].distribution == "broken-dist"


def test_unknown_method_lists_the_installed_plugins(plugins):
    with pytest.raises(MethodUnavailableError, match=r"installed: .*covar"):
        resolve_method("covarr")


def test_bengrn_list_shows_where_each_method_comes_from(plugins, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if ":" in line}
    assert "built-in" in lines["genie3"]
    assert "entry point of bengrn-testplugin 1.2.3 (bengrn_testplugin_mod:infer)" in lines["covar"]
    assert "entry point of broken-dist 0.0.1" in lines["broken"]


def test_a_broken_plugin_given_to_bengrn_run_exits_2_naming_it(plugins, tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["run", "--method", "broken", "--task", "beeline-synthetic", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken-dist 0.0.1" in err and "needs libfoo 2.0" in err
    assert not out.exists()


def test_no_sibling_package_is_named_in_bengrn_code():
    source = Path(importlib.import_module("bengrn").__file__).parent
    offenders = [
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if "scprint" in path.read_text()
    ]
    assert offenders == []


def test_bengrn_run_infers_with_a_plugin_in_its_own_process(plugins, beeline_ll, tmp_path, capsys):
    import pandas as pd

    from bengrn.metrics import score

    adata, edges = beeline_ll
    adata.write_h5ad(tmp_path / "cells.h5ad")
    edges[["regulator", "target"]].to_csv(tmp_path / "edges.tsv", sep="\t", index=False)
    out = tmp_path / "results"
    argv = ["run", "--method", "covar", "--param", "scale=2.0", "--task", "custom"]
    argv += ["--truth", str(tmp_path / "edges.tsv"), "--expression", str(tmp_path / "cells.h5ad")]
    assert main([*argv, "--out", str(out)]) == 0
    row = pd.read_csv(out / "results.csv").iloc[0]
    assert (row["method"], row["status"]) == ("covar", "ok")
    _, infer = resolve_method("covar")
    expected = score(
        infer(adata, scale=2.0), edges, truth_genes=adata.var_names, regulators_in_truth=True
    )
    assert row["auprc"] == pytest.approx(expected["auprc"], rel=1e-6)
