"""Input of the tasks: checks, gene matching onto the model's vocabulary, :class:`TaskInput`.

Every task checks the AnnData it is given once (:func:`prepare`: raw counts, organism, gene
overlap with the model's vocabulary, through :class:`scprint.data.CellSource`) and passes the
resulting :class:`TaskInput` on. Nothing here knows about a particular task.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scprint.checkpoints import Pretrained
from scprint.data import MIN_OVERLAP_GENES, ORGANISMS, CellSource, Vocabulary
from scprint.data.checks import check_finite_counts, check_has_cells, check_unique_var_names
from scprint.data.organisms import (
    HUMAN,
    MOUSE,
    check_cells_organism,
    organism_id,
    organisms_of_cells,
)
from scprint.errors import InputError
from scprint.tasks.genes import GENE_SELECTIONS, select_genes
from scprint.tasks.options import GENE_CHOICES

log = logging.getLogger(__name__)

__all__ = [
    "GENE_CHOICES",
    "GENE_MATCHING_OPTIONS",
    "GeneMatch",
    "TaskInput",
    "check_finite_counts",
    "check_genes",
    "choose_genes",
    "check_unique_var_names",
    "counts_matrix",
    "gene_matching_options",
    "match_vocabulary",
    "model_view",
    "prepare",
    "resolve_gene_list",
    "supported_organisms",
    "var_names_to_vocab",
]


@dataclass(frozen=True)
class GeneMatch:
    """Genes of an AnnData that the model knows (see :mod:`scprint.data.gene_mapping`).

    ``var_indices[i]`` (column of ``adata``) is gene ``vocab_indices[i]`` of the vocabulary.
    ``column_vocab`` is the vocabulary index of every column (``-1`` = unknown), so that a subset
    of the columns keeps its mapping (:meth:`subset`).
    """

    var_indices: np.ndarray
    vocab_indices: np.ndarray
    n_vars: int
    column_vocab: np.ndarray | None = None
    by_id: int = 0
    by_symbol: int = 0
    ambiguous: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    organism: str | None = None

    @property
    def n_known(self) -> int:
        """Number of the AnnData's genes the model knows."""
        return len(self.var_indices)

    @property
    def fraction(self) -> float:
        """Share of the AnnData's genes found in the vocabulary."""
        return len(self.var_indices) / max(self.n_vars, 1)

    @classmethod
    def from_columns(cls, column_vocab: np.ndarray, **details: Any) -> GeneMatch:
        """A match from the vocabulary index of every column (``-1`` = unknown)."""
        column_vocab = np.asarray(column_vocab, dtype=np.int64)
        var_indices = np.flatnonzero(column_vocab >= 0)
        return cls(
            var_indices=var_indices,
            vocab_indices=column_vocab[var_indices],
            n_vars=len(column_vocab),
            column_vocab=column_vocab,
            **details,
        )

    def columns(self) -> np.ndarray:
        """Vocabulary index of every column (``-1`` = unknown), ``(n_vars,)`` int64."""
        if self.column_vocab is not None:
            return self.column_vocab
        out = np.full(self.n_vars, -1, dtype=np.int64)
        out[self.var_indices] = self.vocab_indices
        return out

    def subset(self, columns: np.ndarray) -> GeneMatch:
        """The match of ``adata[:, columns]``."""
        return GeneMatch.from_columns(
            self.columns()[np.asarray(columns, dtype=np.int64)], organism=self.organism
        )

    def summary(self) -> dict[str, Any]:
        """What ``uns`` records: counts, the share known, and a few ambiguous / unknown genes."""
        record: dict[str, Any] = {
            "n_genes": int(self.n_vars),
            "n_known": int(self.n_known),
            "fraction_known": round(float(self.fraction), 6),
            "n_matched_by_id": int(self.by_id),
            "n_matched_by_symbol": int(self.by_symbol),
            "n_ambiguous_symbols": len(self.ambiguous),
            "n_duplicates": len(self.duplicates),
        }
        if self.ambiguous:
            record["ambiguous_examples"] = list(self.ambiguous[:5])
        if self.unknown:
            record["unknown_examples"] = list(self.unknown[:5])
        if self.organism:
            record["organism"] = self.organism
        return record


def supported_organisms(pretrained: Pretrained) -> list[str]:
    """NCBITaxon ids of the organisms whose genes the loaded model knows."""
    organisms = getattr(pretrained, "organisms", None)
    return list(organisms) if organisms else [pretrained.vocab.organism]


