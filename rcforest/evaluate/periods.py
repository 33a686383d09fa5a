"""Generated series with a known seasonal period (or none), for checking period estimation.

Each case is a seeded, deterministic draw of ``n`` rows: a daily shape
(one to three harmonics with random phases) of ``period`` rows, on one of
these backgrounds (:data:`PERIOD_KINDS`):

- ``plain``: the shape times 1.5 to 6 noise spreads, AR(1) noise of unit
  spread (coefficient 0 to 0.6);
- ``counts``: Poisson counts whose rate follows the shape, mean rate 0.3 to 8;
- ``heteroscedastic``: the noise spread follows the shape, 0.25 at its
  trough to 2 at its peak;
- ``trend``: a linear trend of 3 to 15 seasonal amplitudes over the series;
- ``level_shifts``: one to three steps of 3 to 10 noise spreads;
- ``drift``: the period drifts linearly by -20% to +25% over the series
  (the truth at a row is the period there);
- ``none_ar``, ``none_walk``, ``none_counts``, ``none_shifts``: no period
  at all (AR(1) noise with coefficient 0 to 0.95, a random walk, Poisson
  counts of a constant rate, white noise with level shifts): the estimate
  must be 0.

:func:`period_track` replays a series through the detector's checkpoints
(:data:`~rcforest.detector.period.CHECKPOINTS`) as
:class:`~rcforest.detector.ThresholdedForest` estimates the period, on the
last :data:`~rcforest.detector.period.HISTORY` rows, keeping the period in
use between checkpoints.
"""

import zlib

import numpy as np

from rcforest.detector.period import HISTORY, estimate_period_robust, next_checkpoint
from rcforest.evaluate.synthetic import _ar_noise

__all__ = ["PERIOD_KINDS", "NO_PERIOD_KINDS", "period_case", "period_track", "true_period"]

PERIOD_KINDS = ("plain", "counts", "heteroscedastic", "trend", "level_shifts", "drift")
"""Backgrounds with a period."""

NO_PERIOD_KINDS = ("none_ar", "none_walk", "none_counts", "none_shifts")
"""Backgrounds without one."""


def _rng(kind, period, seed):
    return np.random.default_rng([zlib.crc32(kind.encode()), int(period), int(seed)])


def _shape(rng, phase):
    """A periodic shape of unit spread: one to three harmonics with random weights and phases."""
    harmonics = int(rng.integers(1, 4))
    weights = np.r_[1.0, rng.uniform(0.1, 0.5, harmonics - 1)]
    shifts = rng.uniform(0, 2 * np.pi, harmonics)
    total = sum(w * np.sin((k + 1) * phase + s) for k, (w, s) in enumerate(zip(weights, shifts)))
    return total / np.sqrt(0.5 * np.sum(weights**2))


def _drift_ratio(rng):
    return rng.uniform(0.8, 0.95) if rng.random() < 0.5 else rng.uniform(1.1, 1.25)


def true_period(kind, period, seed, n, row):
    """The period at ``row`` of :func:`period_case`'s series (0 for the kinds without one)."""
    if kind in NO_PERIOD_KINDS:
        return 0.0
    if kind != "drift":
        return float(period)
    ratio = _drift_ratio(_rng(kind, period, seed))
    return period * (1 + (ratio - 1) * row / n)


def period_case(kind, period, seed=0, n=HISTORY + 2048):
    """One series of ``kind`` with seasonal ``period`` rows (ignored by the kinds without a period).

    Parameters
    ----------
    kind : str
        One of :data:`PERIOD_KINDS` or :data:`NO_PERIOD_KINDS`.
    period : int
    seed : int, default 0
    n : int, default 6144

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> x = period_case("counts", 288, seed=1)
    >>> bool(np.all(x == np.round(x))), x.shape
    (True, (6144,))
    """
    if kind not in PERIOD_KINDS + NO_PERIOD_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {list(PERIOD_KINDS + NO_PERIOD_KINDS)}")
    rng = _rng(kind, period, seed)
    t = np.arange(n, dtype=float)
    if kind == "drift":
        ratio = _drift_ratio(rng)
        slope = (ratio - 1) / n
        phase = 2 * np.pi * np.log1p(slope * t) / (slope * period)
    else:
        phase = 2 * np.pi * t / max(period, 1)
    if kind == "none_ar":
        return rng.uniform(-10, 10) + _ar_noise(rng, n, 0.95)
    if kind == "none_walk":
        return np.cumsum(rng.normal(size=n))
    if kind == "none_counts":
        return rng.poisson(rng.uniform(0.3, 8.0), size=n).astype(float)
    if kind == "none_shifts":
        steps = np.zeros(n)
        for at in rng.integers(n // 10, n, size=int(rng.integers(1, 4))):
            steps[at:] += rng.uniform(3, 10) * rng.choice([-1.0, 1.0])
        return steps + rng.normal(size=n)
    shape = _shape(rng, phase)
    amplitude = rng.uniform(1.5, 6.0)
    noise = _ar_noise(rng, n)
    if kind == "counts":
        rate = rng.uniform(0.3, 8.0) * (0.1 + 1.8 * (shape - shape.min()) / np.ptp(shape))
        return rng.poisson(rate).astype(float)
    spread = 1.0
    if kind == "heteroscedastic":
        spread = 0.25 + 1.75 * (shape - shape.min()) / np.ptp(shape)
    values = rng.uniform(0, 50) + amplitude * shape + spread * noise
    if kind == "trend":
        values += rng.uniform(3, 15) * amplitude * rng.choice([-1.0, 1.0]) * t / n
    if kind == "level_shifts":
        for at in rng.integers(n // 10, n, size=int(rng.integers(1, 4))):
            values[at:] += rng.uniform(3, 10) * rng.choice([-1.0, 1.0])
    return values


def period_track(values, estimate=estimate_period_robust):
    """The period in use after each checkpoint, as the detector estimates it on its history.

    Parameters
    ----------
    values : ndarray of shape (n,)
    estimate : callable, default :func:`~rcforest.detector.period.estimate_period_robust`
        Called as ``estimate(history, current=period)``.

    Returns
    -------
    list of (int, int)
        ``(rows, period)`` per checkpoint: the rows seen and the period in use after it.
    """
    values = np.asarray(values, dtype=float)
    track, period, rows = [], 0, next_checkpoint(0)
    while rows <= values.shape[0]:
        history = values[max(0, rows - HISTORY) : rows, None]
        period = int(estimate(history, current=period))
        track.append((rows, period))
        rows = next_checkpoint(rows)
    return track
