"""The Forest class: API, shingling, streaming, bad input, round trips."""

import copy
import io
import os
import pickle
import stat
import zipfile
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforest import Forest
from rcforest._core import shingle
from tests.naive import assert_similar, check_invariants, describe_flat, flat_absolute, leaf_of

FIXTURES = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(size=(500, 3))


def _state(forest):
    return pickle.dumps(forest)


def test_fit_score_shapes_and_scale(data):
    forest = Forest(num_trees=30, sample_size=64, random_state=1).fit(data)
    scores = forest.score(data)
    assert scores.shape == (500,)
    assert 0.5 < np.median(scores) < 1.5  # the SageMaker scale: about 1 for data like the sample
    far = forest.score([[10.0, 10.0, 10.0]])[0]
    assert far > 2 * np.median(scores)
    assert far < np.log2(64) + 1
    for t in range(forest.num_trees):
        check_invariants(forest._trees, t)
        assert forest._trees.mass[t, forest._trees.root[t]] == 64


def test_each_tree_samples_without_replacement(data):
    forest = Forest(num_trees=20, sample_size=100, random_state=2).fit(data)
    trees = forest._trees
    for t in range(20):
        leaves = trees.heap_leaf[t, : trees.heap_size[t]]
        points = np.array([leaf_of(trees, t, leaf) for leaf in leaves])
        assert len(np.unique(points, axis=0)) == 100  # distinct rows, none twice
    first = {tuple(leaf_of(trees, 0, leaf)) for leaf in trees.heap_leaf[0]}
    second = {tuple(leaf_of(trees, 1, leaf)) for leaf in trees.heap_leaf[1]}
    assert first != second


def test_small_data_keeps_every_row(data):
    forest = Forest(num_trees=5, sample_size=1000, random_state=0).fit(data[:50])
    assert all(forest._trees.heap_size == 50)


def test_same_seed_same_forest_any_thread_count(data):
    one = Forest(num_trees=16, sample_size=32, random_state=5, n_jobs=1).fit(data)
    many = Forest(num_trees=16, sample_size=32, random_state=5, n_jobs=numba.config.NUMBA_NUM_THREADS).fit(data)
    np.testing.assert_array_equal(one.score(data), many.score(data))
    np.testing.assert_array_equal(one.score_update(data[:100]), many.score_update(data[:100]))
    for name in one._trees._fields:
        np.testing.assert_array_equal(getattr(one._trees, name), getattr(many._trees, name), err_msg=name)


def test_scores_agree_with_single_tree_means(data):
    from rcforest._score import score_point

    forest = Forest(num_trees=7, sample_size=50, random_state=3).fit(data)
    q = np.array([0.5, -2.0, 1.0])
    relative = q - forest._trees.origin  # the trees hold points relative to the first
    expected = np.mean([score_point(forest._trees, t, relative) for t in range(7)])
    assert forest.score([q])[0] == pytest.approx(expected, rel=1e-12)


def test_attribution_sums_to_score(data):
    forest = Forest(num_trees=20, sample_size=64, random_state=0).fit(data)
    queries = np.vstack([data[:5], [[6.0, 0.0, 0.0]]])
    high, low = forest.attribution(queries)
    np.testing.assert_allclose(high.sum(1) + low.sum(1), forest.score(queries), rtol=1e-10)
    assert np.argmax(high[-1]) == 0 and high[-1, 0] > 0.8 * forest.score(queries)[-1]


def test_pandas_in_pandas_out(data):
    frame = pd.DataFrame(data, columns=["a", "b", "c"], index=pd.date_range("2024-01-01", periods=500, freq="h"))
    forest = Forest(num_trees=10, sample_size=32, shingle_size=2, random_state=0).fit(frame)
    scores = forest.score(frame)
    assert isinstance(scores, pd.Series) and scores.index.equals(frame.index)
    high, low = forest.attribution(frame)
    assert list(high.columns) == ["a[t-1]", "b[t-1]", "c[t-1]", "a[t]", "b[t]", "c[t]"]
    assert high.index.equals(frame.index)
    np.testing.assert_array_equal(scores.to_numpy(), forest.score(data))
    series = pd.Series(data[:, 0], index=frame.index, name="value")
    out = Forest(num_trees=5, sample_size=16, random_state=0).score_update(series)
    assert isinstance(out, pd.Series) and out.index.equals(series.index)
    assert Forest(num_trees=5, sample_size=16, random_state=0).fit(list(data[:, 0])).score([0.0]).shape == (1,)


