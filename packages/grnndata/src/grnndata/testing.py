"""Measurement helpers for tests and benchmarks: how many bytes does a zarr query read?

:class:`ByteCountingStore` adds up the bytes that reads of a zarr store return (zarr 3: a
wrapper around any store; zarr 2: a directory store), :func:`counting_store` opens one on a
path, and :func:`stored_bytes` is the on-disk size of a store (all its files).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zarr

__all__ = ["ByteCountingStore", "counting_store", "stored_bytes"]

if int(zarr.__version__.split(".")[0]) >= 3:
    from zarr.storage import LocalStore, WrapperStore

    class ByteCountingStore(WrapperStore):
        """A read-through zarr store wrapper; ``bytes_read`` sums the bytes of every read."""

        def __init__(self, store: Any) -> None:
            super().__init__(store)
            self.bytes_read = 0
            self.reads = 0

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            buffer = await self._store.get(key, prototype, byte_range)
            if buffer is not None:
                self.bytes_read += len(buffer)
                self.reads += 1
            return buffer

        async def getsize(self, key: str) -> int:
            """The wrapped store's size lookup (a file's size, not a read: not counted)."""
            return await self._store.getsize(key)

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list[Any]:
            buffers = await self._store.get_partial_values(prototype, key_ranges)
            for buffer in buffers:
                if buffer is not None:
                    self.bytes_read += len(buffer)
                    self.reads += 1
            return buffers

    def counting_store(path: str | os.PathLike) -> ByteCountingStore:
        """A read-only :class:`ByteCountingStore` over the local zarr store at ``path``."""
        return ByteCountingStore(LocalStore(str(path), read_only=True))

else:  # zarr 2: a DirectoryStore that counts what __getitem__ returns

    class ByteCountingStore(zarr.storage.DirectoryStore):  # type: ignore[no-redef]
        """A zarr 2 directory store; ``bytes_read`` sums the bytes of every read."""

        def __init__(self, path: str) -> None:
            super().__init__(path)
            self.bytes_read = 0
            self.reads = 0

        def __getitem__(self, key: str) -> bytes:
            value = super().__getitem__(key)
            self.bytes_read += len(value)
            self.reads += 1
            return value

    def counting_store(path: str | os.PathLike) -> ByteCountingStore:
        """A :class:`ByteCountingStore` over the local zarr store at ``path``."""
        return ByteCountingStore(str(path))


def stored_bytes(path: str | os.PathLike) -> int:
    """Total size in bytes of all files under a zarr store directory (or of one file)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
