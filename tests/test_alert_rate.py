"""False alerts on clean series whose noise changes with the time of day, and the noise measured at a row's phase."""

import numpy as np
import pytest

from rcforest.detector.preprocess import Preprocessor
from rcforest.evaluate.nab import probation_length
from rcforest.evaluate.synthetic import make_series
from rcforest.thresholded import ThresholdedForest


def _daily(n=2400, period=48, seed=0, quiet=0.25, loud=2.0):
    """A daily shape whose noise spread is ``quiet`` in the first half of the day and ``loud`` in the second."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    spread = np.where(t % period < period // 2, quiet, loud)
    return 20 + 5 * np.sin(2 * np.pi * t / period) + spread * rng.normal(size=n), spread


def test_the_phase_residual_measures_the_noise_where_the_row_lies():
    values, _ = _daily()
    history = values[:2048, None]
    preprocessor = Preprocessor(period=48, shingle_size=8)
    preprocessor.fit(history, 48, 8)
    quiet = preprocessor.phase_residual(history, 2028, 0)  # phase 12 of 48: quiet, and so is a shingle around it
    loud = preprocessor.phase_residual(history, 2004, 0)  # phase 36: loud
    typical = float(preprocessor.residual[0])
    assert quiet < 0.5 * typical < loud * 0.5
    assert loud > 4 * quiet
    # The same in any units.
    scaled = Preprocessor(period=48, shingle_size=8)
    scaled.fit(3e-9 * history + 1e3, 48, 8)
    assert scaled.phase_residual(3e-9 * history + 1e3, 2004, 0) == pytest.approx(3e-9 * loud, rel=1e-6)


def test_without_a_period_the_phase_residual_is_the_typical_residual():
    values, _ = _daily()
    preprocessor = Preprocessor(period=0, shingle_size=8)
    preprocessor.fit(values[:1024, None], 0, 8)
    assert preprocessor.phase_residual(values[:1024, None], 1000, 0) == preprocessor.residual[0]


def test_a_clean_series_whose_noise_follows_the_day_raises_no_false_alert():
    # The stress suite's heteroscedastic-1 clean series raised 3 false alerts when deviations were counted in one
    # typical residual for the whole day (the loud hours' noise passed the bar).
    series = make_series("heteroscedastic", 1, clean=True)
    grade = ThresholdedForest().run(series.values, timestamps=series.timestamps)["grade"].to_numpy()
    assert (grade[probation_length(grade.size) :] > 0).sum() == 0