def _resolve_organism(
    adata: ad.AnnData, organism: str | None, supported: list[str], orthologs: bool = False
) -> str | None:
    """The organism of the cells: the argument, else ``obs["organism_ontology_term_id"]``.

    With ``orthologs`` a human model also takes mouse cells: their genes are read as mouse genes
    and mapped to their human orthologs (:func:`scprint.data.gene_mapping.match_genes`), so the
    organism is checked against what the genes become, not against the vocabulary's organism.
    """
    if orthologs and HUMAN in supported and MOUSE not in supported:
        supported = [*supported, MOUSE]
    if organism is not None:
        organism = organism_id(organism)
        if organism not in ORGANISMS and organism not in supported:
            raise InputError(
                f"unknown organism {organism!r}; expected one of {sorted(set(ORGANISMS) | set(supported))} "
                "(e.g. 'NCBITaxon:9606' for human, 'NCBITaxon:10090' for mouse)"
            )
        found, source = organisms_of_cells(adata.obs)
        if found - {organism}:
            raise InputError(f"organism {organism!r} was given but {source} holds {sorted(found)}")
        if organism not in supported:
            raise InputError(
                f"cells of an unsupported organism: {organism!r} was given; this model supports "
                f"{sorted(supported)}"
            )
        return organism
    found = check_cells_organism(
        adata.obs, supported, uns=adata.uns, var_names=adata.var_names, what="the AnnData"
    )
    if "organism_ontology_term_id" in adata.obs:
        if len(found) > 1:
            raise InputError(
                f"obs['organism_ontology_term_id'] mixes organisms {sorted(found)}; run the task "
                "once per organism"
            )
        return next(iter(found))
    return supported[0] if len(supported) == 1 else None


def match_vocabulary(
    adata: ad.AnnData,
    vocab: Vocabulary,
    *,
    organisms: Sequence[str] | None = None,
    organism: str | None = None,
    gene_column: str | None = None,
    gene_table: str | os.PathLike[str] | pd.DataFrame | None = None,
    orthologs: bool = False,
) -> GeneMatch:
    """Map the genes of ``adata`` onto ``vocab`` (rules in :mod:`scprint.data.gene_mapping`).

    ``organisms`` are those the model supports (default the vocabulary's organism).
    """
    from scprint.data.gene_mapping import match_genes

    supported = list(organisms) if organisms else [vocab.organism]
    organism = _resolve_organism(adata, organism, supported, orthologs)
    symbols = getattr(vocab, "symbols", None)
    if symbols is not None and not any(symbols):
        symbols = None
    mapping = match_genes(
        adata,
        vocab.genes,
        symbols,
        organism=organism,
        gene_column=gene_column,
        gene_table=gene_table,
        orthologs=orthologs,
    )
    return GeneMatch.from_columns(
        mapping.vocab_index,
        by_id=mapping.by_id,
        by_symbol=mapping.by_symbol,
        ambiguous=tuple(mapping.ambiguous),
        duplicates=tuple(mapping.duplicates),
        unknown=tuple(mapping.unknown),
        organism=mapping.organism,
    )


#: Keyword arguments of :func:`prepare` that say how genes are matched (a task's ``gene_matching``).
GENE_MATCHING_OPTIONS: tuple[str, ...] = (
    "organism",
    "gene_column",
    "gene_table",
    "orthologs",
    "min_genes",
)


def gene_matching_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A task's ``gene_matching`` mapping, checked: keys among :data:`GENE_MATCHING_OPTIONS`."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(GENE_MATCHING_OPTIONS))
    if unknown:
        raise InputError(
            f"gene_matching has unknown keys {unknown}; expected some of {list(GENE_MATCHING_OPTIONS)}"
        )
    return options


class TaskInput:
    """An AnnData checked once for a task (:func:`prepare`), passed on to every step.

    ``match`` is the gene mapping onto the model's vocabulary; ``counts`` is ``adata.X`` as a
    float32 CSR matrix (cells x genes), given or extracted on first use, then reused.
    """

    def __init__(
        self, adata: ad.AnnData, match: GeneMatch, counts: sp.csr_matrix | None = None
    ) -> None:
        self.adata = adata
        self.match = match
        self._counts = counts

    @property
    def counts(self) -> sp.csr_matrix:
        """``adata.X`` as float32 CSR (cells x genes); read once (:func:`prepare` checked it)."""
        if self._counts is None:
            self._counts = sp.csr_matrix(self.adata.X, dtype=np.float32)
        return self._counts


