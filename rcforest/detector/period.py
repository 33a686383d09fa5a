"""Seasonal period estimation, and the row counts at which a stream re-estimates it.

The period is read from the autocorrelation of the linearly detrended
history: a lag is a candidate when it is a prominent local maximum, above
white noise's level, and when the value one period back predicts the
series about as well as the previous value does.
"""

import numpy as np

__all__ = ["estimate_period", "estimate_period_robust", "next_checkpoint", "HISTORY", "MAX_PERIOD", "SEASONS"]

HISTORY = 4096
"""Rows of history a detector keeps, and replays when its period changes."""

SEASONS = 3
"""Periods back used by the seasonal reference (the median of the values one to three periods back)."""

MAX_PERIOD = 1024
"""Longest period considered: three periods must fit in the history."""

CHECKPOINTS = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
"""Row counts at which the period is re-estimated."""

CHECKPOINT_EVERY = 2048
"""Rows between checkpoints after the last listed one."""

MIN_STRENGTH = 0.3
"""Smallest autocorrelation that counts as periodic."""

NOISE_SIGMAS = 4.0
"""At long lags the bar rises to this many standard errors of white noise, ``NOISE_SIGMAS / sqrt(n - lag)``."""

MIN_PROMINENCE = 0.15
"""A peak must rise this far above the lowest autocorrelation between half its lag and its lag."""

SEASONAL_ERROR_RATIO = 4.0
"""A period must predict the series within this factor of the previous value's mean absolute error."""

TOLERANCE = 0.03
"""Among peaks this close to the strongest, the shortest lag wins."""

SWITCH = 0.05
"""How much a new period's autocorrelation must beat the current one's to replace it."""


MIN_RANK_PERIOD = 8
"""Shortest period accepted from the ranks."""


def _autocorrelation(values, max_lag):
    """Mean over columns of the autocorrelation of the linearly detrended columns.

    Each lag's sum is divided by its number of pairs (the unbiased
    estimator), so long periods are not penalised.
    """
    n = values.shape[0]
    time = np.arange(n) - (n - 1) / 2
    total = np.zeros(max_lag + 1)
    used = 0
    for column in values.T:
        slope = np.dot(time, column) / np.dot(time, time)
        residual = column - column.mean() - slope * time
        power = np.dot(residual, residual)
        if not power > 1e-300:
            continue
        spectrum = np.fft.rfft(residual, 2 * n)
        acf = np.fft.irfft(spectrum * np.conj(spectrum), 2 * n)[: max_lag + 1] / power
        total += acf * n / (n - np.arange(max_lag + 1))
        used += 1
    return total / used if used else total


def _explains(values, lag):
    """Whether values one ``lag`` back predict a series about as well as the previous value.

    A true period passes; the long "periods" that random walks and slow
    drifts show in their autocorrelation fail, since their values drift far
    over a lag.
    """
    seasonal = np.abs(values[lag:] - values[:-lag]).mean()
    previous = np.abs(values[1:] - values[:-1]).mean()
    return seasonal <= SEASONAL_ERROR_RATIO * previous


