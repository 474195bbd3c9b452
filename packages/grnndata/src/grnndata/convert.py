"""One home for network conversion: edge table <-> matrix <-> GRNAnnData.

Orientation everywhere: **rows = regulators, columns = targets**; entry ``[i, j]`` is the weight
of the edge ``genes[i] -> genes[j]``.

:func:`as_network` takes a network in any form users hold and returns a validated
:class:`Network` (a matrix and its gene names):

- an AnnData / :class:`~grnndata.GRNAnnData` with the network in ``varp[key]`` (``"GRN"`` by
  default; genes = ``var_names``);
- a square :class:`pandas.DataFrame` (index = regulators, columns = targets, the same genes in
  any order);
- an edge table: a DataFrame with ``regulator`` (or ``source``) and ``target`` columns and an
  optional weight column, or two or three columns of which the first two hold gene names;
- a square numpy array or scipy sparse matrix together with ``genes``.

Edge tables are mapped by :func:`grnndata.edges.edges_to_matrix` (vectorised, with its rules for
repeated edges); matrices are checked (square, numeric, finite, unique genes) and kept in their
form, so a large dense network is not copied. :meth:`Network.to_grnanndata` and
:meth:`Network.edges` go on to a GRNAnnData or back to an edge table.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._matrix import GRN_KEY, check_unique_genes, examples, missing_network
from .edges import Duplicates, edges_to_matrix, matrix_to_edges

if TYPE_CHECKING:
    from .core import GRNAnnData

log = logging.getLogger(__name__)

__all__ = ["EmptyEdgeTableError", "Network", "as_network", "is_edge_table"]

_SOURCE_COLUMNS = ("regulator", "source")


class EmptyEdgeTableError(ValueError):
    """An edge table without rows was given and no ``genes`` say which genes the network has."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Network:
    """A square network with named genes (rows = regulators, columns = targets).

    Attributes
    ----------
    matrix
        ``(n_genes, n_genes)``: a ``scipy.sparse.csr_matrix`` or a dense ``numpy.ndarray``, of a
        real numeric or boolean dtype, every value finite; 0 (or an unstored entry) = no edge.
    genes
        ``(n_genes,)`` unique gene names (strings), the order of both rows and columns.
    """

    matrix: sp.csr_matrix | np.ndarray
    genes: pd.Index

    def __post_init__(self) -> None:
        if self.matrix.shape != (len(self.genes), len(self.genes)):
            raise ValueError(
                f"a Network's matrix has shape {self.matrix.shape} but it names "
                f"{len(self.genes)} genes; expected ({len(self.genes)}, {len(self.genes)})"
            )

    @property
    def n_genes(self) -> int:
        """Number of genes (rows = columns)."""
        return len(self.genes)

    def to_grnanndata(self) -> GRNAnnData:
        """A :class:`~grnndata.GRNAnnData` without cells (``X`` of shape ``(0, n_genes)``)
        whose ``grn`` is this network as CSR float32."""
        from .core import GRNAnnData

        return GRNAnnData.from_matrix(self.matrix, list(self.genes))

    def edges(
        self,
        min_weight: float | None = None,
        top_k: int | None = None,
        per_regulator_top_k: int | None = None,
    ) -> pd.DataFrame:
        """Tidy edge table ``regulator, target, weight`` (float32), strongest first; see
        :func:`grnndata.edges.matrix_to_edges` for the options."""
        matrix = sp.csr_matrix(self.matrix, dtype=np.float32)
        matrix.eliminate_zeros()
        matrix.sort_indices()
        return matrix_to_edges(
            matrix,
            self.genes,
            min_weight=min_weight,
            top_k=top_k,
            per_regulator_top_k=per_regulator_top_k,
        )


def _endpoint_columns(frame: pd.DataFrame) -> tuple[Any, Any] | None:
    """The (regulator, target) columns of an edge table, or ``None`` if ``frame`` is not one."""
    columns = list(frame.columns)
    if "target" in columns:
        for source in _SOURCE_COLUMNS:
            if source in columns:
                return source, "target"
    if frame.shape[0] == frame.shape[1] and _same_gene_sets(frame):
        return None  # a square network
    if 2 <= frame.shape[1] <= 3 and all(
        pd.api.types.is_object_dtype(frame.iloc[:, i])
        or pd.api.types.is_string_dtype(frame.iloc[:, i])
        or isinstance(frame.iloc[:, i].dtype, pd.CategoricalDtype)
        for i in (0, 1)
    ):
        return columns[0], columns[1]
    return None


