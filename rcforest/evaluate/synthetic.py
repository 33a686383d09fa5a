"""Generated series with labelled anomalies, one family per property of real data, for stress-testing detectors.

Every series is a seeded, deterministic draw: the same property, seed and
``clean`` flag give the same values, timestamps and labels on any machine.
A series is a level, a daily seasonal shape (one to three harmonics, random
phases), autocorrelated noise of unit spread (AR(1)) and, unless it is
*clean*, one to three injected anomalies. One row is ``1 day / period``
apart, the period (rows per day) drawn from 24, 48, 96, 144 and 288; the
length is drawn between 1,200 and 3,600 rows, and nothing depends on it but
the labels' width.

Properties of the series (the *background*; the anomalies are spikes or dips
of 6 to 10 local noise spreads):

- ``scale``: everything multiplied by ``10**u``, ``u`` uniform in [-12, 15];
- ``offset``: a constant of magnitude ``10**u``, ``u`` uniform in [6, 12], added;
- ``trend``: a linear trend rising (or falling) by 3 to 15 seasonal amplitudes;
- ``period``: the period drifts linearly to 0.6 to 1.6 times its first value
  (a chirp); the drift is not an anomaly;
- ``heteroscedastic``: the noise spread follows the seasonal level, from
  0.25 at the trough to 2 at the peak (anomalies sized by the local spread);
- ``counts``: Poisson counts with a low seasonal rate (mean 0.3 to 8);
  anomalies are spikes of ``6..10 * sqrt(peak rate) + 1`` counts;
- ``flat``: two to five long runs (half a day to three days, and 48 to 288
  rows at least) at the series' floor, as an idle meter reads; the runs are
  not anomalies;
- ``missing``: one to four stretches (a quarter period to two periods) of
  NaN readings, which the detector imputes; not anomalies;
- ``gap``: one to four stretches of rows dropped from the regular timestamped
  grid, so timestamps jump and the seasonal phase with them; not anomalies;
- ``jitter``: a daily spike at a fixed time of day (8 to 15 spreads high),
  moved by up to 20 minutes either way each day, is normal; the anomaly is
  a spike or dip at least a quarter of a day away from it.

Kinds of anomaly, each a property of its own on a plain background:

- ``spike`` / ``dip``: one to three rows up / down by 6 to 10 spreads;
- ``level_shift``: a persistent step of 6 to 10 spreads, up or down; the
  anomaly is its start (the new level is normal afterwards);
- ``burst``: three to six spikes (5 to 9 spreads) within a short stretch,
  labelled as one anomaly starting at the first;
- ``contextual``: a stretch of a sixth to a third of a period, centred on
  the daily peak, replaced by the values of half a period away: normal
  values at the wrong phase (seasonal amplitude 4 to 8 spreads);
- ``variance``: from its start on, the noise spread is 3 to 5 times larger;
  the anomaly is its start.

Labels follow NAB: the windows together cover 10% of the series' rows,
split equally over its anomalies (``floor(0.1 * n / k)`` rows each), each
window centred on its anomaly's first row; anomalies lie between 20% and 90%
of the series (after NAB's probation of 15%), their windows apart, and every
injected row lies inside its window. Clean series have no anomalies and no
windows: every alert on them is false.

Examples
--------
>>> s = make_series("spike", seed=0)
>>> s.name, len(s.values) == len(s.timestamps), len(s.windows) == len(s.anomalies) > 0
('spike/spike-0.csv', True, True)
"""

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "ANOMALY_KINDS",
    "BACKGROUNDS",
    "PROPERTIES",
    "Series",
    "label_windows",
    "make_series",
    "stress_suite",
]

BACKGROUNDS = (
    "scale",
    "offset",
    "trend",
    "period",
    "heteroscedastic",
    "counts",
    "flat",
    "missing",
    "gap",
    "jitter",
)
"""Properties of the series itself; their anomalies are spikes and dips."""

