"""Atomic, non-destructive writes of files and directory stores: the one helper every package uses.

Promise (what zarr, anndata and SQLite users expect): nothing the user did not ask us to replace
is deleted, and a reader never sees a half-written output.

- **Never destroy what we did not write.** An existing path is replaced only when it already
  holds an output of the kind being written (see :data:`KINDS`: a zarr store for ``"zarr"``, an
  HDF5 file for ``"h5ad"``, a JSON document for ``"json"``, ...) or when ``overwrite=True``.
  Anything else raises :class:`OutputExistsError`. :func:`check_output_path` makes the same
  decision without writing, so a command can fail before hours of compute, not after.
- **Write beside, then swap.** The new output is written to a temporary sibling
  ``.<name>.tmp-<writer>`` in the same directory, then swapped in: ``os.replace`` for a file;
  for a directory, Linux ``renameat2(RENAME_EXCHANGE)`` exchanges both names in one step, so
  at every instant the path holds either the complete old or the complete new version.
- **Fallback** (no ``renameat2``: other kernels / file systems): the old directory is first
  renamed to ``.<name>.bak-<writer>``, then the new one into place. A writer killed between
  the two renames leaves the path missing and the old version in the backup;
  :func:`recover` (called by every write and by grnndata's readers) puts the backup back.
- **On any failure the old version stays in place**; the temporary is removed. A writer killed
  outright (SIGKILL, a crash) leaves its temporary behind: the next write
  to the same path removes temporaries whose writer process is gone.

Temporaries are named ``.<name>.<tmp|bak>-<host>-<pid>-<start>-<random><ext>``: ``ext`` repeats
the last suffixes of ``name`` (``.csv.gz``: writers that infer the format from the name see
it), ``host`` is a short hash of the host name, ``pid``/``start`` the writing process and its
start time (Linux ``/proc``; 0 elsewhere), so a live writer's temporary is never taken for a
stale one, even after process-id reuse. Temporaries of writers on another host (or on Windows, where a
process cannot be probed safely) are left alone for a day.

Use::

    from grnndata.atomic import atomic_path, check_output_path, write_json

    out = check_output_path("result.zarr", "zarr")  # before computing
    ...
    with atomic_path(out, "zarr") as tmp:  # tmp does not exist yet
        adata.write_zarr(tmp)
    write_json({"auprc": 0.3}, "metrics.json")
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "OutputExistsError",
    "atomic_path",
    "check_output_path",
    "is_kind",
    "process_start_time",
    "recover",
    "register_kind",
    "replace_path",
    "write_bytes",
    "write_json",
    "write_text",
]


class OutputExistsError(FileExistsError):
    """The output path holds something other than the kind being written; it is left untouched."""


# --------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """An output kind: whether it is a directory, and how to recognise an existing one."""

    name: str
    directory: bool
    recognise: Callable[[Path], bool]
    description: str


def _head(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _is_zarr(path: Path) -> bool:
    return any((path / marker).is_file() for marker in ("zarr.json", ".zgroup", ".zarray"))


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path: Path) -> bool:
    # the signature sits at offset 0, or 512, 1024, 2048, ... with a user block
    with open(path, "rb") as handle:
        for offset in (0, 512, 1024, 2048, 4096):
            handle.seek(offset)
            if handle.read(8) == _HDF5_SIGNATURE:
                return True
    return False


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _is_text(path: Path) -> bool:
    head = _head(path, 65536)
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:  # a multi-byte character cut at the end of the head
        return err.start >= len(head) - 3
    return True


_COMPRESSED_SIGNATURES = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"PK\x03\x04")


def _is_table(path: Path) -> bool:
    """Text, or a compressed file (gzip, bz2, xz, zstd, zip) as pandas writes ``.csv.gz``."""
    return _is_text(path) or _head(path, 6).startswith(_COMPRESSED_SIGNATURES)


def _is_png(path: Path) -> bool:
    return _head(path, 8) == b"\x89PNG\r\n\x1a\n"


def _is_pdf(path: Path) -> bool:
    return _head(path, 5) == b"%PDF-"


def _is_svg(path: Path) -> bool:
    return _is_text(path) and b"<svg" in _head(path, 65536)


#: The kinds known to :func:`atomic_path` and :func:`check_output_path`, by name. An existing
#: empty file (or empty directory, for directory kinds) counts as every kind: it holds nothing
#: to lose. Add a kind with :func:`register_kind`.
KINDS: dict[str, Kind] = {}


def register_kind(
    name: str, *, directory: bool, recognise: Callable[[Path], bool], description: str
) -> Kind:
    """Add (or redefine) an output kind; ``recognise(path)`` gets an existing file/directory."""
    kind = Kind(name=name, directory=directory, recognise=recognise, description=description)
    KINDS[name] = kind
    return kind


register_kind("zarr", directory=True, recognise=_is_zarr, description="a zarr store")
register_kind("h5ad", directory=False, recognise=_is_hdf5, description="an HDF5 (.h5ad) file")
register_kind("json", directory=False, recognise=_is_json, description="a JSON file")
register_kind("csv", directory=False, recognise=_is_table, description="a text (CSV) file")
register_kind("text", directory=False, recognise=_is_text, description="a text file")
register_kind("png", directory=False, recognise=_is_png, description="a PNG image")
register_kind("pdf", directory=False, recognise=_is_pdf, description="a PDF document")
register_kind("svg", directory=False, recognise=_is_svg, description="an SVG image")


def _kind(kind: str | Kind) -> Kind:
    if isinstance(kind, Kind):
        return kind
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {sorted(KINDS)}") from None


def is_kind(path: str | os.PathLike, kind: str | Kind) -> bool:
    """Whether the existing ``path`` holds an output of ``kind`` (an empty one counts)."""
    spec = _kind(kind)
    path = Path(path)
    try:
        if spec.directory:
            return path.is_dir() and (not any(path.iterdir()) or spec.recognise(path))
        return path.is_file() and (path.stat().st_size == 0 or spec.recognise(path))
    except OSError:
        return False


# --------------------------------------------------------------------------- process identity
_CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in seconds after the system booted; ``None`` when no such
    process runs (it never existed, has exited, or is a zombie waiting to be reaped) or the
    system has no ``/proc`` (Linux only).

    A process id alone does not identify a process: ids are reused. ``(pid, start time)`` does.
    Record it when a process starts, compare later to tell whether that same process still runs::

        started = process_start_time(pid)
        ...
        alive = started is not None and process_start_time(pid) == started

    Reads ``/proc/<pid>/stat``: field 22 (start time in clock ticks since boot) divided by
    ``SC_CLK_TCK``; the state (field 3) tells zombies and dead processes.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19]) / _CLOCK_TICKS


def _start_tag(pid: int) -> int:
    """Start time of process ``pid`` in clock ticks since boot, as temporaries' names record it;
    0 when unknown (see :func:`process_start_time`)."""
    started = process_start_time(pid)
    return 0 if started is None else round(started * _CLOCK_TICKS)


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_STALE_FOREIGN_SECONDS = 86400.0


def _writer_tag() -> str:
    pid = os.getpid()
    return f"{_HOST}-{pid}-{_start_tag(pid)}-{uuid.uuid4().hex[:8]}"


def _extension(path: Path) -> str:
    """The last (up to two) suffixes of ``path`` (``".csv.gz"``), kept by its temporaries so that
    writers which infer the format or compression from the name (pandas, matplotlib) see it."""
    return "".join(path.suffixes[-2:])


def _sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{_writer_tag()}{_extension(path)}"


_SIBLING = re.compile(
    r"\.(?P<tag>tmp|bak)-(?:(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<start>\d+)-)?[0-9a-f]+$"
)


def _writer_alive(host: str | None, pid: str | None, start: str | None, mtime: float) -> bool:
    if host is None:  # an earlier writer's ``.tmp-<hex>`` without identity: assume it is gone
        return time.time() - mtime < 60.0
    if host != _HOST:
        return time.time() - mtime < _STALE_FOREIGN_SECONDS
    pid_int = int(pid)
    if pid_int == os.getpid():
        return True  # another thread of this process may be writing
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C there: rely on age alone
        return time.time() - mtime < _STALE_FOREIGN_SECONDS
    try:
        os.kill(pid_int, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user: compare start times below
        pass
    started = int(start)
    return started == 0 or _start_tag(pid_int) in (0, started)


def _siblings(path: Path) -> list[tuple[Path, str, bool]]:
    """Temporaries of ``path``: (sibling, "tmp" | "bak", writer alive), newest first."""
    prefix = f".{path.name}."
    extension = _extension(path)
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        rest = entry.name[len(prefix) - 1 :]
        if extension and rest.endswith(extension):
            rest = rest[: -len(extension)]
        match = _SIBLING.fullmatch(rest)
        if match is None:
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        alive = _writer_alive(match["host"], match["pid"], match["start"], mtime)
        found.append((Path(entry.path), match["tag"], alive, mtime))
    found.sort(key=lambda item: -item[3])
    return [(p, tag, alive) for p, tag, alive, _ in found]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def recover(path: str | os.PathLike) -> Path | None:
    """Repair ``path`` after writers were killed; returns the backup restored, if any.

    If ``path`` is missing and a writer that died between the two renames of the fallback swap
    left the old version in ``.<name>.bak-*``, that backup is renamed back to ``path``. Then
    temporaries (``.tmp-*``, ``.bak-*``) of writers that no longer run are removed. A live
    writer's temporaries are left alone; while one is mid-swap the path is given up to a second
    to reappear. Errors (e.g. a read-only folder) are logged, not raised.
    """
    path = Path(path)
    restored = None
    for attempt in range(21):
        siblings = _siblings(path)
        if os.path.lexists(path) or not any(tag == "bak" for _, tag, _ in siblings):
            break
        dead_backups = [p for p, tag, alive in siblings if tag == "bak" and not alive]
        if dead_backups:
            try:
                os.rename(dead_backups[0], path)
            except OSError as err:
                log.warning("could not restore %s from backup %s: %s", path, dead_backups[0], err)
                return None
            restored = dead_backups[0]
            log.warning(
                "restored %s from %s, left by a writer that was killed mid-swap",
                path,
                restored.name,
            )
            break
        if attempt < 20:  # a live writer is between its two renames
            time.sleep(0.05)
    for sibling, tag, alive in _siblings(path):
        if not alive and (os.path.lexists(path) or tag != "bak"):
            log.info("removing %s, left by a writer that is no longer running", sibling)
            try:
                _remove(sibling)
            except OSError as err:
                log.warning("could not remove %s: %s", sibling, err)
    return restored


# --------------------------------------------------------------------------- checks
def _resolve(path: str | os.PathLike) -> Path:
    """``path`` with a final symlink followed (we write where the link points, like ``cp``)."""
    path = Path(os.path.abspath(os.fspath(path)))
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def check_output_path(
    path: str | os.PathLike, kind: str | Kind, *, overwrite: bool = False
) -> Path:
    """Check, before computing, that an output of ``kind`` can be written to ``path``.

    Returns the absolute path to write to (a final symlink followed). Writes nothing.

    Raises
    ------
    OutputExistsError
        ``path`` exists and is not of ``kind`` (e.g. a folder of the user's files where a zarr
        store is to be written) and ``overwrite`` is false.
    NotADirectoryError
        A parent of ``path`` is a file.
    PermissionError
        The folder that would hold ``path`` cannot be written.
    """
    spec = _kind(kind)
    target = _resolve(path)
    if os.path.lexists(target) and not overwrite and not is_kind(target, spec):
        what = "folder" if target.is_dir() else "file"
        raise OutputExistsError(
            f"{str(target)!r} exists and is a {what} that is not {spec.description}; refusing "
            "to replace it (choose another output path, remove it, or pass overwrite=True)"
        )
    ancestor = target.parent
    while not ancestor.exists():
        if os.path.lexists(ancestor):  # a dangling symlink
            raise NotADirectoryError(f"{str(ancestor)!r} is a broken link; cannot create {target}")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(
            f"cannot write {str(target)!r}: {str(ancestor)!r} is a file, not a folder"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write {str(target)!r}: folder {str(ancestor)!r} is read-only"
        )
    return target


# --------------------------------------------------------------------------- swapping
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: Any = None
_renameat2_usable = True


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step (Linux ``renameat2``); False if unsupported."""
    global _renameat2, _renameat2_usable
    if not _renameat2_usable:
        return False
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            _renameat2 = libc.renameat2
        except (OSError, AttributeError, TypeError):  # no libc / no renameat2 (not Linux)
            _renameat2_usable = False
            return False
        _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        _renameat2.argtypes += [ctypes.c_uint]
        _renameat2.restype = ctypes.c_int
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # this file system cannot exchange; use the backup fallback
    raise OSError(code, f"exchanging {a} and {b} failed: {os.strerror(code)}")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush ``path`` (a file, or every file and folder below a directory) to disk."""
    if path.is_file():
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
        return
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError), open(os.path.join(folder, name), "rb+") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(folder))


def replace_path(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete ``new`` (file or directory) at ``target``; the old version goes away.

    No kind check here (see :func:`atomic_path`). Files: one ``os.replace``. A directory
    (or a file replacing a directory): ``renameat2(RENAME_EXCHANGE)``, else the backup
    fallback described in the module docstring. If this raises, ``target`` is unchanged.
    """
    new, target = Path(new), Path(target)
    if not os.path.lexists(target) or (not new.is_dir() and not target.is_dir()):
        os.replace(new, target)
        _fsync_dir(target.parent)
        return
    if _exchange(new, target):
        _fsync_dir(target.parent)
        _remove(new)  # now holds the old version; if we are killed here, recover() removes it
        return
    backup = _sibling(target, "bak")
    os.rename(target, backup)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(backup, target)
        raise
    _fsync_dir(target.parent)
    _remove(backup)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    kind: str | Kind,
    *,
    overwrite: bool = False,
    durable: bool | None = None,
) -> Iterator[Path]:
    """Write an output of ``kind`` to ``path`` atomically: yields a temporary path to write to.

    The temporary (a sibling of ``path`` that does not exist yet; the caller creates the file or
    directory there) replaces ``path`` when the ``with`` block ends normally; if the block
    raises, the temporary is removed and ``path`` is untouched. Missing parent folders are
    created. Before yielding, :func:`check_output_path` runs and stale temporaries of killed
    writers are cleaned (:func:`recover`).

    Parameters
    ----------
    path
        The output file or directory.
    kind
        A name in :data:`KINDS` (``"zarr"``, ``"h5ad"``, ``"json"``, ``"csv"``, ``"text"``,
        ``"png"``, ``"pdf"``, ``"svg"``) or a :class:`Kind`.
    overwrite
        Replace ``path`` even if it is not of ``kind`` (a user's folder would be deleted).
    durable
        Flush the new data to disk before it replaces the old, so that the swap also survives
        a power loss or OS crash (a killed process never loses data either way). Default
        (``None``): files are flushed, directory stores are not (one flush per chunk file,
        slow for stores of many files).
    """
    spec = _kind(kind)
    target = check_output_path(path, spec, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = _sibling(target, "tmp")
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"nothing was written to the temporary {tmp} for {target}")
        if tmp.is_dir() != spec.directory:
            expected = "a directory" if spec.directory else "a file"
            raise TypeError(f"{spec.description} should be {expected}; the writer made {tmp}")
        # the path may have changed while we computed: check again just before replacing
        check_output_path(target, spec, overwrite=overwrite)
        if durable or (durable is None and not spec.directory):
            _fsync_tree(tmp)
        replace_path(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(
    path: str | os.PathLike, data: bytes, kind: str | Kind, *, overwrite: bool = False
) -> Path:
    """Write ``data`` to the file ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, kind, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return _resolve(path)


def write_text(
    path: str | os.PathLike, text: str, kind: str | Kind = "text", *, overwrite: bool = False
) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; ``kind`` e.g. ``"csv"`` or ``"text"``."""
    return write_bytes(path, text.encode("utf-8"), kind, overwrite=overwrite)


def write_json(
    path: str | os.PathLike,
    payload: Any,
    *,
    overwrite: bool = False,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    allow_nan: bool = True,
) -> Path:
    """Write ``payload`` as a JSON document to ``path`` atomically.

    ``indent``, ``sort_keys``, ``default`` and ``allow_nan`` go to :func:`json.dumps` (with
    ``allow_nan=False`` a NaN or infinity raises ``ValueError`` instead of writing the
    non-standard ``NaN`` token, which Python reads back but strict JSON readers reject).
    """
    text = json.dumps(
        payload, indent=indent, sort_keys=sort_keys, default=default, allow_nan=allow_nan
    )
    return write_bytes(path, (text + "\n").encode("utf-8"), "json", overwrite=overwrite)
