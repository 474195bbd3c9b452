"""Your own ground truth as a benchmark task: an edge table plus the expression set to infer from.

The universe follows the McCalla convention: its genes are the expression set's genes, its
regulators the truth's regulators among them (or, with ``regulators``, your candidate regulators
that have a true edge), self-loops excluded; every other ordered pair of genes is a negative.
Methods are handed the expression set (and ``regulators`` when given).

From Python::

    task = CustomTask("edges.tsv", "cells.h5ad", name="my-truth")
    run_benchmark(["pearson", "genie3"], [task], "results/")

From the command line, ``bengrn run --task custom --truth edges.tsv --expression cells.h5ad``, or a
YAML task file (``bengrn run --task my_truth.yaml``; relative paths are relative to the file)::

    name: my-truth            # optional; default: the file's name
    truth: edges.tsv          # .tsv / .csv / .parquet (gzipped or not)
    expression: cells.h5ad    # cells x genes, counts
    regulators: tfs.txt       # optional: a file with one gene per line, or a list
    regulators_in_truth: true # optional (default true)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from bengrn.datasets import read_edge_table, read_gene_list
from bengrn.expression import check_expression, check_expression_file
from bengrn.tasks.base import Task, VariantScore, score_variant
from grnndata import Network

__all__ = ["CustomTask", "TaskFileError"]

_KEYS = ("name", "truth", "expression", "regulators", "regulators_in_truth")


class TaskFileError(ValueError):
    """A YAML task file that cannot be read as a task (bad YAML, unknown or missing keys)."""


def _digest(*parts: Any) -> str:
    return hashlib.sha1("\n".join(map(str, parts)).encode()).hexdigest()[:12]


class CustomTask(Task):
    """A benchmark task on a user's ground truth.

    Parameters
    ----------
    truth
        The true edges: a path to an edge table (see :func:`bengrn.datasets.read_edge_table`) or a
        DataFrame with ``regulator`` and ``target`` columns (or its first two columns).
    expression
        The expression set methods infer from: a path to an ``.h5ad`` file or an AnnData (cells x
        genes, counts; gene names as ``var_names``, the identifiers the truth uses).
    name
        The task's name in the results (runs/<name>/...).
    regulators
        Candidate regulators: a list of genes or a path to a file with one per line. Methods
        are handed those in the expression set; the universe's regulators are restricted to them.
    regulators_in_truth
        Keep only regulators with at least one true edge (default, as McCalla and BEELINE do).

    The truth is read and checked against the expression set's genes when the task is built;
    the expression set itself is loaded when first needed.
    """

    def __init__(
        self,
        truth: str | os.PathLike | pd.DataFrame,
        expression: str | os.PathLike | ad.AnnData,
        *,
        name: str = "custom",
        regulators: str | os.PathLike | Sequence[str] | None = None,
        regulators_in_truth: bool = True,
    ):
        if not name or not isinstance(name, str):
            raise ValueError(f"a task needs a name (text); got {name!r}")
        if not isinstance(regulators_in_truth, bool | np.bool_):
            raise TypeError(
                f"regulators_in_truth must be True or False; got {type(regulators_in_truth).__name__} "
                f"{regulators_in_truth!r}"
            )
        _check_kind(truth, "truth", (str, os.PathLike, pd.DataFrame), "a path or a DataFrame")
        _check_kind(
            expression, "expression", (str, os.PathLike, ad.AnnData), "a path or an AnnData"
        )
        if regulators is not None and (
            isinstance(regulators, bytes)
            or not isinstance(regulators, str | os.PathLike)
            and not (
                isinstance(regulators, Sequence) and all(isinstance(g, str) for g in regulators)
            )
        ):
            raise TypeError(
                f"regulators must be a path or a list of gene names; got "
                f"{type(regulators).__name__} {regulators!r:.60}"
            )
        self.name = name
        self.regulators_in_truth = bool(regulators_in_truth)
        if isinstance(truth, pd.DataFrame):
            self.truth_source = "a DataFrame"
            self.truth = truth
        else:
            path = _existing(truth, "truth")
            self.truth_source = str(path)
            self.truth = read_edge_table(path)
        if len(self.truth) == 0:
            raise ValueError(f"the truth ({self.truth_source}) has no edge")
        if isinstance(expression, ad.AnnData):
            self._adata: ad.AnnData | None = expression
            self.expression_source = "an AnnData"
            check_expression(expression, "the expression set (an AnnData)")
            genes = pd.Index(expression.var_names.astype(str))
            self._expression_key = _digest(expression.shape, *genes[:1000], len(genes))
        else:
            path = _existing(expression, "expression")
            self._adata = None
            self.expression_path = path
            self.expression_source = str(path)
            check_expression_file(path)
            backed = ad.read_h5ad(path, backed="r")
            try:
                genes = pd.Index(backed.var_names.astype(str))
            finally:
                backed.file.close()
            stat = path.stat()
            self._expression_key = _digest(path.resolve(), stat.st_size, stat.st_mtime_ns)
        self.genes = genes
        if isinstance(regulators, str | os.PathLike):
            regulators = read_gene_list(_existing(regulators, "regulators"))
        self._candidates = None if regulators is None else [str(g) for g in regulators]
        truth_genes = set(self.truth.iloc[:, 0].astype(str)) | set(
            self.truth.iloc[:, 1].astype(str)
        )
        shared = genes.isin(list(truth_genes))
        if shared.sum() < 2:
            raise ValueError(
                f"the truth ({self.truth_source}) and the expression set ({self.expression_source}) "
                f"share {int(shared.sum())} gene(s); truth genes look like "
                f"{sorted(truth_genes)[:5]}, expression genes like {list(genes[:5])}: check the "
                "identifiers (symbols vs Ensembl IDs, case)"
            )

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> CustomTask:
        """A task from a YAML file (see the module docstring); paths in it are relative to it."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise TaskFileError(f"task file {str(path)!r} does not exist")
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise TaskFileError(f"task file {path.name} is not valid YAML ({err})") from None
        if not isinstance(spec, dict):
            raise TaskFileError(
                f"task file {path.name} must be a mapping with keys {', '.join(_KEYS)}; "
                f"got {type(spec).__name__}"
            )
        unknown = sorted(set(spec) - set(_KEYS))
        if unknown:
            raise TaskFileError(
                f"task file {path.name}: unknown key(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(_KEYS)}"
            )
        missing = [key for key in ("truth", "expression") if not spec.get(key)]
        if missing:
            raise TaskFileError(f"task file {path.name} needs {' and '.join(missing)}")
        for key, expected in _YAML_TYPES.items():
            value = spec.get(key)
            if value is not None and not _yaml_type_ok(key, value):
                raise TaskFileError(
                    f"task file {path.name}: {key}: {value!r:.60} is a {_yaml_name(value)}; "
                    f"expected {expected}"
                )

        def resolve(value: Any) -> Any:
            if isinstance(value, str):
                return path.parent / Path(value).expanduser()
            return value

        try:
            return cls(
                resolve(spec["truth"]),
                resolve(spec["expression"]),
                name=str(spec.get("name") or path.stem),
                regulators=resolve(spec.get("regulators")),
                regulators_in_truth=spec.get("regulators_in_truth", True),
            )
        except (ValueError, TypeError, OSError) as err:
            raise TaskFileError(f"task file {path.name}: {err}") from None

    @cached_property
    def _expression(self) -> ad.AnnData:
        if self._adata is not None:
            return self._adata
        return ad.read_h5ad(self.expression_path)

    def expression(self, unit: str | None = None) -> ad.AnnData:
        return self._expression

    def regulators(self, unit: str | None = None) -> list[str] | None:
        if self._candidates is None:
            return None
        present = set(self.genes)
        return [g for g in self._candidates if g in present]

    def expression_id(self, unit: str | None = None) -> str:
        """Unique to the expression set (file path, size and time, or the AnnData's genes): a
        different file in the same results folder is not mistaken for an earlier one."""
        return f"custom-{self._expression_key}"

    def fingerprint(self) -> str:
        """Changes whenever the truth, the expression set or the options change."""
        truth = pd.util.hash_pandas_object(self.truth.iloc[:, :2].astype(str), index=False)
        return _digest(
            self._expression_key,
            int(np.asarray(truth).sum(dtype=np.uint64)),
            len(self.truth),
            self._candidates,
            self.regulators_in_truth,
        )

    def _score(self, network: Network, unit: str) -> list[VariantScore]:
        regulators = self.regulators()
        restriction = (
            f"{len(regulators)} candidate regulators" if regulators is not None else "all genes"
        )
        with_edge = " with a true edge" if self.regulators_in_truth else ""
        return [
            score_variant(
                self.name,
                network,
                self.truth,
                truth_genes=self.genes,
                regulators=regulators,
                regulators_in_truth=self.regulators_in_truth,
                universe=(
                    f"{len(self.genes)} expression genes; regulators = {restriction}{with_edge}; "
                    "no self-loops"
                ),
            )
        ]


_YAML_TYPES = {
    "name": "text, e.g. name: my-truth",
    "truth": "a path (text), e.g. truth: edges.tsv",
    "expression": "a path (text), e.g. expression: cells.h5ad",
    "regulators": "a path (text) or a list of gene names, e.g. regulators: tfs.txt",
    "regulators_in_truth": "true or false",
}


def _yaml_type_ok(key: str, value: Any) -> bool:
    if key == "regulators_in_truth":
        return isinstance(value, bool)
    if key == "name":  # a number is a fine name (name: 2024)
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if key == "regulators" and isinstance(value, list):
        return all(isinstance(g, str) for g in value)
    return isinstance(value, str)


def _yaml_name(value: Any) -> str:
    names = {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "text",
        list: "list",
        dict: "mapping",
    }
    return names.get(type(value), type(value).__name__)


def _check_kind(value: Any, what: str, kinds: tuple[type, ...], expected: str) -> None:
    if not isinstance(value, kinds):
        raise TypeError(f"{what} must be {expected}; got {type(value).__name__} {value!r:.60}")


def _existing(path: str | os.PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"the {what} file {str(path)!r} does not exist")
    return path
