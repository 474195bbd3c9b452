"""Parsers of the registered file formats: a local path in, a tidy table or an AnnData out.

Nothing here knows where files come from (that is :mod:`bengrn.datasets.registry`); every parser
reads plain or gzipped files. Edge tables are ``DataFrame[regulator, target, ...]`` with one row
per distinct (regulator, target) pair.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "PerturbSeqTruth",
    "edge_table",
    "log2_to_counts",
    "read_beeline",
    "read_edge_table",
    "read_encode_chip_targets",
    "read_gene_list",
    "read_mccalla_expression",
    "read_mccalla_network",
    "read_omnipath",
    "read_perturbseq_control",
    "read_perturbseq_truth",
]

PathLike = str | os.PathLike


def read_bytes(path: PathLike) -> bytes:
    """The bytes of a file, gunzipped when it is a gzip file."""
    data = Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def edge_table(regulators: Any, targets: Any, **columns: Any) -> pd.DataFrame:
    """``DataFrame[regulator, target, *columns]`` with names as text, repeated pairs dropped
    (the first kept)."""
    df = pd.DataFrame(
        {"regulator": np.asarray(regulators, dtype=str), "target": np.asarray(targets, dtype=str)}
    )
    for key, value in columns.items():
        df[key] = value
    return df.drop_duplicates(["regulator", "target"]).reset_index(drop=True)


def read_edge_table(path: PathLike) -> pd.DataFrame:
    """A user's or a program's edge list: ``.parquet``, ``.csv`` or tab-separated text
    (``.tsv``, ``.txt``; gzipped or not).

    Columns ``regulator``, ``target`` (and ``weight``) are used when a header names them;
    otherwise the first two (three) columns are regulator, target (and weight). A first row with
    a name that occurs among the table's genes is an edge, not a header (McCalla-style files
    have none). Returns ``DataFrame[regulator, target(, weight)]``, one row per input row.
    """
    path = Path(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".parquet":
        table = pd.read_parquet(path)
    else:
        sep = "," if suffixes and suffixes[-1] == ".csv" else "\t"
        table = pd.read_csv(io.BytesIO(read_bytes(path)), sep=sep, dtype=str)
        first = [str(c) for c in table.columns[:2]]
        if (
            not {"regulator", "target"} <= set(table.columns)
            and len(first) == 2
            and set(first) & (set(table.iloc[:, 0]) | set(table.iloc[:, 1]))
        ):
            table = pd.read_csv(io.BytesIO(read_bytes(path)), sep=sep, dtype=str, header=None)
    if {"regulator", "target"} <= set(table.columns):
        columns = ["regulator", "target"] + (["weight"] if "weight" in table.columns else [])
        table = table[columns]
    else:
        if table.shape[1] < 2:
            raise ValueError(
                f"edge list {path.name} has columns {list(table.columns)}; expected regulator, "
                "target (and weight), or at least two columns"
            )
        table = table.iloc[:, : min(3, table.shape[1])]
        table.columns = ["regulator", "target", "weight"][: table.shape[1]]
    if len(table) == 0:
        raise ValueError(f"edge list {path.name} has no edge (columns {list(table.columns)})")
    out = pd.DataFrame(
        {"regulator": table["regulator"].astype(str), "target": table["target"].astype(str)}
    )
    if "weight" in table.columns:
        try:
            out["weight"] = pd.to_numeric(table["weight"]).to_numpy()
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"edge list {path.name}: the weights must be numbers ({err})"
            ) from None
    return out.reset_index(drop=True)


def read_gene_list(path: PathLike) -> list[str]:
    """Gene names, one per line (blank lines ignored; gzipped or not)."""
    text = read_bytes(path).decode()
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_omnipath(
    path: PathLike, subset: str = "all", *, split_complexes: bool = True
) -> pd.DataFrame:
    """OmniPath transcriptional TF -> target edges from its interactions parquet file.

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
    table = pd.read_parquet(path)
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
    return edge_table(
        table["source"],
        table["target"],
        is_stimulation=table["is_stimulation"].to_numpy(),
        is_inhibition=table["is_inhibition"].to_numpy(),
        n_references=table["n_references"].to_numpy(),
    )