def _same_gene_sets(frame: pd.DataFrame) -> bool:
    return set(frame.index.astype(str)) == set(frame.columns.astype(str))


def is_edge_table(obj: Any) -> bool:
    """True when ``obj`` is a DataFrame that :func:`as_network` reads as an edge table."""
    return isinstance(obj, pd.DataFrame) and _endpoint_columns(obj) is not None


def as_network(
    obj: Any,
    genes: Sequence[str] | pd.Index | None = None,
    *,
    weight: str | None = "weight",
    weighted: bool = True,
    duplicates: Duplicates = "max",
    sparse: bool | None = None,
    strict: bool = False,
    name: str = "network",
    key: str = GRN_KEY,
) -> Network:
    """Convert a network given in any supported form to a validated :class:`Network`.

    Parameters
    ----------
    obj
        An AnnData / GRNAnnData with a network in ``varp[key]``; a square DataFrame (index = regulators,
        columns = targets, same genes, any order: columns are aligned to the index); an edge
        table (``regulator`` or ``source``, ``target`` and optional weight columns, or two or
        three columns, the first two of gene names and the third of weights); or a square
        ``(n_genes, n_genes)`` numpy array / scipy sparse matrix (rows = regulators) with
        ``genes``.
    genes
        For a bare matrix: the names of its rows and columns (required). For the named forms:
        the genes of the result, in this order: edges touching other genes are dropped and
        genes the input lacks get no edge. Default: the object's genes (for an edge table, every
        gene it names, in order of first appearance, regulators first).
    weight
        The weight column of an edge table with named columns. A table holding only its two
        gene columns is unweighted (every edge weighs 1); ``None`` ignores any weight column.
    weighted
        ``False`` returns the presence of edges: a boolean CSR matrix, ``True`` where an edge is
        listed in an edge table (whatever its weight) or where a matrix is non-zero. Use it for
        ground truths.
    duplicates
        How an edge table's repeated (regulator, target) rows merge (see
        :func:`grnndata.edges.edges_to_matrix`): ``"max"`` (default), ``"absmax"`` (the weight
        of largest magnitude, sign kept: what ranking by ``|weight|`` needs), ``"min"``,
        ``"sum"``, ``"mean"``, ``"first"``, ``"last"`` or ``"error"``.
    sparse
        ``None`` keeps the input's form (a dense matrix stays dense and is not copied; sparse
        input and edge tables give CSR); ``True`` always gives CSR; ``False`` always dense.
    strict
        Raise ``ValueError`` when an edge table names genes outside ``genes`` (default: those
        edges are dropped, logged at INFO level).
    name
        What the network is called in error messages (e.g. ``"predicted"``, ``"truth"``).
    key
        Where an AnnData holds its network: ``varp["GRN"]`` by default (the convention of the
        three packages; any AnnData, not only a GRNAnnData). A missing key is a ``ValueError``
        naming the keys ``varp`` has.

    Returns
    -------
    :class:`Network`: ``matrix`` ``(n_genes, n_genes)`` (rows = regulators, columns = targets;
    CSR or dense ndarray; float32 from an edge table, the input's dtype otherwise, bool when
    ``weighted=False``) and ``genes``.

    Raises
    ------
    ValueError
        Non-square, mismatched gene count, duplicated gene names, non-numeric or non-finite
        (NaN, inf) scores (naming an offending edge), a DataFrame that is neither form.
    EmptyEdgeTableError
        An edge table without rows and no ``genes``.
    TypeError
        Any other kind of object (paths, lists, ...).
    """
    wanted = None if genes is None else _gene_index(genes, name)
    if isinstance(obj, pd.DataFrame):
        columns = _endpoint_columns(obj)
        if columns is not None:
            return _from_edge_table(
                obj, columns, wanted, weight, weighted, duplicates, sparse, strict, name
            )
        matrix, names = _from_square_frame(obj, name)
    elif isinstance(obj, anndata.AnnData):
        message = missing_network(list(obj.varp.keys()), key, f"{name}: the AnnData")
        if message is not None:
            raise ValueError(message)
        matrix, names = obj.varp[key], _gene_index(obj.var_names, name)
    elif obj is None or not (sp.issparse(obj) or hasattr(obj, "__array__")):
        raise TypeError(
            f"{name}: expected an AnnData / GRNAnnData with varp[{key!r}], a DataFrame (square "
            "network or edge table) or a square numpy / scipy sparse matrix with genes; got "
            f"{type(obj).__name__} {str(obj)[:60]!r}"
        )
    else:
        if wanted is None:
            raise ValueError(
                f"{name}: a bare matrix needs `genes` (the names of its rows and columns)"
            )
        matrix, names, wanted = obj, wanted, None
    matrix = _checked_matrix(matrix, names, name)
    if wanted is not None and not wanted.equals(names):
        matrix = _reindex(matrix, names, wanted)
        names = wanted
    return Network(_final_form(matrix, weighted, sparse), names)


