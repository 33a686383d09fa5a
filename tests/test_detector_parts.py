"""The detector's parts on their own: the thresholder, the alert policy and the preprocessor."""

import math

import numpy as np
import pytest

from rcforest.detector.alerts import (
    ALERT_MEMORY,
    ESCALATION,
    OUTRANKED,
    REPEAT,
    REPEAT_MEMORY,
    STRONG,
    WEAK_DEVIATION,
    WEAK_GRADE,
    AlertPolicy,
)
from rcforest.detector.preprocess import Preprocessor, shingle_size_for
from rcforest.detector.thresholder import (
    INITIAL_THRESHOLD,
    LIKELIHOOD_GRADE,
    LIKELIHOOD_WARMUP,
    LIKELIHOOD_Z,
    MIN_GRADE,
    RAMP,
    SHORT_WINDOW,
    Thresholder,
)


def _explanation(deviation, actual=10.0, expected=0.0):
    return {"deviation": deviation, "actual": actual, "expected_value": expected, "column": 0, "residual": 1.0}


def test_thresholder_ramps_in_then_follows_mean_and_deviation():
    thresholder = Thresholder(z_factor=3.0, min_threshold=0.5, horizon=100)
    assert thresholder.threshold() == INITIAL_THRESHOLD
    rng = np.random.default_rng(0)
    scores = 1 + 0.1 * rng.normal(size=2000)
    for score in scores:
        thresholder.learn(score)
    assert thresholder.count == 2000 > RAMP
    assert thresholder.threshold() == pytest.approx(thresholder.mean + 3 * math.sqrt(thresholder.var))
    assert thresholder.threshold() == pytest.approx(1.3, abs=0.06)
    # One extreme score is clipped when learned: the threshold barely moves.
    before = thresholder.threshold()
    thresholder.learn(1e6)
    assert thresholder.threshold() < before + 0.1
    assert thresholder.grade(before, before) == 0.0
    assert 0 < thresholder.grade(before + 0.01, before) < thresholder.grade(before + 0.1, before) <= 1.0


def test_likelihood_flags_a_sustained_rise_while_the_statistics_are_young():
    thresholder = Thresholder(z_factor=3.0, min_threshold=0.5, horizon=1000)
    rng = np.random.default_rng(1)
    for score in 1 + 0.1 * rng.normal(size=LIKELIHOOD_WARMUP - 1):
        thresholder.learn(score)
    assert thresholder.likelihood(5.0) == 0.0  # still warming up
    for score in 1 + 0.1 * rng.normal(size=200):
        thresholder.learn(score)
    # One high score barely moves the average of the last SHORT_WINDOW; a run of moderately high ones does.
    spread = math.sqrt(thresholder.average_var)
    lone = thresholder.average_mean + SHORT_WINDOW * LIKELIHOOD_Z * spread * 0.9
    assert thresholder.likelihood(lone) == 0.0
    state = thresholder.state()
    for _ in range(SHORT_WINDOW - 1):
        thresholder.learn(thresholder.average_mean + 3 * LIKELIHOOD_Z * spread)
    grade = thresholder.likelihood(thresholder.average_mean + 3 * LIKELIHOOD_Z * spread)
    assert MIN_GRADE < grade <= MIN_GRADE + LIKELIHOOD_GRADE
    # The state round-trips; a state saved without the likelihood (format version 1) starts it afresh.
    copy = Thresholder(3.0, 0.5, 1000)
    copy.restore(state)
    assert copy.state() == state
    old = Thresholder(3.0, 0.5, 1000)
    old.restore({"mean": state["mean"], "var": state["var"], "count": state["count"]})
    assert old.averages == 0 and old.likelihood(100.0) == 0.0
    # Once the statistics have seen a horizon of scores, the threshold alone decides.
    for score in 1 + 0.1 * rng.normal(size=1000):
        thresholder.learn(score)
    assert thresholder.likelihood(100.0) == 0.0


def test_a_likely_anomaly_needs_a_larger_deviation_and_skips_the_after_shock_bar():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    assert policy.decide(1.0, 3.0, 8, lambda: _explanation(9.0))[0] > 0
    for _ in range(10):
        policy.decide(0.0, 0.5, 8, lambda: _explanation(9.0))
    assert policy.bar() > 1
    below = WEAK_DEVIATION * 5.0 - 0.1
    assert policy.decide(0.0, 0.9, 8, lambda: _explanation(below, actual=30.0), likely=0.2) == (0.0, None)
    alert, explanation = policy.decide(0.0, 0.9, 8, lambda: _explanation(below + 0.2, actual=30.0), likely=0.2)
    assert alert >= 0.2 and explanation is not None
    assert policy.active and policy.bar() == 1.0


