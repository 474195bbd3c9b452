"""Integrity of zarr stores: every chunk accounted for, and a store replaced under a reader noticed.

zarr reads a missing chunk as the array's fill value (zeros) without any error, so a store with a
deleted or lost chunk file reads back as wrong data. grnndata therefore records, at write time, a
*manifest* of every array in the store (its number of stored chunk objects, their total size in
bytes and a CRC-32 of their bytes, keyed by the array's path) and a random *write id*, in the root
attributes under ``"grnndata"``:

``{"format": 1, "write_id": "<hex>", "arrays": {"varp/GRN/data": [n_objects, n_bytes, crc32]}}``

Readers compare the store against it (:func:`verify_manifest`). Stores written by plain anndata
have no manifest: their sparse groups are checked for self-consistency instead
(:func:`check_sparse_groups`: no missing chunk in ``indices``/``data``, ``indptr`` starting at 0,
non-decreasing and ending at the number of stored values, indices within range). Dense arrays of
such stores cannot be checked: zarr does not store all-zero chunks, so a missing chunk and a
chunk of zeros look the same.

A lazy reader keeps :func:`store_token` from when it opened the store and compares it after every
query; a store replaced since (new write id, or a new directory at the path) raises.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import zarr

ATTRS_KEY = "grnndata"
MANIFEST_FORMAT = 1
_METADATA_NAMES = (".zarray", ".zattrs", ".zgroup", "zarr.json", ".zmetadata")
_ZARR3 = int(zarr.__version__.split(".")[0]) >= 3

__all__ = [
    "ATTRS_KEY",
    "check_sparse_groups",
    "new_write_id",
    "record_manifest",
    "store_token",
    "verify_manifest",
]


def new_write_id() -> str:
    """A random id for one write of a store."""
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- store access
def _is_chunk_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] not in _METADATA_NAMES


if _ZARR3:
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    async def _alist(store: Any, prefix: str) -> list[str]:
        return [key async for key in store.list_prefix(prefix)]

    def _chunk_keys(store: Any, prefix: str) -> list[str]:
        return sorted(k for k in sync(_alist(store, prefix)) if _is_chunk_key(k))

    def _sizes(store: Any, keys: list[str]) -> list[int]:
        async def sizes() -> list[int]:
            return list(await asyncio.gather(*(store.getsize(k) for k in keys)))

        return sync(sizes()) if keys else []

    def _contents(store: Any, keys: list[str]) -> list[bytes]:
        prototype = default_buffer_prototype()

        async def contents() -> list[bytes]:
            buffers = await asyncio.gather(*(store.get(k, prototype=prototype) for k in keys))
            return [b"" if b is None else b.to_bytes() for b in buffers]

        return sync(contents()) if keys else []

else:  # zarr 2: stores are mappings of keys to bytes

    def _chunk_keys(store: Any, prefix: str) -> list[str]:
        return sorted(k for k in store.keys() if k.startswith(prefix) and _is_chunk_key(k))

    def _sizes(store: Any, keys: list[str]) -> list[int]:
        getsize = getattr(store, "getsize", None)
        return [int(getsize(k)) if getsize else len(store[k]) for k in keys]

    def _contents(store: Any, keys: list[str]) -> list[bytes]:
        return [bytes(store[k]) for k in keys]


def _plain_directory(store: Any) -> str | None:
    """The folder of a plain local directory store (not a wrapper), else ``None``."""
    if _ZARR3:
        from zarr.storage import LocalStore

        return os.fspath(store.root) if type(store) is LocalStore else None
    return store.path if type(store) is zarr.storage.DirectoryStore else None


def _walk(folder: str, relative: str) -> Iterable[tuple[str, int]]:
    """(key, size) of every file below ``folder``; keys start with ``relative``."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, f"{relative}{entry.name}/")
        elif entry.is_file():
            yield f"{relative}{entry.name}", entry.stat().st_size


def _listing(store: Any, prefix: str) -> list[tuple[str, int]]:
    """Sorted (key, size in bytes) of the chunk objects under ``prefix``; lists, reads nothing."""
    folder = _plain_directory(store)
    if folder is not None:  # fast path: one directory walk, sizes from the same pass
        found = _walk(os.path.join(folder, prefix), prefix)
        return sorted((k, size) for k, size in found if _is_chunk_key(k))
    keys = _chunk_keys(store, prefix)
    return list(zip(keys, _sizes(store, keys)))


def _read_all(store: Any, keys: list[str]) -> Iterable[bytes]:
    folder = _plain_directory(store)
    if folder is None:
        yield from _contents(store, keys)
        return
    for key in keys:
        with open(os.path.join(folder, key), "rb") as handle:
            yield handle.read()