ANOMALY_KINDS = ("spike", "dip", "level_shift", "burst", "contextual", "variance")
"""Kinds of anomaly, each a property of its own on a plain seasonal background."""

PROPERTIES = BACKGROUNDS + ANOMALY_KINDS + ("plain",)
"""Every property; ``plain`` (a seasonal series with noise) only comes clean."""

PERIODS = (24, 48, 96, 144, 288)
"""Rows per day the series are sampled at (1 hour down to 5 minutes)."""

LENGTHS = (1200, 3600)
"""Range of a series' length in rows."""

WINDOW_FRACTION = 0.1
"""NAB's rule: the windows of a series cover this fraction of its rows."""

PLACEMENT = (0.2, 0.9)
"""Anomalies start within these fractions of the series (NAB's probation is the first 15%)."""

MAGNITUDE = (6.0, 10.0)
"""Spikes, dips and shifts measure this many local noise spreads."""

JITTER_MINUTES = 20
"""The daily spike of ``jitter`` series moves by up to this many minutes either way."""

START = pd.Timestamp("2026-01-05")
"""First timestamp of every series."""


@dataclass
class Series:
    """One generated series and its labels.

    Attributes
    ----------
    name : str
        ``"<property>/<property>-<seed>[-clean].csv"``, a key in NAB's style.
    property : str
    seed : int
    clean : bool
        True when no anomaly was injected.
    values : ndarray of float, shape (n,)
        The readings (NaN for missing ones).
    timestamps : DatetimeIndex, shape (n,)
    anomalies : list of (str, int, int)
        Per anomaly: its kind and the first and last rows injected.
    windows : list of (int, int)
        Per anomaly, the inclusive rows of its label window.
    info : dict
        What was drawn: period, scale, offset, ... (for reports).
    """

    name: str
    property: str
    seed: int
    clean: bool
    values: np.ndarray
    timestamps: pd.DatetimeIndex
    anomalies: list = field(default_factory=list)
    windows: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def frame(self):
        """The series as NAB stores one: a DataFrame with ``timestamp`` and ``value`` columns."""
        return pd.DataFrame({"timestamp": self.timestamps, "value": self.values})

    def window_times(self):
        """The windows as NAB's ``combined_windows.json`` holds them: ``[[start, end], ...]`` timestamps."""
        return [[str(self.timestamps[a]), str(self.timestamps[b])] for a, b in self.windows]

    def label_mask(self):
        """Boolean mask of the rows inside the windows."""
        mask = np.zeros(len(self.values), bool)
        for first, last in self.windows:
            mask[first : last + 1] = True
        return mask


