"""Shared plumbing of the tasks: model loading, input checks, batching and writing outputs.

Every task takes a checkpoint (path or an already loaded model), checks the AnnData it is given
once (:func:`prepare`: raw counts, organism, gene overlap with the model's vocabulary, through
:class:`scprint.data.CellSource`), passes the resulting :class:`TaskInput` on, and streams cells
through the model in batches. Results are stored by :func:`store_result` (``copy=`` and
``uns[key_added]``, the one convention of every task). Nothing here knows about a particular task.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from grnndata import atomic
from scprint.data import MIN_OVERLAP_GENES, ORGANISMS, CellSource, Vocabulary
from scprint.training.checkpoint import Pretrained, resolve_device

log = logging.getLogger(__name__)

__all__ = [
    "GENE_MATCHING_OPTIONS",
    "Checkpoint",
    "GeneMatch",
    "TaskInput",
    "gene_matching_options",
    "check_cells_organism",
    "check_finite_counts",
    "check_unique_var_names",
    "counts_matrix",
    "iter_model_batches",
    "load_model",
    "match_vocabulary",
    "model_view",
    "output_kind",
    "prepare",
    "resolve_device",
    "store_result",
    "write_anndata",
]

#: What a task takes as its model: a checkpoint path or the object :func:`scprint.load` returns.
Checkpoint: TypeAlias = str | os.PathLike[str] | Pretrained

#: Ensembl gene-id prefixes of the organisms the tasks know how to recognise from ``var_names``.
_ENSEMBL_PREFIXES: dict[str, str] = {
    "ENSG": "NCBITaxon:9606",
    "ENSMUSG": "NCBITaxon:10090",
    "ENSDARG": "NCBITaxon:7955",
    "ENSRNOG": "NCBITaxon:10116",
    "ENSMMUG": "NCBITaxon:9544",
}
_ORGANISM_NAMES: dict[str, str] = {
    **{name.lower(): taxon for taxon, name in ORGANISMS.items()},
    "human": "NCBITaxon:9606",
    "mouse": "NCBITaxon:10090",
}


def load_model(ckpt: Checkpoint, device: str | torch.device = "auto") -> Pretrained:
    """A loaded scPRINT model: ``ckpt`` is a checkpoint path or an already loaded model.

    A path is read by :func:`scprint.load` (our checkpoints and the original scPRINT's 1.6.x / 2.x
    ones). An already loaded model (the object :func:`scprint.load` returns, with ``.model``,
    ``.vocab`` and ``.labels``) is moved to ``device`` and put in evaluation mode.
    """
    resolved = resolve_device(device)
    if isinstance(ckpt, str | os.PathLike):
        from scprint.training import load

        path = Path(ckpt)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        pretrained = load(path, device=str(resolved))
    elif hasattr(ckpt, "model") and hasattr(ckpt, "vocab"):
        pretrained = ckpt
        pretrained.model.to(resolved)
    else:
        raise TypeError(
            "ckpt must be a checkpoint path or the object scprint.load returns, "
            f"got {type(ckpt).__name__}"
        )
    pretrained.model.eval()
    return pretrained


def model_device(pretrained: Pretrained) -> torch.device:
    """The device the model's parameters live on."""
    return next(pretrained.model.parameters()).device


def _organism_ids(values: Sequence[Any]) -> set[str]:
    out = set()
    for value in values:
        text = str(value)
        out.add(_ORGANISM_NAMES.get(text.lower(), text))
    return out


