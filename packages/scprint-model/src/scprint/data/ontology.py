"""Label encoders with an ontology hierarchy (offline, from ``cellxgene-ontology-guide``).

Each label class (e.g. ``cell_type``) gets a :class:`LabelEncoder`:

- *leaves* (:attr:`LabelEncoder.classes`) are the training labels with no descendant among the
  training labels; the classifier predicts these;
- *coarse* labels are training labels (or requested terms) that are ancestors of some leaf; a cell
  labelled with one is scored on the summed probability of its descendant leaves;
- ``encode`` maps values to indices into ``classes + coarse`` (``-1`` = unknown).

Labels given as ontology term ids (``CL:0000624``; or a ``<column>_ontology_term_id`` column next
to the label column) get their hierarchy from the ontology shipped in the
``cellxgene-ontology-guide`` wheel (Cell Ontology, MONDO, EFO, HANCESTRO, UBERON, ...; no network).
Other labels, or terms of an ontology that is not shipped, get a flat hierarchy with a warning.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: Values read as "label unknown".
UNKNOWN_VALUES = frozenset({"", "unknown", "na", "nan", "none", "unassigned"})
_TERM_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*:[0-9A-Za-z_]+$")


def is_term_id(value: str) -> bool:
    """True for ontology term ids such as ``CL:0000624``."""
    return bool(_TERM_ID.match(value))


def is_unknown(value: Any) -> bool:
    """True for missing/unknown label values (NaN, None, "unknown", "", ...)."""
    return (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or str(value).strip().lower() in UNKNOWN_VALUES
    )


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    return OntologyParser()


def term_ancestors(term: str) -> list[str] | None:
    """Ancestors of an ontology term from the shipped ontologies, or ``None`` if it is unavailable."""
    try:
        return list(_parser().get_term_ancestors(term))
    except (ValueError, KeyError) as error:
        log.warning("no ontology hierarchy for %r (%s); treating it as a flat label", term, error)
        return None


def term_label(term: str) -> str:
    """Human-readable name of an ontology term (the id itself when unavailable)."""
    try:
        return str(_parser().get_term_label(term))
    except (ValueError, KeyError):
        return term


@dataclass
class LabelEncoder:
    """Leaf labels of one label class, their coarse ancestors and the mapping between them.

    Attributes:
        name: the label class (obs column), e.g. ``"cell_type"``.
        classes: leaf labels (ontology ids or plain labels), in classifier-output order.
        coarse: coarse labels, encoded after the leaves.
        ancestors: leaf -> its ancestors (term ids; empty for flat labels).
        names: term id -> human-readable name.
        aliases: other spellings -> label (e.g. the study's ``"CD4 T cells"`` -> ``"CL:0000624"``).
    """

    name: str
    classes: list[str]
    coarse: list[str] = field(default_factory=list)
    ancestors: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError(f"label class {self.name!r} has no known label in the training data")
        self._index = {label: i for i, label in enumerate([*self.classes, *self.coarse])}
        lookup = {name.lower(): term for term, name in self.names.items()}
        lookup.update({alias.lower(): label for alias, label in self.aliases.items()})
        self._lookup = lookup

    @property
    def n_labels(self) -> int:
        """Number of encodable labels (leaves + coarse)."""
        return len(self.classes) + len(self.coarse)

    def _resolve(self, value: Any) -> str | None:
        if is_unknown(value):
            return None
        text = str(value)
        if text in self._index:
            return text
        return self._lookup.get(text.lower(), text)

    def encode(self, values: Iterable[Any]) -> np.ndarray:
        """Index of each value into ``classes + coarse`` (int64; ``-1`` for unknown or unseen values).

        Values may be label ids, their names, or aliases seen in training.
        """
        out = []
        for value in values:
            label = self._resolve(value)
            out.append(-1 if label is None else self._index.get(label, -1))
        return np.asarray(out, dtype=np.int64)

    def decode(self, index: int | Sequence[int] | np.ndarray) -> str | list[str]:
        """Label of an index (or list of labels for an array); ``-1`` decodes to ``"unknown"``."""
        labels = [*self.classes, *self.coarse]
        if np.ndim(index) == 0:
            return "unknown" if int(index) < 0 else labels[int(index)]
        return ["unknown" if int(i) < 0 else labels[int(i)] for i in np.asarray(index).ravel()]

    def label_name(self, label: str) -> str:
        """Human-readable name of a label (itself when it has none)."""
        return self.names.get(label, label)

    def descendant_leaves(self, label: str) -> list[int]:
        """Indices into :attr:`classes` of the leaves that are ``label`` or descend from it.

        ``label`` may be any ancestor term id known from the training hierarchy, a name or an
        alias; an unknown label raises ``KeyError``.
        """
        resolved = self._resolve(label) or ""
        hits = [
            i
            for i, leaf in enumerate(self.classes)
            if leaf == resolved or resolved in self.ancestors.get(leaf, ())
        ]
        if not hits:
            raise KeyError(
                f"{label!r} is neither a leaf of {self.name!r} nor an ancestor of one; "
                f"leaves are e.g. {self.classes[:3]}"
            )
        return hits

    def nearest_known(self, value: Any) -> str | None:
        """The label itself when encodable, else its closest ontology ancestor that is a leaf or
        an ancestor of one (by is_a distance; e.g. a naive CD8 T cell -> "CD8 T cell" when the
        model only knows the latter), else ``None``.
        """
        label = self._resolve(value)
        if label is None:
            return None
        if label in self._index:
            return label
        if not is_term_id(label):
            return None
        try:
            distances = _parser().get_term_ancestors_with_distances(label)
        except (ValueError, KeyError):
            return None
        reachable = set(self.classes).union(*self.ancestors.values())
        for ancestor, _ in sorted(distances.items(), key=lambda item: (item[1], item[0])):
            if ancestor in reachable:
                return ancestor
        return None

    def descendant_matrix(self) -> np.ndarray:
        """``(n_labels, n_leaves)`` bool: row ``t`` marks the leaves that count as correct for label ``t``."""
        matrix = np.zeros((self.n_labels, len(self.classes)), dtype=bool)
        matrix[np.arange(len(self.classes)), np.arange(len(self.classes))] = True
        for row, coarse in enumerate(self.coarse, start=len(self.classes)):
            matrix[row, self.descendant_leaves(coarse)] = True
        return matrix

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, for checkpoints."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "coarse": list(self.coarse),
            "ancestors": {k: list(v) for k, v in self.ancestors.items()},
            "names": dict(self.names),
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LabelEncoder:
        """Inverse of :meth:`to_dict`."""
        return cls(**values)

    @classmethod
    def build(
        cls,
        name: str,
        values: Iterable[Any],
        aliases: dict[str, str] | None = None,
        coarse_requested: Sequence[str] = (),
    ) -> LabelEncoder:
        """Leaves and coarse labels from the labels seen in training.

        Args:
            name: the label class.
            values: every observed label (ontology ids where available); unknowns are dropped.
            aliases: other spellings -> label.
            coarse_requested: extra ontology terms to make encodable as coarse labels (kept only if
                they are ancestors of a leaf).
        """
        seen = sorted({str(v) for v in values if not is_unknown(v)})
        ancestors: dict[str, list[str]] = {}
        for label in seen:
            found = term_ancestors(label) if is_term_id(label) else None
            ancestors[label] = [a for a in (found or []) if a != label]
        if not any(is_term_id(label) for label in seen):
            log.warning("label class %r has no ontology term ids; using a flat label set", name)
        seen_set = set(seen)
        has_descendant = {a for label in seen for a in ancestors[label] if a in seen_set}
        leaves = [label for label in seen if label not in has_descendant]
        all_ancestors = {a for leaf in leaves for a in ancestors[leaf]}
        coarse = sorted((has_descendant | set(coarse_requested)) & all_ancestors)
        terms = {*seen, *all_ancestors}
        names = {term: term_label(term) for term in sorted(terms) if is_term_id(term)}
        return cls(
            name=name,
            classes=leaves,
            coarse=coarse,
            ancestors={leaf: ancestors[leaf] for leaf in leaves},
            names=names,
            aliases={str(k): str(v) for k, v in (aliases or {}).items()},
        )


def label_values(obs: pd.DataFrame, column: str) -> tuple[pd.Series, dict[str, str]] | None:
    """The label values of ``column`` in ``obs`` (ontology ids when available) and study aliases.

    Uses ``<column>_ontology_term_id`` when present (with the aliases ``obs[column]`` -> id),
    else ``obs[column]``. Returns ``None`` when neither column exists.
    """
    id_column = column if column.endswith("_ontology_term_id") else f"{column}_ontology_term_id"
    if id_column in obs:
        ids = obs[id_column].astype(object)
        aliases: dict[str, str] = {}
        if column in obs and column != id_column:
            pairs = (
                pd.DataFrame({"alias": obs[column].astype(object), "id": ids})
                .dropna()
                .drop_duplicates()
            )
            aliases = {
                str(a): str(i) for a, i in zip(pairs["alias"], pairs["id"]) if not is_unknown(i)
            }
        return ids, aliases
    if column in obs:
        return obs[column].astype(object), {}
    return None
