"""The ``score``, ``fit`` and ``demo`` commands, through ``rcforest.cli.main`` and once as a program."""

import gzip
import importlib.resources
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcforest import Forest
from rcforest.cli import main, report
from rcforest.datasets import load_nyc_taxi

SMALL = ["--num-trees", "30", "--sample-size", "64"]
SPIKE = 2500


def _series(rows=3000, seed=0):
    """A noisy sine with one spike at row SPIKE, long enough to be scored in several chunks."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    values = 10 * np.sin(2 * np.pi * t / 50) + rng.normal(0, 0.3, rows)
    if rows > SPIKE:
        values[SPIKE] += 25
    return pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-01", periods=rows, freq="30min").astype(str), "value": values.round(4)}
    )


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "data.csv"
    _series().to_csv(path, index=False)
    return path


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fail(argv, capsys, *phrases):
    """Run a command that must fail on its input: exit 2, one line on stderr, no traceback."""
    code, out, err = _run(argv, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"rcforest {argv[0]}: error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err
    return err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for command in ("score", "fit", "demo"):
        assert command in out


def test_score_writes_the_input_plus_scores_equal_to_the_library(csv, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code, stdout, err = _run(["score", csv, "--shingle-size", 4, *SMALL, "-o", out], capsys)
    assert code == 0 and stdout == ""
    assert "scored 3000 rows" in err and str(out) in err
    written = pd.read_csv(out)
    original = pd.read_csv(csv)
    assert list(written.columns) == ["timestamp", "value", "score"]
    pd.testing.assert_frame_equal(written[["timestamp", "value"]], original)
    # The CLI scores in chunks; the result must be the library's, shingles across chunk edges included.
    forest = Forest(num_trees=30, sample_size=64, shingle_size=4, random_state=0).fit(original[["value"]])
    expected = forest.score(original["value"].to_numpy())
    np.testing.assert_allclose(written["score"].to_numpy(), expected, rtol=1e-12)
    assert written["score"].isna().sum() == 3
    # The shingles that hold the spike score highest.
    assert SPIKE <= written["score"].idxmax() <= SPIKE + 3
    assert written["score"].max() > 1.5 * written["score"].drop(range(SPIKE, SPIKE + 4)).max()


def test_score_without_output_writes_csv_to_stdout(csv, capsys):
    code, stdout, err = _run(["score", csv, *SMALL, "--quiet"], capsys)
    assert code == 0 and err == ""
    lines = stdout.splitlines()
    assert lines[0] == "timestamp,value,score" and len(lines) == 3001
    assert int(np.argmax([float(line.rsplit(",", 1)[1]) for line in lines[1:]])) == SPIKE


def test_score_selects_columns(tmp_path, capsys):
    frame = _series(1000)
    frame["other"] = np.cos(np.arange(1000) / 7.0)
    frame["note"] = "text"
    path = tmp_path / "multi.csv"
    frame.to_csv(path, index=False)
    code, stdout, _ = _run(["score", path, "--column", "value", "--column", "other", *SMALL, "-q"], capsys)
    assert code == 0
    written = pd.read_csv(pd.io.common.StringIO(stdout))
    assert list(written.columns) == ["timestamp", "value", "other", "note", "score"]
    expected = Forest(num_trees=30, sample_size=64, random_state=0).fit(frame[["value", "other"]])
    np.testing.assert_allclose(written["score"], expected.score(frame[["value", "other"]]).to_numpy())


def test_fit_then_score_with_the_model(csv, tmp_path, capsys):
    model = tmp_path / "model.rcf"
    code, _, err = _run(["fit", csv, "--shingle-size", 4, *SMALL, "-o", model], capsys)
    assert code == 0 and model.is_file() and "wrote" in err
    fresh = _series(600, seed=1)
    fresh.loc[300, "value"] -= 30
    fresh["extra"] = 1.0  # the model's own column is picked without --column
    new = tmp_path / "new.csv"
    fresh.to_csv(new, index=False)
    out = tmp_path / "scores.csv"
    code, _, _ = _run(["score", "--model", model, new, "-o", out, "-q"], capsys)
    assert code == 0
    written = pd.read_csv(out)
    expected = Forest.load(model).score(fresh["value"].to_numpy())
    np.testing.assert_allclose(written["score"], expected, rtol=1e-12)
    assert 300 <= written["score"].idxmax() <= 303


def test_plot_draws_a_png(csv, tmp_path, capsys):
    image = tmp_path / "scores.png"
    code, _, err = _run(["score", csv, "--shingle-size", 4, *SMALL, "-o", tmp_path / "s.csv", "--plot", image], capsys)
    assert code == 0 and f"drew {image}" in err
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = matplotlib.image.imread(image)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "_PROGRESS_DELAY", 0)
    code, _, err = _run(["score", csv, *SMALL, "-o", tmp_path / "a.csv"], capsys)
    assert code == 0 and "scoring" not in err  # captured stderr is no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = _run(["score", csv, *SMALL, "-o", tmp_path / "b.csv"], capsys)
    assert code == 0 and "scoring:" in err and "/3.00k" in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = _run(["score", csv, *SMALL, "-o", tmp_path / "c.csv", "--quiet"], capsys)
    assert code == 0 and err == ""


# ---------------------------------------------------------------- bad input


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make", "extra", "phrases"),
    [
        (lambda d: d / "missing.csv", [], ["missing.csv does not exist"]),
        (lambda d: d, [], ["is a directory"]),
        (lambda d: _write(d / "empty.csv", ""), [], ["empty.csv is empty"]),
        (lambda d: _write(d / "header.csv", "timestamp,value\n"), [], ["has a header", "no data rows"]),
        (lambda d: _write(d / "t.csv", "time,value\n1,2\n2,3\n"), ["--column", "passengers"], ["'passengers'", "time"]),
        (lambda d: _write(d / "t.csv", "value\n1\n2\nabc\n4\n"), [], ["'abc'", "data row 3 (line 4)"]),
        (lambda d: _write(d / "t.csv", "a,value\n1,2\n2,\n"), ["--column", "value"], ["empty value", "line 3"]),
        (lambda d: _write(d / "t.csv", "value\n1\n2\n"), ["--time-column", "when"], ["time column 'when'"]),
        (lambda d: _write(d / "t.csv", "timestamp,value\nnot a date,2\n"), [], ["not dates"]),
        (lambda d: _write(d / "t.csv", "value\n1\n2\n"), ["--shingle-size", "5"], ["fewer than --shingle-size 5"]),
        (lambda d: _write(d / "t.csv", "value\n1\n2\n"), ["--num-trees", "0"], ["--num-trees must be at least 1"]),
        (lambda d: _write(d / "t.csv", "timestamp\n2024-01-01\n"), [], ["no column to score"]),
        (lambda d: _write(d / "t.csv", "date,value\n2024-01-01,1\n"), [], ["--time-column date"]),
    ],
    ids=[
        "missing-file",
        "directory",
        "empty-file",
        "header-only",
        "missing-column",
        "non-numeric",
        "empty-cell",
        "missing-time-column",
        "bad-dates",
        "too-short",
        "no-trees",
        "only-time",
        "unnamed-time-column",
    ],
)
@pytest.mark.parametrize("command", ["score", "fit"])
def test_bad_input_exits_2_with_one_clear_line(tmp_path, capsys, command, make, extra, phrases):
    path = make(tmp_path)
    _fail([command, path, *extra, "-o", tmp_path / "out"], capsys, *phrases)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def model(csv, tmp_path, capsys):
    path = tmp_path / "model.rcf"
    assert main(["fit", str(csv), *SMALL, "-o", str(path), "-q"]) == 0
    capsys.readouterr()
    return path


def test_model_with_the_wrong_feature_count(model, tmp_path, capsys):
    new = _write(tmp_path / "two.csv", "a,b\n1,2\n3,4\n")
    _fail(["score", "--model", model, new], capsys, "fitted on 1 column(s) (value)", "two.csv (a, b)")


def test_model_from_another_format_version(model, tmp_path, capsys):
    old = tmp_path / "old.rcf"
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(old, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "rcforest.json":
                header = json.loads(content)
                header["version"], header["rcforest"] = 99, "9.0.0"
                content = json.dumps(header)
            target.writestr(name, content)
    err = _fail(["score", "--model", old, tmp_path / "model.rcf"], capsys, "version 99", "9.0.0")
    assert "refit" in err


@pytest.mark.parametrize(
    ("argv_tail", "phrases"),
    [
        (["--model", "{tmp}/nope.rcf"], ["model file", "nope.rcf does not exist", "rcforest fit"]),
        (["--model", "{csv}"], ["not an rcforest model"]),
        (["--model", "{model}", "--num-trees", "10"], ["--num-trees cannot be used with --model"]),
        (["--model", "{model}", "--stream"], ["--stream cannot be used with --model"]),
    ],
    ids=["missing-model", "not-a-model", "model-and-trees", "model-and-stream"],
)
def test_bad_model_options(model, csv, tmp_path, capsys, argv_tail, phrases):
    argv = ["score", csv, *[a.format(tmp=tmp_path, csv=csv, model=model) for a in argv_tail]]
    _fail(argv, capsys, *phrases)


# ------------------------------------------------------- headers or none


def _sagemaker_csv(path, features, labels=None):
    """A training file as SageMaker's text/csv takes it: no header, the label (label_size=1) first."""
    rows = features if labels is None else np.column_stack([labels, features])
    np.savetxt(path, rows, delimiter=",")
    return path


