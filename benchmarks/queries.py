"""Workload 9: near neighbours, density, imputation and forecasts, against krcf and rcf3.

Usage::

    python benchmarks/queries.py [--repeat 3]

Every (library, call) pair runs in a fresh process on one thread
(``NUMBA_NUM_THREADS=1`` and ``n_jobs=1`` for rcforest; krcf without its
parallel execution; rcf3 runs on one thread). Each library builds the same
forest, 50 trees of 256 points, from the same stream, and times only the
calls: per query for the single-point APIs of the peers, per row for
rcforest's batch calls (``density``, ``impute``), per call otherwise.
``compare.py --workloads 9`` prints the same rows in its table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["query_rows"]

HERE = Path(__file__).resolve().parent
NUM_TREES = 50
SAMPLE_SIZE = 256
TIME_DECAY = 1 / (10 * SAMPLE_SIZE)
POINTS = 20_000  # rows of the stream each forest is fed
QUERIES = 2_000  # query rows of the point calls
SHINGLE = 20  # the forecasts' shingle (as AWS's RCFCaster test)
HORIZON = 15
FORECASTS = 500


def _cluster_data(seed=0):
    """A 4-D stream: two Gaussian clusters, the fourth coordinate the sum of the others plus noise."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(POINTS, 4))
    data[:, 0] += np.where(rng.random(POINTS) < 0.5, 3.0, -3.0)
    data[:, 3] = data[:, :3].sum(axis=1) + 0.1 * rng.normal(size=POINTS)
    return data


def _queries(seed=1):
    data = _cluster_data(seed)[:QUERIES]
    return data


def _sine(seed=0):
    t = np.arange(POINTS)
    return 50 * np.sin(2 * np.pi * t / 50) + np.random.default_rng(seed).normal(scale=5, size=POINTS)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------- rcforest


def _rcforest(shingle_size=1):
    from rcforest import Forest

    forest = Forest(NUM_TREES, SAMPLE_SIZE, shingle_size, TIME_DECAY, random_state=0, n_jobs=1)
    return forest.update(_sine() if shingle_size > 1 else _cluster_data())


def rcforest_run(call):
    queries = _queries()
    if call == "extrapolate":
        forest = _rcforest(SHINGLE)
        forest.extrapolate(HORIZON)  # compile
        return _timed(lambda: [forest.extrapolate(HORIZON) for _ in range(FORECASTS)]) / FORECASTS
    if call == "forecaster":
        from rcforest import Forecaster

        caster = Forecaster(HORIZON, SHINGLE, NUM_TREES, SAMPLE_SIZE, random_state=0, n_jobs=1)
        series = _sine()[:3000]
        caster.process(series[:500])  # compile, and a forest to forecast from
        return _timed(lambda: caster.process(series[500:])) / 2500
    forest = _rcforest()
    holes = queries.copy()
    holes[:, 3] = np.nan
    runs = {
        "near_neighbors": lambda: [forest.near_neighbors(q, k=10) for q in queries],
        "density": lambda: forest.density(queries),
        "impute": lambda: forest.impute(holes),
    }
    runs[call]() if call != "near_neighbors" else forest.near_neighbors(queries[0])  # compile
    return _timed(runs[call]) / QUERIES


# ------------------------------------------------------------------- krcf


def krcf_run(call):
    import krcf

    shingle = SHINGLE if call == "extrapolate" else 1
    forest = krcf.RandomCutForest(
        {
            "dimensions": 1 if shingle > 1 else 4,
            "shingle_size": shingle,
            "internal_shingling": True,
            "num_trees": NUM_TREES,
            "sample_size": SAMPLE_SIZE,
            "lambda": TIME_DECAY,
            "random_seed": 0,
            "parallel_execution_enabled": False,
        }
    )
    for row in _sine() if shingle > 1 else _cluster_data():
        forest.update([float(row)] if shingle > 1 else row.tolist())
    if call == "extrapolate":
        return _timed(lambda: [forest.extrapolate(HORIZON) for _ in range(FORECASTS)]) / FORECASTS
    queries = [q.tolist() for q in _queries()]
    runs = {
        "near_neighbors": lambda: [forest.near_neighbor_list(q, 50) for q in queries],
        "density": lambda: [forest.density(q) for q in queries],
    }
    if call not in runs:
        return None
    return _timed(runs[call]) / QUERIES


# ------------------------------------------------------------------- rcf3


def rcf3_run(call):
    import rcf3

    shingle = SHINGLE if call == "extrapolate" else 1
    forest = rcf3.Forest(
        1 if shingle > 1 else 4,
        shingle_size=shingle,
        num_trees=NUM_TREES,
        capacity=SAMPLE_SIZE,
        time_decay=TIME_DECAY,
        seed=0,
    )
    for row in _sine() if shingle > 1 else _cluster_data():
        forest.update([float(row)] if shingle > 1 else row.tolist())
    if call == "extrapolate":
        return _timed(lambda: [forest.extrapolate(HORIZON) for _ in range(FORECASTS)]) / FORECASTS
    queries = [q.tolist() for q in _queries()]
    runs = {
        "near_neighbors": lambda: [forest.near_neighbors(q, top_k=10) for q in queries],
        "density": lambda: [forest.density(q) for q in queries],
        "impute": lambda: [forest.impute(q, [3]) for q in queries],
    }
    if call not in runs:
        return None
    return _timed(runs[call]) / QUERIES


RUNNERS = {"rcforest": rcforest_run, "krcf": krcf_run, "rcf3": rcf3_run}
CALLS = {
    "near_neighbors": "near neighbours, 4-D, k=10 (us/query)",
    "density": "density, 4-D (us/row)",
    "impute": "impute 1 of 4 values (us/row)",
    "extrapolate": f"extrapolate {HORIZON} steps, shingle {SHINGLE} (us/call)",
    "forecaster": f"Forecaster.process, horizon {HORIZON} (us/row)",
}


def _run(library, call, repeat):
    """Median seconds per unit over ``repeat`` fresh processes on one thread; None if the library has no such call."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", RAYON_NUM_THREADS="1")
    times = []
    for _ in range(repeat):
        command = [sys.executable, __file__, "--worker", library, call]
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE, env=env)
        value = json.loads(done.stdout.strip().splitlines()[-1])
        if value is None:
            return None
        times.append(value)
    return statistics.median(times)


def query_rows(repeat):
    """Table rows of workload 9, in ``compare.py``'s form (workload, rcforest, peer, ratio, target, met)."""
    rows = []
    for call, label in CALLS.items():
        ours = _run("rcforest", call, repeat) * 1e6
        peers = {name: _run(name, call, repeat) for name in ("krcf", "rcf3")}
        peers = {name: value * 1e6 for name, value in peers.items() if value is not None}
        if not peers:
            rows.append((f"9 {label}", f"{ours:.1f}", "no peer has this call", "", "report", None))
            continue
        fastest = min(peers.values())
        rows.append(
            (
                f"9 {label}",
                f"{ours:.1f}",
                ", ".join(f"{name} {value:.1f}" for name, value in peers.items()),
                f"{ours / fastest:.2f}x fastest peer",
                "<= 0.5x",
                ours <= 0.5 * fastest,
            )
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per (library, call); median reported")
    parser.add_argument("--worker", nargs=2, metavar=("LIBRARY", "CALL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(RUNNERS[args.worker[0]](args.worker[1])))
        return 0
    sys.path.insert(0, str(HERE))
    from compare import format_table

    print(format_table(query_rows(args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