def _gene_index(genes: Sequence[str] | pd.Index, name: str) -> pd.Index:
    if isinstance(genes, str):
        raise TypeError(f"{name}: genes must be a sequence of names, not one string {genes!r}")
    index = pd.Index([str(g) for g in genes], dtype=object)
    check_unique_genes(index, what=f"{name}: gene names")
    return index


def _from_square_frame(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, pd.Index]:
    index = pd.Index(frame.index.astype(str), dtype=object)
    columns = pd.Index(frame.columns.astype(str), dtype=object)
    check_unique_genes(index, what=f"{name}: DataFrame index (regulators)")
    check_unique_genes(columns, what=f"{name}: DataFrame columns (targets)")
    if set(index) != set(columns):
        only_rows, only_cols = index.difference(columns), columns.difference(index)
        raise ValueError(
            f"{name}: a DataFrame must be an edge table (columns 'regulator' or 'source', "
            "'target' and optionally 'weight') or a square network whose index (regulators) and "
            f"columns (targets) hold the same genes: {len(only_rows)} only in the index "
            f"{examples(only_rows)}, {len(only_cols)} only in the columns {examples(only_cols)}"
        )
    values = frame.to_numpy()
    if not columns.equals(index):
        values = values[:, columns.get_indexer(index)]
    return values, index


def _from_edge_table(
    frame: pd.DataFrame,
    columns: tuple[Any, Any],
    genes: pd.Index | None,
    weight: str | None,
    weighted: bool,
    duplicates: Duplicates,
    sparse: bool | None,
    strict: bool,
    name: str,
) -> Network:
    source, target = columns
    named = source in _SOURCE_COLUMNS and target == "target"
    weights = None
    if weighted and weight is not None:
        if named and weight in frame.columns:
            weights = frame[weight]
        elif named and frame.shape[1] > 2:
            raise KeyError(
                f"{name}: the edge table has no weight column {weight!r}; its columns are "
                f"{list(frame.columns)} (pass weight='<column>', or weight=None for an "
                "unweighted network)"
            )
        elif not named and frame.shape[1] == 3:
            weights = frame.iloc[:, 2]
    if len(frame) == 0 and genes is None:
        raise EmptyEdgeTableError(
            f"{name}: the edge table is empty (columns {list(frame.columns)}, 0 rows); expected "
            "at least one (regulator, target) edge, or genes= to define an empty network"
        )
    regulators, targets = _names(frame[source]), _names(frame[target])
    if genes is None:
        genes = pd.Index(
            pd.unique(np.concatenate([_as_text(regulators), _as_text(targets)])), dtype=object
        )
    values = None if weights is None else _numeric_weights(weights, name)
    mapping = edges_to_matrix(
        genes,
        regulators,
        targets,
        values,
        duplicates=duplicates,
        strict=strict,
        unknown_level=logging.INFO,
    )
    return Network(_final_form(mapping.matrix, weighted, sparse), genes)


def _names(column: pd.Series) -> pd.Series:
    """Gene names of an edge-table column as text (categoricals kept: mapped by category)."""
    if isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(column):
        return column
    return column.astype(str)


def _as_text(names: pd.Series) -> np.ndarray:
    return names.astype(str).to_numpy(dtype=object)


