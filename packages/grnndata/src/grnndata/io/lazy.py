"""Lazy, partial reads of a network zarr store: one gene's targets or regulators, a sub-network.

Queries read only the chunks they need (see :mod:`grnndata.io` for the layout), check the
checksum of every chunk or shard they decompress (see :mod:`grnndata._integrity`), and refuse to
mix two versions of a store that was rewritten while open.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._integrity import check_sparse_group, store_token, verify_manifest
from .._matrix import GRN_KEY, check_unique_genes, examples, missing_network
from .._verified_store import verified_root
from ..core import GRNAnnData
from ._common import GRNStoreError
from .zarr import COLUMN_INDEX, open_root, read_failure, read_root, replaced_while_reading

try:  # anndata >= 0.11
    from anndata.io import read_elem
except ImportError:  # anndata 0.10
    from anndata.experimental import read_elem

log = logging.getLogger(__name__)

__all__ = ["LazyGRN", "open_zarr"]


class _CompressedAxis:
    """One compressed sparse group (CSR or CSC) on disk, read range by range.

    ``major`` positions are rows for CSR and columns for CSC; ``indices`` hold the other axis.
    ``canonical`` marks a group that grnndata wrote (indices sorted within each major position,
    no stored zeros): reads are then checked, so that a missing chunk, which zarr returns as
    zeros, raises :class:`GRNStoreError` instead of silently dropping edges.
    """

    def __init__(
        self,
        group: Any,
        name: str,
        *,
        source: str,
        canonical: bool,
        reading: Callable[[str], contextlib.AbstractContextManager[None]],
    ) -> None:
        self.name = name
        self.indptr_array = group["indptr"]
        self.indices = group["indices"]
        self.data = group["data"]
        self.source = source
        self.canonical = canonical
        self.reading = reading
        self.n_minor = int(group.attrs["shape"][1])  # square: rows and columns are the genes
        self._indptr: np.ndarray | None = None

    @property
    def indptr(self) -> np.ndarray:
        if self._indptr is None:
            with self.reading(f"{self.name}/indptr"):
                self._indptr = np.asarray(self.indptr_array[:], dtype=np.int64)
        return self._indptr

    def bounds(self, majors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of ``majors``; reads only their ``indptr`` chunks when few."""
        if self._indptr is None and len(majors) <= 256:
            needed = np.unique(np.concatenate([majors, majors + 1]))
            with self.reading(f"{self.name}/indptr"):
                values = np.asarray(self.indptr_array.oindex[needed], dtype=np.int64)
            return values[np.searchsorted(needed, majors)], values[
                np.searchsorted(needed, majors + 1)
            ]
        return self.indptr[majors], self.indptr[majors + 1]

    def slices(self, majors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Entries of the ``majors``: (position in ``majors``, minor index, weight)."""
        starts, ends = self.bounds(majors)
        lengths = ends - starts
        if (lengths < 0).any() or (ends > self.data.shape[0]).any():
            raise GRNStoreError(
                f"{self.source} is corrupted or truncated: indptr is not increasing or points "
                f"past the {self.data.shape[0]} stored edges"
            )
        total = int(lengths.sum())
        owner = np.repeat(np.arange(len(majors)), lengths)
        if total == 0:
            return owner, np.empty(0, np.int64), np.empty(0, np.float32)
        if len(majors) == 1:
            span: Any = slice(int(starts[0]), int(ends[0]))
            with self.reading(f"{self.name}/indices"):
                minor = self.indices[span]
            with self.reading(f"{self.name}/data"):
                weight = self.data[span]
        else:
            offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
            coords = offsets + np.arange(total)
            with self.reading(f"{self.name}/indices"):
                minor = self.indices.oindex[coords]
            with self.reading(f"{self.name}/data"):
                weight = self.data.oindex[coords]
        minor = np.asarray(minor, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float32)
        if minor.size and (minor.min() < 0 or minor.max() >= self.n_minor):
            raise GRNStoreError(
                f"{self.source} is corrupted: an edge points to gene {int(minor.max())}, "
                f"outside the {self.n_minor} genes"
            )
        if self.canonical:
            self._check(owner, minor, weight)
        return owner, minor, weight

    def _check(self, owner: np.ndarray, minor: np.ndarray, weight: np.ndarray) -> None:
        same_owner = owner[1:] == owner[:-1]
        if (weight == 0).any() or (same_owner & (minor[1:] <= minor[:-1])).any():
            raise GRNStoreError(
                f"{self.source} is corrupted or truncated: the edges read are not in the order "
                "grnndata wrote them (zero weights or unsorted indices, as from a missing chunk)"
            )

    def scan(self, minor: int) -> tuple[np.ndarray, np.ndarray]:
        """All majors holding ``minor`` (reads every index: the slow path without an index)."""
        with self.reading(f"{self.name}/indices"):
            indices = np.asarray(self.indices[:], dtype=np.int64)
        hits = np.flatnonzero(indices == minor)
        majors = np.searchsorted(self.indptr, hits, side="right") - 1
        with self.reading(f"{self.name}/data"):
            weights = np.asarray(self.data.oindex[hits], dtype=np.float32)
        return majors, weights


class LazyGRN:
    """A network in a zarr store, opened without loading it (rows = regulators, columns = targets).

    Queries read only the chunks they need: :meth:`targets` one row of the CSR ``varp/GRN``,
    :meth:`regulators` one column of the CSC column index, :meth:`get` the rows of the requested
    genes. Use :func:`open_zarr` to create one.

    Opening checks that no chunk object of the genes, the network or its metadata is missing or
    resized (against the store's manifest; a store without one has its sparse network checked
    for consistency). Every chunk or shard a query decompresses is checked against its checksum
    first (a store written by plain anndata has none: only the consistency checks apply), and a
    read that fails raises :class:`GRNStoreError` naming the array. Every query checks that the
    store was not replaced since it was opened (new write id, or a new directory at the path)
    and raises if it was (also when the replacement happened during the query: then the error
    says the store was replaced while it was being read): open it again to read the new
    version.
    """

    def __init__(self, root: Any, source: str, *, key: str = GRN_KEY) -> None:
        self.source = source
        self.key = key
        self._token = store_token(root)
        self._unchecked_root = root
        try:
            self._open(root, source, key)
        except GRNStoreError as err:
            replaced_while_reading(root, self._token, source, err)
            raise
        self._check_unchanged()

    def _open(self, root: Any, source: str, key: str) -> None:
        prefixes = ("var/", f"varp/{key}/", "uns/grn/")
        has_manifest = (
            verify_manifest(root, source, prefixes=prefixes, contents=False, error=GRNStoreError)
            is not None
        )
        self._root, checks = verified_root(root, source, error=GRNStoreError, prefixes=prefixes)
        if checks is not None:
            unchecked = [name for name in checks.unchecked_arrays() if name.startswith(prefixes)]
            if unchecked:
                log.warning(
                    "%s was written by an earlier grnndata: %d array(s) read by lazy queries "
                    "(e.g. %s) have no per-object checksums, so a damaged chunk of theirs is "
                    "not detected by lazy reads (read_zarr and `grnndata verify` check them "
                    "whole); `grnndata convert` rewrites the store in the current format",
                    source,
                    len(unchecked),
                    unchecked[0],
                )
        root = self._root
        try:
            var = root["var"]
            index_key = var.attrs.get("_index", "_index")
            with self._reading(f"var/{index_key}"):
                names = read_elem(var[index_key])
            self.var_names = pd.Index([str(v) for v in names], dtype=object)
            varp = root["varp"]
        except GRNStoreError:
            raise
        except Exception as err:
            raise GRNStoreError(
                f"{source} is not an AnnData zarr store with genes in var ({type(err).__name__}: {err})"
            ) from err
        check_unique_genes(self.var_names, what=f"gene names in {source}")
        message = missing_network(list(varp.keys()), key, source)
        if message is not None:
            raise GRNStoreError(message)
        node = varp[key]
        name = f"varp/{key}"
        self._rows: _CompressedAxis | None = None
        self._cols: _CompressedAxis | None = None
        self._dense: Any = None
        encoding = dict(node.attrs).get("encoding-type", "array")
        axis = {"source": source, "reading": self._reading}
        if encoding == "csr_matrix":
            canonical = COLUMN_INDEX in node and "nnz" in node[COLUMN_INDEX].attrs
            self._rows = _CompressedAxis(node, name, canonical=canonical, **axis)
            if COLUMN_INDEX in node:
                self._cols = _CompressedAxis(
                    node[COLUMN_INDEX], f"{name}/{COLUMN_INDEX}", canonical=canonical, **axis
                )
            self.shape = tuple(int(s) for s in node.attrs["shape"])
            self.nnz = int(node["data"].shape[0])
        elif encoding == "csc_matrix":
            self._cols = _CompressedAxis(node, name, canonical=False, **axis)
            self.shape = tuple(int(s) for s in node.attrs["shape"])
            self.nnz = int(node["data"].shape[0])
        elif encoding == "array":
            self._dense = node
            self.shape = tuple(int(s) for s in node.shape)
            self.nnz = -1
        else:
            raise GRNStoreError(f"{source}: varp[{key!r}] has unsupported encoding {encoding!r}")
        if self.shape[:2] != (len(self.var_names), len(self.var_names)):
            raise GRNStoreError(
                f"{source}: varp[{key!r}] has shape {self.shape} but there are "
                f"{len(self.var_names)} genes"
            )
        if not has_manifest:
            sparse = [(name, node)] if self._dense is None else []
            if encoding == "csr_matrix" and COLUMN_INDEX in node:
                sparse.append((f"{name}/{COLUMN_INDEX}", node[COLUMN_INDEX]))
            for part, group in sparse:  # indices are range-checked query by query
                check_sparse_group(group, part, source, error=GRNStoreError, read_indices=False)
        self._positions = pd.Series(np.arange(len(self.var_names)), index=self.var_names)

    @contextlib.contextmanager
    def _reading(self, array: str) -> Iterator[None]:
        """Reads of ``array`` inside: any failure becomes a :class:`GRNStoreError` naming it,
        or saying that the store was replaced while it was read."""
        try:
            yield
        except GRNStoreError as err:
            replaced_while_reading(self._unchecked_root, self._token, self.source, err)
            raise
        except Exception as err:
            replaced_while_reading(self._unchecked_root, self._token, self.source, err)
            raise GRNStoreError(read_failure(self.source, array, err)) from err

    def _check_unchanged(self) -> None:
        """Raise :class:`GRNStoreError` if the store was replaced since it was opened."""
        if store_token(self._unchecked_root) != self._token:
            raise GRNStoreError(
                f"{self.source} was replaced (rewritten) since it was opened; results could mix "
                "the old and new versions. Open it again with grnndata.open_zarr"
            )

    def __repr__(self) -> str:
        return f"LazyGRN({self.source}, {len(self.var_names)} genes, {self.nnz} edges, regulators x targets)"

    @property
    def n_vars(self) -> int:
        """Number of genes."""
        return len(self.var_names)

    @property
    def metadata(self) -> dict[str, Any]:
        """``uns["grn"]`` of the store (empty dict if absent)."""
        if "uns" not in self._root or "grn" not in self._root["uns"]:
            return {}
        with self._reading("uns/grn"):
            meta = dict(read_elem(self._root["uns"]["grn"]))
        self._check_unchanged()
        return meta

    def _position(self, gene: str) -> int:
        try:
            return int(self._positions[gene])
        except KeyError:
            raise KeyError(
                f"gene {gene!r} is not among the {self.n_vars} genes of {self.source} "
                f"(e.g. {examples(self.var_names)})"
            ) from None

    def _series(self, positions: np.ndarray, weights: np.ndarray, name: str) -> pd.Series:
        keep = weights != 0
        positions, weights = positions[keep], weights[keep]
        order = np.lexsort((positions, -weights.astype(np.float64)))
        self._check_unchanged()
        return pd.Series(
            weights[order].astype(np.float32),
            index=pd.Index(self.var_names.to_numpy()[positions[order]], dtype=object),
            name=name,
        )

    def _single_network(self, what: str) -> None:
        if self._dense is not None and len(self.shape) == 3:
            raise ValueError(
                f"{self.source} holds a stack of {self.shape[2]} networks; {what} needs one "
                "network: use .get(genes) or .load().select_network(i)"
            )

    def targets(self, gene: str) -> pd.Series:
        """Weights from regulator ``gene`` to its targets (one row), sorted by decreasing weight."""
        self._single_network("targets")
        i = self._position(gene)
        self._check_unchanged()
        name = f"targets of {gene}"
        if self._dense is not None:
            with self._reading(f"varp/{self.key}"):
                row = np.asarray(self._dense[i, :], dtype=np.float32)
            return self._series(np.arange(row.size), row, name)
        if self._rows is not None:
            _, cols, weights = self._rows.slices(np.array([i]))
            return self._series(cols, weights, name)
        log.info("%s has no row index; scanning all edges for the targets of %s", self.source, gene)
        cols, weights = self._cols.scan(i)
        return self._series(cols, weights, name)

    def regulators(self, gene: str) -> pd.Series:
        """Weights into target ``gene`` from its regulators (one column), sorted by decreasing weight."""
        self._single_network("regulators")
        j = self._position(gene)
        self._check_unchanged()
        name = f"regulators of {gene}"
        if self._dense is not None:
            with self._reading(f"varp/{self.key}"):
                column = np.asarray(self._dense[:, j], dtype=np.float32)
            return self._series(np.arange(column.size), column, name)
        if self._cols is not None:
            _, rows, weights = self._cols.slices(np.array([j]))
            return self._series(rows, weights, name)
        log.info(
            "%s has no column index (not written by grnndata); scanning all edges for the "
            "regulators of %s",
            self.source,
            gene,
        )
        rows, weights = self._rows.scan(j)
        return self._series(rows, weights, name)

    def degrees(self) -> pd.DataFrame:
        """Per gene: ``n_targets`` (edges out of it, as a regulator) and ``n_regulators`` (edges
        into it, as a target); a DataFrame indexed by gene.

        Reads the ``indptr`` arrays of the network and of its column index (``n_genes + 1``
        integers each); a store without a column index has its ``indices`` read whole, a
        dense network is read whole.
        """
        self._single_network("degrees")
        self._check_unchanged()
        if self._dense is not None:
            with self._reading(f"varp/{self.key}"):
                present = np.asarray(self._dense[:], dtype=np.float32) != 0
            out_degree, in_degree = present.sum(axis=1), present.sum(axis=0)
        else:
            axes = {"rows": self._rows, "cols": self._cols}
            counts = {
                side: np.diff(axis.indptr) if axis is not None else None
                for side, axis in axes.items()
            }
            for side, other in (("rows", "cols"), ("cols", "rows")):
                if counts[side] is None:  # count the other axis' indices
                    axis = axes[other]
                    with self._reading(f"{axis.name}/indices"):
                        indices = np.asarray(axis.indices[:], dtype=np.int64)
                    counts[side] = np.bincount(indices, minlength=self.n_vars)
            out_degree, in_degree = counts["rows"], counts["cols"]
        self._check_unchanged()
        return pd.DataFrame(
            {
                "n_targets": np.asarray(out_degree, dtype=np.int64),
                "n_regulators": np.asarray(in_degree, dtype=np.int64),
            },
            index=self.var_names,
        )

    def get(self, genes: Sequence[str]) -> GRNAnnData:
        """Sub-network over ``genes`` (caller's order) as a :class:`GRNAnnData` without cells.

        Reads only the requested genes' rows (or columns) and the var metadata rows.
        """
        wanted = pd.Index([str(g) for g in genes], dtype=object)
        check_unique_genes(wanted, what="requested genes")
        positions = self.var_names.get_indexer(wanted)
        if (positions < 0).any():
            unknown = wanted[positions < 0]
            raise KeyError(
                f"{len(unknown)} requested gene(s) are not in {self.source}, e.g. {examples(unknown)}"
            )
        k = len(positions)
        self._check_unchanged()
        if self._dense is not None:
            with self._reading(f"varp/{self.key}"):
                block = np.asarray(self._dense.oindex[positions, positions], dtype=np.float32)
        else:
            lookup = np.full(self.n_vars, -1, dtype=np.int64)
            lookup[positions] = np.arange(k)
            axis = self._rows if self._rows is not None else self._cols
            owner, minor, weights = axis.slices(positions.astype(np.int64))
            other = lookup[minor]
            keep = other >= 0
            owner, other, weights = owner[keep], other[keep], weights[keep]
            if axis is self._cols:
                owner, other = other, owner
            block = sp.csr_matrix((weights, (owner, other)), shape=(k, k), dtype=np.float32)
        var = self._read_var_rows(positions)
        out = GRNAnnData(X=sp.csr_matrix((0, k), dtype=np.float32), grn=block, var=var)
        meta = self.metadata  # also checks that the store was not replaced meanwhile
        if meta:
            out.uns["grn"] = meta
        else:
            self._check_unchanged()
        return out

    def _read_var_rows(self, positions: np.ndarray) -> pd.DataFrame:
        with self._reading("var"):
            var = read_elem(self._root["var"])
        var.index = var.index.astype(str)
        return var.iloc[positions]

    def load(self) -> GRNAnnData:
        """Read the whole store (expression included) with :func:`read_zarr` semantics."""
        self._check_unchanged()
        out = read_root(self._unchecked_root, self.source, key=self.key)
        self._check_unchanged()
        return out


def open_zarr(store: str | os.PathLike | Any, *, key: str = GRN_KEY) -> LazyGRN:
    """Open a network zarr store lazily (nothing but the gene names is read).

    ``store`` is a path or any zarr store / group (e.g. a wrapper that counts bytes read).
    ``key``: where the store holds its network, ``varp["GRN"]`` by default (any ``varp`` key of
    a plain AnnData store; the column index that makes :meth:`LazyGRN.regulators` a small read
    exists only in stores written by grnndata).
    """
    root, source = open_root(store)
    return LazyGRN(root, source, key=key)