def _features(path, label_size):
    """The features of a SageMaker CSV, read the way ``rcforest train`` reads a channel."""
    formats = pytest.importorskip("rcforest.sagemaker.formats")
    return formats.read_csv(path.read_bytes(), label_size)[0]


def test_a_one_column_file_without_header_is_all_data(tmp_path, capsys):
    """The NYC taxi values alone, one per line: no row is lost to a header."""
    values = load_nyc_taxi().series.to_numpy()
    path = _sagemaker_csv(tmp_path / "values.csv", values.reshape(-1, 1))
    model = tmp_path / "model.rcf"
    code, _, err = _run(["fit", path, *SMALL, "-o", model], capsys)
    assert code == 0, err
    assert f"read {path} without a header row (its first row is all numbers): columns named 0" in err
    assert "on 10320 rows of column 0" in err
    assert Forest.load(model).feature_names_in_ == ["0"]
    out = tmp_path / "scores.csv"
    code, _, err = _run(["score", "--model", model, path, "-o", out], capsys)
    assert code == 0 and "without a header row" in err and "scored 10320 rows" in err
    written = pd.read_csv(out)
    assert list(written.columns) == ["0", "score"] and len(written) == 10320
    np.testing.assert_array_equal(written["0"], values)
    np.testing.assert_allclose(written["score"], Forest.load(model).score(values), rtol=1e-12)


