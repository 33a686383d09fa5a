"""Workload 11: near neighbours, density, imputation and forecasts, against krcf and rcf3.

Usage::

    python benchmarks/queries.py [--repeat 3]
    python benchmarks/queries.py --quality   # the figures of AWS's tests instead

Every (library, call) pair runs in a fresh process on one thread
(``NUMBA_NUM_THREADS=1`` and ``n_jobs=1`` for rcforest; krcf without its
parallel execution; rcf3 runs on one thread). Each library builds the same
forest, 50 trees of 256 points, from the same stream, and times only the
calls: per query for the single-point APIs of the peers, per row for
rcforest's batch calls (``density``, ``impute``), per call otherwise.
The ``density_one`` and ``impute_one`` rows time rcforest as the peers
are timed, one row per call (the peers' figures are their same per-point
calls). ``compare.py --workloads 11`` prints the same rows in its table.

What each library computes for the same call (read in their code, krcf
0.4 and rcf3 0.5.2): krcf's ``density`` is AWS's interpolation measure
(the per-dimension sums rcforest computes); rcf3's ``density`` is one
number per node mixed up the path as a score is (no per-dimension
measure), less work per node. rcf3's ``impute`` searches the same leaves
(both children at a missing entry) but picks the leaf by its L1 distance,
with no box gap at the nodes, in float32; its ``extrapolate`` returns
the medians only (no bounds), in float32. krcf has no ``impute``.
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
    """CPU seconds of the process (all its threads) taken by ``fn()``: steadier than wall time on a shared machine."""
    start = time.process_time()
    fn()
    return time.process_time() - start


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
        "density_one": lambda: [forest.density(q) for q in queries],
        "impute_one": lambda: [forest.impute(h) for h in holes],
    }
    forest.near_neighbors(queries[0]), forest.density(queries[:2]), forest.density(queries[0])  # compile
    forest.impute(holes[:2]), forest.impute(holes[0])
    return _timed(runs[call]) / QUERIES


# ------------------------------------------------------------------- krcf


def krcf_run(call):
    import krcf

    call = call.removesuffix("_one")  # the peers answer one point per call anyway
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

    call = call.removesuffix("_one")
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
    if call == "near_neighbors" and not any(forest.near_neighbors(q, top_k=10) for q in queries[:100]):
        return None  # rcf3 0.5.2 returns no neighbours here: nothing to compare with
    return _timed(runs[call]) / QUERIES


RUNNERS = {"rcforest": rcforest_run, "krcf": krcf_run, "rcf3": rcf3_run}
CALLS = {
    "near_neighbors": "near neighbours, 4-D, k=10 (us/query)",
    "density": "density, 4-D (us/row)",
    "density_one": "density, 4-D, one row per call (us/call)",
    "impute": "impute 1 of 4 values (us/row)",
    "impute_one": "impute 1 of 4 values, one row per call (us/call)",
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
    """Table rows of workload 11, in ``compare.py``'s form (workload, rcforest, peer, ratio, target, met)."""
    rows = []
    for call, label in CALLS.items():
        ours = _run("rcforest", call, repeat) * 1e6
        peers = {name: _run(name, call, repeat) for name in ("krcf", "rcf3")}
        peers = {name: value * 1e6 for name, value in peers.items() if value is not None}
        if not peers:
            rows.append((f"11 {label}", f"{ours:.1f}", "no peer has this call", "", "report", None))
            continue
        fastest = min(peers.values())
        rows.append(
            (
                f"11 {label}",
                f"{ours:.1f}",
                ", ".join(f"{name} {value:.1f}" for name, value in peers.items()),
                f"{ours / fastest:.2f}x fastest peer",
                "<= 0.5x",
                ours <= 0.5 * fastest,
            )
        )
    return rows


# ---------------------------------------------------------------- quality


def _fan(seed=72345, per_blade=1000, blades=3):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(per_blade * blades, 2)) * [0.05, 0.2]
    theta = 2 * np.pi * rng.integers(1, blades + 1, size=len(base)) / blades
    c, s = np.cos(theta), np.sin(theta)
    return np.column_stack([c * base[:, 0] + s * base[:, 1] + 0.6 * s, -s * base[:, 0] + c * base[:, 1] + 0.6 * c])