def test_a_weak_crossing_needs_a_larger_deviation():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    below = WEAK_DEVIATION * 5.0 - 0.1
    assert policy.decide(WEAK_GRADE / 2, 1.01, 8, lambda: _explanation(below)) == (0.0, None)
    assert policy.decide(WEAK_GRADE, 1.1, 8, lambda: _explanation(below))[0] > 0


def test_one_alert_per_anomaly_and_small_deviations_ignored():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    asked = []

    def explain(deviation):
        def run():
            asked.append(deviation)
            return _explanation(deviation)

        return run

    assert policy.decide(0.5, 1.5, 8, explain(6.0))[0] > 0  # reported
    for _ in range(5):  # the same anomaly goes on: not reported again, not even explained
        assert policy.decide(0.5, 1.5, 8, explain(6.0)) == (0.0, None)
    assert asked == [6.0]
    for _ in range(8):  # a shingle of quiet rows ends it
        policy.decide(0.0, 0.9, 8, explain(6.0))
    assert not policy.active
    assert policy.decide(0.5, 1.0, 8, explain(2.0)) == (0.0, None)  # deviation below min_deviation


def test_a_strong_score_is_reported_without_a_large_deviation():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    assert policy.decide(0.9, STRONG - 0.1, 8, lambda: _explanation(2.0))[0] == 0.0
    assert policy.decide(1.0, STRONG, 8, lambda: _explanation(2.0))[0] == 1.0


def test_after_an_alert_a_new_anomaly_must_be_about_as_strong():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    assert policy.decide(1.0, 3.0, 8, lambda: _explanation(9.0))[0] > 0
    for _ in range(10):
        policy.decide(0.0, 0.5, 8, lambda: _explanation(9.0))
    assert not policy.active
    bar = policy.bar()
    assert bar == pytest.approx(1 + 2 * math.exp(-10 / ALERT_MEMORY))
    assert policy.decide(0.6, bar - 0.1, 8, lambda: _explanation(9.0, actual=30.0))[0] == 0.0  # an after-shock
    assert policy.decide(1.0, bar + 0.5, 8, lambda: _explanation(9.0, actual=30.0))[0] > 0  # stronger: a new anomaly


def test_an_anomaly_clearly_worse_than_reported_is_reported_again_after_a_shingle():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    # First reported weakly: score grade 0.1, deviation 6 -> grade 0.1.
    assert policy.decide(0.1, 1.05, 8, lambda: _explanation(6.0)) == (0.1, _explanation(6.0))
    # Within the shingle, a far larger departure is part of the same report.
    for _ in range(7):
        assert policy.decide(0.2, 1.1, 8, lambda: _explanation(13.0, actual=20.0))[0] == 0.0
    # A shingle after the report, a row that would be graded ESCALATION more is reported again,
    # by its deviation as much as by its score.
    assert policy.decide(0.2, 1.1, 8, lambda: _explanation(6.0 + 10 * (ESCALATION - 0.01)))[0] == 0.0
    alert, _ = policy.decide(0.2, 1.1, 8, lambda: _explanation(13.0, actual=20.0))
    assert alert == pytest.approx(0.8) and policy.reported == alert and policy.since == 0
    # Reported at 0.8, it cannot get clearly worse: the rows are not even explained.
    for _ in range(20):
        assert policy.decide(1.0, 2.0, 8, lambda: pytest.fail("explained"))[0] == 0.0


def test_a_new_anomaly_repeating_a_reported_departure_is_not_reported():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)

    def anomaly(actual, expected=0.0, quiet=8):
        alert = policy.decide(1.0, 2.0, 8, lambda: _explanation(9.0, actual, expected))[0]
        for _ in range(quiet + ALERT_MEMORY * 4):  # the anomaly ends and the after-shock bar decays
            policy.decide(0.0, 0.5, 8, lambda: pytest.fail("explained"))
        return alert

    assert anomaly(10.0) > 0
    # The same departure, to within REPEAT typical residuals in value and in expected value: routine.
    assert anomaly(10.0 + 0.9 * REPEAT, 0.9 * REPEAT) == 0.0
    # A departure to another value, or from another expected value, is news.
    assert anomaly(10.0 + 1.1 * REPEAT) > 0
    assert anomaly(10.0, -1.1 * REPEAT) > 0
    # Each repeat refreshes the memory; a departure not seen for REPEAT_MEMORY rows is forgotten.
    # (Each call above takes `rows`; the first departure, seen again by the second call, is still remembered.)
    rows = 1 + 8 + ALERT_MEMORY * 4
    assert [age for age, *_ in policy.state()["memory"]] == [3 * rows - 1, 2 * rows - 1, rows - 1]
    assert 4 * rows - 1 > REPEAT_MEMORY
    for _ in range(REPEAT_MEMORY):
        policy.decide(0.0, 0.5, 8, lambda: pytest.fail("explained"))
    assert policy.state()["memory"] == []
    assert anomaly(10.0) > 0