@pytest.mark.parametrize("label_size", [0, 1])
def test_a_sagemaker_training_csv(tmp_path, capsys, label_size):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 3))
    features[1500] = [6, -6, 6]
    path = _sagemaker_csv(tmp_path / "train.csv", features, rng.integers(0, 2, 2000) if label_size else None)
    columns = [str(i) for i in range(label_size, label_size + 3)]  # the label, when there is one, is column 0
    model = tmp_path / "model.rcf"
    chosen = [arg for name in columns for arg in ("--column", name)] if label_size else []
    code, _, err = _run(["fit", path, *SMALL, *chosen, "-o", model], capsys)
    assert code == 0, err
    assert "without a header row" in err and f"on 2000 rows of columns {', '.join(columns)}" in err
    expected = Forest(num_trees=30, sample_size=64, random_state=0).fit(_features(path, label_size))
    np.testing.assert_allclose(Forest.load(model).score(features), expected.score(features), rtol=1e-12)
    out = tmp_path / "scores.csv"
    code, _, err = _run(["score", "--model", model, path, "-o", out], capsys)
    assert code == 0, err
    written = pd.read_csv(out)
    assert list(written.columns) == [*[str(i) for i in range(label_size + 3)], "score"]
    np.testing.assert_allclose(written["score"], expected.score(features), rtol=1e-12)
    assert written["score"].idxmax() == 1500


