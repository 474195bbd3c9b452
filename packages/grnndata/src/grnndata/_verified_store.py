"""Checked reads of a zarr store: every chunk object a read fetches is compared with the
checksums recorded at write time (see :mod:`grnndata._integrity` for the manifest).

:func:`verified_root` reopens a store's root group through a :class:`VerifiedStore`, a
read-through store that checks each object zarr fetches whole against its CRC-32 before zarr
decodes it, raises when an object that was written is missing (zarr would read it as zeros),
and lets partial reads of a shard through when the shard's chunks carry their own CRC-32C
(which zarr checks as it decodes each chunk); any other partial read fetches the object whole
once, checks it, and serves the range from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import zarr

from ._integrity import (
    _ZARR3,
    _is_chunk_key,
    _store_and_prefix,
    checked_table,
    manifest,
    object_crc,
)

if _ZARR3:
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.storage import WrapperStore

__all__ = ["ChunkChecks", "VerifiedStore", "chunk_checks", "verified_root"]


@dataclass
class _ArrayCheck:
    """What is known of one array's chunk objects: their CRC-32s by key (relative to the
    array; format 2), or the one object's CRC-32 of a format 1 array with a single object."""

    objects: dict[str, int] | None
    single: int | None
    checksummed_chunks: bool


@dataclass
class ChunkChecks:
    """The per-object checks of one store version, shared by the :class:`VerifiedStore` that
    uses them; ``checked`` collects the keys verified so far (whole objects)."""

    source: str
    base: str
    arrays: dict[str, _ArrayCheck]
    error: type[Exception]
    checked: set[str] = field(default_factory=set)

    def unchecked_arrays(self) -> list[str]:
        """Arrays whose objects cannot be checked one by one (format 1, several objects)."""
        return sorted(
            name
            for name, check in self.arrays.items()
            if check.objects is None and check.single is None
        )

    def locate(self, key: str) -> tuple[str, str, _ArrayCheck] | None:
        """(array, key within the array, its check) of the chunk object ``key``, or ``None``
        for metadata and objects of arrays the manifest does not list."""
        if not key.startswith(self.base) or not _is_chunk_key(key):
            return None
        relative = key[len(self.base) :]
        parent = relative
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            check = self.arrays.get(parent)
            if check is not None:
                return parent, relative[len(parent) + 1 :], check
        return None

    def expect(self, key: str, data: Any) -> None:
        """Raise ``error`` unless ``data`` is what was written as the object ``key``."""
        found = self.locate(key)
        if found is None:
            return
        array, within, check = found
        if check.objects is not None:
            expected = check.objects.get(within)
            if expected is None:
                raise self.error(
                    f"{self.source} is corrupted: array {array!r} holds a chunk object "
                    f"{within!r} that was not written with it"
                )
        else:
            expected = check.single
        if expected is None:
            return
        got = object_crc(key, data)
        if got != expected:
            raise self.error(
                f"{self.source} is corrupted: array {array!r}, chunk object {within!r} fails "
                f"its checksum (CRC-32 {got:08x}, written {expected:08x}); the store is damaged "
                "(restore it from a copy or write it again)"
            )
        self.checked.add(key)

    def absent(self, key: str) -> None:
        """Raise ``error`` if the object ``key``, which the store does not hold, was written."""
        found = self.locate(key)
        if found is None:
            return
        array, within, check = found
        if check.objects is not None and within in check.objects:
            raise self.error(
                f"{self.source} is truncated or corrupted: array {array!r}: its chunk object "
                f"{within!r} is missing (zarr would read it as zeros)"
            )

    def passes_through(self, key: str) -> bool:
        """Whether a partial read of ``key`` needs no whole-object check: the object was
        checked already, or its chunks carry their own CRC-32C that zarr checks."""
        if key in self.checked:
            return True
        found = self.locate(key)
        return found is None or found[2].checksummed_chunks