def test_shingles_are_consecutive_rows_oldest_first():
    values = np.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(shingle(values, 3)[0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(shingle(values, 3)[-1], [6, 7, 8, 9, 10, 11])


def test_batch_shingled_scores_align_with_rows():
    series = np.sin(np.arange(300) / 5)
    forest = Forest(num_trees=10, sample_size=64, shingle_size=4, random_state=0).fit(series)
    assert forest.dimensions_ == 4
    scores = forest.score(series)
    assert np.isnan(scores[:3]).all() and np.isfinite(scores[3:]).all()
    codisp = forest.codisp(series)
    assert np.isnan(codisp[:3]).all() and np.isfinite(codisp[3:]).all()
    assert np.isnan(forest.score(series[:3])).all()


def test_streaming_in_pieces_equals_one_call():
    series = np.random.default_rng(1).normal(size=400).cumsum()
    whole = Forest(num_trees=12, sample_size=32, shingle_size=5, time_decay=0.01, random_state=9)
    pieces = Forest(num_trees=12, sample_size=32, shingle_size=5, time_decay=0.01, random_state=9)
    expected = whole.score_update(series)
    got = np.concatenate([pieces.score_update(series[a:b]) for a, b in [(0, 2), (2, 3), (3, 150), (150, 400)]])
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(expected[:4]).all() and expected[4] == 0.0  # the empty forest scores 0
    one_by_one = Forest(num_trees=12, sample_size=32, shingle_size=5, time_decay=0.01, random_state=9)
    for value in series[:50]:
        one_by_one.update(value)
    pieces = Forest(num_trees=12, sample_size=32, shingle_size=5, time_decay=0.01, random_state=9)
    pieces.update(series[:50])
    assert pickle.dumps(one_by_one) == pickle.dumps(pieces)


def test_streaming_keeps_sample_size_and_invariants():
    rng = np.random.default_rng(4)
    forest = Forest(num_trees=6, sample_size=20, time_decay=0.05, random_state=4)
    forest.update(rng.integers(0, 4, size=(300, 2)).astype(float))  # many duplicates
    for t in range(6):
        check_invariants(forest._trees, t)
        assert forest._trees.mass[t, forest._trees.root[t]] == 20


def test_time_decay_favours_recent_points():
    series = np.arange(5000.0)
    decayed = Forest(num_trees=20, sample_size=50, time_decay=1 / 500, random_state=0).update(series)
    uniform = Forest(num_trees=20, sample_size=50, time_decay=0.0, random_state=0).update(series)

    def kept(forest):
        trees = forest._trees
        return [leaf_of(trees, t, leaf)[0] for t in range(20) for leaf in trees.heap_leaf[t]]

    assert np.median(kept(decayed)) > 4000
    assert 1500 < np.median(kept(uniform)) < 3500


def test_per_point_update_and_score(data):
    forest = Forest(num_trees=10, sample_size=32, random_state=0).fit(data)
    batch = Forest(num_trees=10, sample_size=32, random_state=0).fit(data)
    for row in data[:20]:
        forest.update(row)
    batch.update(data[:20])
    assert pickle.dumps(forest) == pickle.dumps(batch)
    assert forest.score(data[0]).shape == (1,)


# ------------------------------------------------------------------ read-only


def test_score_and_codisp_are_read_only(data):
    forest = Forest(num_trees=10, sample_size=64, shingle_size=1, random_state=0).fit(data)
    before = _state(forest)
    queries = np.vstack([data[:20], np.random.default_rng(1).normal(scale=5, size=(20, 3))])
    forest.score(queries)
    forest.codisp(queries)
    forest.displacement(queries)
    forest.attribution(queries)
    assert _state(forest) == before
    np.testing.assert_array_equal(forest.codisp(queries), forest.codisp(queries))
    np.testing.assert_array_equal(forest.codisp(queries[5:6]), forest.codisp(queries)[5:6])


def test_a_rows_score_does_not_depend_on_its_batch(data):
    forest = Forest(num_trees=37, sample_size=64, random_state=0).fit(data)
    together = forest.score(data[:50])
    alone = np.array([forest.score(row)[0] for row in data[:50]])
    np.testing.assert_array_equal(alone, together)


# ------------------------------------------------------------------ round trips


def test_save_load_and_pickle_round_trip(tmp_path, data):
    forest = Forest(num_trees=15, sample_size=40, shingle_size=2, time_decay=0.01, random_state=3)
    forest.score_update(data[:300])
    path = tmp_path / "model.rcf"
    forest.save(path)
    loaded = Forest.load(path)
    unpickled = pickle.loads(pickle.dumps(forest))
    np.testing.assert_array_equal(loaded.score(data), forest.score(data))
    np.testing.assert_array_equal(loaded.codisp(data[:50]), forest.codisp(data[:50]))
    # All three continue the stream bit-identically.
    expected = forest.score_update(data[300:])
    np.testing.assert_array_equal(loaded.score_update(data[300:]), expected)
    np.testing.assert_array_equal(unpickled.score_update(data[300:]), expected)
    assert pickle.dumps(loaded) == pickle.dumps(forest)


def _assert_same_arrays(got, expected):
    """Every field of two forests' trees holds the same bytes (free stacks whole)."""
    for name in expected._trees._fields:
        a, b = getattr(got._trees, name), getattr(expected._trees, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


def _assert_same_trees(got, expected):
    """Two forests' trees are the same trees, their node numbers aside (files of version 1 number them otherwise)."""
    a, b = got._trees, expected._trees
    for name in ("rng", "heap_weight", "heap_size"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    for t in range(a.root.shape[0]):
        check_invariants(a, t)
        assert describe_flat(a, t) == describe_flat(b, t)
        kept = [leaf_of(a, t, leaf).tobytes() for leaf in a.heap_leaf[t, : a.heap_size[t]]]
        assert kept == [leaf_of(b, t, leaf).tobytes() for leaf in b.heap_leaf[t, : b.heap_size[t]]]


def _repeating_rows(seed, n=400):
    """Rows with many repeated shingles (leaves of mass above 1) and a drift (deletions all along)."""
    rng = np.random.default_rng(seed)
    rows = np.round(rng.normal(size=(n, 2)))
    rows[100:160] = [1.0, -1.0]
    rows[200:] += np.arange(n - 200)[:, None] / 50
    return rows


@pytest.mark.parametrize("kwargs", [{"time_decay": 0.01}, {"time_decay": 0.0, "shingle_size": 1}])
def test_a_loaded_forest_holds_the_arrays_it_was_saved_with_and_continues_identically(tmp_path, kwargs):
    # Saving keeps the structure and the distinct points; loading rebuilds the
    # boxes, parents, masses and range sums: the same arrays, bit for bit.
    rows = _repeating_rows(1)
    forest = Forest(num_trees=12, sample_size=32, random_state=4, **{"shingle_size": 2, **kwargs})
    forest.update(rows[:300])
    assert (forest._trees.mass[:, forest._trees.left.shape[1] :] > 1).any()  # leaves holding duplicates
    forest.save(tmp_path / "model.rcf")
    loaded = Forest.load(tmp_path / "model.rcf")
    _assert_same_arrays(loaded, forest)
    np.testing.assert_array_equal(loaded.score(rows), forest.score(rows))
    np.testing.assert_array_equal(loaded.codisp(rows[:40]), forest.codisp(rows[:40]))
    np.testing.assert_array_equal(loaded.score_update(rows[300:]), forest.score_update(rows[300:]))
    _assert_same_arrays(loaded, forest)  # later insertions took the same free slots
    loaded.save(tmp_path / "again.rcf")
    assert (tmp_path / "again.rcf").read_bytes() != (tmp_path / "model.rcf").read_bytes()
    forest._parts()  # packs the point store to its distinct points, as saving does
    _assert_same_arrays(Forest.load(tmp_path / "again.rcf"), forest)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.sampled_from([-1.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5]), min_size=1, max_size=120),
    shingle_size=st.integers(1, 3),
    sample_size=st.integers(1, 12),
    time_decay=st.sampled_from([0.0, 0.05, 2.0]),
    seed=st.integers(0, 2**16),
)
def test_any_stream_saved_and_loaded_gives_the_same_arrays(
    tmp_path_factory, values, shingle_size, sample_size, time_decay, seed
):
    # Few values, so they repeat: leaves of any mass, insertions and deletions of duplicates, -0.0 among the values.
    forest = Forest(
        num_trees=3, sample_size=sample_size, shingle_size=shingle_size, time_decay=time_decay, random_state=seed
    )
    forest.update(values)
    path = tmp_path_factory.mktemp("model") / "model.rcf"
    forest.save(path)
    loaded = Forest.load(path)
    _assert_same_arrays(loaded, forest)
    more = np.arange(10.0) % 3
    np.testing.assert_array_equal(loaded.score_update(more), forest.score_update(more))
    _assert_same_arrays(loaded, forest)


def test_the_model_file_keeps_each_distinct_point_once_and_no_box(tmp_path):
    # 12 reservoirs of 32 out of 63 shingles: the trees share most of their points.
    forest = Forest(num_trees=12, sample_size=32, shingle_size=2, time_decay=0.0, random_state=4)
    forest.update(_repeating_rows(2)[:64])
    forest.save(tmp_path / "model.rcf")
    with zipfile.ZipFile(tmp_path / "model.rcf") as archive:
        names = archive.namelist()
        points = np.load(io.BytesIO(archive.read("tree.points.npy")))
    assert not [name for name in names if "box" in name or "parent" in name or "range_sum" in name]
    trees = forest._trees
    leaves = trees.store[trees.leaf_point[trees.leaf_point >= 0]]
    distinct = {row.tobytes() for row in leaves}
    assert len(points) == len(distinct) <= 63 and len(leaves) > 4 * len(points)
    assert {row.tobytes() for row in points} == distinct


def test_points_whose_hashes_agree_are_kept_apart(tmp_path, monkeypatch):
    from rcforest import _store

    forest = Forest(num_trees=12, sample_size=32, shingle_size=2, random_state=4).update(_repeating_rows(3))
    forest.save(tmp_path / "model.rcf")
    monkeypatch.setattr(_store, "_row_keys", lambda bits: np.zeros(bits.shape[0], np.uint64))  # every hash the same
    forest.save(tmp_path / "collided.rcf")
    with zipfile.ZipFile(tmp_path / "model.rcf") as one, zipfile.ZipFile(tmp_path / "collided.rcf") as other:
        assert one.read("tree.points.npy") == other.read("tree.points.npy")
        assert one.read("tree.point.npy") == other.read("tree.point.npy")
    _assert_same_arrays(Forest.load(tmp_path / "collided.rcf"), forest)


def test_negative_zero_is_read_as_zero(tmp_path):
    # Trees tell no -0.0 from 0.0: each box would keep the zero it saw first, which no file could rebuild.
    forest = Forest(num_trees=20, sample_size=4, shingle_size=2, random_state=0).update([[-0.0], [0.0], [-0.0]])
    assert not np.signbit(forest._trees.box_min).any() and not np.signbit(forest._tail).any()
    assert forest.score([[-0.0], [-0.0]])[1] == forest.score([[0.0], [0.0]])[1]
    forest.save(tmp_path / "model.rcf")
    _assert_same_arrays(Forest.load(tmp_path / "model.rcf"), forest)


def _fixture_rows():
    """The rows the stored version 1 model was made from."""
    rng = np.random.default_rng(7)
    rows = np.round(rng.normal(size=(160, 2)))
    rows[100:120] = [1.0, -1.0]
    return rows


def test_files_saved_by_version_1_still_load(tmp_path):
    # forest-v1.rcf: Forest(num_trees=3, sample_size=16, shingle_size=2, time_decay=0.01, random_state=5)
    # fitted on _fixture_rows()[:60] and updated with [60:140], saved by rcforest 0.1.0 (format version 1,
    # every TreeArrays field stored).
    rows = _fixture_rows()
    with zipfile.ZipFile(FIXTURES / "forest-v1.rcf") as archive:  # -0.0 in its boxes, as input kept it then
        boxes = np.load(io.BytesIO(archive.read("tree.box_min.npy")))
    assert np.signbit(boxes[boxes == 0]).any()
    restored = Forest.load(FIXTURES / "forest-v1.rcf")
    fresh = Forest(num_trees=3, sample_size=16, shingle_size=2, time_decay=0.01, random_state=5).fit(rows[:60])
    fresh.update(rows[60:140])
    # The same trees, but for the cuts (drawn from exact boxes then, from single-precision ones
    # now) and the origin the points are relative to (none then, the first point now).
    for t in range(3):
        check_invariants(restored._trees, t)
        assert_similar(flat_absolute(restored._trees, t), flat_absolute(fresh._trees, t), abs=1e-6)
    assert restored.points_seen_ == fresh.points_seen_ == 139
    np.testing.assert_allclose(restored.score_update(rows[140:]), fresh.score_update(rows[140:]), rtol=1e-5)
    restored.save(tmp_path / "model.rcf")
    _assert_same_arrays(Forest.load(tmp_path / "model.rcf"), restored)


def test_a_saved_member_holds_the_bytes_numpy_saves(tmp_path, data):
    """Saving streams each array through the compressor; the members are still np.save's bytes."""
    from rcforest import _state

    forest = Forest(num_trees=4, sample_size=16, shingle_size=3, random_state=2).fit(data[:200])
    forest.save(tmp_path / "model.rcf")
    _, arrays = _state.to_arrays(forest._parts())
    with zipfile.ZipFile(tmp_path / "model.rcf") as archive:
        for name, value in arrays.items():
            expected = io.BytesIO()
            np.save(expected, np.ascontiguousarray(value), allow_pickle=False)
            assert archive.read(f"{name}.npy") == expected.getvalue(), name


def test_a_forest_saved_at_two_times_is_the_same_bytes(tmp_path, data, monkeypatch):
    import time

    forest = Forest(num_trees=4, sample_size=16, random_state=2).fit(data[:100])
    for name, now in (("early.rcf", 1e9), ("late.rcf", 2e9)):
        monkeypatch.setattr(time, "time", lambda now=now: now)
        forest.save(tmp_path / name)
    assert (tmp_path / "early.rcf").read_bytes() == (tmp_path / "late.rcf").read_bytes()


def test_unfitted_forest_round_trips(tmp_path):
    forest = Forest(num_trees=3, sample_size=8)
    forest.save(tmp_path / "empty.rcf")
    loaded = Forest.load(tmp_path / "empty.rcf")
    assert loaded.num_trees == 3 and loaded.points_seen_ == 0


@pytest.mark.parametrize(
    "content",
    [b"", b"not a model at all", pickle.dumps({"a": 1}), b"PK\x03\x04garbage"],
)
def test_load_refuses_foreign_files(tmp_path, content):
    path = tmp_path / "foreign.rcf"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not an rcforest model file"):
        Forest.load(path)


def test_load_refuses_corrupt_and_future_models(tmp_path, data):
    import json
    import zipfile

    forest = Forest(num_trees=4, sample_size=16, random_state=0).fit(data)
    good = tmp_path / "good.rcf"
    forest.save(good)

    def rewrite(name, edit):
        path = tmp_path / name
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
            for item in src.namelist():
                dst.writestr(item, edit(item, src.read(item)))
        return path

    def bump_version(item, content):
        if item != "rcforest.json":
            return content
        header = json.loads(content)
        header["version"] = 99
        return json.dumps(header)

    with pytest.raises(ValueError, match="version 99"):
        Forest.load(rewrite("future.rcf", bump_version))

    def break_links(item, content):
        if item != "tree.left.npy":
            return content
        import io

        left = np.load(io.BytesIO(content))
        left[:] = 3
        buffer = io.BytesIO()
        np.save(buffer, left)
        return buffer.getvalue()

    with pytest.raises(ValueError, match="inconsistent"):
        Forest.load(rewrite("broken.rcf", break_links))

    def drop_array(item, content):
        return content if item != "tree.leaf_mass.npy" else b"\x93NUMPY garbage"

    with pytest.raises(ValueError):
        Forest.load(rewrite("truncated.rcf", drop_array))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_trees": 0}, ValueError, "num_trees must be >= 1"),
        ({"sample_size": 0}, ValueError, "sample_size must be between 1 and"),
        ({"num_trees": 2.5}, TypeError, "num_trees must be an integer"),
        ({"shingle_size": 0}, ValueError, "shingle_size"),
        ({"time_decay": -1.0}, ValueError, "time_decay"),
        ({"time_decay": float("nan")}, ValueError, "time_decay"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        Forest(**kwargs)


def test_scoring_before_data():
    forest = Forest(num_trees=3, sample_size=8, shingle_size=3)
    for method in (forest.score, forest.codisp, forest.displacement, forest.attribution):
        with pytest.raises(ValueError, match="no data yet"):
            method([1.0, 2.0, 3.0])
    forest.update([1.0, 2.0])  # fewer rows than a shingle: still no data
    with pytest.raises(ValueError, match="no data yet"):
        forest.score([1.0, 2.0, 3.0])


BAD_INPUTS = [
    ([[1.0, np.nan, 0.0]], ValueError, "nan at row 0, column 1"),
    ([[1.0, np.inf, 0.0]], ValueError, "inf"),
    (np.empty((0, 3)), ValueError, "empty"),
    ([], ValueError, "empty"),
    ([["a", "b", "c"]], TypeError, "numbers"),
    (np.ones((2, 2)), ValueError, "3 columns"),
    (np.ones((2, 3, 1)), ValueError, "1-D"),
    ([[1 + 2j, 0, 0]], TypeError, "real"),
    ("1,2,3", TypeError, "array"),
    (None, TypeError, "array"),
    (pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2.0]}), TypeError, "not numeric"),
]


