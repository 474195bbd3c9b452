"""Integrity of zarr stores: every chunk checked when it is read, and a replaced store noticed.

zarr reads a missing chunk as the array's fill value (zeros) without any error, and a damaged
chunk decodes to wrong values whenever its compressor does not notice. grnndata therefore
records, at write time, a *manifest* of every array in the store and a random *write id* in the
root attributes under ``"grnndata"`` (format 2)::

    {"format": 2, "write_id": "<hex>",
     "arrays": {"varp/GRN/data": [n_objects, n_bytes, crc32]},      # per array
     "checksummed_chunks": ["varp/GRN/data", ...]}                 # chunks carrying a CRC-32C

and, in the attributes of each array, the CRC-32 of each of its chunk objects by key
(``"grnndata_objects": {"c/0": crc32}``: stored with the array, so a store's root stays small
however many chunks its expression has). A *chunk object* is a stored object of an array: a
chunk, or in a sharded zarr v3 array a shard holding many chunks. The CRC-32 of an object is
``zlib.crc32(data, zlib.crc32(name))`` with ``name`` the last part of its key (``"0"`` for
``"c/0"``); an array's ``crc32`` is the CRC-32 of its objects' CRC-32s (4 bytes little-endian
each, in key order), which also guards the table in the array's attributes. Format 1 (stores
written before per-object checksums) has ``"arrays"`` only, with ``crc32`` chaining the
objects' bytes in key order the same way as one object's.

Readers use it in two ways:

- :func:`verify_manifest` compares the stored objects with the manifest: their number and sizes
  (one listing, no data read) or also their checksums (reads everything; ``grnndata verify``);
- :class:`grnndata._verified_store.VerifiedStore` wraps the store a reader reads through and
  checks every object a read
  fetches whole against its CRC-32 before zarr decodes it (a missing object that was written
  raises instead of reading as zeros). Partial reads of a shard fetch single chunks; in arrays
  listed in ``"checksummed_chunks"`` each chunk ends with a CRC-32C (zarr's ``crc32c`` codec)
  that zarr checks when it decodes the chunk, and the shard's index has its own CRC-32C. A
  partial read of any other object (format 1 shards) fetches the object whole once, checks it,
  and serves the range from it.

Stores written by plain anndata have no manifest: their sparse groups are checked for
self-consistency instead (:func:`check_sparse_groups`: no missing chunk in ``indices``/``data``,
``indptr`` starting at 0, non-decreasing and ending at the number of stored values, indices
within range). Their dense arrays cannot be checked (zarr does not store all-zero chunks, so a
missing chunk and a chunk of zeros look the same), nor can damaged chunks be told from intact
ones.

A lazy reader keeps :func:`store_token` from when it opened the store and compares it after every
query; a store replaced since (new write id, or a new directory at the path) raises.
"""

from __future__ import annotations

import asyncio
import os
import struct
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import zarr

ATTRS_KEY = "grnndata"
OBJECTS_KEY = "grnndata_objects"
MANIFEST_FORMAT = 2
_METADATA_NAMES = (".zarray", ".zattrs", ".zgroup", "zarr.json", ".zmetadata")
_ZARR3 = int(zarr.__version__.split(".")[0]) >= 3