def chunk_checks(
    root: Any, source: str, *, error: type[Exception], prefixes: tuple[str, ...] | None = None
) -> ChunkChecks | None:
    """The per-object checks of the store ``root`` from its manifest (``None`` without one),
    for the arrays whose path starts with one of ``prefixes`` (default: all); objects of other
    arrays are not checked."""
    recorded = manifest(root)
    if recorded is None:
        return None
    checksummed = set(recorded.get("checksummed_chunks") or ())
    arrays = {}
    for name, (n_objects, _n_bytes, crc) in recorded["arrays"].items():
        if prefixes is not None and not name.startswith(prefixes):
            continue
        version = recorded.get("format", 1)
        objects = checked_table(root, name, crc, source, error) if version >= 2 else None
        arrays[name] = _ArrayCheck(
            objects=objects,
            single=crc if version < 2 and n_objects == 1 else None,
            checksummed_chunks=name in checksummed,
        )
    _, base = _store_and_prefix(root)
    return ChunkChecks(source=source, base=base, arrays=arrays, error=error)


def _byte_slice(size: int, byte_range: Any) -> slice:
    """The part of an object of ``size`` bytes that a zarr ``ByteRequest`` asks for."""
    if isinstance(byte_range, RangeByteRequest):
        return slice(byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return slice(byte_range.offset, size)
    if isinstance(byte_range, SuffixByteRequest):
        return slice(max(0, size - byte_range.suffix), size)
    raise TypeError(f"unsupported byte range request {byte_range!r}")


if _ZARR3:

    class VerifiedStore(WrapperStore):
        """A read-through zarr store that checks each chunk object it returns (see the module
        docstring); anything it cannot check (metadata, unlisted arrays) passes through."""

        checks_reads = True  # marks the wrapper for grnndata._integrity's listings

        def __init__(self, store: Any, checks: ChunkChecks) -> None:
            super().__init__(store)
            self.checks = checks

        def _with_store(self, store: Any) -> VerifiedStore:
            return type(self)(store, self.checks)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if byte_range is not None and self.checks.passes_through(key):
                buffer = await self._store.get(key, prototype, byte_range)
                if buffer is None:
                    self.checks.absent(key)
                return buffer
            whole = await self._store.get(key, prototype)
            if whole is None:
                self.checks.absent(key)
                return None
            self.checks.expect(key, memoryview(whole.as_numpy_array()))
            if byte_range is None:
                return whole
            return whole[_byte_slice(len(whole), byte_range)]

        async def get_partial_values(self, prototype: Any, key_ranges: Iterable[Any]) -> list[Any]:
            return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

        async def getsize(self, key: str) -> int:
            """The wrapped store's size lookup (zarr's default would read the object)."""
            return await self._store.getsize(key)

else:
    from collections.abc import Mapping

    class VerifiedStore(Mapping):  # type: ignore[no-redef]
        """zarr 2: a read-only mapping over a store that checks each chunk object it returns."""

        checks_reads = True

        def __init__(self, store: Any, checks: ChunkChecks) -> None:
            self._store = store
            self.checks = checks

        def __getitem__(self, key: str) -> bytes:
            try:
                value = self._store[key]
            except KeyError:
                self.checks.absent(key)
                raise
            self.checks.expect(key, value)
            return value

        def __contains__(self, key: object) -> bool:
            present = key in self._store
            if not present and isinstance(key, str):  # zarr 2 skips absent chunks: check here
                self.checks.absent(key)
            return present

        def __iter__(self) -> Any:
            return iter(self._store)

        def __len__(self) -> int:
            return len(self._store)

        def listdir(self, path: str = "") -> list[str]:
            return zarr.storage.listdir(self._store, path)

        def getsize(self, key: str) -> int:
            return zarr.storage.getsize(self._store, key)


def verified_root(
    root: Any, source: str, *, error: type[Exception], prefixes: tuple[str, ...] | None = None
) -> tuple[Any, ChunkChecks | None]:
    """``root`` reopened through a :class:`VerifiedStore` and its checks (of the arrays under
    ``prefixes``, default all); ``root`` itself and ``None`` for a store without a manifest."""
    checks = chunk_checks(root, source, error=error, prefixes=prefixes)
    if checks is None:
        return root, None
    store: Any = VerifiedStore(root.store, checks)
    if not _ZARR3:  # zarr 2 takes a plain mapping through its KVStore
        store = zarr.storage.KVStore(store)
    return zarr.open_group(store=store, path=root.path, mode="r"), checks
