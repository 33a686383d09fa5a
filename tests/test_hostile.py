"""Hostile input: damaged and malicious model files, failed saves, extreme parameters.

Whatever could hang or crash the process runs in a child process with a
timeout, so that a regression fails the test instead of stalling the suite.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcforest import Forest, _format, _state
from tests.naive import leaf_of

TIMEOUT = 300
FIXTURES = Path(__file__).resolve().parent / "data"


def _bounded(code, timeout=TIMEOUT):
    """Run ``code`` in a fresh interpreter; return its stdout (it must exit 0 in time)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _small_forest():
    rng = np.random.default_rng(0)
    return Forest(num_trees=3, sample_size=16, shingle_size=2, random_state=0).fit(rng.normal(size=(60, 2)))


def _members(path):
    """A model file's header and arrays, read directly from the zip."""
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read("rcforest.json"))
        arrays = {
            name[:-4]: np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            for name in archive.namelist()
            if name.endswith(".npy")
        }
    return header, arrays


def _rewrite(path, header, arrays, extra=()):
    """Write a model file from raw parts (``extra``: additional raw members)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rcforest.json", json.dumps(header))
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, value, allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())
        for name, data in extra:
            archive.writestr(name, data)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.rcf"
    _small_forest().save(path)
    return path


@pytest.fixture
def saved_v1(tmp_path):
    """A model file of format version 1 (every tree array stored), saved by rcforest 0.1.0."""
    path = tmp_path / "model-v1.rcf"
    shutil.copy(FIXTURES / "forest-v1.rcf", path)
    return path


def _free_slot(arrays):
    """(tree, node) of a free node slot."""
    return 0, int(arrays["tree.free_stack"][0, 0])


def _leaf(arrays):
    """(tree, node) of a leaf in use."""
    return 0, int(arrays["tree.heap_leaf"][0, 0])


def _root(arrays):
    return 0, int(arrays["tree.root"][0])


def _add_point(arrays):
    arrays["tree.points"] = np.vstack([arrays["tree.points"], arrays["tree.points"][:1] + 1.0])


# Each damage is (description, function changing header and arrays in place).
DAMAGES = [
    ("free slot pointing far away", lambda h, a: a["tree.left"].__setitem__(_free_slot(a), 2**30)),
    ("free slot with a point", lambda h, a: a["tree.point"].__setitem__(_free_slot(a), 0)),
    ("free slot with a mass", lambda h, a: a["tree.leaf_mass"].__setitem__(_free_slot(a), 1)),
    ("free slot with a cut", lambda h, a: a["tree.cut_value"].__setitem__(_free_slot(a), 0.5)),
    ("free stack listing the root", lambda h, a: a["tree.free_stack"].__setitem__((0, 0), _root(a)[1])),
    ("leaf with a point past the table", lambda h, a: a["tree.point"].__setitem__(_leaf(a), len(a["tree.points"]))),
    ("leaf with a negative point", lambda h, a: a["tree.point"].__setitem__(_leaf(a), -2)),
    ("leaf without mass", lambda h, a: a["tree.leaf_mass"].__setitem__(_leaf(a), 0)),
    ("leaf with a huge mass", lambda h, a: a["tree.leaf_mass"].__setitem__(_leaf(a), 2**62)),
    ("leaf with a cut", lambda h, a: a["tree.cut_dim"].__setitem__(_leaf(a), 0)),
    ("leaf with a child", lambda h, a: a["tree.right"].__setitem__(_leaf(a), _root(a)[1])),
    ("leaf holding another point", lambda h, a: a["tree.point"].__setitem__(_leaf(a), int(a["tree.point"][1].max()))),
    ("internal node with a point", lambda h, a: a["tree.point"].__setitem__(_root(a), 0)),
    ("internal node with a mass", lambda h, a: a["tree.leaf_mass"].__setitem__(_root(a), 1)),
    ("cut dimension past the points'", lambda h, a: a["tree.cut_dim"].__setitem__(_root(a), 4)),
    ("a child that is the root", lambda h, a: a["tree.right"].__setitem__(_root(a), _root(a)[1])),
    ("both children the same", lambda h, a: a["tree.right"].__setitem__(_root(a), a["tree.left"][_root(a)])),
    ("root out of range", lambda h, a: a["tree.root"].__setitem__(0, 2**30)),
    ("a point in no tree", lambda h, a: _add_point(a)),
    ("a point beyond the bound", lambda h, a: a["tree.points"].__setitem__((0, 0), 2e30)),
    ("NaN in a point", lambda h, a: a["tree.points"].__setitem__((0, 0), np.nan)),
    ("points of another dimension", lambda h, a: a.__setitem__("tree.points", a["tree.points"][:, :3].copy())),
    ("NaN cut value", lambda h, a: a["tree.cut_value"].__setitem__(_root(a), np.nan)),
    ("NaN heap weight", lambda h, a: a["tree.heap_weight"].__setitem__((0, 3), np.nan)),
    ("heap leaf that is no leaf", lambda h, a: a["tree.heap_leaf"].__setitem__((0, 3), _root(a)[1])),
    ("NaN in the stream tail", lambda h, a: a["tail"].__setitem__((0, 0), np.nan)),
    ("version true", lambda h, a: h.__setitem__("version", True)),
    ("version 1 with version 2 arrays", lambda h, a: h.__setitem__("version", 1)),
    ("columns as a string", lambda h, a: h["params"].__setitem__("columns", "ab")),
    ("columns as numbers", lambda h, a: h["params"].__setitem__("columns", [1, 2])),
    ("points_seen as text", lambda h, a: h["params"].__setitem__("points_seen", "60")),
    ("time_decay overflowing", lambda h, a: h["params"].__setitem__("time_decay", 1e306)),
    ("8 TiB of trees", lambda h, a: h["params"].__setitem__("num_trees", 2**40)),
    ("params as a list", lambda h, a: h.__setitem__("params", [1])),
    ("a tree array as float", lambda h, a: a.__setitem__("tree.left", a["tree.left"].astype(float))),
    ("a missing array", lambda h, a: a.pop("tree.leaf_mass")),
    ("a missing point table", lambda h, a: a.pop("tree.points")),
]

# The same for a version 1 file, which stores every tree array.
DAMAGES_V1 = [
    ("free slot pointing far away", lambda h, a: a["tree.left"].__setitem__(_free_slot(a), 2**30)),
    ("free slot with a parent", lambda h, a: a["tree.parent"].__setitem__(_free_slot(a), 0)),
    ("free slot with a box", lambda h, a: a["tree.box_max"].__setitem__((*_free_slot(a), 0), 1.0)),
    ("huge leaf range_sum", lambda h, a: a["tree.range_sum"].__setitem__(_leaf(a), 1e300)),
    ("a box that is not its children's", lambda h, a: a["tree.box_max"].__setitem__((*_root(a), 0), 99.0)),
    ("NaN cut value", lambda h, a: a["tree.cut_value"].__setitem__(_root(a), np.nan)),
    ("NaN heap weight", lambda h, a: a["tree.heap_weight"].__setitem__((0, 3), np.nan)),
    ("NaN in the stream tail", lambda h, a: a["tail"].__setitem__((0, 0), np.nan)),
    ("version 2 with version 1 arrays", lambda h, a: h.__setitem__("version", 2)),
    ("a tree array as float", lambda h, a: a.__setitem__("tree.left", a["tree.left"].astype(float))),
    ("a missing array", lambda h, a: a.pop("tree.mass")),
]


def _refused_after(path, damage):
    header, arrays = _members(path)
    damage(header, arrays)
    _rewrite(path, header, arrays)
    with pytest.raises(ValueError, match="model"):
        Forest.load(path)


def test_the_saved_files_load_undamaged(saved, saved_v1):
    for path in (saved, saved_v1):
        _rewrite(path, *_members(path))
        Forest.load(path)


@pytest.mark.parametrize("damage", [d for _, d in DAMAGES], ids=[name for name, _ in DAMAGES])
def test_a_damaged_model_file_is_refused(saved, damage):
    _refused_after(saved, damage)


@pytest.mark.parametrize("damage", [d for _, d in DAMAGES_V1], ids=[name for name, _ in DAMAGES_V1])
def test_a_damaged_version_1_model_file_is_refused(saved_v1, damage):
    _refused_after(saved_v1, damage)


def test_deeply_nested_json_in_the_header_is_refused(saved):
    with zipfile.ZipFile(saved, "w") as archive:
        archive.writestr("rcforest.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="not an rcforest model file"):
        Forest.load(saved)


def test_an_npz_posing_as_an_npy_member_is_refused(saved):
    header, arrays = _members(saved)
    buffer = io.BytesIO()
    np.savez(buffer, a=arrays.pop("tail"))
    _rewrite(saved, header, arrays, extra=[("tail.npy", buffer.getvalue())])
    with pytest.raises(ValueError, match="tail.npy is not a plain .npy array"):
        Forest.load(saved)


def test_an_object_array_member_is_refused_without_unpickling(saved):
    header, arrays = _members(saved)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    del arrays["tail"]
    _rewrite(saved, header, arrays, extra=[("tail.npy", buffer.getvalue())])
    with pytest.raises(ValueError, match="not plain numbers"):
        Forest.load(saved)


def _npy_header(shape):
    """The header of a float64 ``.npy`` array of ``shape``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _write_bomb(archive, name, shape):
    """Add a deflated member ``name`` declaring ``shape`` and holding that many zero bytes."""
    with archive.open(name, "w", force_zip64=True) as member:
        member.write(_npy_header(shape))
        for _ in range(int(np.prod(shape)) * 8 >> 20):
            member.write(bytes(1 << 20))


