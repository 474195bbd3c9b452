"""The ground truths and expression sets of the benchmark: registry, loaders, parsers.

* :mod:`bengrn.datasets.registry`: every registered file (source URL, sha256, citation) and
  :func:`fetch`, which finds it in the data folder (``--data-dir`` / ``SCPRINT_DATA_DIR``) first,
  then in the download cache, then downloads it with :mod:`pooch` (checksum checked);
* :mod:`bengrn.datasets.parsers`: file formats to tables (``read_*``, from a local path);
* here, the loaders ``load_*``: a registered file, fetched then parsed. Every loader also takes
  ``path=`` (a local copy of the file, used as it is).

Nothing is downloaded at import time.
"""

from __future__ import annotations

import os

import anndata as ad
import pandas as pd

from bengrn.datasets import parsers
from bengrn.datasets.parsers import (
    PerturbSeqTruth,
    log2_to_counts,
    read_edge_table,
    read_gene_list,
)
from bengrn.datasets.registry import (
    CACHE_ENV,
    REGISTRY,
    DatasetFile,
    DatasetNotFoundError,
    UnknownDatasetError,
    beeline_names,
    cache_dir,
    fetch,
    get,
)

__all__ = [
    "CACHE_ENV",
    "REGISTRY",
    "DatasetFile",
    "DatasetNotFoundError",
    "PerturbSeqTruth",
    "UnknownDatasetError",
    "beeline_names",
    "cache_dir",
    "fetch",
    "get",
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
    "read_edge_table",
    "read_gene_list",
]

PathLike = str | os.PathLike


def load_omnipath(
    subset: str = "all", *, path: PathLike | None = None, split_complexes: bool = True
) -> pd.DataFrame:
    """OmniPath transcriptional TF -> target edges (:func:`parsers.read_omnipath`):
    DataFrame[regulator, target, is_stimulation, is_inhibition, n_references]."""
    return parsers.read_omnipath(fetch("omnipath", path), subset, split_complexes=split_complexes)


def load_mccalla_network(cell: str, variant: str, *, path: PathLike | None = None) -> pd.DataFrame:
    """A McCalla et al. gold standard as DataFrame[regulator, target].

    ``cell``: ``"hESC"``, ``"mESC"`` or ``"mDC"``. ``variant``: ``"chip"`` (hESC: the ESCAPE ChIP
    network, as hESC_chipunion is not public; mESC/mDC: the ChIP union), ``"knockdown"`` (KDUnion),
    ``"union"`` (chip | knockdown, computed here; ``path`` is not taken), ``"intersection"`` (the
    published chipunion_KDUnion_intersect) or ``"literature"`` (hESC, mESC).
    """
    if variant == "union":
        if path is not None:
            raise ValueError("the union is computed from two files; load 'chip' and 'knockdown'")
        both = pd.concat(
            [load_mccalla_network(cell, "chip"), load_mccalla_network(cell, "knockdown")]
        )
        return parsers.edge_table(both["regulator"], both["target"])
    return parsers.read_mccalla_network(fetch(f"mccalla-{cell}-{variant}", path))


def load_mccalla_expression(key: str, *, path: PathLike | None = None) -> ad.AnnData:
    """McCalla scRNA-seq as AnnData (cells x genes) of recovered integer counts.

    ``key``: ``"hESC-chen"``, ``"hESC-liu"`` or ``"mESC-semrau"``. The published values are
    ``log2(x + 1)`` (genes x cells); :func:`log2_to_counts` turns them back into counts (``X``,
    CSR float32). ``obs["recovery_error"]`` keeps the per-cell distance to integers before
    rounding; ``uns["bengrn"]`` records the source.
    """
    name = f"mccalla-expr-{key}"
    return parsers.read_mccalla_expression(fetch(name, path), name=name)


def load_tfs(organism: str = "human", *, path: PathLike | None = None) -> list[str]:
    """Transcription-factor symbols for ``"human"`` or ``"mouse"``."""
    if organism not in ("human", "mouse"):
        raise ValueError(f"organism must be 'human' or 'mouse'; got {organism!r}")
    return read_gene_list(fetch(f"tfs-{organism}", path))


def load_encode_chip_targets(*, path: PathLike | None = None) -> dict[str, list[str]]:
    """ENCODE TF ChIP-seq targets: ``{"TF CELLLINE": [target symbols]}``."""
    return parsers.read_encode_chip_targets(fetch("encode-tfchip", path))


def load_markers(*, path: PathLike | None = None) -> dict[str, list[str]]:
    """Cell-type marker sets from the GMT file (``{cell type: [marker symbols]}``)."""
    from grnndata.analysis import read_gmt

    return read_gmt(fetch("celltype-markers", path))


def load_perturbseq_truth(
    *, path: PathLike | None = None, max_pvalue: float = 0.05
) -> PerturbSeqTruth:
    """Genome-wide Perturb-seq knockdown -> readout edges with BH-adjusted p < ``max_pvalue``
    (:func:`parsers.read_perturbseq_truth`)."""
    return parsers.read_perturbseq_truth(fetch("perturbseq-k562-bh", path), max_pvalue=max_pvalue)


def load_perturbseq_control(*, path: PathLike | None = None) -> ad.AnnData:
    """The non-targeting cells of the Perturb-seq single-cell file (``obs["gene_id"]``)."""
    return parsers.read_perturbseq_control(fetch("perturbseq-k562-cells", path))


def load_beeline(
    name: str,
    *,
    data_dir: PathLike | None = None,
    expression_path: PathLike | None = None,
    network_path: PathLike | None = None,
) -> tuple[ad.AnnData, pd.DataFrame]:
    """A BEELINE simulation: (expression AnnData cells x genes, true edges DataFrame).

    ``name`` e.g. ``"beeline-synthetic-dyn-BF"`` or ``"beeline-curated-GSD-dropout50"`` (see
    :func:`beeline_names`); ``expression_path`` / ``network_path``: local copies of its
    ``ExpressionData.csv`` / ``refNetwork.csv``. The edge table has columns regulator, target,
    sign (``"+"``/``"-"``); it may contain self-loops (the metrics exclude them).
    """
    return parsers.read_beeline(
        fetch(f"{name}-expression", expression_path, data_dir=data_dir),
        fetch(f"{name}-network", network_path, data_dir=data_dir),
        name=name,
    )
