"""How many live detectors one core serves: ThresholdedForest.process round robin over many series.

Usage::

    python benchmarks/detectors.py [--detectors 8] [--period 48] [--split]

Each detector (defaults, one thread, 1-D input) gets its own noisy cycle
(``--period`` rows; 0 for random walks, which have none), starts with
``run`` on 4,500 rows, and then the detectors take turns, one reading
each, for 2,100 rounds: every detector passes a checkpoint (6,144 rows),
as a live one does every 2,048 readings, and is cold in the caches when
its turn comes, as among thousands. Prints the CPU time per reading, the
detectors one core serves at one reading per second each, and the memory
of a detector (Python's allocations, traced), where it goes (the trees'
bounding boxes, single precision; the point store, of which the points the
trees hold are a part; the rest), and the size of its saved state.
With ``--split``, the CPU time per reading is also split into the forest
call, explanations, checkpoints and the rest (the wrappers that time them
add about a microsecond per call).
"""

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

__all__ = ["measure"]

WARMUP = 4500
ROUNDS = 2100


def _series(index, period, n):
    rng = np.random.default_rng(index)
    if not period:
        return rng.normal(size=n).cumsum()
    t = np.arange(n)
    return 10 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + 50 + rng.normal(size=n)


@contextlib.contextmanager
def _timed_parts(spent):
    """Add the CPU time of the forest call, explanations and checkpoints of ``process`` to ``spent``, by part."""
    from rcforest.detector import live, thresholded_forest
    from rcforest.forest import Forest

    places = [
        ("forest", Forest, "_feed_then_score"),
        ("explain", live, "explain"),
        ("explain", thresholded_forest, "explain"),
        ("checkpoint", thresholded_forest.ThresholdedForest, "_checkpoint"),
    ]
    originals = [getattr(owner, name) for _, owner, name in places]

    def timed(part, function):
        def run(*args):
            start = time.thread_time()
            try:
                return function(*args)
            finally:
                spent[part] = spent.get(part, 0.0) + time.thread_time() - start

        return run

    for (part, owner, name), original in zip(places, originals):
        setattr(owner, name, timed(part, original))
    try:
        yield spent
    finally:
        for (_, owner, name), original in zip(places, originals):
            setattr(owner, name, original)


def measure(detectors=8, period=48, split=False):
    """Run the benchmark; return its figures as a dict (see the module's docstring)."""
    from rcforest import ThresholdedForest

    series = [_series(i, period, WARMUP + ROUNDS) for i in range(detectors)]
    ThresholdedForest(num_trees=4, sample_size=16).run(series[0][:300])  # compile outside the figures
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pool = [ThresholdedForest(n_jobs=1) for _ in range(detectors)]
    for detector, values in zip(pool, series):
        detector.run(values[:WARMUP])
    gc.collect()
    mb = (tracemalloc.get_traced_memory()[0] - before) / detectors / 2**20
    tracemalloc.stop()
    readings = [values[WARMUP:].tolist() for values in series]
    spent = {}
    with _timed_parts(spent) if split else contextlib.nullcontext():
        start_cpu, start_wall = time.thread_time(), time.perf_counter()
        for step in range(ROUNDS):
            for detector, values in zip(pool, readings):
                detector.process(values[step])
        cpu, wall = time.thread_time() - start_cpu, time.perf_counter() - start_wall
    trees = pool[0].forest_._trees
    boxes_mb = (trees.box_min.nbytes + trees.box_max.nbytes) / 2**20
    store_mb = trees.store.nbytes / 2**20
    held = np.unique(trees.leaf_point[trees.leaf_point >= 0]).size  # the points the trees hold
    held_mb = held * trees.store.shape[1] * trees.store.itemsize / 2**20
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "detector.rcfd")
        pool[0].save(path)
        file_mb = os.path.getsize(path) / 2**20
    ms = cpu / (ROUNDS * detectors) * 1e3
    split_ms = {part: seconds / (ROUNDS * detectors) * 1e3 for part, seconds in spent.items()}
    if split:
        split_ms["rest"] = ms - sum(split_ms.values())
    return {
        "detectors": detectors,
        "shingle_size": pool[0].shingle_size_,
        "ms_per_reading": ms,
        "wall_ms_per_reading": wall / (ROUNDS * detectors) * 1e3,
        "per_core": 1e3 / ms,
        "mb": mb,
        "boxes_mb": boxes_mb,
        "store_mb": store_mb,
        "store_held_mb": held_mb,
        "file_mb": file_mb,
        "split_ms": split_ms,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=8, help="detectors taking turns")
    parser.add_argument("--period", type=int, default=48, help="period of each series in rows (0: random walks)")
    parser.add_argument("--split", action="store_true", help="split the CPU time per reading by part")
    args = parser.parse_args(argv)
    found = measure(args.detectors, args.period, args.split)
    print(json.dumps(found))
    print(
        f"{found['detectors']} detectors (shingle {found['shingle_size']}): "
        f"{found['ms_per_reading']:.3f} ms CPU per reading ({found['wall_ms_per_reading']:.3f} ms wall), "
        f"{found['per_core']:,.0f} detectors per core at one reading per second, "
        f"{found['mb']:.1f} MB each in memory (boxes {found['boxes_mb']:.1f}, point store {found['store_mb']:.1f} "
        f"of which {found['store_held_mb']:.1f} held by the trees), {found['file_mb']:.2f} MB saved"
    )
    if found["split_ms"]:
        print("ms CPU per reading: " + ", ".join(f"{part} {ms:.3f}" for part, ms in found["split_ms"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
