"""Point and event metrics on hand-made cases whose answers are worked out by hand."""

import numpy as np
import pandas as pd
import pytest

from rcforest.evaluate import (
    alert_events,
    point_metrics,
    precision_at_k,
    top_days,
    window_mask,
    window_metrics,
)


def test_point_metrics_by_hand():
    labels = [0, 0, 1, 1, 1, 0, 0, 0]
    alerts = [0, 1, 1, 1, 0, 0, 0, 0]
    m = point_metrics(labels, alerts)
    # tp = 2 (rows 2, 3), fp = 1 (row 1), fn = 1 (row 4), tn = 4.
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(6 / 8)


def test_point_metrics_take_grades_and_handle_no_alerts():
    m = point_metrics(np.array([0, 1, 0]), np.array([0.0, 0.7, np.nan]))
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    none = point_metrics([0, 1, 0], [0, 0, 0])
    assert (none["precision"], none["recall"], none["f1"], none["accuracy"]) == (0.0, 0.0, 0.0, 2 / 3)


def test_point_metrics_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="one value per row"):
        point_metrics([0, 1], [0, 1, 1])
    with pytest.raises(TypeError, match="booleans or numbers"):
        point_metrics(["a", "b"], [0, 1])


def test_alert_events_are_runs():
    assert alert_events([0, 1, 1, 0, 0, 1]) == [(1, 2), (5, 5)]
    assert alert_events([1, 1, 1]) == [(0, 2)]
    assert alert_events([0, 0]) == []


def test_window_metrics_by_hand():
    #         0  1  2  3  4  5  6  7  8  9 10 11
    alerts = [1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1]
    windows = [(2, 5), (8, 10)]
    m = window_metrics(alerts, windows)
    assert m["windows"] == 2
    assert m["windows_hit"] == 1
    assert m["hit"] == [True, False]
    assert m["detect_rows"] == [3, None]
    assert m["time_to_detect"] == [1, None]
    # Outside the windows: row 0, rows 6-7 (one event), row 11.
    assert m["false_positive_events"] == 3
    assert m["false_positive_spans"] == [(0, 0), (6, 7), (11, 11)]
    assert m["false_positive_rows"] == 4
    assert m["time_to_detect_time"] is None


def test_window_metrics_probation_and_alerts_straddling_a_window():
    # The run 4-7 starts inside window (2, 5) and continues outside it: rows 6-7 are one event.
    alerts = [1, 1, 0, 0, 1, 1, 1, 1, 0, 1]
    m = window_metrics(alerts, [(2, 5)], probation=2)
    assert m["false_positive_spans"] == [(6, 7), (9, 9)]
    assert m["false_positive_events"] == 2
    # A run cut by the end of probation counts from there on.
    cut = window_metrics([1, 1, 1, 0], [], probation=2)
    assert cut["false_positive_spans"] == [(2, 2)]


def test_window_metrics_with_timestamps():
    index = pd.date_range("2024-01-01", periods=48, freq="30min")
    alerts = np.zeros(48)
    alerts[[5, 30]] = 0.4
    windows = [("2024-01-01 02:00", "2024-01-01 04:00"), ("2024-01-01 20:00", "2024-01-01 22:00")]
    m = window_metrics(alerts, windows, index=index)
    assert m["hit"] == [True, False]
    assert m["time_to_detect"] == [1, None]
    assert m["time_to_detect_time"] == [pd.Timedelta("30min"), None]
    assert m["false_positive_spans"] == [(30, 30)]
    mask = window_mask(48, windows, index)
    assert mask.sum() == 10
    assert mask[4] and mask[8] and not mask[9]


def test_window_metrics_reject_bad_windows():
    with pytest.raises(ValueError, match="empty or reversed"):
        window_metrics([0, 1, 0], [(2, 1)])
    with pytest.raises(ValueError, match="probation"):
        window_metrics([0, 1, 0], [], probation=-1)


def test_precision_at_k():
    assert precision_at_k([0.9, 0.1, 0.8, 0.3], [True, False, False, True], k=2) == 0.5
    assert precision_at_k([0.9, 0.1, 0.8, 0.3], [True, False, False, True], k=4) == 0.5
    # Ties keep input order; NaN ranks last.
    assert precision_at_k([np.nan, 0.5, 0.5], [True, False, True], k=1) == 0.0
    assert precision_at_k([np.nan, 0.5, 0.5], [True, False, True], k=2) == 0.5
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k([1.0], [True], k=0)


def test_top_days_ranks_by_grade_then_score():
    index = pd.date_range("2024-01-01", periods=5 * 24, freq="h")
    grades = np.zeros(len(index))
    scores = np.ones(len(index))
    grades[30] = 0.2  # day 2
    grades[80] = 0.9  # day 4
    scores[100] = 3.0  # day 5: no grade, highest score
    scores[5] = 2.0  # day 1: no grade, second score
    windows = [("2024-01-04 00:00", "2024-01-04 23:00"), ("2024-01-05 00:00", "2024-01-05 01:00")]
    best = top_days(index, grades, scores, windows, k=3)
    assert [str(d.date()) for d in best["day"]] == ["2024-01-04", "2024-01-02", "2024-01-05"]
    assert best["in_window"].tolist() == [True, False, False]
    assert best.attrs["precision"] == pytest.approx(1 / 3)
    # Probation drops the first day from the ranking.
    later = top_days(index, grades, scores, k=5, probation=24)
    assert "2024-01-01" not in [str(d.date()) for d in later["day"]]
    assert np.isnan(later.attrs["precision"])


def test_window_metrics_takes_the_index_of_a_series():
    index = pd.date_range("2024-01-01", periods=10, freq="h")
    alerts = pd.Series([0, 0, 1, 0, 0, 0, 0, 0, 1, 0], index=index) > 0
    m = window_metrics(alerts, [(index[1], index[3])])
    assert m["windows_hit"] == 1 and m["false_positive_events"] == 1
    assert m["time_to_detect_time"] == [pd.Timedelta(hours=1)]
