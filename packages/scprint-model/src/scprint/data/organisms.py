"""Organisms: the one table of NCBITaxon ids, names and Ensembl gene-id prefixes.

Everything in ``scprint`` that names an organism, reads one from the user (``"human"``,
``"Mus musculus"``, ``"NCBITaxon:10090"``) or recognises one from Ensembl gene ids uses this
module: the vocabulary, the checkpoint readers, gene matching and the tasks.

:func:`check_cells_organism` is the one check of the organism of a dataset's cells, used by
training (:class:`~scprint.data.CellSource`, :class:`~scprint.data.soma.SomaSource`) and the
tasks (:func:`scprint.tasks._input.prepare`): the same data are accepted or refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from scprint.errors import InputError

__all__ = [
    "ENSEMBL_PREFIXES",
    "HUMAN",
    "MOUSE",
    "ORGANISMS",
    "check_cells_organism",
    "check_organism",
    "genes_by_organism",
    "organism_id",
    "organism_ids",
    "organism_of_gene",
    "organisms_of_cells",
]

HUMAN = "NCBITaxon:9606"
MOUSE = "NCBITaxon:10090"
#: Organisms whose genes a model vocabulary may hold, NCBITaxon id -> scientific name.
ORGANISMS: dict[str, str] = {HUMAN: "Homo sapiens", MOUSE: "Mus musculus"}
#: Ensembl gene-id prefix -> NCBITaxon id, for recognising the organism of gene ids (longest
#: prefixes first, so ``ENSMUSG`` is not read as ``ENSG``...).
ENSEMBL_PREFIXES: dict[str, str] = {
    "ENSMUSG": MOUSE,
    "ENSDARG": "NCBITaxon:7955",
    "ENSRNOG": "NCBITaxon:10116",
    "ENSMMUG": "NCBITaxon:9544",
    "ENSG": HUMAN,
}
#: Everyday names accepted wherever an organism is asked for (lower case).
_ALIASES: dict[str, str] = {
    **{name.lower(): taxon for taxon, name in ORGANISMS.items()},
    "human": HUMAN,
    "mouse": MOUSE,
}


def organism_id(value: Any) -> str:
    """The NCBITaxon id of ``value`` (``"human"``, ``"Homo sapiens"`` or an NCBITaxon id).

    Unknown names are returned unchanged (as text), so callers can report them.
    """
    text = str(value)
    return _ALIASES.get(text.lower(), text)


def organism_ids(values: Iterable[Any]) -> set[str]:
    """The NCBITaxon ids of several organism names or ids (see :func:`organism_id`)."""
    return {organism_id(value) for value in values}


def check_organism(organism: str) -> str:
    """Return ``organism`` if known (an NCBITaxon id of :data:`ORGANISMS`), else raise
    :class:`~scprint.errors.InputError`."""
    if organism not in ORGANISMS:
        raise InputError(
            f"unknown organism {organism!r}; expected one of {sorted(ORGANISMS)} "
            "(NCBITaxon ids, e.g. 'NCBITaxon:9606' for human)"
        )
    return organism


def organism_of_gene(gene: str) -> str | None:
    """The NCBITaxon id an Ensembl gene id belongs to (by its prefix), else ``None``."""
    for prefix, taxon in ENSEMBL_PREFIXES.items():
        if gene.startswith(prefix) and gene[len(prefix) : len(prefix) + 1].isdigit():
            return taxon
    return None


def genes_by_organism(genes: Sequence[str]) -> dict[str, list[int]]:
    """Indices of ``genes`` per organism, from their Ensembl id prefixes (``"unknown"`` otherwise)."""
    out: dict[str, list[int]] = {}
    for i, gene in enumerate(genes):
        out.setdefault(organism_of_gene(str(gene)) or "unknown", []).append(i)
    return out


#: Genes read from ``var_names`` when the organism is inferred from Ensembl id prefixes.
PREFIX_SAMPLE_GENES = 2000


def organisms_of_cells(
    obs: pd.DataFrame,
    *,
    uns: Mapping[str, Any] | None = None,
    var_names: Sequence[str] | pd.Index | None = None,
) -> tuple[set[str], str]:
    """The organisms (NCBITaxon ids) a dataset's cells declare, and where they were read.

    Read from ``obs["organism_ontology_term_id"]`` (CELLxGENE convention, e.g.
    ``"NCBITaxon:9606"``), else ``obs["organism"]``, else ``uns["organism"]`` (names such as
    ``"Homo sapiens"`` or ``"human"`` become NCBITaxon ids), else inferred from the Ensembl
    gene-id prefixes of the first :data:`PREFIX_SAMPLE_GENES` ``var_names`` when at least half of
    them name one organism (``ENSG`` human, ``ENSMUSG`` mouse). ``(set(), "")`` when nothing says.
    """
    for column in ("organism_ontology_term_id", "organism"):
        if column in obs:
            return organism_ids(pd.unique(obs[column].astype(str))), f"obs[{column!r}]"
    if uns is not None and "organism" in uns:
        return organism_ids([uns["organism"]]), "uns['organism']"
    if var_names is not None:
        names = pd.Index(var_names[:PREFIX_SAMPLE_GENES]).astype(str)
        counts: dict[str, int] = {}
        for name in names:
            taxon = organism_of_gene(name)
            if taxon is not None:
                counts[taxon] = counts.get(taxon, 0) + 1
        if counts:
            majority = max(counts, key=counts.__getitem__)
            if counts[majority] >= 0.5 * len(names):
                return {majority}, "Ensembl prefixes of var_names"
    return set(), ""


def check_cells_organism(
    obs: pd.DataFrame,
    supported: Sequence[str],
    *,
    uns: Mapping[str, Any] | None = None,
    var_names: Sequence[str] | pd.Index | None = None,
    what: str = "the AnnData",
    hint: str = "",
) -> set[str]:
    """Raise :class:`~scprint.errors.InputError` when the cells come from an organism the model
    does not support; return the organisms found (:func:`organisms_of_cells`, maybe empty).

    Args:
        obs, uns, var_names: the dataset's tables (an AnnData's ``obs``, ``uns``, ``var_names``).
        supported: NCBITaxon ids of the organisms the model knows.
        what: how the message names the data (e.g. ``"dataset 'pbmc.h5ad'"``).
        hint: appended to the message (e.g. how to select other cells).
    """
    found, source = organisms_of_cells(obs, uns=uns, var_names=var_names)
    unsupported = sorted(found - set(supported))
    if unsupported:
        raise InputError(
            f"{what} holds cells of an unsupported organism: {source} gives {unsupported}; "
            f"the model supports {sorted(supported)} (e.g. 'NCBITaxon:9606' = Homo sapiens){hint}"
        )
    return found
