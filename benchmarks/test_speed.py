"""pytest-benchmark suite: the workloads of ``compare.py``, one test per library.

Run with ``python -m pytest benchmarks`` (add ``--benchmark-compare`` to
compare with a saved run). Nothing here asserts a timing; the targets are
checked by reading ``compare.py``'s table.
"""

import numba
import numpy as np
import pytest
import workloads

from rcforest import Forest

TREES, SAMPLE, DECAY = workloads.NUM_TREES, workloads.SAMPLE_SIZE, workloads.TIME_DECAY


@pytest.fixture(scope="module")
def sine():
    return workloads.noisy_sine()


@pytest.fixture(scope="module")
def taxi():
    return workloads.taxi_series()


@pytest.fixture(scope="module")
def batch():
    return workloads.batch_data()


def _stream(benchmark, series, shingle_size, n_jobs, kind="score"):
    def setup():
        forest = Forest(TREES, SAMPLE, shingle_size, DECAY, random_state=0, n_jobs=n_jobs)
        return (forest,), {}

    Forest(TREES, SAMPLE, shingle_size, DECAY, random_state=0, n_jobs=n_jobs).score_update(series[:300], kind=kind)
    scores = benchmark.pedantic(lambda f: f.score_update(series, kind=kind), setup=setup, rounds=3)
    benchmark.extra_info["us_per_point_per_tree"] = benchmark.stats["median"] / (len(series) * TREES) * 1e6
    assert np.isfinite(scores[shingle_size - 1 :]).all()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_rcforest_stream(benchmark, sine, n_jobs):
    _stream(benchmark, sine, 4, n_jobs)


def test_krcf_stream(benchmark, sine):
    pytest.importorskip("krcf")
    benchmark.pedantic(lambda: workloads.krcf_stream(1), rounds=1)


def test_rcforest_taxi_shingle_48(benchmark, taxi):
    _stream(benchmark, taxi, 48, 1)


def test_krcf_taxi_shingle_48(benchmark):
    pytest.importorskip("krcf")
    benchmark.pedantic(lambda: workloads.krcf_taxi(1), rounds=1)


@pytest.mark.parametrize("n_jobs", [1, numba.config.NUMBA_NUM_THREADS])
def test_rcforest_batch(benchmark, batch, n_jobs):
    Forest(TREES, SAMPLE, random_state=0, n_jobs=n_jobs).fit(batch[:2000]).score(batch[:2000])
    scores = benchmark.pedantic(
        lambda: Forest(TREES, SAMPLE, random_state=0, n_jobs=n_jobs).fit(batch).score(batch), rounds=2
    )
    assert scores[:100].mean() > scores[100:].mean()


@pytest.mark.parametrize("n_jobs", [1, numba.config.NUMBA_NUM_THREADS])
def test_isolation_forest_batch(benchmark, n_jobs):
    pytest.importorskip("sklearn")
    benchmark.pedantic(lambda: workloads.sklearn_batch(n_jobs), rounds=2)


@pytest.mark.parametrize("n_jobs", [1, numba.config.NUMBA_NUM_THREADS])
def test_rcforest_endpoint_score(benchmark, batch, n_jobs):
    """Workload 8: a fitted 50 x 512 forest scores the batch, as a SageMaker endpoint would."""
    forest = Forest(workloads.ENDPOINT_TREES, workloads.ENDPOINT_SAMPLE, random_state=0, n_jobs=n_jobs)
    forest.fit(workloads.endpoint_data()).score(batch[:2000])
    scores = benchmark.pedantic(lambda: forest.score(batch), rounds=2)
    assert scores[:100].mean() > scores[100:].mean()


def test_krcf_endpoint_score(benchmark):
    pytest.importorskip("krcf")
    benchmark.pedantic(lambda: workloads.krcf_endpoint(1), rounds=1)


def test_isolation_forest_endpoint_score(benchmark):
    pytest.importorskip("sklearn")
    benchmark.pedantic(lambda: workloads.sklearn_endpoint(1), rounds=2)


def test_rcforest_codisp_stream(benchmark, sine):
    _stream(benchmark, sine, 4, 1, kind="codisp")


def test_rrcf_codisp_stream(benchmark):
    pytest.importorskip("rrcf")
    result = benchmark.pedantic(lambda: workloads.rrcf_codisp(1), rounds=1)
    benchmark.extra_info["us_per_point_per_tree"] = result["seconds"] / (result["points"] * TREES) * 1e6


def test_rcforest_per_point(benchmark, sine):
    """The per-point path from a Python loop: one update and one score per call."""
    forest = Forest(TREES, SAMPLE, shingle_size=4, time_decay=DECAY, random_state=0).fit(sine[:2000])
    values = iter(np.tile(sine, 50))

    def step():
        value = next(values)
        forest.score_update(value)

    benchmark(step)
