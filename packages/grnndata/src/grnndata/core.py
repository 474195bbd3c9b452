"""The container: :class:`GRNAnnData`, an AnnData holding a gene network in ``varp["GRN"]``.

Orientation everywhere: **rows = regulators, columns = targets**; entry ``[i, j]`` is the weight
of the edge from gene ``i`` (regulator) to gene ``j`` (target). The network is a
``scipy.sparse.csr_matrix`` of float32 (a 3-D dense ``(n_genes, n_genes, k)`` stack is accepted for
per-head or per-sample networks). Every matrix is validated when it enters the object.

Storage lives in :mod:`grnndata.io`, conversion in :mod:`grnndata.convert`, analysis in
:mod:`grnndata.analysis` (which takes any AnnData with ``varp["GRN"]``; this module does not
import it), plotting in :mod:`grnndata.plot`; this module stays a thin, validated container.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._matrix import (
    GRN_KEY,
    ORIENTATION,
    canonical_network,
    check_unique_genes,
    examples,
    missing_network,
)
from .convert import as_network, is_edge_table
from .edges import Duplicates, edges_to_matrix, matrix_to_edges

if TYPE_CHECKING:
    import networkx as nx

log = logging.getLogger(__name__)

__all__ = ["GRNAnnData", "from_edges"]

_MAX_FRAME_GENES = 5000


def _package_versions() -> dict[str, str]:
    versions = {}
    for dist in ("grnndata", "anndata", "numpy", "scipy", "zarr", "h5py"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


class GRNAnnData(anndata.AnnData):
    """An AnnData (cells x genes) carrying a gene network over its genes in ``varp["GRN"]``.

    The network is a square ``(n_vars, n_vars)`` matrix with **rows = regulators and columns =
    targets**, stored as ``scipy.sparse.csr_matrix`` float32 (a dense 2-D input is converted; a
    dense 3-D ``(n_vars, n_vars, k)`` stack is kept dense for per-head / per-sample networks).
    It is validated on construction and on assignment to :attr:`grn`: square, matching
    ``n_vars``, numeric, finite; gene names must be unique.

    Parameters
    ----------
    X
        Expression, cells x genes (may be ``None``: a network without expression).
    grn
        The network (rows = regulators, columns = targets). ``None`` keeps ``varp["GRN"]`` if
        given, else starts an empty network (no edges).
    obs, var, uns, layers, obsm, varm, obsp, varp, raw
        As in :class:`anndata.AnnData`.

    Notes
    -----
    Slicing (``g[cells, genes]``) returns a new, independent :class:`GRNAnnData` (a copy, not an
    AnnData view) whose network is the sub-network over the kept genes in the order given;
    slicing cells only keeps the whole network.
    """

    def __init__(
        self,
        X: Any = None,
        *,
        grn: Any = None,
        obs: pd.DataFrame | Mapping[str, Any] | None = None,
        var: pd.DataFrame | Mapping[str, Any] | None = None,
        uns: Mapping[str, Any] | None = None,
        layers: Mapping[str, Any] | None = None,
        obsm: Mapping[str, Any] | None = None,
        varm: Mapping[str, Any] | None = None,
        obsp: Mapping[str, Any] | None = None,
        varp: Mapping[str, Any] | None = None,
        raw: Any = None,
    ) -> None:
        if isinstance(X, anndata.AnnData):
            raise TypeError(
                "GRNAnnData(X=...) got an AnnData; use GRNAnnData.from_adata(adata, grn=...)"
            )
        super().__init__(
            X=X,
            obs=obs,
            var=var,
            uns=dict(uns) if uns is not None else None,
            layers=layers,
            obsm=obsm,
            varm=varm,
            obsp=obsp,
            varp=varp,
            raw=raw,
        )
        check_unique_genes(self.var_names, what="var_names (gene names)")
        meta = self.uns.get("grn")
        if meta is not None:
            if not isinstance(meta, Mapping):
                raise ValueError(
                    f"uns['grn'] must be a dict of network metadata, got {type(meta).__name__}"
                )
            orientation = meta.get("orientation", ORIENTATION)
            if orientation != ORIENTATION:
                raise ValueError(
                    f"uns['grn']['orientation'] is {orientation!r}; GRNAnnData stores "
                    f"{ORIENTATION!r} (rows = regulators, columns = targets): transpose the matrix"
                )
        else:
            self.uns["grn"] = {"orientation": ORIENTATION}
        if grn is not None:
            self.grn = grn
        elif GRN_KEY in self.varp:
            self.varp[GRN_KEY] = canonical_network(
                self.varp[GRN_KEY], self.n_vars, where="varp['GRN']"
            )
        else:
            self.varp[GRN_KEY] = sp.csr_matrix((self.n_vars, self.n_vars), dtype=np.float32)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_adata(
        cls, adata: anndata.AnnData, grn: Any = None, *, key: str = GRN_KEY
    ) -> GRNAnnData:
        """Wrap an AnnData (cells x genes) with a network over its genes.

        Parameters
        ----------
        adata
            Expression and metadata; not copied when it is an actual (non-view) AnnData, so
            the result shares arrays with it.
        grn
            ``(n_vars, n_vars)`` network, rows = regulators, columns = targets. ``None`` takes
            ``adata.varp[key]`` and raises ``ValueError`` naming the varp keys if there is none.
        key
            Where ``adata`` holds its network (the packages' convention: ``varp["GRN"]``). A
            network found under another key moves to ``varp["GRN"]`` in the result (it is not
            kept twice).
        """
        if adata.is_view:
            adata = adata.copy()
        varp = dict(adata.varp)
        if grn is None:
            message = missing_network(list(varp), key, "the AnnData")
            if message is not None:
                raise ValueError(f"{message}, or pass grn=... to supply one")
            if key != GRN_KEY:
                grn = varp.pop(key)
        return cls(
            X=adata.X,
            grn=grn,
            obs=adata.obs,
            var=adata.var,
            uns=adata.uns,
            layers=dict(adata.layers),
            obsm=dict(adata.obsm),
            varm=dict(adata.varm),
            obsp=dict(adata.obsp),
            varp=varp,
            raw=adata.raw,
        )

    @classmethod
    def from_matrix(cls, grn: Any, genes: Sequence[str]) -> GRNAnnData:
        """A network without expression: ``X`` has shape ``(0, n_genes)``.

        ``grn`` is ``(n_genes, n_genes)``, rows = regulators, columns = targets, in ``genes``
        order (or a 3-D ``(n_genes, n_genes, k)`` stack).
        """
        var = pd.DataFrame(index=pd.Index([str(g) for g in genes], dtype=object))
        X = sp.csr_matrix((0, len(var)), dtype=np.float32)
        return cls(X=X, grn=grn, var=var)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> GRNAnnData:
        """A network from a square DataFrame: index = regulators, columns = targets.

        Index and columns must hold the same gene names (any order); columns are aligned to
        the index order. Same as ``grnndata.as_network(frame).to_grnanndata()``.
        """
        if not isinstance(frame, pd.DataFrame) or is_edge_table(frame):
            raise ValueError(
                "from_frame expects a square DataFrame (index = regulators, columns = targets); "
                "use grnndata.from_edges for an edge table"
            )
        network = as_network(frame, name="DataFrame")
        return cls.from_matrix(network.matrix, list(network.genes))

    @classmethod
    def from_networkx(
        cls, graph: nx.Graph, *, weight: str = "weight", genes: Sequence[str] | None = None
    ) -> GRNAnnData:
        """A network from a networkx graph (directed edges u -> v become row u, column v).

        Undirected graphs give a symmetric matrix. Edges without ``weight`` get weight 1.
        ``genes`` fixes the gene order (default: the graph's node order).
        """
        import networkx as nx

        nodes = list(graph.nodes) if genes is None else list(genes)
        missing = [n for n in graph.nodes if n not in set(nodes)] if genes is not None else []
        if missing:
            raise ValueError(
                f"{len(missing)} graph node(s) are not in genes, e.g. {examples(missing)}"
            )
        matrix = nx.to_scipy_sparse_array(graph, nodelist=nodes, weight=weight, dtype=np.float32)
        return cls.from_matrix(sp.csr_matrix(matrix), [str(n) for n in nodes])

    # ----------------------------------------------------------------- the network
    @property
    def grn(self) -> sp.csr_matrix:
        """The network, ``csr_matrix`` float32 ``(n_vars, n_vars)``: rows = regulators, columns = targets.

        Assigning validates (square, ``n_vars``, numeric, finite) and converts to CSR float32
        (a canonical float32 CSR is kept without copying). Writing ``varp["GRN"]`` directly
        bypasses the finiteness check for a float32 CSR; other types are validated and converted
        on the next read of this property. For a 3-D stack use :attr:`grn_stack` /
        :meth:`select_network`.
        """
        value = self.varp[GRN_KEY]
        if isinstance(value, np.ndarray) and value.ndim == 3:
            raise ValueError(
                f"this object holds a stack of {value.shape[2]} networks (shape {value.shape}); "
                "use .grn_stack for the array or .select_network(i) for one network"
            )
        if isinstance(value, sp.csr_matrix) and value.dtype == np.float32:
            if value.shape == (self.n_vars, self.n_vars):
                return value
        checked = canonical_network(value, self.n_vars, where="varp['GRN']")
        self.varp[GRN_KEY] = checked
        return checked

    @grn.setter
    def grn(self, value: Any) -> None:
        self.varp[GRN_KEY] = canonical_network(value, self.n_vars, where="grn")

    @property
    def is_stack(self) -> bool:
        """True when the network is a dense 3-D ``(n_vars, n_vars, k)`` stack."""
        value = self.varp[GRN_KEY]
        return isinstance(value, np.ndarray) and value.ndim == 3

    @property
    def grn_stack(self) -> np.ndarray:
        """The 3-D stack ``(n_vars, n_vars, k)`` float32 (rows = regulators, columns = targets)."""
        if not self.is_stack:
            raise ValueError("this object holds a single 2-D network; use .grn")
        return self.varp[GRN_KEY]

    def select_network(self, index: int) -> GRNAnnData:
        """Network ``index`` of a 3-D stack as a 2-D :class:`GRNAnnData` (same cells and genes)."""
        stack = self.grn_stack
        if not -stack.shape[2] <= index < stack.shape[2]:
            raise IndexError(f"network index {index} out of range for a stack of {stack.shape[2]}")
        out = self.copy()
        out.grn = stack[:, :, index]
        return out

    @property
    def n_edges(self) -> int:
        """Number of stored (non-zero) edges."""
        value = self.varp[GRN_KEY]
        return int(np.count_nonzero(value)) if self.is_stack else int(self.grn.nnz)

    def to_scipy(self, format: str = "csr") -> sp.spmatrix:
        """The network as a scipy sparse matrix (``"csr"``, ``"csc"`` or ``"coo"``), rows = regulators."""
        if format not in ("csr", "csc", "coo"):
            raise ValueError(f"format={format!r}; expected 'csr', 'csc' or 'coo'")
        return self.grn.asformat(format, copy=True)

    def to_frame(self, max_genes: int = _MAX_FRAME_GENES) -> pd.DataFrame:
        """Dense DataFrame (index = regulators, columns = targets) for small networks.

        Refuses networks over ``max_genes`` genes (a 20,000-gene frame is 1.6 GB).
        """
        if self.n_vars > max_genes:
            raise ValueError(
                f"to_frame would densify a {self.n_vars} x {self.n_vars} network; it is limited to "
                f"{max_genes} genes (pass max_genes= to override, or use .edges() / .get(genes))"
            )
        names = list(self.var_names)
        return pd.DataFrame(self.grn.toarray(), index=names, columns=names)

    def to_networkx(self, *, min_weight: float | None = None) -> nx.DiGraph:
        """A ``networkx.DiGraph``: one node per gene, edge regulator -> target with ``weight``."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.var_names)
        frame = self.edges(min_weight=min_weight)
        graph.add_weighted_edges_from(
            zip(
                frame["regulator"].astype(str),
                frame["target"].astype(str),
                frame["weight"].astype(float),
            )
        )
        return graph

    def _gene_position(self, gene: str) -> int:
        try:
            position = self.var_names.get_loc(gene)
        except KeyError:
            raise KeyError(
                f"gene {gene!r} is not among the {self.n_vars} genes of this network "
                f"(e.g. {examples(self.var_names)})"
            ) from None
        return int(position)

    def targets(self, gene: str) -> pd.Series:
        """Weights of the edges from ``gene`` (a regulator, one row) to its targets.

        Returns a Series indexed by target gene, sorted by decreasing weight (ties in gene order).
        """
        row = self.grn[self._gene_position(gene)]
        return _sorted_series(row.indices, row.data, self.var_names, name=f"targets of {gene}")

    def regulators(self, gene: str) -> pd.Series:
        """Weights of the edges into ``gene`` (a target, one column) from its regulators.

        Returns a Series indexed by regulator gene, sorted by decreasing weight.
        """
        column = self.grn[:, self._gene_position(gene)].tocoo()
        return _sorted_series(column.row, column.data, self.var_names, name=f"regulators of {gene}")

    def get(self, genes: Sequence[str]) -> GRNAnnData:
        """The sub-network over ``genes`` in the caller's order, with the matching expression slice.

        Raises ``KeyError`` naming unknown genes and ``ValueError`` for repeated genes.
        """
        wanted = pd.Index([str(g) for g in genes], dtype=object)
        check_unique_genes(wanted, what="requested genes")
        positions = self.var_names.get_indexer(wanted)
        if (positions < 0).any():
            unknown = wanted[positions < 0]
            raise KeyError(
                f"{len(unknown)} requested gene(s) are not in the network, e.g. {examples(unknown)}"
            )
        return self[:, positions]

    def edges(
        self,
        min_weight: float | None = None,
        top_k: int | None = None,
        per_regulator_top_k: int | None = None,
    ) -> pd.DataFrame:
        """Tidy edge table ``regulator, target, weight``, sorted by decreasing weight.

        ``min_weight`` keeps ``weight >= min_weight``; ``per_regulator_top_k`` keeps each
        regulator's strongest outgoing edges; ``top_k`` keeps the strongest edges overall.
        ``regulator``/``target`` are categoricals over the gene names.
        """
        return matrix_to_edges(
            self.grn,
            self.var_names,
            min_weight=min_weight,
            top_k=top_k,
            per_regulator_top_k=per_regulator_top_k,
        )

    # ----------------------------------------------------------------- metadata
    def set_metadata(
        self,
        method: str,
        parameters: Mapping[str, Any] | None = None,
        organism: str | None = None,
        **extra: Any,
    ) -> None:
        """Record how the network was made in ``uns["grn"]`` (existing keys not named here stay).

        Fills ``method``, ``parameters`` (stored as a JSON string so that it round-trips exactly
        through zarr and h5ad; read it back with :attr:`grn_metadata`), ``organism``,
        ``orientation`` (``"regulators x targets"``), ``created`` (UTC ISO time) and
        ``versions`` (package versions). ``extra`` keys must be strings or numbers.
        """
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, got {method!r}")
        try:
            parameters_json = json.dumps(dict(parameters or {}), sort_keys=True)
        except TypeError as err:
            raise ValueError(f"parameters must be JSON-serialisable: {err}") from None
        meta: dict[str, Any] = dict(self.uns.get("grn", {}))
        meta.update(
            {
                "method": method,
                "parameters": parameters_json,
                "orientation": ORIENTATION,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "versions": _package_versions(),
            }
        )
        if organism is not None:
            meta["organism"] = str(organism)
        for key, value in extra.items():
            if not isinstance(value, str | int | float | bool | np.number):
                raise ValueError(
                    f"metadata {key}={value!r} has type {type(value).__name__}; extra metadata "
                    "values must be strings or numbers (put structures in parameters)"
                )
            meta[key] = value
        self.uns["grn"] = meta

    @property
    def grn_metadata(self) -> dict[str, Any]:
        """``uns["grn"]`` as a plain dict with ``parameters`` decoded from JSON."""
        meta = dict(self.uns.get("grn", {}))
        if isinstance(meta.get("parameters"), str):
            meta["parameters"] = json.loads(meta["parameters"])
        return meta

    # ----------------------------------------------------------------- anndata overrides
    def __getitem__(self, index: Any) -> GRNAnnData:
        """Slice cells and/or genes; returns an independent :class:`GRNAnnData` (a copy).

        The network follows the gene slice (sub-network over the kept genes, in that order);
        slicing cells only keeps the whole network.
        """
        view = super().__getitem__(index)
        return GRNAnnData.from_adata(view.copy())

    def copy(self, filename: str | os.PathLike | None = None) -> GRNAnnData:
        """A deep copy, still a :class:`GRNAnnData`."""
        if filename is not None:
            raise ValueError("GRNAnnData.copy does not support backed copies (filename=...)")
        return GRNAnnData.from_adata(super().copy())

    def write_zarr(  # type: ignore[override]
        self,
        store: str | os.PathLike,
        *,
        chunk_size: int | None = None,
        index_chunk_size: int | None = None,
        zarr_format: int | None = None,
        overwrite: bool = False,
    ) -> None:
        """Write atomically to a zarr store; see :func:`grnndata.io.write_zarr`."""
        from .io import write_zarr

        write_zarr(
            self,
            store,
            chunk_size=chunk_size,
            index_chunk_size=index_chunk_size,
            zarr_format=zarr_format,
            overwrite=overwrite,
        )

    def write_h5ad(  # type: ignore[override]
        self,
        filename: str | os.PathLike,
        *,
        compression: str | None = "gzip",
        overwrite: bool = False,
        **kwargs: Any,
    ) -> None:
        """Write atomically to an h5ad file; see :func:`grnndata.io.write_h5ad`."""
        from .io import write_h5ad

        write_h5ad(self, filename, compression=compression, overwrite=overwrite, **kwargs)

    def _write_h5ad_plain(self, filename: str | os.PathLike, **kwargs: Any) -> None:
        super().write_h5ad(filename, **kwargs)

    def __repr__(self) -> str:
        base = super().__repr__().replace("AnnData object", "GRNAnnData object", 1)
        value = self.varp[GRN_KEY]
        if self.is_stack:
            return base + f"\n    network: stack of {value.shape[2]} (regulators x targets)"
        return base + f"\n    network: {value.nnz} edges (regulators x targets)"


def _sorted_series(
    positions: np.ndarray, weights: np.ndarray, genes: pd.Index, name: str
) -> pd.Series:
    order = np.lexsort((positions, -weights.astype(np.float64)))
    return pd.Series(
        weights[order].astype(np.float32, copy=False),
        index=pd.Index(np.asarray(genes)[positions[order]], dtype=object),
        name=name,
    )


def from_edges(
    genes_or_adata: anndata.AnnData | Sequence[str] | pd.Index,
    df: pd.DataFrame,
    source: str = "regulator",
    target: str = "target",
    weight: str | None = None,
    *,
    strict: bool = False,
    duplicates: Duplicates = "max",
) -> GRNAnnData:
    """Build a :class:`GRNAnnData` from a long-form edge table, fully vectorised.

    Parameters
    ----------
    genes_or_adata
        The network's genes: a list of names (network without expression) or an AnnData whose
        ``var_names`` give the genes and whose expression and metadata are kept (shared, not
        copied, as in :meth:`GRNAnnData.from_adata`).
    df
        One row per edge; ``source`` names the regulator (row), ``target`` the target (column).
    weight
        Column of edge weights; ``None`` gives every edge weight 1.
    strict
        Raise ``ValueError`` if any edge names a gene outside the network; by default such edges
        are dropped and reported (count and examples, logged as a warning and recorded in
        ``uns["grn"]["n_edges_unknown_genes"]``).
    duplicates
        Rule for repeated (regulator, target) pairs: ``"max"`` (default, the largest signed
        weight), ``"min"``, ``"sum"``, ``"mean"``, ``"first"``/``"last"`` (input order) or
        ``"error"``.

    Returns
    -------
    :class:`GRNAnnData` whose ``grn`` is ``(n_genes, n_genes)`` CSR float32, rows = regulators,
    columns = targets. Edges with weight exactly 0 are not stored.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame of edges, got {type(df).__name__}")
    missing = [c for c in (source, target, weight) if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"edge table has no column(s) {missing}; its columns are {list(df.columns)}")
    if isinstance(genes_or_adata, anndata.AnnData):
        genes = pd.Index(genes_or_adata.var_names)
    else:
        genes = pd.Index([str(g) for g in _iter_genes(genes_or_adata)], dtype=object)
    check_unique_genes(genes)
    mapping = edges_to_matrix(
        genes,
        df[source],
        df[target],
        None if weight is None else df[weight].to_numpy(),
        duplicates=duplicates,
        strict=strict,
    )
    if isinstance(genes_or_adata, anndata.AnnData):
        out = GRNAnnData.from_adata(genes_or_adata, grn=mapping.matrix)
    else:
        out = GRNAnnData.from_matrix(mapping.matrix, list(genes))
    meta = dict(out.uns.get("grn", {}))
    meta.update(
        {
            "orientation": ORIENTATION,
            "n_edges_input": mapping.n_input,
            "n_edges_unknown_genes": mapping.n_unknown,
            "n_edges_duplicated": mapping.n_duplicates,
            "duplicates_rule": duplicates,
        }
    )
    out.uns["grn"] = meta
    return out


def _iter_genes(genes: Iterable[str] | pd.Index) -> Iterable[str]:
    if isinstance(genes, str):
        raise TypeError(f"genes must be a sequence of names, not a single string {genes!r}")
    return genes