def label_windows(starts, num_rows):
    """NAB's windows for anomalies starting at ``starts``: 10% of the rows split equally, centred on each start.

    Parameters
    ----------
    starts : sequence of int
        The first row of each anomaly.
    num_rows : int

    Returns
    -------
    list of (int, int)
        Inclusive ``(first, last)`` rows, clipped to the series.

    Examples
    --------
    >>> label_windows([500], 2000)
    [(400, 599)]
    """
    if not len(starts):
        return []
    width = max(1, int(WINDOW_FRACTION * num_rows / len(starts)))
    return [(max(0, s - width // 2), min(num_rows - 1, s - width // 2 + width - 1)) for s in starts]


def _rng(prop, seed, clean):
    """The generator of one series: a stable function of its property, seed and cleanliness."""
    return np.random.default_rng([zlib.crc32(prop.encode()), int(seed), int(clean)])


class _Season:
    """A daily shape of unit spread: one to three harmonics with random weights and phases, a function of phase."""

    def __init__(self, rng):
        harmonics = int(rng.integers(1, 4))
        self.weights = np.r_[1.0, rng.uniform(0.1, 0.5, harmonics - 1)]
        self.shifts = rng.uniform(0, 2 * np.pi, harmonics)
        self.norm = np.sqrt(0.5 * np.sum(self.weights**2))

    def __call__(self, phase):
        phase = np.asarray(phase, dtype=float)
        total = sum(w * np.sin((k + 1) * phase + s) for k, (w, s) in enumerate(zip(self.weights, self.shifts)))
        return total / self.norm

    def peak(self):
        """The phase in [0, 2 pi) of the shape's highest point."""
        grid = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
        return float(grid[np.argmax(self(grid))])


def _ar_noise(rng, n, high=0.6):
    """AR(1) noise of unit marginal spread, its coefficient uniform in [0, ``high``]."""
    phi = rng.uniform(0.0, high)
    innovations = rng.normal(size=n) * np.sqrt(1 - phi * phi)
    noise = np.empty(n)
    noise[0] = rng.normal()
    for i in range(1, n):
        noise[i] = phi * noise[i - 1] + innovations[i]
    return noise


def _stretches(rng, n, count, low, high, margin=0):
    """``count`` non-overlapping stretches of ``low..high`` rows within 5%..95% of ``n`` rows, as a row mask."""
    mask = np.zeros(n, bool)
    for _ in range(count):
        for _ in range(100):
            length = int(rng.integers(low, high + 1))
            first = int(rng.integers(int(0.05 * n), max(int(0.95 * n) - length, int(0.05 * n) + 1)))
            if not mask[max(0, first - margin) : first + length + margin].any():
                mask[first : first + length] = True
                break
    return mask


def _place(rng, num_rows, count, width, allowed):
    """``count`` anomaly starts within the placement range, more than a window apart, on rows ``allowed`` holds."""
    low, high = int(PLACEMENT[0] * num_rows), int(PLACEMENT[1] * num_rows)
    candidates = np.arange(low, high)[allowed[low:high]]
    for _ in range(1000):
        starts = np.sort(rng.choice(candidates, size=count, replace=False))
        if count == 1 or np.diff(starts).min() > width + 1:
            return [int(s) for s in starts]
    raise RuntimeError("could not place the anomalies apart")  # not reached with these ranges


def _grid(rng, prop, n, period):
    """Positions of the rows on the regular time grid: consecutive, or with dropped stretches for ``gap``."""
    grid = np.arange(n)
    dropped = []
    if prop == "gap":
        cuts = np.sort(rng.choice(np.arange(int(0.1 * n), int(0.95 * n)), size=int(rng.integers(1, 5)), replace=False))
        for cut in cuts.tolist():
            length = int(rng.integers(max(period // 4, 1), 2 * period + 1))
            grid[cut:] += length
            dropped.append(length)
    return grid, dropped


def _phase(rng, prop, grid, period):
    """The seasonal phase (radians) of each row: ``2 pi t / period``, or a chirp for ``period``."""
    if prop != "period":
        return 2 * np.pi * grid / period, {}
    ratio = rng.uniform(0.6, 0.85) if rng.random() < 0.5 else rng.uniform(1.2, 1.6)
    span = float(grid[-1] + 1)
    # The period grows linearly, period * (1 + (ratio - 1) t / span): the phase is the integral of its inverse.
    slope = (ratio - 1) / span
    return 2 * np.pi * np.log1p(slope * grid) / (slope * period), {"final_period": round(period * ratio, 1)}


def _kinds(rng, prop, count):
    """The kinds of the anomalies of a series of property ``prop``."""
    if prop in ANOMALY_KINDS:
        return [prop] * count
    if prop == "counts":
        return ["spike"] * count
    return [str(k) for k in rng.choice(["spike", "dip"], size=count)]


def make_series(prop, seed=0, clean=False):
    """One generated series of property ``prop``: its values, timestamps, anomalies and NAB-style windows.

    Parameters
    ----------
    prop : str
        One of :data:`PROPERTIES`.
    seed : int, default 0
        The draw; the same ``prop``, ``seed`` and ``clean`` give the same series.
    clean : bool, default False
        Without anomalies (and windows). ``plain`` series come clean only.

    Returns
    -------
    Series

    Examples
    --------
    >>> s = make_series("counts", seed=1)
    >>> bool(np.all(s.values == np.round(s.values))), s.info["period"] in PERIODS
    (True, True)
    """
    if prop not in PROPERTIES:
        raise ValueError(f"unknown property {prop!r}; choose one of {list(PROPERTIES)}")
    if prop == "plain" and not clean:
        raise ValueError("plain series come clean only: pass clean=True (the kinds of anomaly are properties)")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    rng = _rng(prop, seed, clean)
    n = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    periods = {"jitter": (96, 144, 288), "contextual": (24, 48, 96)}.get(prop, PERIODS)
    period = int(rng.choice(periods))
    grid, dropped = _grid(rng, prop, n, period)
    phase, info = _phase(rng, prop, grid, period)
    info = {"period": period, "rows": n, **info}
    if dropped:
        info["dropped"] = dropped
    shape = _Season(rng)
    amplitude = rng.uniform(4.0, 8.0) if prop == "contextual" else rng.uniform(2.0, 8.0)
    info["amplitude"] = round(float(amplitude), 3)
    level = rng.uniform(0.0, 50.0)
    season = amplitude * shape(phase)
    noise = _ar_noise(rng, n)
    spread = np.ones(n)
    if prop == "heteroscedastic":
        unit = (season - season.min()) / (np.ptp(season) or 1.0)
        spread = 0.25 + 1.75 * unit
    expected = level + season
    if prop == "trend":
        rise = rng.uniform(3.0, 15.0) * amplitude * rng.choice([-1.0, 1.0])
        expected = expected + rise * grid / grid[-1]
        info["rise"] = round(float(rise), 3)
    allowed = np.ones(n, bool)
    if prop == "jitter":
        minutes = 1440 / period
        at = int(rng.integers(0, period))
        height, width = rng.uniform(8.0, 15.0), int(rng.integers(1, 3))
        for day in range(n // period + 1):
            row = day * period + at + int(round(rng.uniform(-JITTER_MINUTES, JITTER_MINUTES) / minutes))
            if 0 <= row < n:
                expected[row : row + width] += height
        distance = np.abs((grid - at + period // 2) % period - period // 2)
        allowed &= distance >= period // 4
        info.update(daily_spike_row=at, daily_spike_height=round(float(height), 3))
    if prop == "counts":
        rate = rng.uniform(0.3, 8.0) * (0.1 + 1.8 * (season - season.min()) / (np.ptp(season) or 1.0))
        values = rng.poisson(rate).astype(float)
        spread = np.full(n, np.sqrt(rate.max()))
        info["mean_rate"] = round(float(rate.mean()), 3)
    else:
        values = expected + spread * noise
    if prop == "flat":
        runs = _stretches(rng, n, int(rng.integers(2, 6)), max(period // 2, 48), max(3 * period, 288), margin=period)
        values[runs] = np.floor(values.min())
        allowed &= ~np.convolve(runs, np.ones(7), "same").astype(bool)
        info["flat_rows"] = int(runs.sum())
    missing = np.zeros(n, bool)
    if prop == "missing":
        missing = _stretches(rng, n, int(rng.integers(1, 5)), max(period // 4, 4), 2 * period, margin=period)
        allowed &= ~np.convolve(missing, np.ones(7), "same").astype(bool)
        info["missing_rows"] = int(missing.sum())
    if prop == "contextual":
        # The stretch is centred on the daily peak: its rows take the values of the trough, half a day away.
        peak = shape.peak() / (2 * np.pi) * period
        allowed &= (grid + _contextual_width(period) // 2 - int(round(peak))) % period == 0
    anomalies, windows = [], []
    draft = {"spread": spread, "noise": noise, "amplitude": amplitude, "shape": shape, "phase": phase}
    draft.update(period=period, integer=prop == "counts")
    if not clean:
        count = 1 if prop == "variance" else int(rng.integers(1, 3 if prop == "level_shift" else 4))
        window = int(WINDOW_FRACTION * n / count)
        starts = _place(rng, n, count, window, allowed)
        for kind, start in zip(_kinds(rng, prop, count), starts):
            last = _inject(rng, values, kind, start, window // 2, draft)
            anomalies.append((kind, start, last))
        windows = label_windows(starts, n)
    if prop == "scale":
        factor = 10.0 ** rng.uniform(-12.0, 15.0)
        values = values * factor
        info["scale"] = float(factor)
    if prop == "offset":
        shift = rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(6.0, 12.0)
        values = values + shift
        info["offset"] = float(shift)
    values[missing] = np.nan
    step = pd.Timedelta(days=1) / period
    timestamps = pd.DatetimeIndex(START + grid * step)
    name = f"{prop}/{prop}-{seed}{'-clean' if clean else ''}.csv"
    return Series(name, prop, seed, bool(clean), values, timestamps, anomalies, windows, info)


def _contextual_width(period):
    """Rows of a contextual anomaly: a sixth of the period, at least 2."""
    return max(period // 6, 2)


def _inject(rng, values, kind, start, half, draft):
    """Inject one anomaly of ``kind`` at row ``start`` into ``values`` (``half`` a window); return its last row.

    ``draft`` holds the series' parts: noise ``spread`` and ``noise`` per row, the seasonal ``amplitude``,
    ``shape`` and ``phase``, the ``period`` and whether values are ``integer``.
    """
    spread, noise = draft["spread"], draft["noise"]
    size = rng.uniform(*MAGNITUDE) * spread[start]
    if draft["integer"]:
        size = np.ceil(size + 1)
    if kind in ("spike", "dip"):
        width = int(rng.choice([1, 1, 1, 2, 3]))
        values[start : start + width] += size if kind == "spike" else -size
        return start + width - 1
    if kind == "level_shift":
        values[start:] += size * rng.choice([-1.0, 1.0])
        return start
    if kind == "burst":
        count = int(rng.integers(3, 7))
        span = int(rng.integers(2 * count, max(2 * count + 1, half)))
        rows = np.r_[start, start + np.sort(rng.choice(np.arange(1, span), size=count - 1, replace=False))]
        values[rows] += rng.uniform(5.0, 9.0, count) * spread[rows]
        return int(rows[-1])
    if kind == "contextual":
        rows = np.arange(start, start + min(_contextual_width(draft["period"]), half - 1))
        phase, shape = draft["phase"][rows], draft["shape"]
        values[rows] += draft["amplitude"] * (shape(phase + np.pi) - shape(phase))
        return int(rows[-1])
    if kind == "variance":
        values[start:] += (rng.uniform(3.0, 5.0) - 1) * spread[start:] * noise[start:]
        return start
    raise ValueError(f"unknown anomaly kind {kind!r}")


def stress_suite(seeds=3, clean_seeds=2, properties=PROPERTIES):
    """The stress suite: per property, ``seeds`` series with anomalies and ``clean_seeds`` clean ones.

    Clean series are drawn for the backgrounds (:data:`BACKGROUNDS`) and for
    ``plain``; the kinds of anomaly share ``plain`` as their clean background.

    Parameters
    ----------
    seeds : int, default 3
    clean_seeds : int, default 2
    properties : sequence of str, default :data:`PROPERTIES`

    Returns
    -------
    list of Series
    """
    suite = []
    for prop in properties:
        if prop != "plain":
            suite += [make_series(prop, seed) for seed in range(int(seeds))]
        if prop in BACKGROUNDS or prop == "plain":
            suite += [make_series(prop, seed, clean=True) for seed in range(int(clean_seeds))]
    return suite
