"""The benchmark workloads, one function per library and workload.

Every runner builds its own data and model, times only the work named, and
returns a dict of measurements (seconds unless the key says otherwise).
``compare.py`` runs each in a fresh process; ``test_speed.py`` wraps the
same runners for pytest-benchmark.
"""

import functools
import gzip
import importlib.util
import os
import resource
import time
from pathlib import Path

import numpy as np

__all__ = [
    "NUM_TREES",
    "SAMPLE_SIZE",
    "noisy_sine",
    "taxi_series",
    "batch_data",
    "endpoint_data",
    "RUNNERS",
]

NUM_TREES = 100
SAMPLE_SIZE = 256
TIME_DECAY = 1 / (10 * SAMPLE_SIZE)  # AWS's default lambda, for both streaming libraries
STREAM_LENGTH = 20_000
BATCH_SHAPE = (100_000, 48)
ENDPOINT_TREES = 50  # the NYC taxi notebook's SageMaker model: 50 trees of 512
ENDPOINT_SAMPLE = 512
ENDPOINT_TRAIN_ROWS = 10_000
KRCF_SCORED_ROWS = 10_000  # krcf scores one point per call: timed on a tenth, scaled to the batch
RRCF_POINTS = 500  # rrcf is pure Python: a shorter stream, reported per point and tree


def noisy_sine(n=STREAM_LENGTH, seed=0):
    """A sine of period 100 with Gaussian noise: the streaming workload."""
    t = np.arange(n)
    return 50 * np.sin(2 * np.pi * t / 100) + 100 + np.random.default_rng(seed).normal(scale=5, size=n)


def taxi_series():
    """NYC taxi passenger counts (10,320 values), from the copy bundled with rcforest.

    The file is found and parsed without importing rcforest (or pandas), so
    that a peer's process measures the peer alone (workload 6's peak RSS).
    """
    package = importlib.util.find_spec("rcforest").submodule_search_locations[0]
    with gzip.open(Path(package) / "data" / "nyc_taxi.csv.gz", "rt") as csv:
        return np.loadtxt(csv, delimiter=",", skiprows=1, usecols=1)


def batch_data(seed=0):
    """100,000 rows of 48-dimensional Gaussian data with 100 shifted rows."""
    data = np.random.default_rng(seed).normal(size=BATCH_SHAPE)
    data[:100] += 4.0
    return data


def endpoint_data(seed=1):
    """The endpoint workload's training rows: Gaussian, like :func:`batch_data`'s."""
    return np.random.default_rng(seed).normal(size=(ENDPOINT_TRAIN_ROWS, BATCH_SHAPE[1]))


