"""rcforest.dask on a real distributed cluster: two worker processes, one thread each, loopback only."""

import os
import pickle
import signal
import time

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from rcforest import Forest  # noqa: E402
from rcforest.dask import fit_dataframe, fit_score_by_key, score_dataframe  # noqa: E402
from rcforest.thresholded import ThresholdedForest  # noqa: E402

DETECTOR = {"num_trees": 10, "sample_size": 32, "random_state": 3}


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _table(rows=1500, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 3))
    values[::97] += 6.0
    index = pd.date_range("2024-01-01", periods=rows, freq="min", name="time")
    return pd.DataFrame(values, columns=["a", "b", "c"], index=index)


def _entities(rows=260, names=("host/1", "host-2", "sensor 3"), seed=0):
    """Rows of several periodic series, shuffled, with a spike in each."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(names):
        t = np.arange(rows)
        value = 5 * np.sin(2 * np.pi * t / (20 + 5 * k)) + rng.normal(scale=0.3, size=rows)
        if rows > 200:
            value[200] += 15
        frames.append(
            pd.DataFrame({"entity": name, "timestamp": t * 60, "value": value, "other": rng.normal(size=rows)})
        )
    return pd.concat(frames).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _single_process(data, columns, params=DETECTOR):
    """One detector per entity over its time-ordered rows, in this process."""
    outputs = {}
    for name, rows in data.groupby("entity"):
        rows = rows.sort_values("timestamp")
        outputs[name] = ThresholdedForest(**params).run(rows[columns])
    return outputs


def _pause(part, seconds):
    time.sleep(seconds)
    return part


def _kill_one_worker(client, future, after):
    """SIGKILL one worker process once ``after`` seconds have passed, while ``future`` runs; return its pid."""
    time.sleep(after)
    assert not future.done(), "the job ended before a worker could be killed; make it longer"
    pid = next(iter(client.run(os.getpid).values()))
    os.kill(pid, signal.SIGKILL)
    return pid


def _check_replaced(client, pid):
    """The killed worker was replaced by a new process."""
    client.wait_for_workers(2, timeout=60)
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and pid not in pids


# ----------------------------------------------------------------- fitting


@pytest.mark.parametrize(
    ("random_state", "time_decay", "npartitions", "sample_size"),
    [(0, 0.0, 5, 64), (7, 0.0, 1, 64), (11, 0.002, 4, 32), (5, 0.0, 6, 512)],
)
def test_fit_dataframe_equals_single_process_fit(client, random_state, time_decay, npartitions, sample_size):
    data = _table()
    ddf = dd.from_pandas(data, npartitions=npartitions)
    params = {"num_trees": 12, "sample_size": sample_size, "time_decay": time_decay, "random_state": random_state}
    expected = Forest(**params).fit(data)
    fitted = fit_dataframe(ddf, **params)
    for field in expected._trees._fields:
        assert np.array_equal(getattr(fitted._trees, field), getattr(expected._trees, field)), field
    assert fitted.points_seen_ == expected.points_seen_ == len(data)
    assert fitted.feature_names_in_ == expected.feature_names_in_
    queries = _table(200, seed=1)
    assert np.array_equal(fitted.score(queries), expected.score(queries))
    # Streaming continues identically from the merged sample.
    assert np.array_equal(fitted.score_update(queries.to_numpy()), expected.score_update(queries.to_numpy()))


def test_fit_dataframe_with_empty_partitions_and_a_column_subset(client):
    data = _table(600)
    ddf = dd.from_pandas(data, npartitions=4)
    ddf = ddf[ddf["a"] < 10]  # keeps every row; partitions come from a filter
    ddf = dd.concat([ddf, ddf.head(0, npartitions=1, compute=False)])
    expected = Forest(num_trees=8, sample_size=32, random_state=2).fit(data[["a", "c"]])
    fitted = fit_dataframe(ddf, columns=["a", "c"], num_trees=8, sample_size=32, random_state=2)
    assert np.array_equal(fitted.score(data[["a", "c"]]), expected.score(data[["a", "c"]]))


def test_fit_dataframe_rejects_missing_values(client):
    data = _table(300)
    data.iloc[250, 1] = np.nan
    with pytest.raises(ValueError, match="drop or impute"):
        fit_dataframe(dd.from_pandas(data, npartitions=3), num_trees=4, sample_size=16, random_state=0)


# ----------------------------------------------------------------- scoring


@pytest.mark.parametrize(("kind", "shingle_size"), [("score", 1), ("codisp", 1), ("score", 3)])
def test_score_dataframe_equals_single_process_score(client, kind, shingle_size):
    data = _table()
    forest = Forest(num_trees=20, sample_size=64, shingle_size=shingle_size, random_state=4).fit(data)
    scores = score_dataframe(dd.from_pandas(data, npartitions=6), forest, kind=kind).compute()
    expected = getattr(forest, kind)(data)
    assert scores.index.equals(data.index)
    assert scores.name == kind
    assert np.array_equal(scores.to_numpy(), expected.to_numpy(), equal_nan=True)
    assert np.isnan(scores.to_numpy()).sum() == shingle_size - 1


def test_score_dataframe_ships_the_forest_once(client):
    data = _table(400)
    forest = Forest(num_trees=50, sample_size=256, random_state=0).fit(data)
    scores = score_dataframe(dd.from_pandas(data, npartitions=20), forest)
    graph = dict(scores.__dask_graph__())
    forest_bytes = len(pickle.dumps(forest))
    # Twenty partitions, one copy of the forest in the whole graph.
    assert len(pickle.dumps(graph)) < 1.5 * forest_bytes
    assert sum(isinstance(getattr(task, "value", None), Forest) for task in graph.values()) == 1


def test_score_dataframe_accepts_a_scattered_forest(client):
    data = _table(500)
    forest = Forest(num_trees=10, sample_size=64, random_state=1).fit(data)
    future = client.scatter(forest, broadcast=True)
    scores = score_dataframe(dd.from_pandas(data, npartitions=3), future, columns=["a", "b", "c"]).compute()
    assert np.array_equal(scores.to_numpy(), forest.score(data).to_numpy())


def test_score_dataframe_survives_a_killed_worker(client):
    data = _table(2000)
    forest = Forest(num_trees=20, sample_size=64, random_state=5).fit(data)
    ddf = dd.from_pandas(data, npartitions=24).map_partitions(_pause, 0.15)
    future = client.compute(score_dataframe(ddf, forest))
    killed = _kill_one_worker(client, future, after=0.6)
    scores = future.result(timeout=120)
    _check_replaced(client, killed)
    assert len(scores) == len(data)
    assert scores.index.equals(data.index)
    assert np.array_equal(scores.to_numpy(), forest.score(data).to_numpy())


def test_score_dataframe_checks_its_input():
    forest = Forest(num_trees=4, sample_size=16, random_state=0)
    data = _table(100)
    ddf = dd.from_pandas(data, npartitions=2)
    with pytest.raises(ValueError, match="no data"):
        score_dataframe(ddf, forest)
    forest.fit(data)
    with pytest.raises(TypeError, match="dask DataFrame"):
        score_dataframe(data, forest)
    with pytest.raises(ValueError, match="not in the frame"):
        score_dataframe(ddf, forest, columns=["a", "b", "zz"])
    with pytest.raises(ValueError, match="kind"):
        score_dataframe(ddf, forest, kind="depth")


# -------------------------------------------------------------- per entity


def _check_against_single_process(output, data, columns=("value",)):
    expected = _single_process(data, list(columns))
    assert len(output) == len(data)
    assert output.index.is_unique and set(output.index) == set(data.index)
    for name, reference in expected.items():
        got = output.loc[reference.index]
        assert (got["entity"] == name).all()
        assert got["timestamp"].is_monotonic_increasing
        for column in reference.columns:
            assert np.array_equal(
                got[column].to_numpy(), reference[column].to_numpy(), equal_nan=reference[column].dtype == float
            ), (name, column)
    return expected


def test_fit_score_by_key_equals_one_detector_per_entity(client, tmp_path):
    data = _entities()
    output = fit_score_by_key(
        dd.from_pandas(data, npartitions=4), time_column="timestamp", columns=["value"], **DETECTOR
    ).compute()
    expected = _check_against_single_process(output, data)
    # Each series has a spike at t=200 that its detector grades.
    for name in expected:
        spike = data.index[(data["entity"] == name) & (data["timestamp"] == 200 * 60)][0]
        assert output.loc[spike, "grade"] > 0


def test_fit_score_by_key_continues_from_saved_state(client, tmp_path):
    data = _entities()
    first = data[data["timestamp"] < 150 * 60]
    second = data[data["timestamp"] >= 150 * 60]
    batch_one = fit_score_by_key(
        dd.from_pandas(first, npartitions=3), columns=["value"], state_out=str(tmp_path / "b1"), **DETECTOR
    ).compute()
    assert sorted(os.listdir(tmp_path / "b1")) == ["host%2F1.rcft", "host-2.rcft", "sensor%203.rcft"]
    batch_two = fit_score_by_key(
        dd.from_pandas(second, npartitions=2),
        columns=["value"],
        state_in=str(tmp_path / "b1"),
        state_out=str(tmp_path / "b2"),
        **DETECTOR,
    ).compute()
    _check_against_single_process(pd.concat([batch_one, batch_two]), data)
    # The saved states are ordinary detector files.
    restored = ThresholdedForest.load(tmp_path / "b2" / "host-2.rcft")
    assert restored.rows_seen_ == (data["entity"] == "host-2").sum()


def test_fit_score_by_key_survives_a_killed_worker(client, tmp_path):
    data = _entities(names=tuple(f"e{k}" for k in range(8)), rows=220)
    ddf = dd.from_pandas(data, npartitions=8).map_partitions(_pause, 0.2)
    future = client.compute(
        fit_score_by_key(ddf, columns=["value"], state_out=str(tmp_path / "states"), shuffle_method="tasks", **DETECTOR)
    )
    killed = _kill_one_worker(client, future, after=0.5)
    output = future.result(timeout=120)
    _check_replaced(client, killed)
    _check_against_single_process(output, data)
    assert len(os.listdir(tmp_path / "states")) == 8


def test_fit_score_by_key_checks_its_input():
    ddf = dd.from_pandas(_entities(rows=20), npartitions=2)
    with pytest.raises(ValueError, match="not in the frame"):
        fit_score_by_key(ddf, key="host")
    with pytest.raises(ValueError, match="sample_size"):
        fit_score_by_key(ddf, columns=["value"], sample_size=1)
