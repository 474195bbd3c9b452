"""Shared plumbing of the tasks: model loading, input checks, batching and atomic writes.

Every task takes a checkpoint (path or an already loaded model), checks the AnnData it is given
(raw counts, organism, gene overlap with the model's vocabulary, through
:class:`scprint.data.CellSource`) and streams cells through the
model in batches. Nothing here knows about a particular task.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from grnndata import atomic
from scprint.data import ORGANISMS, CellSource
from scprint.training.checkpoint import resolve_device

log = logging.getLogger(__name__)

__all__ = [
    "GeneMatch",
    "check_cells_organism",
    "check_finite_counts",
    "check_unique_var_names",
    "counts_matrix",
    "iter_model_batches",
    "load_model",
    "output_kind",
    "prepare",
    "resolve_device",
    "write_anndata",
    "write_json",
]

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


def load_model(ckpt: Any, device: str | torch.device = "auto") -> Any:
    """A loaded scPRINT model: ``ckpt`` is a checkpoint path or an already loaded model.

    An already loaded model (the object :func:`scprint.load_pretrained` returns, with ``.model``,
    ``.vocab`` and ``.labels``) is moved to ``device`` and put in evaluation mode.
    """
    resolved = resolve_device(device)
    if isinstance(ckpt, str | os.PathLike):
        from scprint.training import load_pretrained

        path = Path(ckpt)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        pretrained = load_pretrained(path, device=str(resolved))
    elif hasattr(ckpt, "model") and hasattr(ckpt, "vocab"):
        pretrained = ckpt
        pretrained.model.to(resolved)
    else:
        raise TypeError(
            "ckpt must be a checkpoint path or the object scprint.load_pretrained returns, "
            f"got {type(ckpt).__name__}"
        )
    pretrained.model.eval()
    return pretrained


def model_device(pretrained: Any) -> torch.device:
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
    """Genes of an AnnData that the model knows.

    ``var_indices[i]`` (column of ``adata``) is gene ``vocab_indices[i]`` of the vocabulary.
    """

    var_indices: np.ndarray
    vocab_indices: np.ndarray
    n_vars: int

    @property
    def fraction(self) -> float:
        """Share of the AnnData's genes found in the vocabulary."""
        return len(self.var_indices) / max(self.n_vars, 1)


def prepare(adata: ad.AnnData, pretrained: Any) -> GeneMatch:
    """All input checks of a task; returns the genes of ``adata`` the model knows.

    Raises ``ValueError`` when ``var_names`` has duplicates, when ``X`` does not hold finite raw
    integer counts or has empty cells, when the cells come from another organism than the
    model's (:func:`check_cells_organism`), or when fewer genes than the vocabulary's
    documented minimum (:data:`scprint.data.MIN_OVERLAP_GENES`) are known to the model; the
    overlap is logged (``scprint.data.source`` logger, INFO).
    """
    if not isinstance(adata, ad.AnnData):
        raise TypeError(f"expected an AnnData, got {type(adata).__name__}")
    if adata.n_obs == 0:
        raise ValueError("the AnnData has no cells (n_obs == 0)")
    check_unique_var_names(adata)
    if adata.X is not None:  # a missing X is reported by CellSource
        check_finite_counts(adata.X)
    source = CellSource(adata)
    check_cells_organism(adata, [pretrained.vocab.organism])
    source.bind(pretrained.vocab)
    return GeneMatch(
        var_indices=np.asarray(source.columns, dtype=np.int64),
        vocab_indices=np.asarray(source.vocab_index, dtype=np.int64),
        n_vars=adata.n_vars,
    )


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
    lookup = np.full(adata.n_vars, -1, dtype=np.int64)
    lookup[match.var_indices] = match.vocab_indices
    vocab_ids = lookup[np.asarray(var_indices, dtype=np.int64)]
    unknown = np.flatnonzero(vocab_ids < 0)
    if unknown.size:
        example = adata.var_names[int(np.asarray(var_indices)[unknown[0]])]
        raise ValueError(
            f"{unknown.size} chosen genes are not in the model's vocabulary (e.g. {example!r}); "
            "choose genes among those the model knows"
        )
    return vocab_ids


def resolve_gene_list(adata: ad.AnnData, genes: Sequence[str]) -> np.ndarray:
    """Column indices of a user-given gene list (``var_names``); ``ValueError`` names a missing one."""
    genes = [str(g) for g in genes]
    if not genes:
        raise ValueError("the gene list is empty; give at least one gene, e.g. ['ENSG00000010610']")
    index = pd.Index(adata.var_names)
    positions = index.get_indexer(genes)
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
    pretrained: Any,
    *,
    genes: Sequence[str] | None,
    max_len: int | None,
    batch_size: int,
    description: str,
) -> Iterator[dict[str, torch.Tensor]]:
    """Stream ``adata`` through the model's batching, on the model's device, with a progress bar.

    ``genes`` is ``None`` (up to ``max_len`` genes per cell, expressed ones first, default the
    model's training context length) or a fixed list of ``var_names`` that every cell gets, in
    that order. Each batch is a dict of tensors:
    ``gene_ids`` (B, L) vocabulary indices (-1 = padding), ``counts`` (B, L), ``depth`` (B,) and
    ``cell_index`` (B,) rows of ``adata``.
    """
    from scprint.data import make_inference_batches

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = model_device(pretrained)
    batches = make_inference_batches(
        adata,
        pretrained.vocab,
        genes=None if genes is None else list(genes),
        max_len=pretrained.config.max_len if max_len is None else max_len,
        batch_size=batch_size,
    )
    total = -(-adata.n_obs // batch_size)
    for batch in tqdm(batches, total=total, desc=description, unit="batch", leave=False):
        yield {
            key: (value.to(device) if isinstance(value, torch.Tensor) else torch.as_tensor(value))
            for key, value in batch.items()
        }


def provenance(pretrained: Any, **parameters: Any) -> dict[str, Any]:
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


def write_json(payload: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``payload`` as JSON atomically (:func:`grnndata.atomic.write_json`).

    An existing ``path`` that is not a JSON file is refused
    (:class:`grnndata.atomic.OutputExistsError`) unless ``overwrite``.
    """
    return atomic.write_json(path, payload, overwrite=overwrite)


def write_anndata(adata: ad.AnnData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` atomically to ``path`` (``.h5ad`` file or ``.zarr`` folder).

    The data go to a temporary sibling first and are swapped into place
    (:func:`grnndata.atomic.atomic_path`), so a reader never sees a half-written output and an
    existing output is only replaced once the new one is complete. An existing path that is not
    an output of the same kind (an HDF5 file for ``.h5ad``, a zarr store for ``.zarr``, e.g. a
    folder of the user's files) is refused (:class:`grnndata.atomic.OutputExistsError`) unless
    ``overwrite``.
    """
    path = Path(path)
    kind = output_kind(path)
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