def _store_and_prefix(root: Any) -> tuple[Any, str]:
    path = root.path.strip("/")
    return root.store, f"{path}/" if path else ""


def _arrays(root: Any) -> Iterable[tuple[str, Any]]:
    """(path relative to ``root``, array) for every array below ``root``."""
    if _ZARR3:
        for name, node in root.members(max_depth=None):
            if isinstance(node, zarr.Array):
                yield name, node
        return
    found: list[tuple[str, Any]] = []
    root.visititems(lambda name, node: found.append((name, node)))
    yield from ((n, a) for n, a in found if isinstance(a, zarr.Array))


def _array_digest(store: Any, prefix: str, *, contents: bool) -> tuple[int, int, int | None]:
    listing = _listing(store, prefix)
    keys = [key for key, _ in listing]
    n_bytes = sum(size for _, size in listing)
    crc = None
    if contents:
        crc = 0
        for key, data in zip(keys, _read_all(store, keys)):
            crc = zlib.crc32(key.rsplit("/", 1)[-1].encode(), crc)
            crc = zlib.crc32(data, crc)
    return len(keys), n_bytes, crc


# --------------------------------------------------------------------------- manifest
def record_manifest(root: Any, write_id: str) -> None:
    """Record the manifest of every array below the (complete, not yet published) ``root``."""
    store, base = _store_and_prefix(root)
    arrays = {}
    for name, _array in _arrays(root):
        n_objects, n_bytes, crc = _array_digest(store, f"{base}{name}/", contents=True)
        arrays[name] = [n_objects, n_bytes, crc]
    # a fresh handle: ``root`` may hold attributes cached before the writers added theirs
    fresh = zarr.open_group(store=store, path=root.path, mode="r+")
    fresh.attrs.update(
        {ATTRS_KEY: {"format": MANIFEST_FORMAT, "write_id": write_id, "arrays": arrays}}
    )


def manifest(root: Any) -> dict[str, Any] | None:
    """The manifest recorded in ``root``'s attributes, or ``None`` (a store without one)."""
    value = root.attrs.get(ATTRS_KEY)
    if not isinstance(value, dict) or "arrays" not in value:
        return None
    return value


def verify_manifest(
    root: Any,
    source: str,
    *,
    prefixes: tuple[str, ...] | None = None,
    contents: bool = True,
    error: type[Exception] = ValueError,
) -> bool:
    """Compare the arrays of ``root`` with its manifest; ``False`` when it has none.

    ``prefixes`` limits the check to arrays whose path starts with one of them (the lazy reader
    checks only what it reads). ``contents`` also compares CRC-32s (reads every chunk object);
    without it, only the number and total size of each array's chunk objects are compared
    (one listing, no data read). Raises ``error`` naming the first array that differs.
    """
    recorded = manifest(root)
    if recorded is None:
        return False
    store, base = _store_and_prefix(root)
    for name, (n_objects, n_bytes, crc) in sorted(recorded["arrays"].items()):
        if prefixes is not None and not name.startswith(prefixes):
            continue
        got_objects, got_bytes, got_crc = _array_digest(store, f"{base}{name}/", contents=contents)
        if got_objects != n_objects:
            missing = n_objects - got_objects
            what = (
                f"{missing} of its {n_objects} chunk object(s) are missing (zarr would read them "
                "as zeros)"
                if missing > 0
                else f"it has {got_objects} chunk objects where {n_objects} were written"
            )
            raise error(f"{source} is truncated or corrupted: array {name!r}: {what}")
        if got_bytes != n_bytes or (contents and got_crc != crc):
            raise error(
                f"{source} is corrupted: array {name!r} holds {got_bytes} bytes in its chunks "
                f"(written: {n_bytes})"
                + ("" if got_bytes != n_bytes else ", with a different checksum")
            )
    return True