@pytest.mark.parametrize(("bad", "error", "match"), BAD_INPUTS)
def test_bad_input_is_refused_and_changes_nothing(data, bad, error, match):
    forest = Forest(num_trees=5, sample_size=16, random_state=0).fit(data)
    before = _state(forest)
    for method in (forest.score, forest.codisp, forest.attribution, forest.update, forest.score_update):
        with pytest.raises(error, match=match):
            method(bad)
        assert _state(forest) == before
    with pytest.raises(error):
        forest.fit(bad if not isinstance(bad, np.ndarray) or bad.shape != (2, 2) else np.ones((0, 3)))
    assert _state(forest) == before


def test_fit_needs_a_full_shingle():
    with pytest.raises(ValueError, match="fewer than shingle_size=5"):
        Forest(shingle_size=5).fit([1.0, 2.0])


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        Forest().score_update([1.0], kind="depth")


@pytest.mark.parametrize(
    ("time_decay", "sequence_start", "num_rows", "sample_size"),
    [
        (0.0, 0, 20_000, 16),
        (1 / 2560, 0, 20_000, 64),
        (0.05, 10**9, 3_000, 8),
        (1e-3, 10**12, 5_000, 32),
        (0.0, 0, 5, 8),
    ],
)
def test_sample_selection_skips_no_row_the_reservoir_would_keep(time_decay, sequence_start, num_rows, sample_size):
    """select_sample refuses rows below a cut without their weight; its draws
    and decisions must be those of draw_weight and admits, row by row."""
    from rcforest._kernels import select_sample
    from rcforest._sampler import admits, draw_weight, heap_push, heap_replace_top

    num_trees = 4
    seeds = np.random.SeedSequence(3).generate_state(num_trees, np.uint64)
    rng, ref_rng = seeds.copy(), seeds.copy()
    weight = np.zeros((num_trees, sample_size))
    rows = np.full((num_trees, sample_size), -1, np.int32)
    size = np.zeros(num_trees, np.int32)
    ref_weight, ref_rows, ref_size = weight.copy(), rows.copy(), size.copy()
    select_sample(rng, weight, rows, size, num_rows, sequence_start, time_decay)
    for t in range(num_trees):
        for row in range(num_rows):
            w = draw_weight(ref_rng, t, sequence_start + row, time_decay)
            verdict = admits(ref_weight, ref_size, t, w)
            if verdict == 1:
                heap_push(ref_weight, ref_rows, ref_size, t, w, row)
            elif verdict == 2:
                heap_replace_top(ref_weight, ref_rows, ref_size, t, w, row)
    np.testing.assert_array_equal(rng, ref_rng)
    np.testing.assert_array_equal(size, ref_size)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(weight, ref_weight)