def read_mccalla_network(path: PathLike) -> pd.DataFrame:
    """A McCalla gold standard (tab-separated TF, target; no header) as
    DataFrame[regulator, target]."""
    raw = read_bytes(path)
    table = pd.read_csv(io.BytesIO(raw), sep="\t", header=None, dtype=str, usecols=[0, 1])
    return edge_table(table[0], table[1])


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


def read_mccalla_expression(path: PathLike, *, name: str = "mccalla") -> ad.AnnData:
    """McCalla scRNA-seq (genes x cells of published values, tab-separated) as AnnData (cells x
    genes) of recovered integer counts (:func:`log2_to_counts`; ``X`` CSR float32).

    ``obs["recovery_error"]`` keeps the per-cell distance to integers before rounding;
    ``uns["bengrn"]`` records the source (``name``).
    """
    table = pd.read_csv(io.BytesIO(read_bytes(path)), sep="\t", index_col=0)
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


def read_encode_chip_targets(path: PathLike) -> dict[str, list[str]]:
    """ENCODE TF ChIP-seq targets (JSON): ``{"TF CELLLINE": [target symbols]}``."""
    return json.loads(read_bytes(path))


@dataclass(frozen=True)
class PerturbSeqTruth:
    """Perturb-seq truth: significant edges plus every perturbed and readout gene of the table."""

    edges: pd.DataFrame
    perturbed_genes: list[str]
    readout_genes: list[str]


def read_perturbseq_truth(path: PathLike, *, max_pvalue: float = 0.05) -> PerturbSeqTruth:
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
    table = pd.read_csv(path, index_col=0)
    perturbed = pd.Index([str(c).split("_")[-1] for c in table.columns])
    table.columns = perturbed
    table = table.loc[:, ~perturbed.duplicated(keep="first")]
    values = table.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"the Perturb-seq table {path} contains NaN p-values")
    rows, cols = np.nonzero(values < max_pvalue)
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


def read_perturbseq_control(path: PathLike) -> ad.AnnData:
    """The non-targeting cells of the Perturb-seq single-cell h5ad (``obs["gene_id"]``)."""
    adata = ad.read_h5ad(path)
    if "gene_id" not in adata.obs:
        raise ValueError(
            f"the Perturb-seq cells file has no obs['gene_id'] column (columns: "
            f"{list(adata.obs.columns)[:8]}); expected the Replogle et al. single-cell h5ad"
        )
    return adata[adata.obs["gene_id"].astype(str) == "non-targeting"].copy()


def read_beeline(
    expression_path: PathLike, network_path: PathLike, *, name: str = "beeline"
) -> tuple[ad.AnnData, pd.DataFrame]:
    """A BEELINE simulation: ``ExpressionData.csv`` (genes x cells) and ``refNetwork.csv``
    (Gene1, Gene2, Type) as (expression AnnData cells x genes, DataFrame[regulator, target, sign]).

    The edge table may contain self-loops (the metrics exclude them).
    """
    expr = pd.read_csv(io.BytesIO(read_bytes(expression_path)), index_col=0)
    net = pd.read_csv(io.BytesIO(read_bytes(network_path)), dtype=str)
    adata = ad.AnnData(
        X=expr.to_numpy(dtype=np.float32).T,
        obs=pd.DataFrame(index=expr.columns.astype(str)),
        var=pd.DataFrame(index=expr.index.astype(str)),
    )
    adata.uns["bengrn"] = {"dataset": name}
    edges = edge_table(net["Gene1"], net["Gene2"], sign=net["Type"].to_numpy())
    return adata, edges
