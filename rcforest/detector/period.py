"""Seasonal period estimation, and the row counts at which a stream re-estimates it.

The period is read from the autocorrelation of the linearly detrended
history: a lag is a candidate when it is the largest autocorrelation within
5% of it, rises above white noise's level and above its trough by more than
the estimate's noise, and when the value one period back predicts the
series about as well as the previous value does. The strongest candidate
wins unless a divisor of it is as strong within the noise; it is placed by
a parabola over its peak and settled on the lag that predicts best.
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


def _detrend(values):
    """The columns of ``values`` less their least-squares line."""
    n = values.shape[0]
    time = np.arange(n) - (n - 1) / 2
    slope = time @ values / np.dot(time, time)
    return values - values.mean(axis=0) - time[:, None] * slope


def _autocorrelation(residuals, max_lag):
    """Mean over columns of the autocorrelation of the (detrended) columns ``residuals``.

    Each lag's sum is divided by its number of pairs (the unbiased
    estimator), so long periods are not penalised.
    """
    n = residuals.shape[0]
    total = np.zeros(max_lag + 1)
    used = 0
    for residual in residuals.T:
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
    return _lag_error(values, lag) <= SEASONAL_ERROR_RATIO * _lag_error(values, 1)


def _lag_error(values, lag):
    """Mean absolute difference of the values ``lag`` apart around its median (over all columns).

    Taken around the median, as the detector's typical residual: a trend's
    steady growth over a lag is no error.
    """
    difference = values[lag:] - values[:-lag]
    return np.abs(difference - np.median(difference, axis=0)).mean()


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
        A peak at a divisor of the strongest (within 5%) wins when its
        autocorrelation is within ``tolerance``, or within one standard
        error of the strongest's estimate, ``1 / sqrt(n_rows - lag)``, of
        the strongest's: a period is preferred to its multiples unless a
        multiple (a week over a day) is clearly stronger.
    current : int, default 0
        The period in use, if any. It is dropped when the series shows
        peaks and none within 5% of it, and gives way to a divisor found.
        Otherwise it is kept unless the best peak's autocorrelation beats
        the one anywhere within 5% of ``current`` by more than ``switch``,
        so estimates do not flip between near-equal lags; an estimate
        within 5% of ``current`` replaces it when it predicts the series
        better (see Notes).
    switch : float, default 0.05

    Returns
    -------
    int
        The period in rows; ``current`` when the series shows no other and
        ``current`` still predicts it; else 0.

    Notes
    -----
    The columns are detrended (least-squares line) for the
    autocorrelation. A lag is a candidate when it is the largest
    autocorrelation within 5% of it either way, and rises above its lowest
    value between half the lag and the lag by at least 0.15 and by four
    standard errors of the difference of two estimates,
    ``4 * sqrt(2 / (n_rows - lag))``, which rules out the slowly decaying
    curves of trends and random walks and the wiggles of noise at short
    lags. The chosen peak is placed by the vertex of a least-squares
    parabola over the autocorrelation within 5% of it, then on the lag
    within 1% (at least a row) whose differences ``x[t] - x[t - lag]``
    deviate least from their median. It must predict the series about as
    well as the previous value does (that deviation at most four times the
    previous value's), which rules out the spurious long lags of random
    walks.

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
    acf = _autocorrelation(_detrend(array), max_lag + max_lag // 10 + 1)  # beyond max_lag: to tell and place its peaks
    peaks = _peaks(acf, n, max_lag, min_strength)
    if current and peaks and not any(abs(lag - current) <= max(1, current // 20) for lag, _ in peaks):
        current = 0  # the series shows periods, and the one in use is not among them
    if not peaks:
        return int(current)
    lag = _shortest(peaks, n, tolerance)
    lag = _place(acf, lag, max_lag)
    # The autocorrelation places the peak; the lag that predicts best near it (within a row or 1%) settles it.
    reach = max(1, lag // 100)
    near = [candidate for candidate in range(lag - reach, lag + reach + 1) if 2 <= candidate <= max_lag]
    lag = min(near, key=lambda candidate: _lag_error(array, candidate))
    if not _explains(array, lag):
        return int(current)
    if 2 <= current <= max_lag:
        near = acf[max(2, current - current // 20 - 1) : current + current // 20 + 2].max()
        if abs(lag - current) <= max(1, current // 20):
            return int(lag if _lag_error(array, lag) < _lag_error(array, current) else current)
        multiple = round(current / lag)
        if multiple >= 2 and abs(current - multiple * lag) <= max(1, 0.05 * current):
            return int(lag)  # the period in use is a multiple of the one found (see _shortest)
        if near >= acf[lag] - switch:
            return int(current)
    return int(lag)


def _peaks(acf, n, max_lag, min_strength):
    """``(lag, autocorrelation)`` of the candidate periods: prominent local maxima above the noise.

    A peak is the largest value within 5% of its lag either way (within one
    lag for short lags), so wiggles of the estimate on a peak's flank, and
    a rising flank cut off where the estimate ends, are not peaks (``acf``
    reaches 10% beyond ``max_lag``).

    The noise bars are those of white noise's autocorrelation estimated
    from ``n - lag`` pairs, standard error ``1 / sqrt(n - lag)``: a peak
    rises above ``NOISE_SIGMAS`` of them, and above the trough between half
    its lag and its lag by ``NOISE_SIGMAS`` standard errors of the
    difference of two estimates (``sqrt(2)`` times as large), and at least
    by :data:`MIN_PROMINENCE`. Without the second bar, a wiggle of the
    noise at a short lag (lag 2 over lag 1 in counts of events) passes for
    a period on a short history.
    """
    peaks = []
    for lag in range(2, max_lag + 1):
        value = acf[lag]
        error = 1 / np.sqrt(n - lag)
        reach = max(1, lag // 20)
        if value < max(min_strength, NOISE_SIGMAS * error) or lag + reach >= acf.shape[0]:
            continue
        if value < acf[lag - reach : lag + reach + 1].max():
            continue
        if value - acf[lag // 2 : lag + 1].min() < max(MIN_PROMINENCE, NOISE_SIGMAS * np.sqrt(2) * error):
            continue
        peaks.append((lag, value))
    return peaks


def _shortest(peaks, n, tolerance):
    """The strongest peak's lag, or the shortest peak whose multiple it is and that is about as strong.

    A period repeats at its multiples, and the unbiased estimate at a long
    lag averages fewer pairs: a peak near ``best / k`` (within 5%) counts
    as strong as the best when its autocorrelation is within the noise of
    the best's estimate, ``NOISE_SIGMAS / sqrt(n - best)``, or within
    ``tolerance``. A multiple clearly stronger (a week over a day, when the
    days of a week differ) is kept.
    """
    best_lag, best = max(peaks, key=lambda peak: peak[1])
    margin = max(tolerance, 2 / np.sqrt(n - best_lag))
    for lag, value in sorted(peaks):
        multiple = round(best_lag / lag)
        if multiple >= 2 and value >= best - margin and abs(best_lag - multiple * lag) <= max(1, 0.05 * best_lag):
            return lag
    return best_lag


def _place(acf, lag, max_lag):
    """The period near ``lag``: the vertex of a parabola fitted to the autocorrelation within 10% of it.

    One lag's estimate is noisy at long lags; the least-squares parabola
    over the peak's neighbourhood is not, and unlike the biased estimator
    (each lag's sum over ``n`` rows) it does not pull long periods short.
    """
    half = min(lag // 20, lag - 2, acf.shape[0] - 1 - lag)  # symmetric: a one-sided fit can put its vertex anywhere
    low, high = lag - half, lag + half
    lags = np.arange(low, high + 1)
    if lags.size < 3:
        return lag
    a, b, _ = np.polyfit(lags - lag, acf[low : high + 1], 2)
    if not a < 0:
        return lag
    return int(np.clip(round(lag - b / (2 * a)), max(low, 2), min(high, max_lag)))


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
    period = estimate_period(ranks, current=current)
    # Short lags in the ranks come from ties and noise in flat stretches; the values show short periods themselves.
    return period if period >= MIN_RANK_PERIOD else 0


def next_checkpoint(rows):
    """The first checkpoint after ``rows`` rows."""
    for checkpoint in CHECKPOINTS:
        if checkpoint > rows:
            return checkpoint
    last = CHECKPOINTS[-1]
    return last + (1 + (rows - last) // CHECKPOINT_EVERY) * CHECKPOINT_EVERY
