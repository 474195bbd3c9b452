"""Process trees: run an external program and stop **every** process it started.

A program can leave its process group (``setsid``, a daemonising double fork), so killing the
group is not enough. On Linux:

* the process that runs methods (the runner's inference process) becomes a *child subreaper*
  (:func:`become_subreaper`, ``prctl(PR_SET_CHILD_SUBREAPER)``): a process it started that is
  orphaned (its parent exited) is re-parented to it instead of to init, so it stays in its
  process tree whatever session or group it moved to;
* :func:`descendants` walks that tree through ``/proc/<pid>/task/<tid>/children``;
* :func:`stop_tree` freezes every process found (SIGSTOP, so none can start another), walks the
  tree again until nothing new appears, then kills them all (SIGKILL) and reaps its own children;
* :class:`Guardian`: a small helper process that does the same for registered processes, and
  removes registered folders, when the process that registered them dies, even by SIGKILL.

What is not stopped: processes handed to another supervisor (``systemd-run``, ``docker run``, a
job scheduler) are not in the tree. Where ``/proc/<pid>/task/<tid>/children`` or ``prctl`` is
missing (other systems, kernels without ``CONFIG_PROC_CHILDREN``), only the program's process
group is killed: a descendant that started its own session survives there. :func:`run_command`
called outside a subreaper (e.g. an ``ExternalCommand`` called directly, not through
``bengrn run``) cannot reach a descendant orphaned before the program ended (it belongs to init).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "GRACE_SECONDS",
    "Guardian",
    "become_subreaper",
    "descendants",
    "guardian",
    "run_command",
    "stop_tree",
]

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_MAX_ROUNDS = 50
_STDERR_TAIL = 4000


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux); ``False`` where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), ``[]`` when unknown or gone."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            out.extend(int(p) for p in (task / "children").read_text().split())
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (children first), Linux ``/proc``."""
    found: list[int] = []
    seen = {pid}
    queue = [pid]
    while queue:
        for child in _children(queue.pop(0)):
            if child not in seen:
                seen.add(child)
                found.append(child)
                queue.append(child)
    return found


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def stop_tree(root: int, *, include_root: bool = True) -> list[int]:
    """Kill every descendant of ``root`` (and ``root`` itself with ``include_root``).

    Processes are frozen (SIGSTOP) as they are found and the tree is walked again until no new
    one appears, so a process forking meanwhile cannot escape; then all get SIGKILL. Children of
    the calling process among them are reaped. Returns the pids signalled.
    """
    frozen: list[int] = []
    for _ in range(_MAX_ROUNDS):
        new = [p for p in descendants(root) if p not in frozen]
        if include_root and root not in frozen:
            new.insert(0, root)
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        frozen.extend(new)
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    mine = set(_children(os.getpid()))
    for pid in frozen:
        if pid in mine:
            _reap(pid)
    return frozen


def _reap(pid: int, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def run_command(argv: list[str], timeout: float | None) -> tuple[int, str]:
    """Run ``argv`` (no shell) in a new session; return ``(exit status, end of its stderr)``.

    The call returns when the program exits (a descendant it left running does not hold it up)
    or raises ``TimeoutError`` past ``timeout`` seconds; ``RuntimeError`` when the program cannot
    be started. Whatever happens (normal end, time limit, an exception or signal in the caller),
    the program, its process group and every descendant it left (see the module docstring) are
    killed afterwards.
    """
    before = set(descendants(os.getpid()))
    with tempfile.TemporaryFile("w+b") as stderr:
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )
        except OSError as err:
            raise RuntimeError(f"external command {argv[0]!r} cannot be started: {err}") from err
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(
                f"external command {argv[0]!r} exceeded its time limit of {timeout:g} s"
            ) from err
        finally:
            if proc.poll() is None:  # still running (not reaped, so its pid is still its own)
                stop_tree(proc.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # orphans of the program re-parented to this process (when it is a subreaper)
            for pid in set(descendants(os.getpid())) - before:
                stop_tree(pid)
        stderr.seek(max(0, os.fstat(stderr.fileno()).st_size - _STDERR_TAIL))
        return proc.returncode, stderr.read().decode(errors="replace")


class Guardian:
    """Cleans up after this process even when it is killed outright (SIGKILL, out of memory).

    A small helper process (this module run as a script: no import of bengrn or numpy) reads
    registrations from a pipe: processes to stop and folders to remove. When the pipe closes,
    i.e. when this process is gone for any reason, it sends SIGTERM to the registered processes
    (their own cleanup runs), waits :data:`GRACE_SECONDS`, stops their whole trees
    (:func:`stop_tree`) and removes the folders. Started on first use, one per process.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0
        self._lock = threading.Lock()
        self._registered: set[str] = set()

    def _send(self, line: str) -> None:
        with self._lock:
            for _ in range(2):
                if (
                    self._proc is None
                    or self._proc.poll() is not None
                    or self._owner != os.getpid()
                ):
                    self._start()
                try:
                    self._proc.stdin.write(line.encode() + b"\n")  # type: ignore[union-attr]
                    self._proc.stdin.flush()  # type: ignore[union-attr]
                    return
                except (BrokenPipeError, OSError):
                    self._proc = None

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, "--guard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C aimed at this process's group spares it
        )
        self._owner = os.getpid()
        assert self._proc.stdin is not None
        for line in sorted(self._registered):  # a replaced helper learns what is registered
            self._proc.stdin.write(line.encode() + b"\n")
        self._proc.stdin.flush()

    def _set(self, line: str, on: bool) -> None:
        if on:
            self._registered.add(line)
        else:
            self._registered.discard(line)
        self._send(("+" if on else "-") + line)

    def watch_process(self, pid: int) -> None:
        """Stop ``pid`` and its tree when this process dies; undone by :meth:`forget_process`."""
        self._set(f"process {pid}", True)

    def forget_process(self, pid: int) -> None:
        self._set(f"process {pid}", False)

    def watch_folder(self, path: str | os.PathLike) -> None:
        """Remove ``path`` when this process dies; undone by :meth:`forget_folder`."""
        self._set(f"folder {os.fspath(path)}", True)

    def forget_folder(self, path: str | os.PathLike) -> None:
        self._set(f"folder {os.fspath(path)}", False)


_GUARDIAN = Guardian()


def guardian() -> Guardian:
    """This process's :class:`Guardian`."""
    return _GUARDIAN


#: Seconds the guardian gives registered processes to exit after SIGTERM.
GRACE_SECONDS = 5.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _guard(lines: Iterable[str]) -> None:
    """The guardian's loop: registrations until end of input, then the cleanup."""
    processes: set[int] = set()
    folders: set[str] = set()
    for raw in lines:
        line = raw.rstrip("\n")
        sign, body = line[:1], line[1:]
        kind, _, value = body.partition(" ")
        target: set[Any] = processes if kind == "process" else folders
        item: Any = int(value) if kind == "process" else value
        if sign == "+":
            target.add(item)
        elif sign == "-":
            target.discard(item)
    for pid in processes:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(_alive(pid) for pid in processes):
        time.sleep(0.1)
    for pid in processes:
        stop_tree(pid)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:] == ["--guard"]:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _guard(sys.stdin)