def estimate_period(
    values, max_period=MAX_PERIOD, min_strength=MIN_STRENGTH, tolerance=TOLERANCE, current=0, switch=SWITCH
):
    """Estimate the dominant period of a series from its autocorrelation.

    Parameters
    ----------
    values : array-like of shape (n_rows,) or (n_rows, n_columns)
        The series, oldest first, without missing values; any finite
        magnitude.
    max_period : int, default 1024
        Longest period considered; periods up to ``0.6 * n_rows`` can be
        found, so at least about 1.7 cycles must have been seen.
    min_strength : float, default 0.3
        Smallest autocorrelation that counts as periodic. At long lags,
        where fewer pairs are averaged, the bar rises to
        ``4 / sqrt(n_rows - lag)`` (four standard errors of white noise).
    tolerance : float, default 0.03
        Among peaks whose autocorrelation is within ``tolerance`` of the
        strongest, the shortest lag wins, so a period is preferred to its
        multiples unless a multiple (a week over a day) is clearly stronger.
    current : int, default 0
        The period in use, if any. It is kept unless the best peak's
        autocorrelation beats the one anywhere within 5% of ``current`` by
        more than ``switch``, so estimates do not flip between near-equal
        lags; an estimate within 5% of ``current`` replaces it only when
        they differ by 2 rows or more and its autocorrelation is higher by
        more than 0.01.
    switch : float, default 0.05

    Returns
    -------
    int
        The period in rows; ``current`` when the series shows no other and
        ``current`` still predicts it; else 0.

    Notes
    -----
    The columns are detrended (least-squares line) first. A lag is a
    candidate when it is a local maximum of the autocorrelation that rises
    at least 0.15 above its lowest value between half the lag and the lag,
    which rules out the slowly decaying curves of trends and random walks,
    and when the value one period back predicts the series about as well
    as the previous value does (mean absolute error at most four times as
    large), which rules out the spurious long lags of random walks.

    Examples
    --------
    >>> t = np.arange(500)
    >>> estimate_period(np.sin(2 * np.pi * t / 24))
    24
    """
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    n = array.shape[0]
    max_lag = min(int(max_period), int(0.6 * (n - 1)))
    if max_lag < 4 or not np.isfinite(array).all():
        return int(current)
    # Nothing below depends on a column's scale: scaling each column by a
    # power of two (exactly) to at most 1 keeps its squares and spectra
    # finite whatever its magnitude, and changes no result.
    array = np.ldexp(array, -np.frexp(np.abs(array).max(axis=0))[1])
    if current and (current >= n or not _explains(array, current)):
        current = 0
    acf = _autocorrelation(array, max_lag + 1)
    peaks = []
    for lag in range(2, max_lag + 1):
        value = acf[lag]
        if value < max(min_strength, NOISE_SIGMAS / np.sqrt(n - lag)) or value < acf[lag - 1] or value < acf[lag + 1]:
            continue
        if value - acf[lag // 2 : lag + 1].min() < MIN_PROMINENCE:
            continue
        peaks.append((lag, value))
    if not peaks:
        return int(current)
    best = max(value for _, value in peaks)
    lag = min(lag for lag, value in peaks if value >= best - tolerance)
    # The unbiased estimator picks the period; the biased one, less noisy
    # at long lags, places it.
    low, high = max(2, lag - lag // 10 - 1), min(max_lag, lag + lag // 10 + 1)
    biased = acf[low : high + 1] * (n - np.arange(low, high + 1)) / n
    lag = low + int(np.argmax(biased))
    if not _explains(array, lag):
        return int(current)
    if 2 <= current <= max_lag:
        near = acf[max(2, current - current // 20 - 1) : current + current // 20 + 2].max()
        if abs(lag - current) <= max(1, current // 20):
            better = abs(lag - current) >= 2 and acf[lag] > acf[current] + 0.01
            return int(lag if better else current)
        if near >= acf[lag] - switch:
            return int(current)
    return int(lag)


def estimate_period_robust(values, current=0):
    """:func:`estimate_period`, trying the columns' ranks when the values show no period.

    Bursts and heavy tails (counts of events, say) can drown a daily cycle
    in the autocorrelation of the values; their ranks keep the cycle and
    bound the bursts.
    """
    period = estimate_period(values, current=current)
    if period:
        return period
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.shape[0] < 2 or not np.isfinite(array).all():
        return period
    ranks = np.argsort(np.argsort(array, axis=0, kind="stable"), axis=0).astype(float)
    period = estimate_period(ranks)
    # Short lags in the ranks come from ties and noise in flat stretches; the values show short periods themselves.
    return period if period >= MIN_RANK_PERIOD else 0


def next_checkpoint(rows):
    """The first checkpoint after ``rows`` rows."""
    last = CHECKPOINTS[-1]
    if rows >= last:  # a long stream's case, first: every reading asks
        return last + (1 + (rows - last) // CHECKPOINT_EVERY) * CHECKPOINT_EVERY
    for checkpoint in CHECKPOINTS:
        if checkpoint > rows:
            return checkpoint