# --------------------------------------------------------------------------- plain anndata stores
def _missing_chunks(array: Any) -> list[int]:
    """Indices of the chunks of the 1-D ``array`` that have no stored object."""
    store, base = _store_and_prefix(array)
    stored = {key for key, _ in _listing(store, base)}
    encode = array.metadata.encode_chunk_key if _ZARR3 else None
    missing = []
    n_chunks = -(-array.shape[0] // array.chunks[0]) if array.shape[0] else 0
    shards = getattr(array, "shards", None) if _ZARR3 else None
    step = shards[0] // array.chunks[0] if shards else 1
    for chunk in range(0, n_chunks, step):
        if _ZARR3:
            key = encode((chunk // step,))
        else:
            key = str(chunk)
        if f"{base}{key}" not in stored:
            missing.extend(range(chunk, min(chunk + step, n_chunks)))
    return missing


def check_sparse_group(
    group: Any, name: str, source: str, *, error: type[Exception], read_indices: bool = True
) -> None:
    """Raise ``error`` unless the CSR/CSC ``group`` (written without a manifest) is consistent.

    Checks that no chunk of ``indices``/``data`` is missing, that ``indptr`` has no missing
    chunk (other than leading all-zero ones, which zarr does not store), starts at 0, never
    decreases and ends at the number of stored values, and, with ``read_indices`` (reads the
    whole ``indices`` array), that every index is within the matrix.
    """
    encoding = dict(group.attrs).get("encoding-type")
    shape = tuple(int(s) for s in group.attrs["shape"])
    minor = shape[1] if encoding == "csr_matrix" else shape[0]
    parts = {part: group[part] for part in ("indptr", "indices", "data") if part in group}
    if len(parts) < 3:
        absent = sorted({"indptr", "indices", "data"} - set(parts))
        raise error(f"{source} is truncated: sparse matrix {name!r} lacks {absent}")
    for part in ("indices", "data"):
        missing = _missing_chunks(parts[part])
        if missing:
            raise error(
                f"{source} is truncated: {len(missing)} chunk(s) of {name}/{part} are missing "
                f"(e.g. chunk {missing[0]}); zarr would read them as zeros"
            )
    indptr = np.asarray(parts["indptr"][:], dtype=np.int64)
    missing = _missing_chunks(parts["indptr"])
    if missing:
        # zarr does not store an all-zero chunk: a missing chunk is legitimate only if every
        # value up to the next stored one is 0 (leading empty rows)
        after = (missing[-1] + 1) * parts["indptr"].chunks[0]
        if any(b != a + 1 for a, b in zip(missing, missing[1:])) or missing[0] != 0:
            legit = False
        else:
            legit = after >= indptr.size or indptr[after] == 0
        if not legit:
            raise error(
                f"{source} is truncated: {len(missing)} chunk(s) of {name}/indptr are missing "
                f"(e.g. chunk {missing[0]}); zarr would read them as zeros"
            )
    n_stored = parts["data"].shape[0]
    if (
        indptr.size == 0
        or indptr[0] != 0
        or indptr[-1] != n_stored
        or parts["indices"].shape[0] != n_stored
        or (np.diff(indptr) < 0).any()
    ):
        raise error(
            f"{source} is corrupted: sparse matrix {name!r} is inconsistent (indptr must start "
            f"at 0, never decrease and end at the {n_stored} stored values; it starts at "
            f"{int(indptr[0]) if indptr.size else None} and ends at "
            f"{int(indptr[-1]) if indptr.size else None})"
        )
    if read_indices and n_stored:
        indices = np.asarray(parts["indices"][:])
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= minor:
            raise error(
                f"{source} is corrupted: {name}/indices holds {low if low < 0 else high}, "
                f"outside 0..{minor - 1}"
            )


def check_sparse_groups(root: Any, source: str, *, error: type[Exception] = ValueError) -> None:
    """:func:`check_sparse_group` for every CSR/CSC group below ``root``."""
    groups = []
    if _ZARR3:
        members = root.members(max_depth=None)
    else:
        members = []
        root.visititems(lambda name, node: members.append((name, node)))
    for name, node in members:
        if isinstance(node, zarr.Group) and dict(node.attrs).get("encoding-type") in (
            "csr_matrix",
            "csc_matrix",
        ):
            groups.append((name, node))
    for name, node in groups:
        check_sparse_group(node, name, source, error=error)


# --------------------------------------------------------------------------- replacement
def _local_root(store: Any) -> str | None:
    """The directory of a local store (looking through wrapper stores), else ``None``."""
    for _ in range(4):
        root = getattr(store, "root", None) or getattr(store, "path", None)
        if isinstance(root, str | os.PathLike) and os.path.isdir(root):
            return os.fspath(root)
        store = getattr(store, "_store", None)
        if store is None:
            return None
    return None


def store_token(root: Any) -> tuple[Any, ...]:
    """What identifies one version of a store: its write id and, if local, its directory's inode.

    Re-reads the root metadata from the store (no cache), so a replaced store gives a new token.
    """
    write_id = None
    try:
        if _ZARR3:
            fresh = zarr.open_group(
                store=root.store, path=root.path, mode="r", use_consolidated=False
            )
        else:
            fresh = zarr.open_group(store=root.store, path=root.path, mode="r")
        value = fresh.attrs.get(ATTRS_KEY)
        if isinstance(value, dict):
            write_id = value.get("write_id")
    except Exception:  # noqa: BLE001 - a vanished store is a changed store
        write_id = "<unreadable>"
    directory = _local_root(root.store)
    inode = None
    if directory is not None:
        try:
            stat = os.stat(os.path.join(directory, root.path.strip("/")))
            inode = (stat.st_dev, stat.st_ino)
        except OSError:
            inode = "<missing>"
    return (write_id, inode)