def test_a_zip_bomb_member_is_never_decompressed(saved):
    # 200 MB of zeros in an unused member and in a used member of the wrong
    # shape: neither is decompressed, and the load stays far below 200 MB.
    bomb = saved.with_name("bomb.rcf")
    header, arrays = _members(saved)
    del arrays["tail"]
    _rewrite(bomb, header, arrays)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        _write_bomb(archive, "junk.npy", (25 << 20,))
        _write_bomb(archive, "tail.npy", (25 << 19, 2))
    assert bomb.stat().st_size < 2_000_000
    out = _bounded(
        f"""
        import resource
        from rcforest import Forest
        Forest.load({str(saved)!r})
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        try:
            Forest.load({str(bomb)!r})
        except ValueError as error:
            print("refused", error)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    lines = out.splitlines()
    assert "refused" in lines[1] and "array tail has shape (13107200, 2)" in lines[1], out
    assert int(lines[2]) - int(lines[0]) < 20_000  # KiB: far below the 200 MB the members hold


def test_a_detector_file_reads_only_the_forest_members_it_uses(tmp_path):
    from rcforest import ThresholdedForest

    detector = ThresholdedForest(random_state=0)
    detector.run(np.sin(np.arange(400) / 5))
    path = tmp_path / "detector.zip"
    detector.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("forest/unused.npy", b"not an array")  # would be refused if it were read
    restored = ThresholdedForest.load(path)
    assert restored.forest_.points_seen_ == detector.forest_.points_seen_


def test_a_header_declaring_8_tib_is_refused(saved):
    header, arrays = _members(saved)
    header["params"]["num_trees"] = 2**40
    _rewrite(saved, header, arrays)
    with pytest.raises(ValueError, match="more than half of this machine's memory"):
        Forest.load(saved)


@pytest.mark.parametrize("name", ["tree.points", "tree.cut_value"])
def test_a_member_declaring_8_tib_is_refused_before_reading(saved, name):
    header, arrays = _members(saved)
    del arrays[name]
    _rewrite(saved, header, arrays, extra=[(f"{name}.npy", _npy_header((2**40,)) + bytes(64))])
    with pytest.raises(ValueError, match=name):
        Forest.load(saved)


def test_the_format_reads_only_the_bytes_it_is_allowed(saved):
    _, arrays, _ = _format.read(str(saved), _state.READ_VERSIONS, budget=100)
    with pytest.raises(ValueError, match="more than the 100 left"):
        arrays["tree.points"]


FUZZ = """
import json, sys, zipfile, io
import numpy as np
import pandas as pd
from rcforest import Forest, _kernels

path, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
with zipfile.ZipFile(path) as archive:
    header = json.loads(archive.read("rcforest.json"))
    arrays = {n[:-4]: np.load(io.BytesIO(archive.read(n))) for n in archive.namelist() if n.endswith(".npy")}
original = open(path, "rb").read()
points = rng.normal(size=(40, 2))
extreme = [-1, 0, 1, 2**30, -(2**31), 2**31 - 1, np.nan, np.inf, -np.inf, 1e308, 5e-324, 0.5]
outcome = {"loaded": 0, "refused": 0}
for trial in range(count):
    target = f"{path}.{trial}"
    if trial % 3 == 0:  # flip bytes of the file itself
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        open(target, "wb").write(bytes(data))
    else:  # change one element of one array, in a well-formed file
        mutated = {k: v.copy() for k, v in arrays.items()}
        name = sorted(mutated)[int(rng.integers(0, len(mutated)))]
        flat = mutated[name].reshape(-1)
        value = extreme[int(rng.integers(0, len(extreme)))]
        if flat.dtype.kind in "iu":
            value = 1 if isinstance(value, float) and not np.isfinite(value) else value
            info = np.iinfo(flat.dtype)
            value = int(min(max(int(value) if float(value) == int(value) else 1, info.min), info.max))
        flat[int(rng.integers(0, flat.size))] = value
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr("rcforest.json", json.dumps(header))
            for k, v in mutated.items():
                buffer = io.BytesIO()
                np.save(buffer, v)
                archive.writestr(f"{k}.npy", buffer.getvalue())
    try:
        forest = Forest.load(target)
    except ValueError:
        outcome["refused"] += 1
        continue
    outcome["loaded"] += 1
    # A model that loads must work: scores are finite and the trees stay valid.
    # (The first row of a batch makes no shingle of two rows: its score is NaN.)
    assert np.isfinite(forest.score(points)[1:]).all(), trial
    assert np.isfinite(forest.codisp(points[:5])[1:]).all(), trial
    forest.update(points)
    failures = np.empty(forest.num_trees, np.int64)
    _kernels.check_trees(forest._trees, failures)
    assert not failures.any(), trial
print(json.dumps(outcome))
"""


@pytest.mark.parametrize("version", [2, 1])
def test_every_mutated_model_file_loads_into_a_working_model_or_is_refused(saved, saved_v1, version):
    path = saved if version == 2 else saved_v1
    out = _bounded(FUZZ.replace("sys.argv[1], int(sys.argv[2]), int(sys.argv[3])", f"{str(path)!r}, 0, 600"))
    outcome = json.loads(out.splitlines()[-1])
    assert outcome["refused"] > 300 and outcome["loaded"] > 10, outcome


# ------------------------------------------------------------ atomic saves


def _fail_writes_after(limit, monkeypatch):
    """Make file writes fail (like a full disk) once ``limit`` bytes are written."""
    real = os.fdopen
    written = [0]

    class Full(io.RawIOBase):
        def __init__(self, stream):
            self._stream = stream

        def writable(self):
            return True

        def write(self, data):
            written[0] += len(data)
            if written[0] > limit:
                raise OSError(28, "No space left on device")
            return self._stream.write(data)

        def fileno(self):
            return self._stream.fileno()

        def close(self):
            self._stream.close()
            super().close()

    def fdopen(fd, mode="r", *args, **kwargs):
        stream = real(fd, mode, *args, **kwargs)
        return io.BufferedWriter(Full(stream)) if "w" in mode else stream

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_failed_forest_save_keeps_the_previous_file(saved, monkeypatch):
    before = saved.read_bytes()
    bigger = Forest(num_trees=5, sample_size=64, random_state=1).fit(np.random.default_rng(1).normal(size=(300, 4)))
    _fail_writes_after(2000, monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        bigger.save(saved)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]  # no temporary file left behind
    Forest.load(saved)


def test_a_failed_detector_save_keeps_the_previous_file(tmp_path, monkeypatch):
    from rcforest import ThresholdedForest

    path = tmp_path / "detector.rcf"
    detector = ThresholdedForest(num_trees=10, sample_size=32)
    detector.process(np.sin(np.arange(300) / 5))
    detector.save(path)
    before = path.read_bytes()
    detector.process(np.sin(np.arange(300) / 5))
    _fail_writes_after(2000, monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        detector.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_a_save_replaces_the_file_and_keeps_the_usual_permissions(saved):
    forest = _small_forest().update(np.zeros((3, 2)))
    forest.save(saved)
    assert Forest.load(saved).points_seen_ == forest.points_seen_
    mask = os.umask(0)
    os.umask(mask)
    assert saved.stat().st_mode & 0o777 == 0o666 & ~mask


def test_saving_onto_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        _small_forest().save(tmp_path)


# --------------------------------------------------------------- parameters


def test_time_decay_is_bounded():
    with pytest.raises(ValueError, match="time_decay must be at most 1e"):
        Forest(time_decay=1e306)
    Forest(time_decay=1e6)


def test_a_huge_time_decay_keeps_the_latest_points():
    forest = Forest(num_trees=5, sample_size=8, time_decay=1e6, random_state=0)
    forest.update(np.arange(100.0)[:, None])
    kept = {float(leaf_of(forest._trees, t, leaf)[0]) for t in range(5) for leaf in forest._trees.heap_leaf[t]}
    assert kept == {float(v) for v in range(92, 100)}


@pytest.mark.parametrize(
    "kwargs",
    [{"num_trees": 10_000_000}, {"sample_size": 1_000_000_000}, {"num_trees": 100_000, "shingle_size": 100_000}],
)
def test_a_forest_too_big_for_memory_is_refused_with_the_limit(kwargs):
    with pytest.raises(ValueError, match=r"GiB, more than half of this machine's memory \("):
        Forest(**kwargs)


def test_too_many_features_for_memory_are_refused_before_allocating():
    forest = Forest(num_trees=10_000, sample_size=256)  # 330 MB of trees for one feature
    with pytest.raises(ValueError, match="more than half of this machine's memory"):
        forest.fit(np.zeros((2, 1000)))  # 82 GB for a thousand


# ------------------------------------------------------------ command line


def _cli(args, cwd, timeout=TIMEOUT):
    """Run ``rcforest`` as a program with a timeout; return (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "rcforest.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return done.returncode, done.stdout, done.stderr


def _one_line_error(code, err, *phrases):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err


@pytest.fixture
def series_csv(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("value\n" + "\n".join(str(v) for v in np.sin(np.arange(200) / 5).round(3)) + "\n")
    return path


@pytest.mark.parametrize(
    "option, phrase",
    [
        (["--num-trees", "10000000"], "more than half of this machine's memory"),
        (["--sample-size", "1000000000"], "more than half of this machine's memory"),
        (["--sample-size", "2000000000"], "sample_size must be between 1 and"),
    ],
)
def test_sizes_beyond_memory_are_refused_in_one_line(series_csv, tmp_path, option, phrase):
    _one_line_error(*_cli(["fit", series_csv, "-o", tmp_path / "m.rcf", *option], tmp_path)[::2], phrase)


def test_a_full_disk_is_one_line_and_the_previous_output_stays(series_csv, tmp_path):
    _one_line_error(*_cli(["score", series_csv, "-q", "--num-trees", "5", "-o", "/dev/full"], tmp_path)[::2], "space")
    _one_line_error(*_cli(["fit", series_csv, "-q", "-o", "/dev/full"], tmp_path)[::2], "not a regular file")
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_device_or_a_pipe_as_input_is_refused_not_read(tmp_path, device):
    if device == "fifo":
        device = tmp_path / "fifo"
        os.mkfifo(device)
    _one_line_error(*_cli(["score", device], tmp_path, timeout=120)[::2], "not a regular file")


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("value\n1,012\n2\n3\n", 'quote values that hold commas, such as "1,012"'),
        ("value\n1\n2\n1,012\n3\n", "Expected 1 fields in line 4, saw 2"),
        ("value\n1\n2\n" + "9" * 400 + "\n4\n", "beyond the range of float64 on data row 3"),
    ],
    ids=["comma in the first row", "comma in a later row", "400-digit integer"],
)
def test_a_malformed_csv_is_refused_in_one_line(tmp_path, text, phrase):
    (tmp_path / "in.csv").write_text(text)
    _one_line_error(*_cli(["score", "in.csv", "--num-trees", "5"], tmp_path)[::2], phrase)


def test_a_blank_cell_in_a_one_column_csv_is_not_dropped(tmp_path):
    (tmp_path / "in.csv").write_text("value\n" + "\n".join(["1", "2", "", "4"] * 20) + "\n")
    _one_line_error(*_cli(["score", "in.csv", "--num-trees", "5"], tmp_path)[::2], "an empty value on data row 3")
    code, out, err = _cli(["score", "in.csv", "--num-trees", "5", "--sample-size", "8", "--stream", "-q"], tmp_path)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1 + 80  # header and every row, the blank ones included


def test_a_port_out_of_range_is_a_usage_error(tmp_path):
    code, _, err = _cli(["serve", tmp_path, "--port", "70000"], tmp_path)
    assert code == 2 and "invalid port 70000" in err and "Traceback" not in err


# ----------------------------------------------------------- rcforest train


def _train_layout(root, config=None):
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data" / "train").mkdir(parents=True)
    hyperparameters = {"feature_dim": "1", "num_samples_per_tree": "64", "num_trees": "50"}
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    if config is not None:
        (root / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))
    return root / "input" / "data" / "train"


