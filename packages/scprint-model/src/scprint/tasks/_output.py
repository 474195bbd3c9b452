"""Output of the tasks: storing results in the AnnData (the one convention of every task),
provenance, and writing AnnData files atomically."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anndata as ad

from grnndata import atomic
from scprint.checkpoints import Pretrained
from scprint.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["output_kind", "provenance", "store_result", "write_anndata"]


def provenance(pretrained: Pretrained, **parameters: Any) -> dict[str, Any]:
    """What produced an output, for ``uns``: checkpoint path, model version, numerical precision
    (:func:`scprint.tasks._model.precision_record`) and the parameters.

    ``None`` values are left out (they cannot be stored in ``.h5ad``/``.zarr``).
    """
    from scprint.tasks._model import precision_record

    path = getattr(pretrained, "path", None)
    record: dict[str, Any] = {
        "checkpoint": None if path is None else str(path),
        "model_version": None
        if getattr(pretrained, "version", None) is None
        else str(pretrained.version),
        "precision": precision_record(pretrained),
        **parameters,
    }
    return {key: value for key, value in record.items() if value is not None}


def write_anndata(adata: ad.AnnData, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` atomically to ``path`` (``.h5ad`` file or ``.zarr`` folder).

    A ``GRNAnnData`` is written by grnndata (:func:`grnndata.write_zarr` /
    :func:`grnndata.write_h5ad`: the network with its column index), any other AnnData by
    anndata inside :func:`grnndata.atomic.atomic_path`.

    The data go to a temporary sibling first and are swapped into place
    (:func:`grnndata.atomic.atomic_path`), so a reader never sees a half-written output and an
    existing output is only replaced once the new one is complete. An ``.h5ad`` is built in
    memory and written in one piece (:func:`grnndata.io.h5ad.write_anndata_h5ad`), so a full
    disk is a one-line ``OSError`` and never a crash of HDF5. An existing path that is not
    an output of the same kind (an HDF5 file for ``.h5ad``, a zarr store for ``.zarr``, e.g. a
    folder of the user's files) is refused (:class:`grnndata.atomic.OutputExistsError`) unless
    ``overwrite``.
    """
    from grnndata import GRNAnnData
    from grnndata.io.h5ad import write_anndata_h5ad

    path = Path(path)
    kind = output_kind(path)
    if isinstance(adata, GRNAnnData):  # grnndata's writers: atomic, with the network's index
        if kind == "h5ad":
            adata.write_h5ad(path, overwrite=overwrite)
        else:
            adata.write_zarr(path, overwrite=overwrite)
        return path
    with atomic.atomic_path(path, kind, overwrite=overwrite) as tmp:
        if kind == "h5ad":  # built in memory, written in one piece: a full disk is an OSError
            write_anndata_h5ad(adata, tmp)
        else:
            adata.write_zarr(tmp)
    log.info("wrote %s", path)
    return path


def output_kind(path: str | os.PathLike) -> str:
    """The :mod:`grnndata.atomic` kind of an AnnData output path: ``"h5ad"`` or ``"zarr"``."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".h5ad", ".zarr"):
        raise InputError(f"output must end in .h5ad or .zarr, got {str(path)!r}")
    return suffix[1:]


def store_result(
    adata: ad.AnnData,
    write: Mapping[str, Mapping[str, Any]],
    settings: dict[str, Any],
    key_added: str,
    *,
    copy: bool,
) -> ad.AnnData | None:
    """Store a task's results in ``adata`` (or a copy): the one convention of every task.

    ``write`` maps an AnnData slot (``"obsm"``, ``"obs"``, ``"layers"``, ``"var"``, ``"varm"``,
    ``"varp"``) to ``{key: value}``; ``settings`` (provenance, parameters, metrics) go to
    ``uns[key_added]``. With ``copy=False`` ``adata`` is changed in place and ``None`` returned;
    with ``copy=True`` ``adata`` is left untouched and the changed copy returned.
    """
    if not isinstance(key_added, str) or not key_added:
        raise InputError(f"key_added must be a non-empty string, e.g. 'scprint'; got {key_added!r}")
    target = adata.copy() if copy else adata
    for slot, values in write.items():
        mapping = getattr(target, slot)
        for key, value in values.items():
            mapping[key] = value
    target.uns[key_added] = settings
    return target if copy else None
