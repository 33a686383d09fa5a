"""Scaling of rcforest.dask from one to two worker processes on one machine.

Usage::

    python benchmarks/dask_scaling.py [--rows 300000] [--entities 24] [--repeat 2]

For each worker count (1, then 2; one thread each, loopback only) a fresh
``LocalCluster`` runs three jobs, after a warm-up that loads the compiled
kernels in every worker:

- ``score_dataframe``: a 100-tree, 256-sample forest scores ``--rows``
  rows of 3 features, generated inside the workers (``dask.dataframe.from_map``)
  as if read from storage;
- ``fit_dataframe``: the same forest fitted from those rows;
- ``fit_score_by_key``: one ``ThresholdedForest`` (50 trees, 128 samples)
  per entity over 2,000 rows each, shuffled by entity.

It prints the best wall time of ``--repeat`` runs, rows per second and the
speed-up over one worker, plus the same work in this process on one thread
(no dask) as a reference, and the load average before and after: other
processes on the machine make the figures worse. On a 2-core machine the ceiling is 2x; the client,
the scheduler and the shuffle share those cores with the workers.

Running the same code on a multi-node cluster
---------------------------------------------
Nothing in :mod:`rcforest.dask` assumes one machine; only the cluster and
the data location change:

1. Start a scheduler (``dask scheduler``) and one worker per node with one
   thread per core (``dask worker tcp://scheduler:8786 --nworkers 1
   --nthreads <cores>``), or use dask-kubernetes, dask-jobqueue (Slurm,
   PBS) or dask-cloudprovider. Install the same ``rcforest[dask]`` version
   on every node: the forest and the detectors travel as pickles.
2. Connect with ``Client("tcp://scheduler:8786")`` and read the data where
   it lives, in parallel: ``dd.read_parquet("s3://bucket/events/")``. Aim
   for partitions of 100 MB to 1 GB; every partition is one task.
3. ``score_dataframe`` sends the fitted forest to each worker once (a
   100-tree, 256-sample, 3-feature forest pickles to about 5 MB); write the scores
   back with ``.to_parquet(...)`` rather than collecting them on the client.
4. ``fit_dataframe`` reads the data twice (partition lengths, then
   reservoir entries); only the entries, a few per tree and partition,
   cross the network, and the trees are built on the client.
5. ``fit_score_by_key`` shuffles rows by entity (dask's p2p shuffle scales
   to large data) and keeps one detector per entity. Put ``state_in`` and
   ``state_out`` on storage every worker can reach (``s3://...``,
   ``gs://...``, a shared file system), with a new ``state_out`` per batch, so
   a retried task never reads a state it wrote itself.
6. Workers lost mid-job are replaced and their tasks rerun by the
   scheduler: every input row still gets exactly one output row.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

__all__ = ["main"]

_PARTITION_ROWS = 25_000
_ENTITY_ROWS = 2_000
_DETECTOR = {"num_trees": 50, "sample_size": 128, "random_state": 0}


def _feature_partition(number, run=0):
    """Rows of 3 normal features, seeded by partition number (``run`` only makes each run's tasks new)."""
    rng = np.random.default_rng(number)
    index = pd.RangeIndex(number * _PARTITION_ROWS, (number + 1) * _PARTITION_ROWS)
    return pd.DataFrame(rng.normal(size=(_PARTITION_ROWS, 3)), columns=["a", "b", "c"], index=index)


def _entity_partition(entities, run=0):
    """Rows of several periodic series with noise and a spike each (``run`` as for the features)."""
    frames = []
    for entity in entities:
        rng = np.random.default_rng(entity)
        t = np.arange(_ENTITY_ROWS)
        value = 10 * np.sin(2 * np.pi * t / (24 + entity % 7)) + rng.normal(size=t.size)
        value[1500] += 30
        frames.append(pd.DataFrame({"entity": f"host-{entity}", "timestamp": t, "value": value}))
    return pd.concat(frames, ignore_index=True)


def _best(repeat, job):
    """Best wall time of ``job(run)`` over ``repeat`` runs."""
    times = []
    for run in range(repeat):
        start = time.perf_counter()
        job(run)
        times.append(time.perf_counter() - start)
    return min(times)


def _measure(workers, rows, entities, repeat):
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from rcforest import Forest
    from rcforest.dask import fit_dataframe, fit_score_by_key, score_dataframe

    partitions = max(1, rows // _PARTITION_ROWS)
    groups = [list(range(k, entities, 8)) for k in range(min(entities, 8))]
    forest = Forest(num_trees=100, sample_size=256, random_state=0).fit(_feature_partition(0))
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):

        def features(run):
            # Each run gets new task keys, so no run reuses results another left in the cluster.
            return dd.from_map(_feature_partition, range(partitions), run=run)

        def series(run):
            return dd.from_map(_entity_partition, groups, run=run)

        # Warm-up: every worker loads the compiled kernels once.
        small = dd.from_map(_feature_partition, range(2 * workers))
        score_dataframe(small, forest).compute()
        fit_dataframe(small, num_trees=4, sample_size=16, random_state=0)
        with tempfile.TemporaryDirectory() as folder:
            fit_score_by_key(dd.from_map(_entity_partition, [[0], [1]]), state_out=folder, **_DETECTOR).compute()
        results = {
            "score_dataframe": (
                partitions * _PARTITION_ROWS,
                _best(repeat, lambda run: score_dataframe(features(run), forest).compute()),
            ),
            "fit_dataframe": (
                partitions * _PARTITION_ROWS,
                _best(repeat, lambda run: fit_dataframe(features(run), num_trees=100, sample_size=256, random_state=0)),
            ),
            "fit_score_by_key": (
                entities * _ENTITY_ROWS,
                _best(repeat, lambda run: fit_score_by_key(series(run), **_DETECTOR).compute()),
            ),
        }
    return results


def _in_process(rows, entities, repeat):
    """The same jobs without dask, in this process, on one thread."""
    from rcforest import Forest
    from rcforest.thresholded import ThresholdedForest

    partitions = max(1, rows // _PARTITION_ROWS)
    data = pd.concat([_feature_partition(k) for k in range(partitions)])
    forest = Forest(num_trees=100, sample_size=256, random_state=0, n_jobs=1).fit(_feature_partition(0))
    series = _entity_partition(range(entities))
    forest.score(data.iloc[:10])

    def by_entity(run):
        for _, rows_of_entity in series.groupby("entity"):
            ThresholdedForest(**_DETECTOR, n_jobs=1).run(rows_of_entity[["value"]])

    return {
        "score_dataframe": (len(data), _best(repeat, lambda run: forest.score(data))),
        "fit_dataframe": (
            len(data),
            _best(repeat, lambda run: Forest(num_trees=100, sample_size=256, random_state=0, n_jobs=1).fit(data)),
        ),
        "fit_score_by_key": (len(series), _best(repeat, by_entity)),
    }


def main(argv=None):
    """Measure and print the scaling table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows to score and fit")
    parser.add_argument("--entities", type=int, default=24, help="entities for fit_score_by_key")
    parser.add_argument("--repeat", type=int, default=2, help="runs per job; the best is kept")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    table = {workers: _measure(workers, args.rows, args.entities, args.repeat) for workers in (1, 2)}
    table["no dask"] = _in_process(args.rows, args.entities, args.repeat)
    print(f"load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"{'job':<18} {'rows':>9} {'workers':>7} {'seconds':>8} {'rows/s':>10} {'speed-up':>8}")
    for job in table[1]:
        for workers, results in table.items():
            rows, seconds = results[job]
            speedup = table[1][job][1] / seconds
            print(f"{job:<18} {rows:>9,} {workers:>7} {seconds:>8.2f} {rows / seconds:>10,.0f} {speedup:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