def test_a_new_anomaly_outranked_by_recent_reports_is_not_reported():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    quiet = 8 + ALERT_MEMORY * 2  # the anomaly ends and the after-shock bar decays below 1.9 (all within REPEAT_MEMORY)

    def anomaly(strength, actual, likely=0.0):
        grade = 0.0 if likely else 1.0
        alert = policy.decide(grade, strength, 8, lambda: _explanation(9.0, actual), likely)[0]
        for _ in range(quiet):
            policy.decide(0.0, 0.5, 8, lambda: pytest.fail("explained"))
        return alert

    # OUTRANKED anomalies of strength 2 (distinct departures, so none repeats another) are all reported.
    assert all(anomaly(2.0, 10.0 * (k + 1)) > 0 for k in range(OUTRANKED))
    assert [strength for _, strength in policy.state()["reports"]] == [2.0] * OUTRANKED
    # A weaker one, or a likely anomaly below the threshold (it counts as 1), is outranked by them all.
    assert anomaly(1.9, 100.0) == 0.0
    assert anomaly(0.9, 110.0, likely=0.3) == 0.0
    # A stronger one is news: the bound thins alerts to the strongest, it never silences a larger anomaly.
    assert anomaly(2.5, 120.0) > 0
    # An anomaly continued (reported again as clearly worse) is not a new report.
    assert len(policy.reports) == OUTRANKED + 1
    # Reports older than REPEAT_MEMORY rows no longer count.
    for _ in range(REPEAT_MEMORY):
        policy.decide(0.0, 0.5, 8, lambda: pytest.fail("explained"))
    assert policy.state()["reports"] == []
    assert anomaly(1.9, 130.0) > 0


def test_alert_policy_state_round_trips_and_reads_the_first_versions():
    policy = AlertPolicy(min_deviation=5.0, ignore_relative=0.0)
    policy.decide(1.0, 2.0, 8, lambda: _explanation(9.0))
    assert len(policy.memory) == 1
    copy = AlertPolicy(5.0, 0.0)
    copy.restore(policy.state())
    assert copy.state() == policy.state()
    old = AlertPolicy(5.0, 0.0)
    old.restore({"active": False, "peak": 0.0, "quiet": 0, "since": 0})  # as rcforest 0.1.0 saved it
    assert old.bar() == 1.0 and old.memory == [] and old.reports == []
    # Format versions 1 to 3 kept the highest score grade of the active anomaly as "peak": it stands for the grade
    # reported.
    state = policy.state()
    del state["reported"], state["memory"]
    old.restore(dict(state, peak=0.7))
    assert old.active and old.reported == 0.7 and old.memory == []
    for bad in ([[0, 0, 1.0]], [[-1, 0, 1.0, 2.0]], [[0, 0, float("nan"), 2.0]], [[0, 0.5, 1.0, 2.0]], "x"):
        with pytest.raises((TypeError, ValueError)):
            AlertPolicy(5.0, 0.0).restore(dict(policy.state(), memory=bad))
    assert policy.state()["reports"] == [[0, 2.0]]
    for bad in ([[0]], [[-1, 2.0]], [[0, float("nan")]], [[0.5, 2.0]], "x"):
        with pytest.raises((TypeError, ValueError)):
            AlertPolicy(5.0, 0.0).restore(dict(policy.state(), reports=bad))


def test_preprocessor_reference_residual_and_imputation():
    t = np.arange(400, dtype=float)
    values = np.sin(2 * np.pi * t / 20)[:, None] + 0.01 * t[:, None]
    pre = Preprocessor("auto")
    pre.fit(values, period=20, shingle_size=shingle_size_for(20))
    assert pre.shingle_size == 20 and pre.channels == 2
    reference = pre.reference(values, 100)
    # The median of the values one to three periods back: the trend lags by two periods.
    assert np.allclose(reference[:, 0], values[100:, 0] - 0.01 * 40)
    assert pre.impute(values, 250, 0) == pytest.approx(values[250, 0] - 0.4)
    points = pre.points(values, 100)
    assert points.shape == (300, 20 * 2)
    assert shingle_size_for(0) == 8 and shingle_size_for(5) == 8 and shingle_size_for(500) == 48