def check_cells_organism(adata: ad.AnnData, supported: Sequence[str]) -> None:
    """Raise ``ValueError`` when the cells come from an organism the model does not support.

    The organism is read from ``obs["organism_ontology_term_id"]`` (CELLxGENE convention, e.g.
    ``"NCBITaxon:9606"``), else ``obs["organism"]`` / ``uns["organism"]`` (``"Homo sapiens"``), else
    inferred from Ensembl gene-id prefixes of ``var_names`` (``ENSG`` human, ``ENSMUSG`` mouse).
    """
    supported_set = set(supported)
    found: set[str] = set()
    source = ""
    if "organism_ontology_term_id" in adata.obs:
        found = _organism_ids(pd.unique(adata.obs["organism_ontology_term_id"].astype(str)))
        source = "obs['organism_ontology_term_id']"
    elif "organism" in adata.obs:
        found = _organism_ids(pd.unique(adata.obs["organism"].astype(str)))
        source = "obs['organism']"
    elif "organism" in adata.uns:
        found = _organism_ids([adata.uns["organism"]])
        source = "uns['organism']"
    else:
        names = pd.Index(adata.var_names[: min(2000, adata.n_vars)]).astype(str)
        counts: dict[str, int] = {}
        for prefix, taxon in sorted(_ENSEMBL_PREFIXES.items(), key=lambda kv: -len(kv[0])):
            hits = int(names.str.match(rf"^{prefix}\d").sum())
            if hits:
                counts[taxon] = counts.get(taxon, 0) + hits
        if counts:
            majority = max(counts, key=counts.__getitem__)
            if counts[majority] >= 0.5 * len(names):
                found = {majority}
                source = "Ensembl prefixes of var_names"
    unsupported = sorted(found - supported_set)
    if unsupported:
        raise ValueError(
            f"cells of an unsupported organism: {source} gives {unsupported}; "
            f"this model supports {sorted(supported_set)} (e.g. 'NCBITaxon:9606' = Homo sapiens)"
        )