__all__ = [
    "ATTRS_KEY",
    "MANIFEST_FORMAT",
    "check_sparse_groups",
    "checked_table",
    "manifest",
    "new_write_id",
    "object_crc",
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


def _unwrap(store: Any) -> Any:
    """The store a checking wrapper (:class:`grnndata._verified_store.VerifiedStore`) reads
    from: listings and whole-store checks need no second check."""
    while True:
        inner = getattr(store, "_mutable_mapping", None)  # zarr 2 wraps ours in a KVStore
        if getattr(inner, "checks_reads", False):
            store = inner
        if not getattr(store, "checks_reads", False):
            return store
        store = store._store


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
    store = _unwrap(store)
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
    store = _unwrap(store)
    keys = _chunk_keys(store, prefix)
    return list(zip(keys, _sizes(store, keys)))


def _read_all(store: Any, keys: list[str]) -> Iterable[bytes]:
    folder = _plain_directory(store)
    if folder is None:
        yield from _contents(_unwrap(store), keys)
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


def object_crc(key: str, data: Any) -> int:
    """CRC-32 of one chunk object: its bytes, seeded with the last part of its key."""
    return zlib.crc32(data, zlib.crc32(key.rsplit("/", 1)[-1].encode()))


def _chunks_carry_checksums(array: Any) -> bool:
    """Whether every chunk of ``array`` ends with a CRC-32C that zarr checks when decoding it
    (a ``crc32c`` codec inside the sharding codec, or in the array's own codecs)."""
    if not _ZARR3:
        return False
    from zarr.codecs import Crc32cCodec, ShardingCodec

    codecs = list(getattr(array.metadata, "codecs", ()) or ())
    for codec in codecs:
        if isinstance(codec, ShardingCodec):
            codecs.extend(codec.codecs)
    return any(isinstance(codec, Crc32cCodec) for codec in codecs)


# --------------------------------------------------------------------------- manifest
def record_manifest(root: Any, write_id: str) -> None:
    """Record the manifest of every array below the (complete, not yet published) ``root``."""
    store, base = _store_and_prefix(root)
    arrays: dict[str, list[int]] = {}
    checksummed = []
    for name, array in list(_arrays(root)):
        prefix = f"{base}{name}/"
        listing = _listing(store, prefix)
        keys = [key for key, _ in listing]
        objects = {
            key[len(prefix) :]: object_crc(key, data)
            for key, data in zip(keys, _read_all(store, keys))
        }
        arrays[name] = [len(keys), sum(size for _, size in listing), _table_crc(objects)]
        array.attrs.update({OBJECTS_KEY: objects})
        if _chunks_carry_checksums(array):
            checksummed.append(name)
    # a fresh handle: ``root`` may hold attributes cached before the writers added theirs
    fresh = zarr.open_group(store=store, path=root.path, mode="r+")
    fresh.attrs.update(
        {
            ATTRS_KEY: {
                "format": MANIFEST_FORMAT,
                "write_id": write_id,
                "arrays": arrays,
                "checksummed_chunks": checksummed,
            }
        }
    )


def _table_crc(objects: dict[str, int]) -> int:
    """The CRC-32 of a table of per-object CRC-32s (4 bytes little-endian each, in key order)."""
    return zlib.crc32(b"".join(struct.pack("<I", objects[key]) for key in sorted(objects)))


def checked_table(
    root: Any, name: str, crc: int, source: str, error: type[Exception]
) -> dict[str, int] | None:
    """The per-object CRC-32s of the array ``name`` (format 2), checked against the manifest's
    ``crc``; ``None`` when the array's attributes hold none."""
    objects = _object_crcs(root, name)
    if objects is not None and _table_crc(objects) != crc:
        raise error(
            f"{source} is corrupted: the checksums recorded with array {name!r} (its "
            f"{OBJECTS_KEY!r} attribute) differ from the store's manifest"
        )
    return objects


def _object_crcs(root: Any, name: str) -> dict[str, int] | None:
    """The per-object CRC-32s recorded in the attributes of the array ``name`` (format 2)."""
    try:
        value = root[name].attrs.get(OBJECTS_KEY)
    except KeyError:
        return None
    return value if isinstance(value, dict) else None


def manifest(root: Any) -> dict[str, Any] | None:
    """The manifest recorded in ``root``'s attributes, or ``None`` (a store without one)."""
    value = root.attrs.get(ATTRS_KEY)
    if not isinstance(value, dict) or "arrays" not in value:
        return None
    return value


def _crc_mismatch(
    store: Any, prefix: str, keys: list[str], objects: dict[str, int] | None, crc: int
) -> str | None:
    """Where the contents of the objects ``keys`` of one array differ from what was written:
    ``""`` (the array's chained CRC-32 differs: format 1), the first object whose own CRC-32
    differs from ``objects`` (format 2), or ``None`` when they match."""
    if objects is not None:
        for key, data in zip(keys, _read_all(store, keys)):
            if objects.get(key[len(prefix) :]) != object_crc(key, data):
                return key[len(prefix) :]
        return None
    chained = 0
    for key, data in zip(keys, _read_all(store, keys)):
        chained = zlib.crc32(data, zlib.crc32(key.rsplit("/", 1)[-1].encode(), chained))
    return None if chained == crc else ""


def verify_manifest(
    root: Any,
    source: str,
    *,
    prefixes: tuple[str, ...] | None = None,
    contents: bool = True,
    error: type[Exception] = ValueError,
    checked: set[str] | None = None,
) -> dict[str, int] | None:
    """Compare the arrays of ``root`` with its manifest; ``None`` when it has none.

    ``prefixes`` limits the check to arrays whose path starts with one of them (the lazy reader
    checks only what it reads). ``contents`` also compares checksums, reading every chunk object
    but those in ``checked`` (store keys a checking wrapper checked already); without it,
    only the number and total size of each array's chunk objects are compared (one listing, no
    data read). Raises ``error`` naming the first array that differs (and the object, for
    format 2). Returns what was compared: numbers of ``arrays``, ``objects`` and ``bytes``.
    """
    recorded = manifest(root)
    if recorded is None:
        return None
    store, base = _store_and_prefix(root)
    per_object = recorded.get("format", 1) >= 2
    totals = {"arrays": 0, "objects": 0, "bytes": 0}
    for name, (n_objects, n_bytes, crc) in sorted(recorded["arrays"].items()):
        if prefixes is not None and not name.startswith(prefixes):
            continue
        prefix = f"{base}{name}/"
        listing = _listing(store, prefix)
        got_objects, got_bytes = len(listing), sum(size for _, size in listing)
        if got_objects != n_objects:
            missing = n_objects - got_objects
            what = (
                f"{missing} of its {n_objects} chunk object(s) are missing (zarr would read them "
                "as zeros)"
                if missing > 0
                else f"it has {got_objects} chunk objects where {n_objects} were written"
            )
            written = _object_crcs(root, name) if per_object else None
            if written is not None:
                present = {key[len(prefix) :] for key, _ in listing}
                absent = sorted(set(written) - present)
                if absent:
                    what += f", e.g. {absent[0]!r}"
            raise error(f"{source} is truncated or corrupted: array {name!r}: {what}")
        if got_bytes != n_bytes:
            raise error(
                f"{source} is corrupted: array {name!r} holds {got_bytes} bytes in its chunks "
                f"(written: {n_bytes})"
            )
        if contents:
            written = checked_table(root, name, crc, source, error) if per_object else None
            if per_object and written is None:
                raise error(
                    f"{source} is corrupted: array {name!r} has lost the checksums recorded "
                    f"with it (its {OBJECTS_KEY!r} attribute)"
                )
            keys = [key for key, _ in listing]
            if written is not None and checked:
                keys = [key for key in keys if key not in checked]
            bad = _crc_mismatch(store, prefix, keys, written, crc)
            if bad is not None:
                where = f" in its chunk object {bad!r}" if bad else ""
                raise error(
                    f"{source} is corrupted: array {name!r} holds {got_bytes} bytes as written, "
                    f"with a different checksum{where}"
                )
        totals["arrays"] += 1
        totals["objects"] += got_objects
        totals["bytes"] += got_bytes
    return totals


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


def _read_whole(array: Any, name: str, source: str, error: type[Exception]) -> Any:
    """All of ``array``; a failure to decode it (e.g. a damaged chunk) raises ``error`` naming
    the array."""
    try:
        return array[:]
    except Exception as err:
        raise error(
            f"{source} is corrupted or truncated: reading array {name!r} failed "
            f"({type(err).__name__}: {err})"
        ) from err


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
    indptr = np.asarray(_read_whole(parts["indptr"], f"{name}/indptr", source, error), np.int64)
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
        indices = np.asarray(_read_whole(parts["indices"], f"{name}/indices", source, error))
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= minor:
            raise error(
                f"{source} is corrupted: {name}/indices holds {low if low < 0 else high}, "
                f"outside 0..{minor - 1}"
            )


def check_sparse_groups(root: Any, source: str, *, error: type[Exception] = ValueError) -> int:
    """:func:`check_sparse_group` for every CSR/CSC group below ``root``; returns their number."""
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
    return len(groups)


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
    store = _unwrap(root.store)
    try:
        if _ZARR3:
            fresh = zarr.open_group(store=store, path=root.path, mode="r", use_consolidated=False)
        else:
            fresh = zarr.open_group(store=store, path=root.path, mode="r")
        value = fresh.attrs.get(ATTRS_KEY)
        if isinstance(value, dict):
            write_id = value.get("write_id")
    except Exception:  # noqa: BLE001 - a vanished store is a changed store
        write_id = "<unreadable>"
    directory = _local_root(store)
    inode = None
    if directory is not None:
        try:
            stat = os.stat(os.path.join(directory, root.path.strip("/")))
            inode = (stat.st_dev, stat.st_ino)
        except OSError:
            inode = "<missing>"
    return (write_id, inode)
