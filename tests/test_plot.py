"""The plotting helpers draw what they are given: the right points, lines, windows and labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.collections  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rcforest.plot import (  # noqa: E402
    plot_attribution,
    plot_detection,
    plot_grades,
    plot_scores,
    plot_series,
    plot_windows,
)

INDEX = pd.date_range("2024-01-01", periods=200, freq="30min")
WINDOWS = [(INDEX[40], INDEX[60]), (INDEX[150], INDEX[170])]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _scatter_points(ax):
    """Offsets of every scatter on ``ax`` (flagged points)."""
    points = [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets())]
    return np.vstack(points) if points else np.empty((0, 2))


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_series_marks_exactly_the_flagged_points_and_shades_windows():
    series = pd.Series(np.sin(np.arange(200) / 5.0), index=INDEX, name="value")
    flags = np.zeros(200, bool)
    flags[[10, 50, 155]] = True
    ax = plot_series(series, flags=flags, windows=WINDOWS, title="t")
    points = _scatter_points(ax)
    assert points.shape == (3, 2)
    np.testing.assert_allclose(points[:, 1], series.to_numpy()[[10, 50, 155]])
    assert "flagged (3)" in _legend(ax) and "labelled anomaly window" in _legend(ax)
    assert _legend(ax).count("labelled anomaly window") == 1
    assert ax.get_ylabel() == "value" and ax.get_title() == "t"


def test_windows_are_one_span_each():
    _, ax = plt.subplots()
    plot_windows(ax, WINDOWS)
    assert len(ax.patches) == 2
    assert ax.patches[0].get_label() == "labelled anomaly window"
    assert not ax.patches[1].get_label()  # one legend entry for all windows
    start, end = (ax.patches[0].get_x(), ax.patches[0].get_x() + ax.patches[0].get_width())
    assert (start, end) == pytest.approx(tuple(matplotlib.dates.date2num(list(WINDOWS[0]))))


def test_scores_flag_the_points_above_a_fixed_threshold():
    scores = np.r_[np.full(5, np.nan), np.linspace(0.5, 1.5, 195)]
    ax = plot_scores(scores, threshold=1.2)
    lines = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(lines) == 1 and lines[0].get_ydata()[0] == pytest.approx(1.2)
    above = np.nan_to_num(scores) > 1.2
    assert _scatter_points(ax).shape[0] == above.sum() > 0
    assert f"flagged ({above.sum()})" in _legend(ax)
    assert ax.get_ylabel() == "anomaly score"


def test_scores_with_a_threshold_per_row():
    scores = pd.Series(np.ones(200), index=INDEX)
    threshold = pd.Series(np.where(np.arange(200) < 100, 2.0, 0.5), index=INDEX)
    ax = plot_scores(scores, threshold=threshold)
    assert _scatter_points(ax).shape[0] == 100  # only the second half is above its threshold


def test_grades_draw_one_bar_per_graded_row():
    grades = np.zeros(200)
    grades[[3, 80, 81]] = [0.2, 1.0, 0.5]
    ax = plot_grades(pd.Series(grades, index=INDEX), windows=WINDOWS)
    (bars,) = [c.get_segments() for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(bars) == 3
    assert sorted(segment[1, 1] for segment in bars) == [0.2, 0.5, 1.0]
    assert ax.get_ylim() == (0, 1.05) and ax.get_ylabel() == "anomaly grade"
    small = plot_grades(np.where(np.arange(50) == 7, 0.02, 0.0))
    assert small.get_ylim()[1] == pytest.approx(0.05)  # small grades get a zoomed axis


def test_attribution_heatmap_signed_from_high_and_low():
    rng = np.random.default_rng(0)
    columns = ["value[t-1]", "value[t]"]
    high = pd.DataFrame(rng.random((200, 2)), index=INDEX, columns=columns)
    low = pd.DataFrame(rng.random((200, 2)), index=INDEX, columns=columns)
    ax = plot_attribution((high, low), windows=WINDOWS)
    image = ax.get_images()[0]
    np.testing.assert_allclose(image.get_array(), (high - low).to_numpy().T)
    assert image.get_cmap().name == "RdBu_r"
    assert [t.get_text() for t in ax.get_yticklabels()] == columns
    assert len(ax.figure.axes) == 2  # the colour bar


def test_attribution_heatmap_averages_long_series_into_columns():
    matrix = np.repeat(np.arange(10.0)[:, None], 100, axis=0)  # rows 0..99 hold 0, 100..199 hold 1, ...
    ax = plot_attribution(matrix, max_columns=10)
    np.testing.assert_allclose(ax.get_images()[0].get_array()[0], np.arange(10.0))


def test_attribution_from_a_series_of_arrays_and_as_a_stack():
    rows = [np.array([0.1, 0.2, 0.3]) if i % 2 else None for i in range(20)]
    ax = plot_attribution(pd.Series(rows), kind="stack", top=2)
    assert _legend(ax) == ["dim 2", "dim 1", "other"]
    with pytest.raises(ValueError, match="kind"):
        plot_attribution(np.ones((3, 2)), kind="pie")


def test_flags_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="one entry per row"):
        plot_series(np.arange(10.0), flags=np.ones(9, bool))


def test_detection_figure_stacks_the_panels(tmp_path):
    series = pd.Series(np.sin(np.arange(200) / 5.0), index=INDEX, name="value")
    scores = pd.Series(np.linspace(0.5, 1.5, 200), index=INDEX)
    grades = np.where(scores > 1.4, 0.5, 0.0)
    figure = plot_detection(series, scores, threshold=1.4, grades=grades, windows=WINDOWS, title="demo")
    series_ax, score_ax, grade_ax = figure.axes
    assert _scatter_points(series_ax).shape[0] == _scatter_points(score_ax).shape[0] == (grades > 0).sum()
    assert grade_ax.get_xlabel() == "time" and figure._suptitle.get_text() == "demo"
    assert series_ax.get_shared_x_axes().joined(series_ax, grade_ax)
    with_attribution = plot_detection(series, scores, threshold=1.4, attribution=np.ones((200, 3)))
    assert len(with_attribution.axes) == 4  # series, scores, heat map and its colour bar
    later = plot_detection(series, scores[47:], threshold=1.4)  # shingle scores start later: aligned by index
    np.testing.assert_array_equal(np.isnan(later.axes[1].get_lines()[0].get_ydata()), np.arange(200) < 47)
    path = tmp_path / "detection.png"
    figure.savefig(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