@dataclass(frozen=True)
class GeneMatch:
    """Genes of an AnnData that the model knows (see :mod:`scprint.tasks.gene_mapping`).

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


def _resolve_organism(adata: ad.AnnData, organism: str | None, supported: list[str]) -> str | None:
    """The organism of the cells: the argument, else ``obs["organism_ontology_term_id"]``."""
    if organism is not None:
        organism = _ORGANISM_NAMES.get(str(organism).lower(), str(organism))
        if organism not in ORGANISMS:
            raise ValueError(
                f"unknown organism {organism!r}; expected one of {sorted(ORGANISMS)} "
                "(e.g. 'NCBITaxon:9606' for human, 'NCBITaxon:10090' for mouse)"
            )
        if "organism_ontology_term_id" in adata.obs:
            found = _organism_ids(pd.unique(adata.obs["organism_ontology_term_id"].astype(str)))
            if found - {organism}:
                raise ValueError(
                    f"organism {organism!r} was given but obs['organism_ontology_term_id'] holds "
                    f"{sorted(found)}"
                )
        if organism not in supported:
            raise ValueError(
                f"cells of an unsupported organism: {organism!r} was given; this model supports "
                f"{sorted(supported)}"
            )
        return organism
    check_cells_organism(adata, supported)
    if "organism_ontology_term_id" in adata.obs:
        found = sorted(_organism_ids(pd.unique(adata.obs["organism_ontology_term_id"].astype(str))))
        if len(found) > 1:
            raise ValueError(
                f"obs['organism_ontology_term_id'] mixes organisms {found}; run the task once per "
                "organism"
            )
        return found[0]
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
    """Map the genes of ``adata`` onto ``vocab`` (rules in :mod:`scprint.tasks.gene_mapping`).

    ``organisms`` are those the model supports (default the vocabulary's organism).
    """
    from scprint.tasks.gene_mapping import match_genes

    supported = list(organisms) if organisms else [vocab.organism]
    organism = _resolve_organism(adata, organism, supported)
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
        raise ValueError(
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
    when the cells come from another organism than the model's (:func:`check_cells_organism`).

    Raises ``ValueError`` when ``var_names`` has duplicates or ``X`` holds NaN or infinity.
    """
    if not isinstance(adata, ad.AnnData):
        raise TypeError(f"expected an AnnData, got {type(adata).__name__}")
    if adata.n_obs == 0:
        raise ValueError("the AnnData has no cells (n_obs == 0)")
    if adata.n_vars == 0:
        raise ValueError("the AnnData has no genes (n_vars == 0)")
    if not isinstance(min_genes, int | np.integer) or min_genes < MIN_OVERLAP_GENES:
        raise ValueError(
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
        raise ValueError(
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
        raise ValueError(
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


def check_unique_var_names(adata: ad.AnnData) -> None:
    """Raise ``ValueError`` when ``adata.var_names`` holds a gene twice (one would be dropped)."""
    names = pd.Index(adata.var_names)
    if names.has_duplicates:
        repeated = names[names.duplicated()].unique()
        raise ValueError(
            f"adata.var_names has {len(repeated)} duplicated gene name(s), e.g. "
            f"{[str(g) for g in repeated[:3]]}; each gene must be one column. Sum the duplicated "
            "columns or keep one of each, e.g. adata = adata[:, ~adata.var_names.duplicated()]"
        )


_FINITE_CHECK_ROWS = 10_000


def check_finite_counts(matrix: Any) -> None:
    """Raise ``ValueError`` naming a cell when the counts ``matrix`` (cells x genes) hold NaN or inf.

    A backed (on-disk) matrix is read ``_FINITE_CHECK_ROWS`` cells at a time.
    """
    n_rows = matrix.shape[0]
    in_memory = sp.issparse(matrix) or isinstance(matrix, np.ndarray)
    step = max(n_rows, 1) if in_memory else _FINITE_CHECK_ROWS
    for start in range(0, n_rows, step):
        block = matrix if in_memory else matrix[start : start + step]
        if sp.issparse(block):
            block = sp.csr_matrix(block)
            values = block.data
        else:
            values = np.asarray(block)
        bad = np.flatnonzero(~np.isfinite(values.ravel()))
        if bad.size:
            first = int(bad[0])
            if sp.issparse(block):
                row = int(np.searchsorted(block.indptr, first, side="right")) - 1
            else:
                row = first // max(values.shape[1] if values.ndim == 2 else 1, 1)
            raise ValueError(
                f"X must hold finite raw counts; found {bad.size} non-finite value(s), e.g. "
                f"{float(values.ravel()[first])!r} in cell {start + row}. Put the raw integer "
                "counts in X, e.g. adata.X = adata.layers['counts']"
            )


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
        raise ValueError(
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
        raise ValueError("the gene list is empty; give at least one gene, e.g. ['ENSG00000010610']")
    index = pd.Index(adata.var_names.astype(str))
    positions = index.get_indexer(genes)
    if match is not None and vocab is not None and (positions < 0).any():
        from scprint.tasks.gene_mapping import strip_version

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
        raise ValueError(
            f"{len(missing)} of {len(genes)} listed genes are not in adata.var_names "
            f"(e.g. {missing[0]!r}); var_names look like {adata.var_names[0]!r}"
        )
    if len(set(positions.tolist())) != len(positions):
        raise ValueError("the gene list has duplicates; give each gene once")
    return positions.astype(np.int64)


def iter_model_batches(
    adata: ad.AnnData,
    pretrained: Pretrained,
    match: GeneMatch,
    *,
    genes: Sequence[str] | None,
    max_len: int | None,
    batch_size: int,
    description: str,
) -> Iterator[dict[str, torch.Tensor]]:
    """Stream ``adata`` through the model's batching, on the model's device, with a progress bar.

    ``match`` is the gene mapping of ``adata`` (``prepare(...).match``, or its :meth:`GeneMatch.subset`
    for some columns). ``genes`` is ``None`` (up to ``max_len`` genes per cell, expressed ones
    first, default the model's training context length) or a fixed list of ``var_names`` that
    every cell gets, in that order. Each batch is a dict of tensors:
    ``gene_ids`` (B, L) vocabulary indices (-1 = padding), ``counts`` (B, L), ``depth`` (B,) and
    ``cell_index`` (B,) rows of ``adata``.
    """
    from scprint.data import make_inference_batches

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = model_device(pretrained)
    vocab = pretrained.vocab
    view = model_view(adata, match, vocab)
    vocab_genes = None
    if genes is not None:
        columns = resolve_gene_list(adata, genes, match, vocab)
        vocab_genes = [str(vocab.genes[i]) for i in var_names_to_vocab(adata, match, columns)]
    batches = make_inference_batches(
        view,
        vocab,
        genes=vocab_genes,
        max_len=pretrained.config.max_len if max_len is None else max_len,
        batch_size=batch_size,
    )
    total = -(-adata.n_obs // batch_size)
    for batch in tqdm(batches, total=total, desc=description, unit="batch", leave=False):
        yield {
            key: (value.to(device) if isinstance(value, torch.Tensor) else torch.as_tensor(value))
            for key, value in batch.items()
        }


def provenance(pretrained: Pretrained, **parameters: Any) -> dict[str, Any]:
    """What produced an output, for ``uns``: checkpoint path, model version and the parameters.

    ``None`` values are left out (they cannot be stored in ``.h5ad``/``.zarr``).
    """
    path = getattr(pretrained, "path", None)
    record: dict[str, Any] = {
        "checkpoint": None if path is None else str(path),
        "model_version": None
        if getattr(pretrained, "version", None) is None
        else str(pretrained.version),
        **parameters,
    }
    return {key: value for key, value in record.items() if value is not None}


def write_anndata(adata: ad.AnnData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` atomically to ``path`` (``.h5ad`` file or ``.zarr`` folder).

    A ``GRNAnnData`` is written by grnndata (:func:`grnndata.write_zarr` /
    :func:`grnndata.write_h5ad`: the network with its column index), any other AnnData by
    anndata inside :func:`grnndata.atomic.atomic_path`.

    The data go to a temporary sibling first and are swapped into place
    (:func:`grnndata.atomic.atomic_path`), so a reader never sees a half-written output and an
    existing output is only replaced once the new one is complete. An existing path that is not
    an output of the same kind (an HDF5 file for ``.h5ad``, a zarr store for ``.zarr``, e.g. a
    folder of the user's files) is refused (:class:`grnndata.atomic.OutputExistsError`) unless
    ``overwrite``.
    """
    from grnndata import GRNAnnData

    path = Path(path)
    kind = output_kind(path)
    if isinstance(adata, GRNAnnData):  # grnndata's writers: atomic, with the network's index
        if kind == "h5ad":
            adata.write_h5ad(path, overwrite=overwrite)
        else:
            adata.write_zarr(path, overwrite=overwrite)
        return path
    with atomic.atomic_path(path, kind, overwrite=overwrite) as tmp:
        if kind == "h5ad":
            adata.write_h5ad(tmp)
        else:
            adata.write_zarr(tmp)
    log.info("wrote %s", path)
    return path


def output_kind(path: str | os.PathLike) -> str:
    """The :mod:`grnndata.atomic` kind of an AnnData output path: ``"h5ad"`` or ``"zarr"``."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".h5ad", ".zarr"):
        raise ValueError(f"output must end in .h5ad or .zarr, got {str(path)!r}")
    return suffix[1:]


def store_result(
    adata: ad.AnnData,
    write: Mapping[str, Mapping[str, Any]],
    settings: dict[str, Any],
    key_added: str,
    *,
    copy: bool,
) -> ad.AnnData | None:
    """Store a task's results in ``adata`` (or a copy): the one convention of every task.

    ``write`` maps an AnnData slot (``"obsm"``, ``"obs"``, ``"layers"``, ``"var"``, ``"varm"``,
    ``"varp"``) to ``{key: value}``; ``settings`` (provenance, parameters, metrics) go to
    ``uns[key_added]``. With ``copy=False`` ``adata`` is changed in place and ``None`` returned;
    with ``copy=True`` ``adata`` is left untouched and the changed copy returned.
    """
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty string, e.g. 'scprint'; got {key_added!r}")
    target = adata.copy() if copy else adata
    for slot, values in write.items():
        mapping = getattr(target, slot)
        for key, value in values.items():
            mapping[key] = value
    target.uns[key_added] = settings
    return target if copy else None