def _train(root, timeout=120):
    return _cli(["train", "--ml-root", root], root, timeout=timeout)


def test_train_ends_on_symlink_loops(tmp_path):
    channel = _train_layout(tmp_path)
    (channel / "train.csv").write_text("\n".join(map(str, range(100))) + "\n")
    (channel / "a").mkdir()
    os.symlink(".", channel / "loop1")
    os.symlink("..", channel / "a" / "loop2")
    code, out, err = _train(tmp_path)
    assert code == 0, err
    assert (tmp_path / "model" / "model.rcf").is_file()


def test_train_refuses_a_fifo_without_reading_it(tmp_path):
    channel = _train_layout(tmp_path)
    os.mkfifo(channel / "train.csv")
    code, _, err = _train(tmp_path)
    _one_line_error(code, err, "not a regular file")
    assert "not a regular file" in (tmp_path / "output" / "failure").read_text()


def test_train_refuses_links_leaving_the_channel_without_echoing_them(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    root = tmp_path / "ml"
    channel = _train_layout(root)
    os.symlink(secret, channel / "train.csv")
    code, out, err = _train(root)
    _one_line_error(code, err, "links outside the channel folder")
    failure = (root / "output" / "failure").read_text()
    assert "SECRET" not in out + err + failure and "links outside" in failure


def test_train_reports_the_real_error_when_output_is_a_file(tmp_path):
    _train_layout(tmp_path)
    (tmp_path / "output").write_text("not a folder")
    code, _, err = _train(tmp_path)
    _one_line_error(code, err, "channel train has no data files")
    assert "File exists" not in err


@pytest.mark.parametrize(
    "config_file, text, phrase",
    [
        ("hyperparameters.json", "[" * 100_000 + "]" * 100_000, "hyperparameters.json at"),
        ("inputdataconfig.json", json.dumps({"train": {"ContentType": 5}}), "ContentType must be a string"),
    ],
    ids=["nested hyperparameters", "ContentType a number"],
)
def test_train_refuses_bad_configuration_in_one_line(tmp_path, config_file, text, phrase):
    channel = _train_layout(tmp_path)
    (channel / "train.csv").write_text("1\n2\n3\n")
    (tmp_path / "input" / "config" / config_file).write_text(text)
    _one_line_error(*_train(tmp_path)[::2], phrase)


# ------------------------------------------------------------- silent lies


def test_masked_entries_are_not_used_as_data():
    values = np.ma.masked_array(np.arange(100.0), mask=np.arange(100) == 50)
    with pytest.raises(ValueError, match="1 masked entries"):
        Forest(num_trees=5, sample_size=8).fit(values)
    unmasked = np.ma.masked_array(np.arange(100.0))
    forest = Forest(num_trees=5, sample_size=8, random_state=0)
    assert np.array_equal(forest.fit(unmasked).score(unmasked), forest.score(np.arange(100.0)))


def test_the_detector_imputes_masked_entries_as_missing():
    from rcforest import ThresholdedForest

    values = np.sin(np.arange(300) / 5)
    masked = np.ma.masked_array(values.copy(), mask=np.arange(300) == 250)
    masked.data[250] = 1e6  # hidden by the mask: must not be seen
    nan = values.copy()
    nan[250] = np.nan
    params = {"num_trees": 10, "sample_size": 32}
    assert ThresholdedForest(**params).run(masked).equals(ThresholdedForest(**params).run(nan))


@pytest.mark.parametrize("dtype", ["datetime64[s]", "timedelta64[ms]"])
def test_dates_and_durations_are_not_numbers(dtype):
    with pytest.raises(TypeError, match="dates or durations"):
        Forest(num_trees=5, sample_size=8).fit(np.arange(100).astype(dtype))


def test_a_detector_shingle_is_at_most_the_first_checkpoint():
    from rcforest import ThresholdedForest

    with pytest.raises(ValueError, match="shingle_size must be between 1 and 128"):
        ThresholdedForest(shingle_size=129)
    detector = ThresholdedForest(shingle_size=128, num_trees=10, sample_size=32)
    assert len(detector.run(np.sin(np.arange(300) / 5))) == 300


def test_integer_and_string_keys_keep_separate_detectors(tmp_path):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    from rcforest import ThresholdedForest
    from rcforest.dask import fit_score_by_key

    rows = 150
    frame = pd.DataFrame(
        {
            "entity": pd.Series([1] * rows + ["1"] * rows, dtype=object),
            "timestamp": list(range(rows)) * 2,
            "value": np.r_[np.sin(np.arange(rows) / 3), 5 + np.cos(np.arange(rows) / 3)],
        }
    )
    with dask.config.set({"dataframe.convert-string": False, "scheduler": "sync"}):
        out = fit_score_by_key(
            dd.from_pandas(frame, npartitions=2),
            columns=["value"],
            state_out=str(tmp_path),
            num_trees=10,
            sample_size=32,
        ).compute()
    assert sorted(os.listdir(tmp_path)) == ["1.rcft", "int=1.rcft"]
    assert out["entity"].map(type).value_counts().to_dict() == {int: rows, str: rows}
    assert ThresholdedForest.load(tmp_path / "int=1.rcft").rows_seen_ == rows


def test_an_output_folder_that_is_a_file_is_named_as_such(series_csv, tmp_path):
    (tmp_path / "taken").write_text("a file")
    for command in (["fit", series_csv, "-q", "-o", "taken/m.rcf"], ["score", series_csv, "-q", "-o", "taken/s.csv"]):
        _one_line_error(*_cli(command, tmp_path)[::2], "directory taken is a file, not a directory")