def _numeric_weights(weights: pd.Series, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(weights).to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{name}: the edge table's weights must be numbers; got values like "
            f"{examples(weights.tolist())} ({err})"
        ) from None


def _checked_matrix(matrix: Any, genes: pd.Index, name: str) -> sp.csr_matrix | np.ndarray:
    """``matrix`` as CSR (sparse input) or ndarray (dense), after every check of the module."""
    if sp.issparse(matrix):
        _check_square(matrix.shape, genes, name)
        matrix = matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(matrix)
        values = matrix.data
    else:
        if hasattr(matrix, "to_memory"):  # anndata backed arrays
            matrix = matrix.to_memory()
        matrix = np.asarray(matrix)
        if matrix.ndim == 3:
            raise ValueError(
                f"{name}: a stack of {matrix.shape[2]} networks (shape {matrix.shape}); select "
                "one first (GRNAnnData.select_network(i))"
            )
        _check_square(matrix.shape, genes, name)
        values = matrix
    dtype = values.dtype
    if dtype != np.dtype(bool) and dtype.kind not in "iuf":
        raise ValueError(
            f"{name}: network scores must be real numbers or booleans; got dtype {dtype}"
        )
    if dtype.kind == "f" and values.size and not _all_finite(values):
        _raise_non_finite(matrix, genes, name)
    return matrix


def _all_finite(values: np.ndarray) -> bool:
    """Two reductions, no temporary the size of ``values`` (NaN and inf both propagate)."""
    return bool(np.isfinite(np.min(values)) and np.isfinite(np.max(values)))


def _raise_non_finite(matrix: sp.csr_matrix | np.ndarray, genes: pd.Index, name: str) -> None:
    if sp.issparse(matrix):
        coo = matrix.tocoo()
        bad = np.flatnonzero(~np.isfinite(coo.data))
        row, col = int(coo.row[bad[0]]), int(coo.col[bad[0]])
    else:
        bad = np.flatnonzero(~np.isfinite(matrix))
        row, col = divmod(int(bad[0]), matrix.shape[1])
    raise ValueError(
        f"{name}: network scores contain {bad.size} NaN or inf value(s), e.g. edge "
        f"{genes[row]!r} -> {genes[col]!r}; give every edge a finite score (0 = no edge)"
    )


def _check_square(shape: tuple[int, ...], genes: pd.Index, name: str) -> None:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(
            f"{name}: a network must be a square (n_genes, n_genes) matrix of regulators x "
            f"targets; got shape {tuple(shape)}"
        )
    if shape[0] != len(genes):
        raise ValueError(
            f"{name}: the matrix has {shape[0]} rows but {len(genes)} gene names were given"
        )


def _reindex(
    matrix: sp.csr_matrix | np.ndarray, names: pd.Index, genes: pd.Index
) -> sp.csr_matrix | np.ndarray:
    """``matrix`` over ``names`` moved onto ``genes`` (absent genes: no edges)."""
    positions = names.get_indexer(genes)
    found = np.flatnonzero(positions >= 0)
    n = len(genes)
    if not sp.issparse(matrix):
        out = np.zeros((n, n), dtype=matrix.dtype)
        out[np.ix_(found, found)] = matrix[np.ix_(positions[found], positions[found])]
        return out
    lookup = np.full(len(names), -1, dtype=np.int64)
    lookup[positions[found]] = found
    coo = matrix.tocoo()
    rows, cols = lookup[coo.row], lookup[coo.col]
    keep = (rows >= 0) & (cols >= 0)
    out = sp.csr_matrix((coo.data[keep], (rows[keep], cols[keep])), shape=(n, n))
    out.sort_indices()
    return out


def _final_form(
    matrix: sp.csr_matrix | np.ndarray, weighted: bool, sparse: bool | None
) -> sp.csr_matrix | np.ndarray:
    if not weighted:
        presence = sp.csr_matrix(matrix != 0) if sp.issparse(matrix) else matrix != 0
        if sparse is False:
            return presence.toarray() if sp.issparse(presence) else presence
        out = presence if sp.issparse(presence) else sp.csr_matrix(presence)
        out.eliminate_zeros()
        return out
    if sparse is True and not sp.issparse(matrix):
        return sp.csr_matrix(matrix)
    if sparse is False and sp.issparse(matrix):
        return matrix.toarray()
    return matrix