def test_a_file_with_a_header_says_so(csv, capsys):
    code, _, err = _run(["score", csv, *SMALL], capsys)
    assert code == 0
    assert f"read {csv} with a header row (its first row is not all numbers): columns timestamp, value" in err


def test_header_and_no_header_force_the_reading(tmp_path, capsys):
    path = _write(tmp_path / "numbers.csv", "".join(f"{v}\n" for v in range(100, 200)))
    code, out, err = _run(["score", path, *SMALL, "--header"], capsys)
    assert code == 0 and "with a header row (--header): columns 100" in err
    assert out.splitlines()[0] == "100,score" and len(out.splitlines()) == 100
    code, out, err = _run(["score", path, *SMALL, "--no-header"], capsys)
    assert code == 0 and "without a header row (--no-header): columns named 0" in err
    assert out.splitlines()[0] == "0,score" and len(out.splitlines()) == 101
    headed = _write(tmp_path / "headed.csv", "value\n1\n2\n")
    _fail(["score", headed, "--no-header"], capsys, "non-numeric value 'value'", "line 1")
    with pytest.raises(SystemExit) as stop:
        main(["score", str(path), "--header", "--no-header"])
    assert stop.value.code == 2 and "not allowed with argument --header" in capsys.readouterr().err


# ------------------------------------------------------ streaming and demo


def test_stream_adds_grade_and_threshold(csv, tmp_path, capsys):
    pytest.importorskip("rcforest.thresholded")
    out = tmp_path / "stream.csv"
    image = tmp_path / "stream.png"
    code, _, err = _run(["score", csv, "--stream", "--shingle-size", 4, *SMALL, "-o", out, "--plot", image], capsys)
    assert code == 0, err
    written = pd.read_csv(out)
    assert list(written.columns) == ["timestamp", "value", "score", "grade", "threshold"]
    grades = written["grade"].fillna(0)
    assert ((grades >= 0) & (grades <= 1)).all()
    assert grades[SPIKE : SPIKE + 4].max() > 0, "the spike must be graded"
    assert image.read_bytes()[:4] == b"\x89PNG"


def test_stream_imputes_empty_cells_but_refuses_text(tmp_path, capsys):
    frame = _series()
    frame.loc[[100, 101, 1500], "value"] = np.nan
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "graded.csv"
    code, _, err = _run(["score", path, "--stream", "--shingle-size", 4, *SMALL, "-o", out], capsys)
    assert code == 0, err
    written = pd.read_csv(out)
    assert len(written) == len(frame) and written["value"].isna().sum() == 3
    assert written["grade"].iloc[[100, 101, 1500]].fillna(0).eq(0).all()  # imputed rows never alert
    _write(path, "value\n1\n2\nabc\n4\n")
    _fail(["score", path, "--stream"], capsys, "'abc'")


def test_demo_prints_event_metrics(tmp_path, capsys, monkeypatch):
    # The bundled copy of the data: no RCFOREST_DATA, an empty home, nothing to download.
    monkeypatch.delenv("RCFOREST_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    image = tmp_path / "demo.png"
    argv = ["demo", "--num-trees", 30, "--plot", image, "-o", tmp_path / "demo.csv"]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("NYC taxi: 10320 half-hourly passenger counts")
    events = [line.split()[0] for line in lines[3:8]]
    assert events == ["NYC", "Thanksgiving", "Christmas", "New", "January"]
    written = pd.read_csv(tmp_path / "demo.csv")
    assert len(written) == 10320 and {"timestamp", "value", "score", "grade"} <= set(written.columns)
    # The printed totals agree with the rows written.
    hit = sum("missed" not in line for line in lines[3:8])
    assert f"windows hit: {hit} of 5" in out
    assert hit >= 3, out
    assert "false positives:" in out
    assert image.read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "home" / ".cache" / "rcforest").exists()  # nothing downloaded or cached


