"""Map a user's genes (Ensembl ids or symbols, human or mouse) onto a model's vocabulary.

A model's vocabulary is a list of Ensembl gene ids (the published scPRINT checkpoints hold human
``ENSG`` and mouse ``ENSMUSG`` ids; our own checkpoints also carry symbols). A user's AnnData names
its genes by Ensembl id or by symbol, in ``var_names`` or in a ``var`` column. :func:`match_genes`
resolves every column of the AnnData to at most one vocabulary gene, in this order:

1. **Ensembl id** (version suffix ``.N`` dropped), from ``var_names`` when they look like Ensembl
   ids, else from ``gene_column`` or the first of :data:`ID_COLUMNS` present in ``var``;
2. **symbol**, for the columns step 1 left unmatched, from ``var_names`` when they are not Ensembl
   ids, else from ``gene_column`` or the first of :data:`SYMBOL_COLUMNS`. A symbol is looked up in
   the model's own symbols, then in the organism's gene table (:class:`GeneTable`: for human the
   data folder's biomart positions ``hgnc_symbol`` and GENCODE v44 id-to-name tables; or a user's
   file). Symbols match case-insensitively.

**Ambiguous symbols.** A symbol that names several Ensembl ids the model knows is resolved to the
one on a standard chromosome (1-22, X, Y, MT in the biomart table) when exactly one is; otherwise
the column is left unmatched and counted as ambiguous (examples are reported). Ids the model does
not know never make a symbol ambiguous.

**Duplicates.** Each vocabulary gene is used once: when two columns resolve to the same gene, the
first column keeps it and the others are counted as duplicates.

Mouse symbols cannot be resolved from the data folder (it holds no mouse id-to-symbol table):
give Ensembl ids, a ``gene_table`` file, or ``orthologs=True`` to map mouse symbols to their
one-to-one human orthologs (``ensembl105_human2mouse_genes.csv.gz``) for a human-only model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .organisms import ENSEMBL_PREFIXES, HUMAN, MOUSE

log = logging.getLogger(__name__)

__all__ = [
    "HUMAN",
    "ID_COLUMNS",
    "MOUSE",
    "SYMBOL_COLUMNS",
    "GeneTable",
    "Mapping",
    "load_gene_table",
    "match_genes",
    "strip_version",
]

#: ``var`` columns read for Ensembl ids when ``var_names`` are symbols (first present wins).
ID_COLUMNS: tuple[str, ...] = ("ensembl_id", "gene_ids", "gene_id", "ensembl_gene_id")
#: ``var`` columns read for symbols when ``var_names`` are Ensembl ids (first present wins).
SYMBOL_COLUMNS: tuple[str, ...] = ("gene_symbol", "feature_name", "gene_name", "symbol")
_STANDARD_CHROMOSOMES = frozenset([str(i) for i in range(1, 23)] + ["X", "Y", "MT"])


def strip_version(names: Sequence[Any]) -> np.ndarray:
    """Ensembl ids without their ``.N`` version suffix; non-strings become ``""``."""
    series = pd.Series(list(names), dtype=object)
    text = series.where(series.map(lambda v: isinstance(v, str)), "").astype(str)
    return text.str.replace(r"^(ENS[A-Z]*G\d+)\.\d+$", r"\1", regex=True).to_numpy(dtype=object)


def _looks_ensembl(names: Sequence[Any]) -> bool:
    sample = [str(n) for n in list(names)[:200]]
    return bool(sample) and sum(n.startswith("ENS") for n in sample) >= 0.8 * len(sample)


@dataclass(frozen=True)
class GeneTable:
    """Ensembl id <-> symbol pairs of one organism (one row per pair).

    Attributes:
        ids: ``(n,)`` Ensembl gene ids without version.
        symbols: ``(n,)`` symbols.
        standard: ``(n,)`` bool, the gene lies on a standard chromosome (True when unknown).
        source: where the table comes from, for messages.
    """

    ids: np.ndarray
    symbols: np.ndarray
    standard: np.ndarray
    source: str

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str) -> GeneTable:
        """A table from a DataFrame with an id column and a symbol column.

        Columns are found by name (``ensembl_id``/``gene_id``/``ensembl_gene_id`` and
        ``symbol``/``gene_symbol``/``gene_name``/``hgnc_symbol``), else the first two columns are
        (id, symbol). Raises ``ValueError`` when no row holds an Ensembl id and a symbol.
        """
        lower = {str(c).lower(): c for c in frame.columns}
        id_col = next((lower[c] for c in (*ID_COLUMNS, "id") if c in lower), None)
        symbol_col = next(
            (lower[c] for c in (*SYMBOL_COLUMNS, "hgnc_symbol", "name") if c in lower), None
        )
        if id_col is None or symbol_col is None:
            if frame.shape[1] < 2:
                raise ValueError(
                    f"gene table {source}: expected two columns (Ensembl id, symbol), "
                    f"got {list(frame.columns)}"
                )
            id_col, symbol_col = frame.columns[0], frame.columns[1]
        ids = strip_version(frame[id_col].tolist())
        symbols = frame[symbol_col].astype(object).where(frame[symbol_col].notna(), "")
        symbols = symbols.astype(str).str.strip().to_numpy(dtype=object)
        keep = (pd.Series(ids).str.startswith("ENS") & (pd.Series(symbols) != "")).to_numpy()
        keep &= symbols != ids
        if not keep.any():
            raise ValueError(
                f"gene table {source}: no row pairs an Ensembl id with a symbol "
                f"(columns {id_col!r}, {symbol_col!r}; first row {frame.iloc[0].tolist()})"
            )
        return cls(ids[keep], symbols[keep], np.ones(int(keep.sum()), dtype=bool), source)


def _read_table_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"gene table {str(path)!r} does not exist")
    if path.suffix == ".parquet":
        return pd.read_parquet(path).reset_index()
    sep = "\t" if ".tsv" in path.suffixes or ".txt" in path.suffixes else ","
    return pd.read_csv(path, sep=sep)


@lru_cache(maxsize=4)
def _human_table(folder: str) -> GeneTable:
    """Biomart ``hgnc_symbol`` (with chromosomes) and GENCODE v44 names, one table."""
    meta = Path(folder) / "gene_meta"
    biomart_path = meta / "human_biomart_gene_positions.parquet"
    gencode_path = meta / "gencode_v44_gene_id2name.csv.gz"
    parts: list[pd.DataFrame] = []
    if biomart_path.is_file():
        biomart = pd.read_parquet(biomart_path, columns=["hgnc_symbol", "chromosome_name"])
        biomart = biomart[biomart.index.str.startswith("ENSG")]
        parts.append(
            pd.DataFrame(
                {
                    "id": biomart.index.to_numpy(dtype=object),
                    "symbol": biomart["hgnc_symbol"].to_numpy(dtype=object),
                    "standard": biomart["chromosome_name"].astype(str).isin(_STANDARD_CHROMOSOMES),
                }
            )
        )
    if gencode_path.is_file():
        gencode = pd.read_csv(gencode_path, header=None, names=["id", "symbol"])
        parts.append(gencode.assign(standard=np.nan))
    if not parts:
        raise FileNotFoundError(
            f"no human gene table in {str(meta)!r} (expected {biomart_path.name} or "
            f"{gencode_path.name}); set SCPRINT_DATA_DIR or pass gene_table=<file>"
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["id"] = strip_version(frame["id"].tolist())
    frame = frame[
        frame["symbol"].notna()
        & (frame["symbol"] != frame["id"])
        & pd.Series(frame["id"]).str.startswith("ENSG")
    ]
    # an id counts as off the standard chromosomes only where biomart places it there
    off_standard = set(frame.loc[frame["standard"].eq(False), "id"])
    frame = frame.drop_duplicates(["id", "symbol"])
    return GeneTable(
        ids=frame["id"].to_numpy(dtype=object),
        symbols=frame["symbol"].astype(str).to_numpy(dtype=object),
        standard=~frame["id"].isin(off_standard).to_numpy(),
        source=f"{biomart_path.name} + {gencode_path.name}",
    )


@lru_cache(maxsize=4)
def _orthologs(folder: str) -> dict[str, str]:
    """Mouse symbol (upper case) -> human symbol, one-to-one pairs only."""
    path = Path(folder) / "gene_meta" / "ensembl105_human2mouse_genes.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"ortholog table {str(path)!r} does not exist")
    pairs = pd.read_csv(path, header=None, names=["human", "mouse"]).dropna()
    pairs = pairs[~pairs["human"].duplicated(keep=False) & ~pairs["mouse"].duplicated(keep=False)]
    return dict(zip(pairs["mouse"].str.upper(), pairs["human"]))


def _data_folder(data_dir: str | os.PathLike | None) -> Path | None:
    from grnndata.settings import find_data_dir

    return find_data_dir(data_dir)


def load_gene_table(
    organism: str,
    path: str | os.PathLike | pd.DataFrame | None = None,
    data_dir: str | os.PathLike | None = None,
) -> GeneTable | None:
    """The id <-> symbol table of ``organism``: a user's file or DataFrame, else the data folder's.

    ``path`` is a ``.csv``/``.tsv``/``.parquet`` file (or a DataFrame) with an Ensembl-id column
    and a symbol column (see :meth:`GeneTable.from_frame`). Without ``path``, human uses the data
    folder's tables (``SCPRINT_DATA_DIR``); other organisms have none (``None``).
    """
    if isinstance(path, pd.DataFrame):
        return GeneTable.from_frame(path, "DataFrame")
    if path is not None:
        file = Path(path)
        return GeneTable.from_frame(_read_table_file(file), repr(str(file)))
    if organism != HUMAN:
        return None
    folder = _data_folder(data_dir)
    if folder is None:
        log.warning("no data folder: human symbols are matched to the model's own symbols only")
        return None
    return _human_table(str(folder))


@dataclass(frozen=True)
class Mapping:
    """Vocabulary gene of every column of an AnnData.

    Attributes:
        vocab_index: ``(n_vars,)`` int64 vocabulary index of each column, ``-1`` = unknown.
        by_id, by_symbol: number of columns matched by Ensembl id and by symbol.
        ambiguous: symbols (``var`` order) left unmatched because they name several known genes.
        duplicates: columns (names) whose gene an earlier column already holds.
        unknown: names of the unmatched columns (at most 5, for messages).
        organism: the organism the genes were read as.
    """

    vocab_index: np.ndarray
    by_id: int
    by_symbol: int
    ambiguous: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    organism: str | None = None

    @property
    def n_known(self) -> int:
        """Columns matched to a vocabulary gene."""
        return int((self.vocab_index >= 0).sum())


def _id_source(adata: ad.AnnData, gene_column: str | None) -> np.ndarray | None:
    if _looks_ensembl(adata.var_names):
        return strip_version(adata.var_names.tolist())
    columns = [gene_column] if gene_column is not None else list(ID_COLUMNS)
    for column in columns:
        if column in adata.var and _looks_ensembl(adata.var[column].dropna().astype(str).tolist()):
            return strip_version(adata.var[column].tolist())
    return None


def _symbol_source(adata: ad.AnnData, gene_column: str | None) -> np.ndarray | None:
    if not _looks_ensembl(adata.var_names):
        return np.asarray(adata.var_names.astype(str), dtype=object)
    columns = [gene_column] if gene_column is not None else list(SYMBOL_COLUMNS)
    for column in columns:
        if column in adata.var and not _looks_ensembl(
            adata.var[column].dropna().astype(str).tolist()
        ):
            values = adata.var[column].astype(object)
            return values.where(values.notna(), "").astype(str).to_numpy(dtype=object)
    return None


def _symbol_candidates(
    vocab_genes: Sequence[str], vocab_symbols: Sequence[str] | None, table: GeneTable | None
) -> pd.DataFrame:
    """(symbol upper, vocabulary index, standard chromosome) for every way a symbol names a gene."""
    index = pd.Index([str(g) for g in vocab_genes])
    frames = []
    if vocab_symbols is not None:
        symbols = pd.Series([str(s) if s else "" for s in vocab_symbols], dtype=object)
        keep = (symbols != "").to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbols[keep].str.upper().to_numpy(),
                    "vocab": np.flatnonzero(keep),
                    "standard": True,
                }
            )
        )
    if table is not None:
        position = index.get_indexer(pd.Index(table.ids))
        keep = position >= 0
        frames.append(
            pd.DataFrame(
                {
                    "symbol": pd.Series(table.symbols[keep], dtype=str).str.upper().to_numpy(),
                    "vocab": position[keep],
                    "standard": table.standard[keep],
                }
            )
        )
    if not frames:
        return pd.DataFrame({"symbol": [], "vocab": [], "standard": []})
    candidates = pd.concat(frames, ignore_index=True)
    return candidates.groupby(["symbol", "vocab"], as_index=False)["standard"].all()


def _resolve_symbols(symbols: np.ndarray, candidates: pd.DataFrame) -> tuple[np.ndarray, set[str]]:
    """Vocabulary index per symbol (``-1`` none or ambiguous) and the set of ambiguous symbols."""
    if candidates.empty:
        return np.full(len(symbols), -1, dtype=np.int64), set()
    n_per_symbol = candidates.groupby("symbol")["vocab"].transform("size")
    unique = candidates[n_per_symbol == 1]
    several = candidates[n_per_symbol > 1]
    standard = several[several["standard"].astype(bool)]
    n_standard = standard.groupby("symbol")["vocab"].transform("size")
    resolved = pd.concat([unique, standard[n_standard == 1]])
    lookup = pd.Series(resolved["vocab"].to_numpy(), index=resolved["symbol"].to_numpy())
    ambiguous = set(several["symbol"]) - set(resolved["symbol"])
    keys = pd.Series(symbols, dtype=object).astype(str).str.upper()
    out = keys.map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    return out, ambiguous


def match_genes(
    adata: ad.AnnData,
    vocab_genes: Sequence[str],
    vocab_symbols: Sequence[str] | None = None,
    *,
    organism: str | None = None,
    gene_column: str | None = None,
    gene_table: str | os.PathLike | pd.DataFrame | None = None,
    orthologs: bool = False,
    data_dir: str | os.PathLike | None = None,
) -> Mapping:
    """Resolve each column of ``adata`` to a vocabulary gene (see the module docstring for the rules).

    Args:
        adata: only ``var_names`` and ``var`` are read.
        vocab_genes: the model's genes (Ensembl ids, in embedding order).
        vocab_symbols: the model's symbols in the same order (``""`` unknown), when it has them.
        organism: ``"NCBITaxon:9606"`` or ``"NCBITaxon:10090"``; ``None`` = from the Ensembl
            prefixes of the ids, else human.
        gene_column: ``var`` column holding the ids or symbols when ``var_names`` hold neither.
        gene_table: a user's id/symbol table (file or DataFrame) used instead of the data folder's.
        orthologs: map mouse symbols to their one-to-one human orthologs (for a human-only model).
        data_dir: the data folder (default ``SCPRINT_DATA_DIR``).
    """
    if gene_column is not None and gene_column not in adata.var:
        raise KeyError(f"var has no column {gene_column!r}; available: {list(adata.var.columns)}")
    n_vars = adata.n_vars
    vocab_index = pd.Index([str(g) for g in vocab_genes])
    ids = _id_source(adata, gene_column)
    if organism is None and ids is not None:
        prefixes = pd.Series(ids).str.extract(r"^(ENS[A-Z]*)G")[0].value_counts()
        organism = next(
            (ENSEMBL_PREFIXES[f"{p}G"] for p in prefixes.index if f"{p}G" in ENSEMBL_PREFIXES),
            None,
        )
    organism = organism or HUMAN
    by_id = np.full(n_vars, -1, dtype=np.int64) if ids is None else vocab_index.get_indexer(ids)
    result = by_id.copy()
    symbols = _symbol_source(adata, gene_column)
    ambiguous: set[str] = set()
    if symbols is not None and (result < 0).any():
        table_organism = organism
        lookup_symbols = symbols
        if orthologs and organism == MOUSE:
            folder = _data_folder(data_dir)
            if folder is None:
                raise FileNotFoundError("orthologs=True needs the data folder (SCPRINT_DATA_DIR)")
            human = _orthologs(str(folder))
            lookup_symbols = np.array(
                [human.get(str(s).upper(), "") for s in symbols], dtype=object
            )
            table_organism = HUMAN
        table = load_gene_table(table_organism, gene_table, data_dir)
        candidates = _symbol_candidates(vocab_genes, vocab_symbols, table)
        by_symbol, ambiguous = _resolve_symbols(lookup_symbols, candidates)
        result = np.where(result >= 0, result, by_symbol)
    names = np.asarray(adata.var_names.astype(str), dtype=object)
    duplicated = np.zeros(n_vars, dtype=bool)
    known = np.flatnonzero(result >= 0)
    if known.size:
        duplicated[known] = pd.Index(result[known]).duplicated(keep="first")
    result = np.where(duplicated, -1, result)
    n_by_id = int(((result >= 0) & (by_id >= 0)).sum())
    n_by_symbol = int((result >= 0).sum()) - n_by_id
    ambiguous_names = (
        []
        if symbols is None
        else [str(s) for s, r in zip(symbols, result) if r < 0 and str(s).upper() in ambiguous]
    )
    return Mapping(
        vocab_index=result.astype(np.int64),
        by_id=n_by_id,
        by_symbol=n_by_symbol,
        ambiguous=ambiguous_names,
        duplicates=names[duplicated].tolist(),
        unknown=names[(result < 0) & ~duplicated][:5].tolist(),
        organism=organism,
    )
