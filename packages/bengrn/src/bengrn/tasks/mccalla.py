"""McCalla et al. cell-type-specific ground truths (ChIP, knockdown, union, intersection).

The network is scored on the genes of the matching expression set: the universe's genes are that
set's genes, its regulators the set's TFs (the candidate regulators every method is handed) that
have at least one true edge among them (McCalla's and BEELINE's convention), self-loops excluded.
So a random network over those regulators scores the random precision, and no method gains or
loses from regulators it was never offered. Methods are handed the expression set (counts
recovered as documented in :func:`bengrn.datasets.log2_to_counts`) and its TF list.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import anndata as ad
import pandas as pd

from bengrn import datasets
from bengrn.tasks.base import Task, VariantScore, score_variant, top_genes
from grnndata import Network

__all__ = ["McCallaTask"]

_DEFAULT_EXPRESSION = {"hESC": "hESC-chen", "mESC": "mESC-semrau"}
_TF_FILES = {"hESC-chen": "hESC-Chen", "hESC-liu": "hESC-Liu", "mESC-semrau": "mESC-Semrau"}


def mccalla_tfs(expression_key: str) -> list[str]:
    """The TF list McCalla et al. used with an expression set (e.g. ``hESC_Chen_TFs.tsv``)."""
    if expression_key not in _TF_FILES:
        raise ValueError(
            f"unknown McCalla expression set {expression_key!r}; expected one of {list(_TF_FILES)}"
        )
    return datasets.read_gene_list(datasets.fetch(f"mccalla-tfs-{_TF_FILES[expression_key]}"))


def mccalla_expression(expression_key: str, n_genes: int | None) -> ad.AnnData:
    """A McCalla expression set, optionally reduced to its ``n_genes`` most expressed genes
    (plus its TFs)."""
    full = datasets.load_mccalla_expression(expression_key)
    return top_genes(full, n_genes, keep=mccalla_tfs(expression_key))


def mccalla_regulators(expression_key: str, adata: ad.AnnData) -> list[str]:
    """The expression set's TFs present among its genes: the candidate regulators methods get."""
    genes = set(adata.var_names)
    return [g for g in mccalla_tfs(expression_key) if g in genes]


def mccalla_expression_id(expression_key: str, n_genes: int | None) -> str:
    return f"mccalla-{expression_key}-{n_genes or 'all'}"


class McCallaExpression:
    """Hands methods a McCalla expression set (``self.expression_key``, ``self.n_genes`` most
    expressed genes plus TFs) with the dataset's TFs as candidate regulators; shared by the
    McCalla, literature and enrichment tasks so one benchmark run infers one network for all."""

    expression_key: str
    n_genes: int | None

    @cached_property
    def _expression(self) -> ad.AnnData:
        return mccalla_expression(self.expression_key, self.n_genes)

    def expression(self, unit: str | None = None) -> ad.AnnData:
        return self._expression

    def regulators(self, unit: str | None = None) -> list[str]:
        return mccalla_regulators(self.expression_key, self._expression)

    def expression_id(self, unit: str | None = None) -> str:
        return mccalla_expression_id(self.expression_key, self.n_genes)


class McCallaTask(McCallaExpression, Task):
    """Score against McCalla gold standards on the genes of a matching expression set.

    Parameters
    ----------
    cell
        ``"hESC"`` or ``"mESC"``.
    expression
        ``"hESC-chen"`` / ``"hESC-liu"`` (hESC) or ``"mESC-semrau"`` (mESC); default by cell.
    variants
        Subset of ``("chip", "knockdown", "union", "intersection")``.
    n_genes
        Keep only the ``n_genes`` most expressed genes (plus the dataset's TFs): a smaller, faster
        version of the task (tests); ``None`` keeps all.
    """

    def __init__(
        self,
        cell: str = "hESC",
        expression: str | None = None,
        variants: Sequence[str] = ("chip", "knockdown", "union", "intersection"),
        n_genes: int | None = None,
    ):
        if cell not in _DEFAULT_EXPRESSION:
            raise ValueError(f"cell must be one of {list(_DEFAULT_EXPRESSION)}; got {cell!r}")
        self.cell = cell
        self.expression_key = expression or _DEFAULT_EXPRESSION[cell]
        if not self.expression_key.startswith(cell):
            raise ValueError(
                f"expression {self.expression_key!r} does not match cell {cell!r}; "
                f"use one of {[k for k in _TF_FILES if k.startswith(cell)]}"
            )
        known = ("chip", "knockdown", "union", "intersection", "literature")
        bad = [v for v in variants if v not in known]
        if bad:
            raise ValueError(f"unknown McCalla variants {bad}; expected some of {known}")
        self.variants = tuple(variants)
        self.n_genes = n_genes
        self.name = f"mccalla-{cell.lower()}"

    @cached_property
    def _truths(self) -> dict[str, pd.DataFrame]:
        return {v: datasets.load_mccalla_network(self.cell, v) for v in self.variants}

    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        genes = self._expression.var_names
        regulators = self.regulators()
        return [
            score_variant(
                variant,
                network,
                truth,
                truth_genes=genes,
                regulators=regulators,
                regulators_in_truth=True,
                universe=(
                    f"{len(genes)} {self.expression_key} genes; regulators = the dataset's TFs "
                    f"with a true edge in {self.cell} {variant}; no self-loops"
                ),
            )
            for variant, truth in self._truths.items()
        ]
