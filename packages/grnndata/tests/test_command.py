"""The ``grnndata`` command (info, convert, verify) on real networks: OmniPath's transcriptional
edges, alone and over the Kang PBMC genes with their cells."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

import grnndata
from grnndata.cli import missing_help
from grnndata.command import build_parser, main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _info(out: str) -> dict[str, str]:
    return dict(
        line.split(None, 1)
        for line in out.replace("integrity manifest", "manifest")
        .replace("varp key", "key")
        .splitlines()
    )


@pytest.fixture(scope="module")
def edge_list(omnipath_tf: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 OmniPath transcriptional edges as a CSV edge list (source, target, n_sources)."""
    path = tmp_path_factory.mktemp("edges") / "omnipath.csv"
    omnipath_tf.head(5000)[["source", "target", "n_sources"]].to_csv(path, index=False)
    return path


def test_every_flag_of_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert missing_help(parser) == []
    for command in ("info", "convert", "verify"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        for flag in ("--out", "--verbose", "--quiet", "--debug"):
            assert flag in text, (command, flag)
    assert "--overwrite" in parser._subparsers._group_actions[0].choices["convert"].format_help()


def test_convert_an_edge_list_then_info_and_verify(
    edge_list: Path, omnipath_tf: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "omnipath.zarr"
    status, out, err = _run(
        capsys, "convert", str(edge_list), "--out", str(store), "--weight", "n_sources"
    )
    assert status == 0, err
    expected = grnndata.as_network(
        omnipath_tf.head(5000).rename(columns={"source": "regulator"}), weight="n_sources"
    )
    assert f"{expected.n_genes} genes, {expected.matrix.nnz} edges" in out
    back = grnndata.read_zarr(store)
    assert (back.grn != expected.matrix).nnz == 0 and list(back.var_names) == list(expected.genes)
    assert back.grn_metadata["parameters"]["weight"] == "n_sources"

    status, out, err = _run(capsys, "info", str(store), "--out", str(tmp_path / "info.json"))
    assert status == 0, err
    shown = _info(out)
    presence = expected.matrix != 0
    assert shown["genes"] == str(expected.n_genes)
    assert shown["edges"] == str(expected.matrix.nnz)
    assert shown["regulators"] == str(int((np.diff(presence.indptr) > 0).sum()))
    assert shown["targets"] == str(int((np.bincount(presence.indices) > 0).sum()))
    assert shown["format"] == "zarr v3" and shown["manifest"] == "True" and shown["key"] == "GRN"
    assert shown["layout"].startswith("grnndata format 2 (sharded network")
    summary = json.loads((tmp_path / "info.json").read_text())
    assert summary["density"] == pytest.approx(expected.matrix.nnz / expected.n_genes**2)

    status, out, _ = _run(capsys, "verify", str(store))
    assert status == 0 and out.startswith("ok: ") and "match the manifest" in out


def test_an_anndata_with_its_network_under_another_key(
    kang_grn: grnndata.GRNAnnData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain AnnData (cells and genes) whose network is in varp['scprint_grn'], as h5ad and
    as zarr: info and convert read it with --key, and without it name the keys there are."""
    plain = anndata.AnnData(X=kang_grn.X, obs=kang_grn.obs, var=kang_grn.var)
    plain.varp["scprint_grn"] = kang_grn.grn
    plain.write_h5ad(tmp_path / "plain.h5ad")
    plain.write_zarr(tmp_path / "plain.zarr")
    for path in (tmp_path / "plain.h5ad", tmp_path / "plain.zarr"):
        status, _, err = _run(capsys, "info", str(path))
        assert status == 2
        assert err.count("\n") == 1
        assert "has no network in varp['GRN'] (its varp keys: ['scprint_grn'])" in err
        assert "pass --key scprint_grn" in err
        status, out, err = _run(capsys, "info", str(path), "--key", "scprint_grn")
        assert status == 0, err
        shown = _info(out)
        assert shown["cells"] == "600" and shown["edges"] == str(kang_grn.n_edges)
        assert shown["manifest"] == "False" and shown["key"] == "scprint_grn"
    converted = tmp_path / "converted.zarr"
    status, out, err = _run(
        capsys,
        "convert",
        str(tmp_path / "plain.h5ad"),
        "--out",
        str(converted),
        "--key",
        "scprint_grn",
    )
    assert status == 0, err
    back = grnndata.read_zarr(converted)
    assert (back.grn != kang_grn.grn).nnz == 0 and back.n_obs == 600
    assert "scprint_grn" not in back.varp  # moved to varp["GRN"], not kept twice


def test_convert_a_zarr_v2_store_to_the_current_format(
    kang_grn: grnndata.GRNAnnData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.zarr"
    kang_grn.write_zarr(old, zarr_format=2)
    status, out, _ = _run(capsys, "info", str(old))
    assert status == 0 and _info(out)["format"] == "zarr v2"
    new = tmp_path / "new.zarr"
    status, _, err = _run(capsys, "convert", str(old), "--out", str(new))
    assert status == 0, err
    assert json.loads((new / "zarr.json").read_text())["zarr_format"] == 3
    status, out, _ = _run(capsys, "info", str(new))
    assert _info(out)["layout"].startswith("grnndata format 2 (sharded network")
    assert (grnndata.read_zarr(new).grn != kang_grn.grn).nnz == 0


def test_convert_never_overwrites_without_overwrite(
    edge_list: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "net.zarr"
    assert _run(capsys, "convert", str(edge_list), "--out", str(store))[0] == 0
    before = sorted((p.name, p.stat().st_size) for p in store.rglob("*"))
    status, _, err = _run(
        capsys, "convert", str(edge_list), "--out", str(store), "--weight", "n_sources"
    )
    assert status == 2 and "exists; pass --overwrite" in err and err.count("\n") == 1
    assert sorted((p.name, p.stat().st_size) for p in store.rglob("*")) == before
    thesis = tmp_path / "thesis.zarr"
    thesis.mkdir()
    (thesis / "chapter1.txt").write_text("three years of work")
    status, _, err = _run(capsys, "convert", str(edge_list), "--out", str(thesis), "--overwrite")
    assert status == 2 and "not a zarr store" in err
    assert (thesis / "chapter1.txt").read_text() == "three years of work"
    status, _, _ = _run(
        capsys,
        "convert",
        str(edge_list),
        "--out",
        str(store),
        "--overwrite",
        "--weight",
        "n_sources",
    )
    assert status == 0
    assert grnndata.read_zarr(store).grn.data.max() > 1  # weights now from n_sources
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_usage_mistakes_exit_2_with_one_line(
    edge_list: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holes = tmp_path / "holes.tsv"
    frame = pd.read_csv(edge_list).head(20)
    frame.loc[7, "target"] = None
    frame.to_csv(holes, sep="\t", index=False)
    cases = {
        ("convert", str(holes), "--out", str(tmp_path / "h.zarr")): "1 edge(s) have an empty",
        ("info", str(tmp_path / "missing.zarr")): "does not exist",
        ("convert", str(edge_list), "--out", str(tmp_path / "x.parquet")): "ending in .zarr",
        ("convert", str(edge_list), "--out", str(tmp_path / "x.zarr"), "--weight", "w"): (
            "--weight 'w' is not a column"
        ),
        ("convert", str(edge_list), "--out", str(tmp_path / "x.zarr"), "--duplicates", "x"): (
            "invalid choice"
        ),
        ("verify", str(edge_list)): "is not a zarr store",
        ("info", str(edge_list)): "is an edge list",
        ("info", str(tmp_path)): "not a zarr store",
        ("inf", "x"): "invalid choice",
    }
    for argv, message in cases.items():
        status, _, err = _run(capsys, *argv)
        assert status == 2, argv
        assert err.count("\n") == 1 and err.startswith("grnndata: error: ") and message in err, err


def test_verify_names_the_damaged_array_and_debug_shows_the_traceback(
    kang_grn: grnndata.GRNAnnData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "net.zarr"
    kang_grn.write_zarr(store)
    shard = next(p for p in (store / "varp" / "GRN" / "indices").rglob("*") if p.name == "0")
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    shard.write_bytes(bytes(raw))
    status, _, err = _run(capsys, "verify", str(store), "--out", str(tmp_path / "report.json"))
    assert status == 1 and err.count("\n") == 1
    assert "array 'varp/GRN/indices'" in err and "different checksum" in err
    status, _, err = _run(capsys, "--debug", "verify", str(store))
    assert status == 1 and "Traceback" in err
    plain = tmp_path / "plain.zarr"
    anndata.AnnData(X=kang_grn.X, var=kang_grn.var, varp={"GRN": kang_grn.grn}).write_zarr(plain)
    status, _, err = _run(capsys, "verify", str(plain))
    assert status == 1 and "has no integrity manifest" in err


def test_the_installed_console_script_runs(
    edge_list: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = shutil.which("grnndata", path=str(Path(sys.executable).parent))
    assert script is not None
    store = tmp_path / "net.zarr"
    done = subprocess.run(
        [script, "convert", str(edge_list), "--out", str(store), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {store} (zarr v3 store): ")
    assert _run(capsys, "verify", str(store))[0] == 0
