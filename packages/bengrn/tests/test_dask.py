"""Tree methods on dask.distributed: the same network as the local run, also when a worker dies."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from bengrn.methods import _dask, genie3, grnboost2, trees

distributed = pytest.importorskip("distributed", reason="the bengrn[dask] extra is not installed")


@pytest.fixture(scope="module")
def thread_client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def process_client():
    """2 single-threaded worker processes under nannies (a killed worker is restarted)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_run_equals_threaded_run(beeline_ll, thread_client, monkeypatch):
    adata, _ = beeline_ll
    monkeypatch.setattr(trees, "_BATCH_SIZE", 5)  # several tasks over the 18 targets
    local = genie3(adata, n_trees=10, seed=2).grn.toarray()
    remote = genie3(adata, n_trees=10, seed=2, client=thread_client).grn.toarray()
    np.testing.assert_array_equal(remote, local)
    local = grnboost2(adata, seed=2).grn.toarray()
    remote = grnboost2(adata, seed=2, client=thread_client).grn.toarray()
    np.testing.assert_array_equal(remote, local)
    assert (remote > 0).sum() > 100


def test_a_client_must_be_a_dask_client(beeline_ll):
    adata, _ = beeline_ll
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        genie3(adata, n_trees=2, client="tcp://127.0.0.1:8786")


def test_a_worker_killed_mid_run_leaves_the_network_unchanged(
    beeline_ll, process_client, monkeypatch
):
    adata, _ = beeline_ll
    monkeypatch.setattr(trees, "_BATCH_SIZE", 1)  # 18 tasks
    expected = grnboost2(adata, seed=5).grn.toarray()
    killed: list[int] = []
    client = process_client
    pids = client.run(os.getpid)

    def done_batches(dask_scheduler=None) -> int:
        return sum(
            1
            for key, task in dask_scheduler.tasks.items()
            if "bengrn-batch" in str(key) and task.state == "memory"
        )

    def kill_one_worker_after_the_first_results() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if client.run_on_scheduler(done_batches) >= 1:
                pid = next(iter(pids.values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_after_the_first_results)
    killer.start()
    network = grnboost2(adata, seed=5, client=client).grn.toarray()
    killer.join()
    assert killed, "no worker was killed: the run finished before the first result was seen"
    np.testing.assert_array_equal(network, expected)


def test_a_worker_killed_between_runs_leaves_the_next_network_unchanged(
    beeline_ll, process_client, monkeypatch
):
    # dask's broadcast scatter retried forever on a worker killed before the scheduler noticed
    adata, _ = beeline_ll
    monkeypatch.setattr(trees, "_BATCH_SIZE", 5)
    client = process_client
    first = genie3(adata, n_trees=10, seed=3, client=client).grn.toarray()
    os.kill(next(iter(client.run(os.getpid).values())), signal.SIGKILL)
    start = time.monotonic()
    second = genie3(adata, n_trees=10, seed=3, client=client).grn.toarray()
    seconds = time.monotonic() - start
    np.testing.assert_array_equal(second, first)
    assert (first > 0).sum() > 100
    assert seconds < 60, f"the run after the kill took {seconds:.0f} s"


def test_a_run_on_a_cluster_without_workers_fails_fast(beeline_ll, monkeypatch):
    adata, _ = beeline_ll
    monkeypatch.setattr(_dask, "NO_WORKER_TIMEOUT_S", 1.0)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        cluster.scale(0)
        deadline = time.monotonic() + 10
        while client.scheduler_info(n_workers=-1)["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(_dask.NoWorkerError, match=r"no worker for 1 s; 1 of 1 target batches"):
            genie3(adata, n_trees=2, client=client)
        assert time.monotonic() - start < 10


def test_runner_scheduler_gives_the_network_of_the_local_run(data_dir, tmp_path):
    import grnndata
    from bengrn.runner import run_benchmark
    from bengrn.tasks import BeelineTask

    task = BeelineTask("synthetic", networks=["dyn-LL"])
    params = {"genie3": {"n_trees": 5}}
    run_benchmark(["genie3"], [task], tmp_path / "local", params=params, report=False)
    frame = run_benchmark(
        ["genie3"], [task], tmp_path / "dask", params=params, report=False, scheduler="local:1"
    )
    assert (frame["status"] == "ok").all()
    path = "networks/beeline-synthetic/dyn-LL/genie3.zarr"
    local = grnndata.read_zarr(tmp_path / "local" / path).grn.toarray()
    remote = grnndata.read_zarr(tmp_path / "dask" / path).grn.toarray()
    np.testing.assert_array_equal(remote, local)
    assert (local > 0).any()