def test_parallel_stream_driver_matches_the_single_tree_kernels():
    """The jitted drivers inline their per-tree work into a parallel loop; check
    that they do exactly what the single-tree kernels do, called one by one."""
    from rcforest._sampler import admits, draw_weight, heap_push, heap_replace_top
    from rcforest._score import displacement_of
    from rcforest._store import store_rows
    from rcforest._update import delete_leaf, insert_point

    rng = np.random.default_rng(8)
    data = rng.integers(0, 6, size=(300, 2)).astype(float)  # duplicates too
    forest = Forest(num_trees=3, sample_size=12, time_decay=0.05, random_state=5)
    forest.update(data[:1])
    relative = data[1:] - forest._trees.origin  # the trees hold points relative to the first
    ref, first = store_rows(copy.deepcopy(forest._trees), relative)
    expected = np.empty((3, len(data) - 1))
    for row, point in enumerate(relative, start=1):
        for t in range(3):
            local = np.array([ref.rng[t]])
            expected[t, row - 1] = displacement_of(ref, t, point, local, 0)[0]
            weight = draw_weight(ref.rng, t, row, forest.time_decay)
            verdict = admits(ref.heap_weight, ref.heap_size, t, weight)
            if verdict == 2:
                delete_leaf(ref, t, ref.heap_leaf[t, 0])
            if verdict:
                leaf = insert_point(ref, t, first + row - 1, ref.rng, t)
                push = heap_push if verdict == 1 else heap_replace_top
                push(ref.heap_weight, ref.heap_leaf, ref.heap_size, t, weight, leaf)
    got = forest.score_update(data[1:], kind="codisp")
    np.testing.assert_allclose(got, expected.mean(axis=0), rtol=1e-15)
    for name, value in ref._asdict().items():
        np.testing.assert_array_equal(getattr(forest._trees, name), value, err_msg=name)


