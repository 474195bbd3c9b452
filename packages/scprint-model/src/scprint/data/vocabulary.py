"""The model's gene vocabulary: Ensembl ids, symbols and genomic position bins.

The vocabulary is built from the training data (the union of their genes) and stored in the
checkpoint with its position bins, so inference needs no external table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .organisms import check_organism

log = logging.getLogger(__name__)

#: Fewest genes of a dataset that must match the vocabulary (and at least this fraction of it).
MIN_OVERLAP_GENES = 100
#: Distance in base pairs between consecutive gene starts that opens a new position bin.
POSITION_BIN_GAP = 10_000


def _is_ensembl(names: Sequence[str]) -> bool:
    sample = [str(n) for n in list(names)[:50]]
    return bool(sample) and sum(n.startswith("ENS") for n in sample) >= 0.8 * len(sample)


def gene_table(adata: ad.AnnData) -> pd.DataFrame:
    """Ensembl id and symbol of every variable of ``adata`` (NaN where unknown).

    Ensembl ids come from ``var_names`` when they look like Ensembl ids, else from
    ``var["ensembl_id"]``; symbols from ``var["gene_symbol"]``, else from non-Ensembl ``var_names``.
    """
    names = adata.var_names.astype(str)
    ensembl_names = _is_ensembl(names)
    if ensembl_names:
        ensembl = pd.Series(names, index=names)
    elif "ensembl_id" in adata.var:
        ensembl = adata.var["ensembl_id"].astype(object)
    else:
        ensembl = pd.Series(np.nan, index=names, dtype=object)
    if "gene_symbol" in adata.var:
        symbol = adata.var["gene_symbol"].astype(object)
    elif not ensembl_names:
        symbol = pd.Series(names, index=names, dtype=object)
    else:
        symbol = pd.Series(np.nan, index=names, dtype=object)
    table = pd.DataFrame({"ensembl_id": ensembl.to_numpy(), "symbol": symbol.to_numpy()})
    table = table.replace({"": np.nan, "nan": np.nan})
    # drop Ensembl version suffixes only ("ENSG...1.5"): vocabulary entries named by a clone or
    # symbol ("AF213884.2") keep their dot
    table["ensembl_id"] = table["ensembl_id"].map(
        lambda x: x.split(".")[0] if isinstance(x, str) and x.startswith("ENS") else x
    )
    return table


def position_bins(
    chromosome: np.ndarray, start: np.ndarray, gap: int = POSITION_BIN_GAP
) -> np.ndarray:
    """Genomic position bins: genes sorted by (chromosome, start); a new bin opens on a chromosome
    change or when the next gene starts more than ``gap`` bp after the previous one.

    Args:
        chromosome: ``(n,)`` chromosome names (``None``/NaN = unknown).
        start: ``(n,)`` start positions in bp (NaN = unknown).

    Returns:
        ``(n,)`` int64 bin of each gene, ``-1`` where chromosome or start is unknown.
    """
    chromosome = pd.Series(chromosome, dtype=object)
    start = pd.Series(start, dtype=float)
    known = chromosome.notna().to_numpy() & start.notna().to_numpy()
    bins = np.full(len(chromosome), -1, dtype=np.int64)
    if not known.any():
        return bins
    frame = pd.DataFrame(
        {"chromosome": chromosome[known].astype(str).to_numpy(), "start": start[known].to_numpy()}
    )
    order = np.lexsort((frame["start"].to_numpy(), frame["chromosome"].to_numpy()))
    chrom_sorted = frame["chromosome"].to_numpy()[order]
    start_sorted = frame["start"].to_numpy()[order]
    new_bin = np.ones(len(order), dtype=bool)
    new_bin[1:] = (chrom_sorted[1:] != chrom_sorted[:-1]) | (np.diff(start_sorted) > gap)
    sorted_bins = np.cumsum(new_bin) - 1
    known_bins = np.empty(len(order), dtype=np.int64)
    known_bins[order] = sorted_bins
    bins[known] = known_bins
    return bins


@dataclass(eq=False)
class Vocabulary:
    """Genes the model knows, in embedding order.

    Attributes:
        genes: Ensembl gene ids (or the symbol, for genes without an Ensembl id).
        symbols: gene symbols ("" where unknown), same order.
        positions: ``(n_genes,)`` int64 genomic position bins (``-1`` unknown) or ``None``.
        organism: NCBITaxon id of the organism.
    """

    genes: list[str]
    symbols: list[str]
    positions: np.ndarray | None = None
    organism: str = "NCBITaxon:9606"

    def __post_init__(self) -> None:
        check_organism(self.organism)
        if len(self.genes) != len(self.symbols):
            raise ValueError(
                f"genes ({len(self.genes)}) and symbols ({len(self.symbols)}) differ in length"
            )
        if len(set(self.genes)) != len(self.genes):
            duplicated = pd.Index(self.genes)[pd.Index(self.genes).duplicated()][:3].tolist()
            raise ValueError(f"vocabulary genes must be unique; duplicated: {duplicated}")
        if self.positions is not None:
            self.positions = np.asarray(self.positions, dtype=np.int64)
            if self.positions.shape != (len(self.genes),):
                raise ValueError(
                    f"positions must have shape ({len(self.genes)},), got {self.positions.shape}"
                )
        self._index = {gene: i for i, gene in enumerate(self.genes)}
        symbol_index: dict[str, int] = {}
        for i, symbol in enumerate(self.symbols):
            if symbol:
                symbol_index.setdefault(symbol.upper(), i)
        self._symbol_index = symbol_index

    def __len__(self) -> int:
        return len(self.genes)

    def index_of(self, names: Sequence[str]) -> np.ndarray:
        """Vocabulary index of each name (Ensembl id, else symbol, case-insensitive); ``-1`` if absent."""
        out = np.full(len(names), -1, dtype=np.int64)
        for i, name in enumerate(names):
            key = str(name)
            hit = self._index.get(key.split(".")[0] if key.startswith("ENS") else key)
            out[i] = hit if hit is not None else self._symbol_index.get(key.upper(), -1)
        return out

    def match(
        self, adata: ad.AnnData, min_overlap: int = MIN_OVERLAP_GENES
    ) -> tuple[np.ndarray, np.ndarray]:
        """Match the genes of ``adata`` to the vocabulary: the rules of the tasks.

        One resolver for training and the tasks: :func:`scprint.data.gene_mapping.match_genes`
        (Ensembl id from ``var_names`` or a ``var`` id column, versions dropped; else symbol,
        from ``var_names`` or a ``var`` symbol column, through the model's symbols and the data
        folder's gene tables; ambiguous symbols left out; each vocabulary gene used once, by the
        first column), read as genes of the vocabulary's organism.

        Returns:
            ``(var_indices, vocab_indices)``: int64 arrays of equal length, column of ``adata`` and
            its vocabulary index, ordered by column.

        Raises:
            ValueError: fewer than ``min(min_overlap, n_vars)`` genes match.
        """
        from .gene_mapping import match_genes

        mapping = match_genes(adata, self.genes, self.symbols, organism=self.organism)
        var_index = np.flatnonzero(mapping.vocab_index >= 0)
        vocab_index = mapping.vocab_index[var_index]
        needed = min(min_overlap, adata.n_vars)
        if len(var_index) < needed:
            example = adata.var_names[:3].tolist()
            raise ValueError(
                f"only {len(var_index)} of {adata.n_vars} genes match the model vocabulary "
                f"({len(self)} genes, e.g. {self.genes[:2]} / {self.symbols[:2]}); at least {needed} are "
                f"needed. Genes are matched by Ensembl id (var_names or var['ensembl_id']) or symbol "
                f"(var_names or var['gene_symbol']); this dataset's var_names start {example}"
            )
        return var_index.astype(np.int64), vocab_index.astype(np.int64)

    @classmethod
    def build(
        cls,
        adatas: Sequence[ad.AnnData],
        gene_positions: str | Path | pd.DataFrame | None = None,
        organism: str = "NCBITaxon:9606",
    ) -> Vocabulary:
        """Union of the genes of ``adatas`` (sorted by id), with position bins when a table is given.

        Args:
            adatas: datasets (backed or in memory; only ``var`` is read).
            gene_positions: table indexed by Ensembl gene id with ``chromosome_name`` and
                ``start_position`` columns (a DataFrame or a parquet/CSV path), e.g.
                ``gene_meta/human_biomart_gene_positions.parquet``.
            organism: NCBITaxon id.
        """
        check_organism(organism)
        symbols: dict[str, str] = {}
        for adata in adatas:
            table = gene_table(adata)
            for gene_id, symbol in zip(table["ensembl_id"], table["symbol"]):
                key = gene_id if isinstance(gene_id, str) else symbol
                if not isinstance(key, str):
                    continue
                if not symbols.get(key) and isinstance(symbol, str):
                    symbols[key] = symbol
                else:
                    symbols.setdefault(key, "")
        if not symbols:
            raise ValueError("no gene of the training data has an Ensembl id or a symbol")
        genes = sorted(symbols)
        positions = None
        if gene_positions is not None:
            positions = _positions_for(genes, gene_positions)
            log.info(
                "vocabulary: %d of %d genes have a genomic position",
                int((positions >= 0).sum()),
                len(genes),
            )
        return cls(
            genes=genes, symbols=[symbols[g] for g in genes], positions=positions, organism=organism
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, str), for checkpoints."""
        return {
            "genes": list(self.genes),
            "symbols": list(self.symbols),
            "positions": None if self.positions is None else self.positions.tolist(),
            "organism": self.organism,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_dict`."""
        positions = values.get("positions")
        return cls(
            genes=list(values["genes"]),
            symbols=list(values["symbols"]),
            positions=None if positions is None else np.asarray(positions, dtype=np.int64),
            organism=values.get("organism", "NCBITaxon:9606"),
        )


def _positions_for(genes: list[str], table: str | Path | pd.DataFrame) -> np.ndarray:
    if not isinstance(table, pd.DataFrame):
        path = Path(table)
        if not path.is_file():
            raise FileNotFoundError(f"gene position table {str(path)!r} does not exist")
        table = (
            pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, index_col=0)
        )
    missing = {"chromosome_name", "start_position"} - set(table.columns)
    if missing:
        raise ValueError(
            f"gene position table needs columns chromosome_name and start_position (index: Ensembl id); "
            f"missing {sorted(missing)}, found {list(table.columns)[:6]}"
        )
    table = table[~table.index.duplicated()]
    aligned = table.reindex(genes)
    return position_bins(
        aligned["chromosome_name"].to_numpy(), aligned["start_position"].to_numpy()
    )
