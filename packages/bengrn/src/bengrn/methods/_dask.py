"""dask.distributed scheduling of per-target regressions (optional extra ``bengrn[dask]``).

The regression problem (expression matrix, ranks, settings) is scattered to every worker once
(``broadcast=True``, so losing a worker loses no copy that others need), each batch of targets is
one task, and results are yielded as the tasks complete. A task whose worker dies is rescheduled
by the dask scheduler on another worker; since every target's seed depends only on
``(seed, target)``, the result is the same.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["dask_client", "map_batches"]

log = logging.getLogger(__name__)

_MISSING = (
    "dask scheduling needs the optional dependencies dask and distributed "
    "(pip install 'bengrn[dask]'); they are not installed"
)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise ImportError(_MISSING) from err
    return distributed


def map_batches(
    client: Any,
    fn: Callable[[Any, np.ndarray], Any],
    shared: Any,
    batches: Sequence[np.ndarray],
) -> Iterator[tuple[np.ndarray, Any]]:
    """``(batch, fn(shared, batch))`` for each batch, in completion order, computed on ``client``.

    ``shared`` is scattered to every worker once; each batch is one task.
    """
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client; got {type(client).__name__}")
    [remote] = client.scatter([shared], broadcast=True, hash=False)
    run = uuid.uuid4().hex
    futures = {
        client.submit(fn, remote, batch, pure=False, key=f"bengrn-batch-{i}-{run}"): i
        for i, batch in enumerate(batches)
    }
    try:
        for future in distributed.as_completed(futures):
            i = futures[future]
            yield batches[i], future.result()
            future.release()
    finally:
        client.cancel(list(futures))
        client.cancel([remote])


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