def _rotate(points, degree):
    theta = 2 * np.pi * degree / 360
    c, s = np.cos(theta), np.sin(theta)
    return np.column_stack([c * points[:, 0] + s * points[:, 1], -s * points[:, 0] + c * points[:, 1]])


def quality():
    """The figures of AWS's tests (tests/test_density.py, test_impute.py, test_forecast.py), printed."""
    from rcforest import Forecaster, Forest

    data = _fan()
    density = {}
    for degree in range(0, 360, 10):
        forest = Forest(num_trees=50, sample_size=256, random_state=17).fit(_rotate(data, degree))
        density[degree] = float(forest.density([[0.7, 0.0]])[0])
    on, off = [90, 210, 330], [30, 150, 270]
    print("fan: density at (0.7, 0) with a blade over it (90, 210, 330 deg):", [round(density[d], 2) for d in on])
    print("     between blades (30, 150, 270 deg):", [round(density[d], 3) for d in off])
    print(f"     ratio min(on) / max(between) = {min(density[d] for d in on) / max(density[d] for d in off):.0f}")

    rng = np.random.default_rng(101)
    clusters = 0.01 * rng.normal(size=(2000, 30))
    clusters[:, 0] += np.where(rng.random(2000) < 0.5, 5.0, -5.0)
    forest = Forest(num_trees=100, sample_size=256, random_state=101).update(clusters)
    query = np.zeros(30)
    query[0] = np.nan
    summary = forest.conditional_summary(query)
    error = np.abs(np.abs(summary["points"][:, 0]) - 5.0)
    print(f"two clusters: representatives {np.round(summary['points'][:, 0], 4)}, weights {summary['weights']},")
    print(f"     largest distance from +-5: {error.max():.4f}")

    rng = np.random.default_rng(1)
    t = np.arange(1800)
    series = 50 * np.sin(2 * np.pi * t / 50 + rng.uniform(0, 2 * np.pi)) + 5.0 * rng.normal(size=t.size)
    forest = Forest(num_trees=50, sample_size=256, shingle_size=20, time_decay=1 / 2560, random_state=1)
    squared, count, ordered = np.zeros(5), np.zeros(5), True
    for j, value in enumerate(series):
        forest.update([value])
        if j >= 300:
            forecast = forest.extrapolate(5)
            ordered &= bool(
                (forecast["lower"] <= forecast["value"]).all() and (forecast["value"] <= forecast["upper"]).all()
            )
            ahead = series[j + 1 : j + 6]
            squared[: len(ahead)] += (ahead - forecast["value"][: len(ahead), 0]) ** 2
            count[: len(ahead)] += 1
    print(
        f"noisy sine (noise 5): RMSE per step {np.round(np.sqrt(squared / count), 2)} = "
        f"{np.round(np.sqrt(squared / count) / 5.0, 2)} x noise; lower <= value <= upper: {ordered}"
    )

    for seed, period, amplitude, noise in [(101, 24, 10.0, 1.0), (202, 60, 100.0, 15.0), (303, 36, 3.0, 0.5)]:
        rng = np.random.default_rng(seed)
        t = np.arange(2500)
        season = amplitude * (np.sin(2 * np.pi * t / period) + 0.3 * np.sin(4 * np.pi * t / period + rng.uniform(0, 6)))
        series = season + 0.002 * amplitude * t + noise * rng.standard_t(8, size=t.size)
        caster = Forecaster(horizon=6, coverage=0.9, random_state=seed)  # the defaults: shingles of 20
        out = caster.process(series)
        inside = []
        for step in range(6):
            rows = np.arange(800, len(series) - step - 1)
            actual = series[rows + step + 1]
            inside.append((out["lower"][rows, step, 0] <= actual) & (actual <= out["upper"][rows, step, 0]))
        print(
            f"forecaster, period {period}: 90% interval coverage {np.concatenate(inside).mean():.3f}, "
            f"interval_precision_ {np.round(caster.interval_precision_.ravel(), 3)}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per (library, call); median reported")
    parser.add_argument("--quality", action="store_true", help="print the figures of AWS's tests instead")
    parser.add_argument("--worker", nargs=2, metavar=("LIBRARY", "CALL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quality:
        quality()
        return 0
    if args.worker:
        print(json.dumps(RUNNERS[args.worker[0]](args.worker[1])))
        return 0
    sys.path.insert(0, str(HERE))
    from compare import format_table

    print(format_table(query_rows(args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
