"""Organisms: the one table of NCBITaxon ids, names and Ensembl gene-id prefixes.

Everything in ``scprint`` that names an organism, reads one from the user (``"human"``,
``"Mus musculus"``, ``"NCBITaxon:10090"``) or recognises one from Ensembl gene ids uses this
module: the vocabulary, the checkpoint readers, gene matching and the tasks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ENSEMBL_PREFIXES",
    "HUMAN",
    "MOUSE",
    "ORGANISMS",
    "check_organism",
    "genes_by_organism",
    "organism_id",
    "organism_ids",
    "organism_of_gene",
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
    """Return ``organism`` if known (an NCBITaxon id of :data:`ORGANISMS`), else raise ``ValueError``."""
    if organism not in ORGANISMS:
        raise ValueError(
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
