"""dask.distributed scheduling of per-target regressions (optional extra ``bengrn[dask]``).

The regression problem (expression matrix, ranks, settings) is scattered once, to one worker;
each batch of targets is one task, and other workers fetch the problem from a worker that holds it
when they run their first batch (dask then keeps that copy). Results are yielded as tasks
complete. Every target's seed depends only on ``(seed, target)``, so any rescheduling gives the
same result:

* a batch whose worker dies is rescheduled by the dask scheduler on another worker;
* when the last copy of the scattered problem is lost with its worker, dask cancels the batches
  that needed it; they are sent again with a fresh copy (up to :data:`MAX_ROUNDS` rounds);
* when the cluster has no worker for :data:`NO_WORKER_TIMEOUT_S` seconds (before scattering or
  while batches wait), the run stops with a :class:`NoWorkerError` instead of waiting forever.

The scattered copy is not broadcast to every worker: dask's broadcast (``Scheduler.replicate``)
retries forever when a worker it counted on has died (e.g. killed between two runs, before the
scheduler noticed).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["MAX_ROUNDS", "NO_WORKER_TIMEOUT_S", "NoWorkerError", "dask_client", "map_batches"]

log = logging.getLogger(__name__)

#: Seconds a run waits for the cluster to have at least one worker before giving up.
NO_WORKER_TIMEOUT_S = 30.0
#: Scatter-and-submit rounds before a run gives up on losing its scattered problem.
MAX_ROUNDS = 5
_POLL_S = 0.5  # how often a waiting run checks that the cluster still has workers

_MISSING = (
    "dask scheduling needs the optional dependencies dask and distributed "
    "(pip install 'bengrn[dask]'); they are not installed"
)


class NoWorkerError(RuntimeError):
    """The dask cluster had no worker for :data:`NO_WORKER_TIMEOUT_S` seconds during a run."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ImportError(_MISSING) from err
    return distributed


def _n_workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


class _WorkerWatch:
    """Raises :class:`NoWorkerError` once the cluster has had no worker for the timeout."""

    def __init__(self, client: Any, unfinished: Callable[[], str]) -> None:
        self.client = client
        self.unfinished = unfinished
        self.empty_since: float | None = None

    def check(self) -> None:
        if _n_workers(self.client) > 0:
            self.empty_since = None
            return
        now = time.monotonic()
        if self.empty_since is None:
            self.empty_since = now
        elif now - self.empty_since >= NO_WORKER_TIMEOUT_S:
            address = getattr(self.client.scheduler, "address", "?")
            raise NoWorkerError(
                f"the dask cluster at {address} has had no worker for {NO_WORKER_TIMEOUT_S:g} s; "
                f"{self.unfinished()} not computed (start workers, or run without client=)"
            )

    def wait_for_a_worker(self) -> None:
        self.check()
        while self.empty_since is not None:
            time.sleep(_POLL_S)
            self.check()


def map_batches(
    client: Any,
    fn: Callable[[Any, np.ndarray], Any],
    shared: Any,
    batches: Sequence[np.ndarray],
) -> Iterator[tuple[np.ndarray, Any]]:
    """``(batch, fn(shared, batch))`` for each batch, in completion order, computed on ``client``.

    ``shared`` is scattered once per round (see the module docstring); each batch is one task.
    Raises :class:`NoWorkerError` when the cluster stays without workers, ``RuntimeError`` when the
    scattered ``shared`` was lost in :data:`MAX_ROUNDS` rounds in a row.
    """
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client; got {type(client).__name__}")
    pending = dict(enumerate(batches))
    watch = _WorkerWatch(client, lambda: f"{len(pending)} of {len(batches)} target batches")
    for round_ in range(1, MAX_ROUNDS + 1):
        watch.wait_for_a_worker()
        try:
            [remote] = client.scatter([shared], hash=False)
        except OSError as err:  # the chosen worker died before the scheduler noticed
            log.warning("scattering to dask failed (round %d): %s; retrying", round_, err)
            continue
        run = uuid.uuid4().hex
        futures = {
            client.submit(fn, remote, batch, pure=False, key=f"bengrn-batch-{i}-{run}"): i
            for i, batch in pending.items()
        }
        waiting = set(futures)
        lost = 0
        try:
            while waiting:
                try:
                    distributed.wait(waiting, timeout=_POLL_S, return_when="FIRST_COMPLETED")
                except (TimeoutError, distributed.TimeoutError):
                    watch.check()
                    continue
                except distributed.utils.CancelledError:
                    pass  # some batches lost their scattered input; found below
                for future in [f for f in waiting if f.done()]:
                    waiting.discard(future)
                    try:  # a result held by a dead worker is recomputed, or cancelled with
                        result = future.result()  # the scattered input it needs
                    except distributed.utils.CancelledError:
                        lost += 1
                        continue
                    future.release()
                    yield pending.pop(futures[future]), result
        finally:
            client.cancel(list(futures))
            client.cancel([remote])
        if not pending:
            return
        log.warning(
            "round %d lost the scattered problem with a dask worker; resending %d batches",
            round_,
            lost,
        )
    raise RuntimeError(
        f"dask lost the scattered regression problem in {MAX_ROUNDS} rounds in a row; "
        f"{len(pending)} of {len(batches)} target batches not computed (are workers being killed?)"
    )


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``scheduler``: ``"local:N"`` starts a ``LocalCluster`` of
    ``N`` single-threaded worker processes (closed on exit), anything else is a scheduler address
    (e.g. ``tcp://10.0.0.5:8786``) to connect to."""
    distributed = _distributed()
    if scheduler.startswith("local:"):
        count = scheduler[len("local:") :]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--scheduler local:N needs a worker count N >= 1; got {scheduler!r}")
        with (
            distributed.LocalCluster(
                n_workers=int(count), threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    if not scheduler:
        raise ValueError("--scheduler needs an address (tcp://HOST:PORT) or local:N")
    with distributed.Client(scheduler) as client:
        log.info("connected to dask scheduler %s (%d workers)", scheduler, len(client.ncores()))
        yield client