def prepare(
    adata: ad.AnnData,
    pretrained: Pretrained,
    *,
    organism: str | None = None,
    gene_column: str | None = None,
    gene_table: str | os.PathLike[str] | pd.DataFrame | None = None,
    orthologs: bool = False,
    min_genes: int = MIN_OVERLAP_GENES,
) -> TaskInput:
    """All input checks of a task; returns the AnnData with the genes the model knows.

    Genes are mapped by :func:`match_vocabulary` (Ensembl ids or symbols, ``organism`` from the
    argument or ``obs["organism_ontology_term_id"]``). The overlap is logged (INFO) and, when
    fewer than ``min(min_genes, n_vars)`` genes are known, a ``ValueError`` names the counts and
    examples of the AnnData's and the model's genes. ``min_genes`` cannot go below
    :data:`scprint.data.MIN_OVERLAP_GENES`, the data layer's own minimum.

    Also raises ``ValueError`` when ``X`` does not hold raw integer counts or has empty cells, or
    when the cells come from another organism than the model's
    (:func:`scprint.data.organisms.check_cells_organism`).

    Raises ``ValueError`` when ``var_names`` has duplicates or ``X`` holds NaN or infinity.
    """
    if not isinstance(adata, ad.AnnData):
        raise InputError(f"expected an AnnData, got {type(adata).__name__}")
    check_has_cells(adata.n_obs)
    if adata.n_vars == 0:
        raise InputError("the AnnData has no genes (n_vars == 0)")
    if not isinstance(min_genes, int | np.integer) or min_genes < MIN_OVERLAP_GENES:
        raise InputError(
            f"min_genes must be an integer of at least {MIN_OVERLAP_GENES} "
            f"(scprint.data.MIN_OVERLAP_GENES), got {min_genes!r}"
        )
    check_unique_var_names(adata)
    if adata.X is not None:  # a missing X is reported by CellSource
        check_finite_counts(adata.X)
    CellSource(adata)  # raw integer counts, no empty cell
    vocab = pretrained.vocab
    match = match_vocabulary(
        adata,
        vocab,
        organisms=supported_organisms(pretrained),
        organism=organism,
        gene_column=gene_column,
        gene_table=gene_table,
        orthologs=orthologs,
    )
    needed = min(int(min_genes), adata.n_vars)
    log.info(
        "genes: %d of %d known to the model (%d by Ensembl id, %d by symbol; %d ambiguous "
        "symbols, %d duplicates)",
        match.n_known,
        adata.n_vars,
        match.by_id,
        match.by_symbol,
        len(match.ambiguous),
        len(match.duplicates),
    )
    if match.n_known < needed:
        hint = ""
        if match.ambiguous:
            hint = (
                f"; {len(match.ambiguous)} symbols are ambiguous, e.g. {list(match.ambiguous[:3])}"
            )
        raise InputError(
            f"only {match.n_known} of the AnnData's {adata.n_vars} genes are known to the model "
            f"(at least {needed} needed); the AnnData's genes look like "
            f"{adata.var_names[:3].tolist()}, the model's like {list(vocab.genes[:3])}{hint}. "
            "Genes are matched by Ensembl id or symbol (var_names or a var column such as "
            "'ensembl_id' / 'gene_symbol'; choose one with gene_column=), for the organism given "
            "or in obs['organism_ontology_term_id']; a gene_table file maps other symbols"
        )
    return TaskInput(adata, match)


def model_view(adata: ad.AnnData, match: GeneMatch, vocab: Vocabulary) -> ad.AnnData:
    """``adata`` with the genes renamed to the vocabulary ids ``match`` resolved (shares ``X``).

    Unknown columns get names the vocabulary cannot match (``"unmatched:<column>"``), so the data
    layer (:class:`scprint.data.CellSource`) sees exactly the mapping of ``match``. The organism
    column is left out of ``obs``: :func:`prepare` checked it against every organism the model
    knows (the data layer checks one).
    """
    columns = match.columns()
    if len(columns) != adata.n_vars:
        raise InputError(
            f"the gene match covers {len(columns)} genes but the AnnData has {adata.n_vars}"
        )
    genes = np.asarray(vocab.genes, dtype=object)
    names = np.where(
        columns >= 0,
        genes[np.clip(columns, 0, None)],
        np.array([f"unmatched:{i}" for i in range(len(columns))], dtype=object),
    )
    var = pd.DataFrame(
        {"ensembl_id": np.where(columns >= 0, names, None)}, index=pd.Index(names, dtype=str)
    )
    obs = adata.obs.drop(columns=["organism_ontology_term_id"], errors="ignore")
    return ad.AnnData(X=adata.X, obs=obs, var=var)


def counts_matrix(adata: ad.AnnData) -> sp.csr_matrix:
    """``adata.X`` as a float32 CSR matrix (cells x genes); ``ValueError`` on NaN or infinity."""
    matrix = adata.X
    if sp.issparse(matrix):
        out = sp.csr_matrix(matrix, dtype=np.float32)
    else:
        out = sp.csr_matrix(np.asarray(matrix, dtype=np.float32))
    check_finite_counts(out)
    return out