def _local_copy(directory, window_hours=0):
    """Write the bundled series and its labels, every window ending ``window_hours`` later, to ``directory``."""
    data = importlib.resources.files("rcforest").joinpath("data")
    labels = json.loads(data.joinpath("nyc_taxi_labels.json").read_text())
    labels["windows"] = [
        [start, str(pd.Timestamp(end) + pd.Timedelta(hours=window_hours))] for start, end in labels["windows"]
    ]
    directory.mkdir()
    (directory / "nyc_taxi.csv").write_bytes(gzip.decompress(data.joinpath("nyc_taxi.csv.gz").read_bytes()))
    (directory / "nyc_taxi_labels.json").write_text(json.dumps(labels))
    return directory


@pytest.mark.parametrize("how", ["--data", "RCFOREST_DATA"])
def test_demo_reads_the_copy_given_with_data_or_rcforest_data(tmp_path, capsys, monkeypatch, how):
    # The labels of this copy close each window an hour later than NAB's: the report shows which copy was read.
    copy = _local_copy(tmp_path / "mine", window_hours=1)
    monkeypatch.setenv("RCFOREST_DATA", str(copy if how == "RCFOREST_DATA" else tmp_path / "empty"))
    argv = ["demo", "--num-trees", 10, "-q", *(["--data", copy] if how == "--data" else [])]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert "2014-10-30 15:30 .. 2014-11-03 23:30" in out  # NAB's window closes at 22:30


def test_demo_refuses_a_copy_that_is_not_nab_s(tmp_path, capsys):
    copy = _local_copy(tmp_path / "mine")
    (copy / "nyc_taxi.csv").write_bytes((copy / "nyc_taxi.csv").read_bytes().replace(b",10844\n", b",10845\n", 1))
    _fail(["demo", "--data", copy], capsys, str(copy / "nyc_taxi.csv"), "SHA-256")


def test_demo_without_data_says_where_to_put_it(tmp_path, capsys):
    err = _fail(["demo", "--data", tmp_path / "nothing-here"], capsys, "does not exist")
    assert "nyc_taxi.csv" in err


# ------------------------------------------------------------- the program


def _program():
    """The installed console script, else the module run as a program."""
    script = Path(sys.executable).parent / "rcforest"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rcforest.cli"]