# ----------------------------------------------- loading only regular files


def _load_soon(load, path, seconds=20):
    """Run ``load(path)`` in a thread; return what it raised, failing if it has not ended in ``seconds``."""
    import threading

    outcome = []

    def run():
        try:
            load(path)
            outcome.append(None)
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive() and os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked reader see the end
    assert not thread.is_alive(), f"loading {path} did not end within {seconds} s"
    return outcome[0]


def _not_regular(kind, tmp_path):
    if kind == "fifo":
        path = tmp_path / "model.rcf"
        os.mkfifo(path)
        return path, "a pipe"
    if kind == "folder":
        path = tmp_path / "model.rcf"
        path.mkdir()
        return path, "a folder"
    return Path("/dev/zero"), "a device"


def _loaders():
    from rcforest._fitted import load_fitted
    from rcforest.thresholded import ThresholdedForest

    return {"Forest.load": Forest.load, "ThresholdedForest.load": ThresholdedForest.load, "load_fitted": load_fitted}


@pytest.mark.parametrize("loader", ["Forest.load", "ThresholdedForest.load", "load_fitted"])
@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_loading_refuses_what_is_not_a_regular_file(tmp_path, loader, kind):
    path, what = _not_regular(kind, tmp_path)
    error = _load_soon(_loaders()[loader], str(path))
    assert isinstance(error, ValueError) and f"{path} is {what}, not a regular file" in str(error), error


@pytest.mark.parametrize("loader", ["Forest.load", "ThresholdedForest.load"])
def test_loading_refuses_a_file_larger_than_any_model(tmp_path, loader):
    from rcforest._core import memory_bytes
    from rcforest._format import max_file_bytes

    path = tmp_path / "huge.rcf"
    with open(path, "wb") as file:
        file.truncate(max_file_bytes(memory_bytes() // 2) + 1)  # sparse: takes no disk space
    error = _load_soon(_loaders()[loader], str(path))
    assert isinstance(error, ValueError) and "bytes such a file may take" in str(error), error


def test_a_model_behind_a_link_still_loads(data, tmp_path):
    forest = Forest(num_trees=5, sample_size=16, random_state=0).fit(data)
    forest.save(tmp_path / "model.rcf")
    (tmp_path / "link.rcf").symlink_to(tmp_path / "model.rcf")
    np.testing.assert_array_equal(Forest.load(tmp_path / "link.rcf").score(data[:10]), forest.score(data[:10]))
