"""What the detector decides does not depend on the units of the series: the same alerts under ``a * x + b``."""

import numpy as np
import pytest

from rcforest.detector.preprocess import MAX_READING, SCALE_FLOOR, Preprocessor, spread_of
from rcforest.thresholded import ThresholdedForest


def _seasonal(n=1200, noise=0.3, seed=0):
    """``20 + 5 sin(2 pi t / 48)`` plus Gaussian noise, with a dip of 6 at row 700 (the issue's reproducer)."""
    t = np.arange(n)
    series = 20 + 5 * np.sin(2 * np.pi * t / 48) + noise * np.random.default_rng(seed).normal(size=n)
    series[700] -= 6
    return series


def _alerts(series):
    return np.flatnonzero(ThresholdedForest().run(series)["grade"].to_numpy() > 0).tolist()


@pytest.fixture(scope="module")
def reference_alerts():
    alerts = _alerts(_seasonal())
    assert alerts == [700]
    return alerts


# |a| from 1e-15 to 1e15, offsets up to 1e12, both signs. An offset keeps the signal only where float64 still
# resolves it: a * noise must be many steps of float64 at b's magnitude (1e12 has steps of 1.2e-4).
AFFINE = [
    (1e-15, 0.0),
    (-1e-15, 0.0),
    (1e15, 0.0),
    (-1e15, 0.0),
    (1.0, 1e12),
    (-1.0, 1e12),
    (1e3, -1e12),
    (-3.7e-6, 1e3),
    (2.5e-10, -7.0),
    (6e9, 4e11),
]


@pytest.mark.parametrize("a, b", AFFINE)
def test_an_affine_map_of_the_series_gives_the_same_alerts(reference_alerts, a, b):
    series = a * _seasonal() + b
    assert np.abs(series).max() <= MAX_READING
    # Every alert row and every quiet row is compared. A negative a mirrors the series (the dip becomes a spike):
    # the forest's cuts, drawn uniformly across each box, and the deviation from the expected value, taken in
    # magnitude, treat both sides alike. The forest is not bit-identical under the map (its inputs differ by
    # rounding, up to 4e-4 of the noise at an offset of 1e12), so the dip is one that no rounding makes borderline.
    assert _alerts(series) == reference_alerts


@pytest.mark.parametrize("a, b", [(1e-15, 0.0), (1e19, 0.0), (1.0, 1e12)])
def test_the_issue_reproducer_is_caught_at_any_scale(a, b):
    # Before, the normalising scale was at least 1e-9 times max(|mean|, 1): 1e-15 and an offset of 1e12 buried the
    # dip in that floor; readings were clipped at 1e20, and 1e19 * 20 is beyond.
    assert _alerts(a * _seasonal(seed=1) + b) == [700]


def test_the_normalising_scale_is_measured_from_the_series():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(200, 1))
    # The spread itself, whatever the magnitude and offset.
    for a, b in [(1.0, 0.0), (1e-300, 0.0), (1e20, 0.0), (1.0, 1e12)]:
        assert spread_of(a * noise + b)[0] == pytest.approx(a * noise.std(), rel=1e-3)
    # A flat column is rounding at its own magnitude; an all-zero column has no unit and gets 1.
    assert spread_of(np.full((200, 1), 3e-200))[0] == SCALE_FLOOR * 3e-200
    assert spread_of(np.full((200, 1), -4e12))[0] == SCALE_FLOOR * 4e12
    assert spread_of(np.zeros((200, 1)))[0] == 1.0


def test_transformed_values_stay_within_the_forest_bound_after_a_flat_history():
    preprocessor = Preprocessor()
    flat = np.full((200, 1), 1e-300)
    preprocessor.fit(flat, 0, 8)
    values = np.concatenate([flat, [[MAX_READING], [-MAX_READING]]])
    points = preprocessor.points(values, 200)
    assert np.isfinite(points).all() and np.abs(points).max() <= 2 * MAX_READING


@pytest.mark.parametrize("b", [0.0, 1e12])
def test_a_missing_first_reading_takes_the_first_reading_not_zero(tmp_path, b):
    """Nothing is known of a missing first reading: it takes the first reading's value, in the series' units."""
    series = _seasonal() + b
    series[0] = np.nan
    detector = ThresholdedForest()
    head = detector.run(series[:3])
    assert head["imputed"].tolist() == [True, False, False]
    assert detector._history[0, 0] == series[1]
    assert _alerts(series) == [700]


def test_readings_missing_until_the_first_checkpoint_are_kept_unknown_and_saved(tmp_path):
    detector = ThresholdedForest()
    detector.run([np.nan] * 5)
    assert np.isnan(detector._history).all()
    detector.save(tmp_path / "d.rcf")
    loaded = ThresholdedForest.load(tmp_path / "d.rcf")
    tail = _seasonal()[:200] + 1e6
    assert loaded.run(tail).equals(detector.run(tail))
    assert (detector._history[:5] == tail[0]).all()  # back-filled by the first reading


def test_a_series_flat_until_the_first_checkpoint_is_refitted_once_it_varies():
    """A flat start gives the scale its floor; the first checkpoint that sees variation refits the transform."""
    series = _seasonal(2000)
    series[:300] = 20.0
    detector = ThresholdedForest(period=48)
    detector.run(series[:256])
    assert detector._preprocessor.scale[0] < 1e-9  # fitted at 128 rows on the flat run: the floor
    detector.run(series[256:])
    assert detector._preprocessor.scale[0] == pytest.approx(spread_of(series[-4096:, None])[0], rel=0.5)
    alerts = [
        np.flatnonzero(ThresholdedForest(period=48).run(a * series + b)["grade"].to_numpy() > 0).tolist()
        for a, b in [(1.0, 0.0), (1e-9, 0.0), (1.0, 1e12)]
    ]
    assert alerts[1] == alerts[0] and alerts[2] == alerts[0]