def test_the_installed_program_scores_and_reports_errors(csv, tmp_path):
    out = tmp_path / "scores.csv"
    done = subprocess.run(
        [*_program(), "score", str(csv), *SMALL, "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(out)["score"].idxmax() == SPIKE
    assert "scored 3000 rows" in done.stderr
    bad = subprocess.run(
        [*_program(), "score", str(tmp_path / "nope.csv")], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"rcforest score: error: input file {tmp_path / 'nope.csv'} does not exist"
    ]


@pytest.mark.parametrize("module", ["rcforest", "rcforest.cli"])
def test_python_dash_m_runs_the_program(module):
    import rcforest

    done = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == f"rcforest {rcforest.__version__}"


# ------------------------------------------------ outputs that are inputs


def _same_bytes_after(path, action):
    before = path.read_bytes()
    action()
    return path.read_bytes() == before


@pytest.mark.parametrize("how", ["same path", "through a link", "hard link", "relative"])
@pytest.mark.parametrize("command", ["score", "fit"])
def test_an_output_onto_the_input_is_refused_and_the_input_kept(csv, tmp_path, capsys, monkeypatch, how, command):
    source = csv
    if how == "through a link":
        source = tmp_path / "link.csv"
        source.symlink_to(csv)
    elif how == "hard link":
        source = tmp_path / "hard.csv"
        source.hardlink_to(csv)
    output = csv
    if how == "relative":
        monkeypatch.chdir(tmp_path)
        output = Path(".") / csv.name
    argv = [command, source, *SMALL, "-o", output]
    assert _same_bytes_after(csv, lambda: _fail(argv, capsys, f"-o {output} is the input file", "another file name"))


def test_an_output_onto_the_model_or_the_plot_is_refused(model, csv, tmp_path, capsys):
    assert _same_bytes_after(
        model, lambda: _fail(["score", "--model", model, csv, "-o", model], capsys, "is the model file")
    )
    assert _same_bytes_after(
        csv, lambda: _fail(["score", csv, *SMALL, "--plot", csv, "-o", tmp_path / "o.csv"], capsys, "input file")
    )
    out = tmp_path / "out.csv"
    _fail(["score", csv, *SMALL, "-o", out, "--plot", out], capsys, "-o and --plot name the same file")
    assert not out.exists()


def test_a_failed_write_leaves_the_previous_output_whole(tmp_path):
    class Unprintable:
        def __str__(self):
            raise ValueError("cannot print this cell")

    out = tmp_path / "out.csv"
    out.write_text("previous,output\n1,2\n")
    frame = pd.DataFrame({"value": np.arange(50000.0), "cell": [0] * 49999 + [Unprintable()]})
    with pytest.raises(ValueError, match="cannot print"):
        report.write_csv(frame, str(out))
    assert out.read_text() == "previous,output\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary file left behind
    report.write_csv(frame.iloc[:3, :1], str(out))
    assert out.read_text() == "value\n0.0\n1.0\n2.0\n"


def test_an_output_device_is_written_as_given(csv, tmp_path):
    done = subprocess.run(
        [*_program(), "score", str(csv), *SMALL, "-q", "-o", "/dev/stdout"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "timestamp,value,score" and len(done.stdout.splitlines()) == 3001


# --------------------------------------------- a model's columns by name


@pytest.fixture
def two_column_model(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"small": rng.normal(0, 1, 500), "large": rng.normal(1000, 100, 500)})
    frame.to_csv(tmp_path / "train.csv", index=False)
    model = tmp_path / "model.rcf"
    assert main(["fit", str(tmp_path / "train.csv"), *SMALL, "-o", str(model), "-q"]) == 0
    capsys.readouterr()
    return model, frame


def test_score_with_a_model_reads_columns_by_name(two_column_model, tmp_path, capsys):
    model, frame = two_column_model
    swapped = tmp_path / "swapped.csv"
    frame[["large", "small"]].to_csv(swapped, index=False)
    out = tmp_path / "out.csv"
    code, _, err = _run(["score", "--model", model, swapped, "-o", out, "-q"], capsys)
    assert code == 0, err
    expected = Forest.load(model).score(frame[["large", "small"]])  # the library reads the frame by name too
    np.testing.assert_allclose(pd.read_csv(out)["score"], expected, rtol=1e-12)


def test_score_with_a_model_refuses_other_names_unless_chosen(two_column_model, tmp_path, capsys):
    model, frame = two_column_model
    other = tmp_path / "other.csv"
    frame.set_axis(["small", "other"], axis=1).to_csv(other, index=False)
    _fail(["score", "--model", model, other], capsys, "missing ['large']", "unexpected ['other']", "--column")
    out = tmp_path / "out.csv"
    code, _, err = _run(["score", "--model", model, other, "--column", "small", "--column", "other", "-o", out], capsys)
    assert code == 0, err  # chosen with --column: by position, as asked
    np.testing.assert_allclose(pd.read_csv(out)["score"], Forest.load(model).score(frame.to_numpy()), rtol=1e-12)
    headerless = tmp_path / "headerless.csv"
    frame.to_csv(headerless, index=False, header=False)
    code, _, err = _run(["score", "--model", model, headerless, "-o", out], capsys)
    assert code == 0 and "without a header row" in err  # no names to match: by position
    np.testing.assert_allclose(pd.read_csv(out)["score"], Forest.load(model).score(frame.to_numpy()), rtol=1e-12)