def var_names_to_vocab(adata: ad.AnnData, match: GeneMatch, var_indices: np.ndarray) -> np.ndarray:
    """Vocabulary indices of the AnnData columns ``var_indices``; ``ValueError`` for unknown genes."""
    vocab_ids = match.columns()[np.asarray(var_indices, dtype=np.int64)]
    unknown = np.flatnonzero(vocab_ids < 0)
    if unknown.size:
        example = adata.var_names[int(np.asarray(var_indices)[unknown[0]])]
        raise InputError(
            f"{unknown.size} chosen genes are not in the model's vocabulary (e.g. {example!r}); "
            "choose genes among those the model knows"
        )
    return vocab_ids


def resolve_gene_list(
    adata: ad.AnnData,
    genes: Sequence[str],
    match: GeneMatch | None = None,
    vocab: Vocabulary | None = None,
) -> np.ndarray:
    """Column indices of a user-given gene list; ``ValueError`` names a missing one.

    A gene is found by ``var_names`` first; with ``match`` and ``vocab``, also by the Ensembl id
    (version dropped) or symbol of the vocabulary gene a column was mapped to, so a symbol list
    works on Ensembl-indexed data and the reverse.
    """
    genes = [str(g) for g in genes]
    if not genes:
        raise InputError("the gene list is empty; give at least one gene, e.g. ['ENSG00000010610']")
    index = pd.Index(adata.var_names.astype(str))
    positions = index.get_indexer(genes)
    if match is not None and vocab is not None and (positions < 0).any():
        from scprint.data.gene_mapping import strip_version

        columns = match.columns()
        known = np.flatnonzero(columns >= 0)
        by_name: dict[str, int] = {}
        symbols = getattr(vocab, "symbols", None)
        for column in known[::-1]:  # first column wins
            by_name[str(vocab.genes[columns[column]])] = int(column)
            if symbols is not None and symbols[columns[column]]:
                by_name[str(symbols[columns[column]]).upper()] = int(column)
        for i in np.flatnonzero(positions < 0):
            key = str(strip_version([genes[i]])[0]) or genes[i]
            positions[i] = by_name.get(key, by_name.get(genes[i].upper(), -1))
    missing = [g for g, p in zip(genes, positions) if p < 0]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(genes)} listed genes are not in adata.var_names "
            f"(e.g. {missing[0]!r}); var_names look like {adata.var_names[0]!r}"
        )
    if len(set(positions.tolist())) != len(positions):
        raise InputError("the gene list has duplicates; give each gene once")
    return positions.astype(np.int64)


def check_genes(genes: str | Sequence[str], allowed: Sequence[str]) -> str | list[str]:
    """A task's ``genes`` option checked: one of ``allowed`` (names of :data:`GENE_CHOICES`) or a
    non-empty list of genes (returned as a list of strings); :class:`InputError` otherwise."""
    if isinstance(genes, str):
        if genes not in allowed:
            raise InputError(
                f"genes must be one of {tuple(allowed)} or a list of genes, got {genes!r}"
            )
        return genes
    genes = [str(g) for g in genes]
    if not genes:
        raise InputError("the gene list is empty; give at least one gene, e.g. ['ENSG00000010610']")
    return genes


def choose_genes(
    data: TaskInput,
    vocab: Vocabulary,
    genes: str | Sequence[str],
    n_genes: int,
    *,
    rows: np.ndarray | None = None,
    group: np.ndarray | None = None,
) -> np.ndarray:
    """Column indices of ``data.adata`` chosen by a task's ``genes`` (:data:`GENE_CHOICES` or a list).

    ``"all"``: the known genes in column order; ``"hvg"`` / ``"expressed"``: ``n_genes`` of the
    known genes computed on the cells ``rows`` (default all), best first; ``"de"``: ``group``
    (bool per cell) versus the other cells. A list is found by ``var_names``, Ensembl id or symbol
    (:func:`resolve_gene_list`), in the list's order, and must hold genes the model knows.
    """
    if not isinstance(genes, str):
        columns = resolve_gene_list(data.adata, genes, data.match, vocab)
        var_names_to_vocab(data.adata, data.match, columns)
        return columns
    known = np.sort(data.match.var_indices)
    if genes == "all":
        return known
    if genes == "de":
        if group is None:
            raise InputError("genes='de' compares a group of cells with the rest: give cell_type")
        return select_genes(data.counts, "de", n_genes, candidates=known, in_group=group)
    if genes not in GENE_SELECTIONS:
        raise InputError(f"genes must be one of {GENE_CHOICES} or a list of genes, got {genes!r}")
    counts = data.counts if rows is None else data.counts[rows]
    return select_genes(counts, genes, n_genes, candidates=known)