def peak_rss_mb():
    """This process's peak resident memory in MB, since it started its program.

    Linux's ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss``
    keeps, after ``exec``, the peak of the process that forked it, so a
    worker started by a large parent would report at least the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_timed(fn):
    """CPU seconds of this thread in ``fn`` (not the time it waited for a core), and its result.

    For the one-reading-per-call workloads, all single-threaded, on a shared machine.
    """
    start = time.thread_time()
    result = fn()
    return time.thread_time() - start, result


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# ------------------------------------------------------------------- rcforest


def _rcforest_stream(series, shingle_size, n_jobs, kind="score"):
    from rcforest import Forest

    def make():
        return Forest(NUM_TREES, SAMPLE_SIZE, shingle_size, TIME_DECAY, random_state=0, n_jobs=n_jobs)

    make().score_update(series[:300], kind=kind)  # compile outside the timing
    seconds, _ = _timed(lambda: make().score_update(series, kind=kind))
    return {"seconds": seconds, "points": len(series)}


def rcforest_stream(n_jobs=1):
    return _rcforest_stream(noisy_sine(), 4, n_jobs)


def rcforest_taxi(n_jobs=1):
    return _rcforest_stream(taxi_series(), 48, n_jobs)


def rcforest_codisp(n_jobs=1):
    return _rcforest_stream(noisy_sine(), 4, n_jobs, kind="codisp")


def rcforest_batch(n_jobs=1):
    from rcforest import Forest

    data = batch_data()
    Forest(NUM_TREES, SAMPLE_SIZE, random_state=0, n_jobs=n_jobs).fit(data[:2000]).score(data[:2000])

    def run():
        forest = Forest(NUM_TREES, SAMPLE_SIZE, random_state=0, n_jobs=n_jobs).fit(data)
        return forest.score(data)

    seconds, _ = _timed(run)
    return {"seconds": seconds, "rows": len(data)}


def rcforest_endpoint(n_jobs=1):
    """Score-only: a fitted 50 x 512 forest scores the 100,000 x 48 batch (SageMaker's InvokeEndpoint work)."""
    from rcforest import Forest

    data = batch_data()
    forest = Forest(ENDPOINT_TREES, ENDPOINT_SAMPLE, random_state=0, n_jobs=n_jobs).fit(endpoint_data())
    forest.score(data[:2000])  # compile outside the timing
    seconds, _ = _timed(lambda: forest.score(data))
    return {"seconds": seconds, "rows": len(data)}


def rcforest_memory(path):
    from rcforest import Forest

    forest = Forest(NUM_TREES, SAMPLE_SIZE, shingle_size=48, time_decay=TIME_DECAY, random_state=0)
    forest.update(taxi_series())
    forest.save(path)
    model_bytes = sum(a.nbytes for a in forest._trees)
    return {
        "peak_rss_mb": peak_rss_mb(),
        "model_mb": model_bytes / 2**20,
        "file_mb": os.path.getsize(path) / 2**20,
    }


def rcforest_first_score():
    start = time.perf_counter()
    from rcforest import Forest

    data = noisy_sine(2000)
    Forest(NUM_TREES, SAMPLE_SIZE, shingle_size=4, random_state=0).fit(data).score(data)
    return {"seconds": time.perf_counter() - start}


# ------------------------------------------------------------------- krcf


def _krcf_forest(shingle_size, parallel):
    import krcf

    return krcf.RandomCutForest(
        {
            "dimensions": 1,
            "shingle_size": shingle_size,
            "internal_shingling": True,
            "num_trees": NUM_TREES,
            "sample_size": SAMPLE_SIZE,
            "lambda": TIME_DECAY,
            "random_seed": 0,
            "parallel_execution_enabled": parallel,
            "output_after": 1,
        }
    )


def _krcf_stream(series, shingle_size, parallel):
    forest = _krcf_forest(shingle_size, parallel)

    def run():
        scores = np.empty(len(series))
        for i, value in enumerate(series):
            point = [value]
            scores[i] = forest.score(point)
            forest.update(point)
        return scores

    seconds, _ = _timed(run)
    return {"seconds": seconds, "points": len(series)}


def krcf_stream(n_jobs=1):
    return _krcf_stream(noisy_sine(), 4, n_jobs > 1)


def krcf_taxi(n_jobs=1):
    return _krcf_stream(taxi_series(), 48, n_jobs > 1)


def krcf_endpoint(n_jobs=1):
    """krcf's score-only loop on the endpoint workload: one ``score`` call per row.

    It scores the first ``KRCF_SCORED_ROWS`` rows; ``seconds`` is scaled to the
    whole batch (``measured_seconds`` is what was timed).
    """
    import krcf

    forest = krcf.RandomCutForest(
        {
            "dimensions": BATCH_SHAPE[1],
            "shingle_size": 1,
            "num_trees": ENDPOINT_TREES,
            "sample_size": ENDPOINT_SAMPLE,
            "lambda": 0.0,
            "random_seed": 0,
            "parallel_execution_enabled": n_jobs > 1,
            "output_after": 1,
        }
    )
    for row in endpoint_data():
        forest.update(row.tolist())
    rows = batch_data()[:KRCF_SCORED_ROWS]

    def run():
        return [forest.score(row) for row in rows.tolist()]

    seconds, _ = _timed(run)
    return {"seconds": seconds * BATCH_SHAPE[0] / len(rows), "measured_seconds": seconds, "rows": len(rows)}


def krcf_memory(path):
    forest = _krcf_forest(48, False)
    for value in taxi_series():
        forest.update([value])
    packed = forest.to_msgpack()
    Path(path).write_bytes(packed)
    return {
        "peak_rss_mb": peak_rss_mb(),
        "file_mb": len(packed) / 2**20,
        "json_mb": len(forest.to_json()) / 2**20,
    }


def krcf_first_score():
    start = time.perf_counter()
    data = noisy_sine(2000)
    forest = _krcf_forest(4, False)
    for value in data:
        forest.update([value])
    for value in data:
        forest.score([value])
    return {"seconds": time.perf_counter() - start}


# ------------------------------------------------------------------- rrcf


def rrcf_codisp(n_jobs=1):
    import rrcf

    series = noisy_sine(RRCF_POINTS + 3)
    points = np.lib.stride_tricks.sliding_window_view(series, 4)
    forest = [rrcf.RCTree() for _ in range(NUM_TREES)]

    def run():
        for index, point in enumerate(points):
            for tree in forest:
                if len(tree.leaves) > SAMPLE_SIZE:
                    tree.forget_point(index - SAMPLE_SIZE)
                tree.insert_point(point, index=index)
                tree.codisp(index)

    seconds, _ = _timed(run)
    return {"seconds": seconds, "points": len(points)}


# ------------------------------------------------------------------- scikit-learn


def sklearn_batch(n_jobs=1):
    from sklearn.ensemble import IsolationForest

    data = batch_data()

    def run():
        model = IsolationForest(n_estimators=NUM_TREES, max_samples=SAMPLE_SIZE, n_jobs=n_jobs, random_state=0)
        return model.fit(data).score_samples(data)

    seconds, _ = _timed(run)
    return {"seconds": seconds, "rows": len(data)}


def sklearn_endpoint(n_jobs=1):
    """IsolationForest's ``score_samples`` of the batch, fitted on the same rows with 50 trees of 512."""
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(
        n_estimators=ENDPOINT_TREES, max_samples=ENDPOINT_SAMPLE, n_jobs=n_jobs, random_state=0
    ).fit(endpoint_data())
    data = batch_data()
    seconds, _ = _timed(lambda: model.score_samples(data))
    return {"seconds": seconds, "rows": len(data)}


# ------------------------------------------------------- one reading per call (workloads 9 and 10)

READINGS_WARMUP = 1000  # readings fed before the timing
READINGS = 3000  # readings timed, one call each
READING_CALLS = ("score_update", "update", "score")


def _reading_series(width):
    """Workload 9's stream of ``width``-value shingles: the noisy sine (4-D) or NYC taxi (wider)."""
    series = noisy_sine() if width == 4 else taxi_series()
    return series[: READINGS_WARMUP + READINGS]


def rcforest_readings(width, call):
    """rcforest called once per reading: ``score_update`` or ``update`` of one value, or ``score`` of one point.

    A reading's read-only score needs its shingle: ``score`` runs on a
    forest without shingling fed the shingled points, and scores one
    ``width``-value point per call (the peers shingle internally).
    """
    from rcforest import Forest

    series = _reading_series(width)
    if call == "score":
        points = np.lib.stride_tricks.sliding_window_view(series, width)
        forest = Forest(NUM_TREES, SAMPLE_SIZE, 1, TIME_DECAY, random_state=0, n_jobs=1)
        forest.update(points[:READINGS_WARMUP])
        readings = list(np.ascontiguousarray(points[READINGS_WARMUP:]))
        method = forest.score
    else:
        forest = Forest(NUM_TREES, SAMPLE_SIZE, width, TIME_DECAY, random_state=0, n_jobs=1)
        forest.update(series[:READINGS_WARMUP])
        readings = series[READINGS_WARMUP:].tolist()
        method = getattr(forest, call)
    # Compiled, or loaded from the cache, outside the timing: enough rows for a shingle, so that the
    # last call takes the path of one reading.
    Forest(4, 8, width, TIME_DECAY, random_state=0).update(series[: width + 20]).score_update(0.0)
    seconds, _ = _cpu_timed(lambda: [method(reading) for reading in readings])
    return {"seconds": seconds, "points": len(readings)}


def _peer_readings(forest, width, call):
    """A peer's loop, one call per reading (score then update for ``score_update``), internal shingling."""
    series = _reading_series(width)
    for value in series[:READINGS_WARMUP]:
        forest.update([value])
    readings = [[value] for value in series[READINGS_WARMUP:].tolist()]

    def run():
        if call == "score_update":
            for point in readings:
                forest.score(point)
                forest.update(point)
        else:
            method = getattr(forest, call)
            for point in readings:
                method(point)

    seconds, _ = _cpu_timed(run)
    return {"seconds": seconds, "points": len(readings)}


def _peer_scores(forest, width):
    """A peer's read-only ``score``, one call per point: the very points rcforest scores.

    A peer shingling internally scores a reading with the shingle it last
    updated, which ``score`` does not advance: its points would share all
    but their last value (scores of nearby points, whose walks find each
    other's paths in the caches). So the peer is built without shingling,
    fed the shingled points and scores each ``width``-value point, as
    :func:`rcforest_readings` does.
    """
    points = np.lib.stride_tricks.sliding_window_view(_reading_series(width), width)
    for point in points[:READINGS_WARMUP].tolist():
        forest.update(point)
    readings = points[READINGS_WARMUP:].tolist()
    seconds, _ = _cpu_timed(lambda: [forest.score(point) for point in readings])
    return {"seconds": seconds, "points": len(readings)}


def krcf_readings(width, call):
    if call == "score":
        import krcf

        options = {"dimensions": width, "shingle_size": 1, "internal_shingling": False, "num_trees": NUM_TREES}
        options.update(sample_size=SAMPLE_SIZE, random_seed=0, parallel_execution_enabled=False, output_after=1)
        return _peer_scores(krcf.RandomCutForest({**options, "lambda": TIME_DECAY}), width)
    return _peer_readings(_krcf_forest(width, False), width, call)


def rcf3_readings(width, call):
    import rcf3

    if call == "score":
        forest = rcf3.Forest(
            width, num_trees=NUM_TREES, capacity=SAMPLE_SIZE, time_decay=TIME_DECAY, output_after=1, seed=0
        )
        return _peer_scores(forest, width)
    forest = rcf3.Forest(
        1, shingle_size=width, num_trees=NUM_TREES, capacity=SAMPLE_SIZE, time_decay=TIME_DECAY, output_after=1, seed=0
    )
    return _peer_readings(forest, width, call)


def _one_reading(runner, width, call, n_jobs=1):
    return runner(width, call)


def rcforest_process(n_jobs=1, period=48, warmup=4500, readings=2000):
    """``ThresholdedForest.process`` per reading (defaults, 1-D), after ``run`` on ``warmup`` rows.

    The series is a noisy cycle of ``period`` rows (shingle 48 for 48), or a
    random walk for ``period=0`` (no period: shingle 8). The timed readings
    pass a checkpoint (at 6,144 rows), as a live stream does every 2,048.
    """
    from rcforest import ThresholdedForest

    t = np.arange(warmup + readings)
    series = 10 * np.sin(2 * np.pi * t / period) + np.random.default_rng(0).normal(size=t.size) if period else None
    if series is None:
        series = np.random.default_rng(0).normal(size=t.size).cumsum()
    detector = ThresholdedForest(n_jobs=n_jobs)
    detector.run(series[:warmup])
    values = series[warmup:].tolist()
    seconds, _ = _cpu_timed(lambda: [detector.process(value) for value in values])
    return {"seconds": seconds, "points": len(values), "shingle_size": detector.shingle_size_}


RUNNERS = {
    ("rcforest", "stream"): rcforest_stream,
    ("krcf", "stream"): krcf_stream,
    ("rcforest", "taxi"): rcforest_taxi,
    ("krcf", "taxi"): krcf_taxi,
    ("rcforest", "batch"): rcforest_batch,
    ("sklearn", "batch"): sklearn_batch,
    ("rcforest", "codisp"): rcforest_codisp,
    ("rrcf", "codisp"): rrcf_codisp,
    ("rcforest", "endpoint"): rcforest_endpoint,
    ("krcf", "endpoint"): krcf_endpoint,
    ("sklearn", "endpoint"): sklearn_endpoint,
}

for _width in (4, 48):
    for _call in READING_CALLS:
        for _library, _runner in (("rcforest", rcforest_readings), ("krcf", krcf_readings), ("rcf3", rcf3_readings)):
            RUNNERS[(_library, f"reading-{_call}-{_width}")] = functools.partial(_one_reading, _runner, _width, _call)
RUNNERS[("rcforest", "process-48")] = functools.partial(rcforest_process, period=48)
RUNNERS[("rcforest", "process-0")] = functools.partial(rcforest_process, period=0)
