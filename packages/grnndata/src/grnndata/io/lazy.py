"""Lazy, partial reads of a network zarr store: one gene's targets or regulators, a sub-network.

Queries read only the chunks they need (see :mod:`grnndata.io` for the layout), check what they
read, and refuse to mix two versions of a store that was rewritten while open.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr

from .._integrity import check_sparse_group, store_token, verify_manifest
from .._matrix import GRN_KEY, check_unique_genes, examples
from ..core import GRNAnnData
from ._common import GRNStoreError, existing_path
from .zarr import COLUMN_INDEX, read_root

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

    def __init__(self, group: Any, *, source: str, canonical: bool) -> None:
        self.indptr_array = group["indptr"]
        self.indices = group["indices"]
        self.data = group["data"]
        self.source = source
        self.canonical = canonical
        self.n_minor = int(group.attrs["shape"][1])  # square: rows and columns are the genes
        self._indptr: np.ndarray | None = None

    @property
    def indptr(self) -> np.ndarray:
        if self._indptr is None:
            self._indptr = np.asarray(self.indptr_array[:], dtype=np.int64)
        return self._indptr

    def bounds(self, majors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of ``majors``; reads only their ``indptr`` chunks when few."""
        if self._indptr is None and len(majors) <= 256:
            needed = np.unique(np.concatenate([majors, majors + 1]))
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
        try:
            if len(majors) == 1:
                span = slice(int(starts[0]), int(ends[0]))
                minor, weight = self.indices[span], self.data[span]
            else:
                offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
                coords = offsets + np.arange(total)
                minor, weight = self.indices.oindex[coords], self.data.oindex[coords]
        except Exception as err:
            raise GRNStoreError(
                f"{self.source} is corrupted or truncated: reading edges failed "
                f"({type(err).__name__}: {err})"
            ) from err
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
        indices = np.asarray(self.indices[:], dtype=np.int64)
        hits = np.flatnonzero(indices == minor)
        majors = np.searchsorted(self.indptr, hits, side="right") - 1
        return majors, np.asarray(self.data.oindex[hits], dtype=np.float32)


class LazyGRN:
    """A network in a zarr store, opened without loading it (rows = regulators, columns = targets).

    Queries read only the chunks they need: :meth:`targets` one row of the CSR ``varp/GRN``,
    :meth:`regulators` one column of the CSC column index, :meth:`get` the rows of the requested
    genes. Use :func:`open_zarr` to create one.

    Opening checks that no chunk of the genes, the network or its metadata is missing or
    resized (against the store's manifest; a store without one has its sparse network checked
    for consistency). Every query then checks that the store was not replaced since it was
    opened (new write id, or a new directory at the path) and raises :class:`GRNStoreError`
    if it was: open it again to read the new version.
    """

    _READ_PREFIXES = ("var/", f"varp/{GRN_KEY}/", "uns/grn/")

    def __init__(self, root: Any, source: str) -> None:
        self.source = source
        self._root = root
        self._token = store_token(root)
        has_manifest = verify_manifest(
            root, source, prefixes=self._READ_PREFIXES, contents=False, error=GRNStoreError
        )
        try:
            var = root["var"]
            index_key = var.attrs.get("_index", "_index")
            self.var_names = pd.Index([str(v) for v in read_elem(var[index_key])], dtype=object)
            varp = root["varp"]
        except Exception as err:
            raise GRNStoreError(
                f"{source} is not an AnnData zarr store with genes in var ({type(err).__name__}: {err})"
            ) from err
        check_unique_genes(self.var_names, what=f"gene names in {source}")
        if GRN_KEY not in varp:
            raise GRNStoreError(
                f"{source} holds no network: varp has {list(varp.keys())}, expected varp['GRN']"
            )
        node = varp[GRN_KEY]
        self._rows: _CompressedAxis | None = None
        self._cols: _CompressedAxis | None = None
        self._dense: Any = None
        encoding = dict(node.attrs).get("encoding-type", "array")
        if encoding == "csr_matrix":
            canonical = COLUMN_INDEX in node and "nnz" in node[COLUMN_INDEX].attrs
            self._rows = _CompressedAxis(node, source=source, canonical=canonical)
            if COLUMN_INDEX in node:
                self._cols = _CompressedAxis(node[COLUMN_INDEX], source=source, canonical=canonical)
            self.shape = tuple(int(s) for s in node.attrs["shape"])
            self.nnz = int(node["data"].shape[0])
        elif encoding == "csc_matrix":
            self._cols = _CompressedAxis(node, source=source, canonical=False)
            self.shape = tuple(int(s) for s in node.attrs["shape"])
            self.nnz = int(node["data"].shape[0])
        elif encoding == "array":
            self._dense = node
            self.shape = tuple(int(s) for s in node.shape)
            self.nnz = -1
        else:
            raise GRNStoreError(f"{source}: varp['GRN'] has unsupported encoding {encoding!r}")
        if self.shape[:2] != (len(self.var_names), len(self.var_names)):
            raise GRNStoreError(
                f"{source}: varp['GRN'] has shape {self.shape} but there are {len(self.var_names)} genes"
            )
        if not has_manifest:
            sparse = [(f"varp/{GRN_KEY}", node)] if self._dense is None else []
            if encoding == "csr_matrix" and COLUMN_INDEX in node:
                sparse.append((f"varp/{GRN_KEY}/{COLUMN_INDEX}", node[COLUMN_INDEX]))
            for name, group in sparse:  # indices are range-checked query by query
                check_sparse_group(group, name, source, error=GRNStoreError, read_indices=False)
        self._positions = pd.Series(np.arange(len(self.var_names)), index=self.var_names)
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        """Raise :class:`GRNStoreError` if the store was replaced since it was opened."""
        if store_token(self._root) != self._token:
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
        name = f"targets of {gene}"
        if self._dense is not None:
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
        name = f"regulators of {gene}"
        if self._dense is not None:
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
        if self._dense is not None:
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
        var = read_elem(self._root["var"])
        var.index = var.index.astype(str)
        return var.iloc[positions]

    def load(self) -> GRNAnnData:
        """Read the whole store (expression included) with :func:`read_zarr` semantics."""
        self._check_unchanged()
        out = read_root(self._root, self.source)
        self._check_unchanged()
        return out


def open_zarr(store: str | os.PathLike | Any) -> LazyGRN:
    """Open a network zarr store lazily (nothing but the gene names is read).

    ``store`` is a path or any zarr store / group (e.g. a wrapper that counts bytes read).
    """
    if isinstance(store, str | os.PathLike):
        path = existing_path(store, "zarr store")
        source = repr(str(path))
        target: Any = str(path)
    else:
        source = f"<{type(store).__name__}>"
        target = store
    try:
        root = target if isinstance(target, zarr.Group) else zarr.open_group(target, mode="r")
    except Exception as err:
        raise GRNStoreError(
            f"{source} is not a readable zarr store ({type(err).__name__}: {err})"
        ) from err
    return LazyGRN(root, source)
