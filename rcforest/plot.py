"""Plots of a series, its anomaly scores, grades, labelled windows and attributions.

Needs matplotlib (``pip install "rcforest[plot]"``). Each ``plot_*``
function draws on the axes it is given, or on new ones, and returns them;
:func:`plot_detection` stacks the panels into one figure with a shared time
axis. Series with a :class:`pandas.DatetimeIndex` are drawn against time,
anything else against the row number.
"""

import numpy as np
import pandas as pd

try:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'rcforest.plot needs matplotlib; install it with pip install "rcforest[plot]" or pip install matplotlib'
    ) from error

__all__ = [
    "plot_attribution",
    "plot_detection",
    "plot_grades",
    "plot_scores",
    "plot_series",
    "plot_windows",
]

_SERIES_COLOR = "tab:blue"
_SCORE_COLOR = "tab:purple"
_FLAG_COLOR = "tab:red"
_THRESHOLD_COLOR = "black"
_WINDOW_COLOR = "tab:orange"


def _axes(ax):
    """Return ``ax``, or new axes of a readable size."""
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 3.5))
    return ax


def _positions(values, index=None):
    """Return (x, y): the x positions (the index, or row numbers) and the values as float."""
    if isinstance(values, (pd.Series, pd.DataFrame)):
        index = values.index if index is None else index
        values = values.to_numpy(dtype=float)
    values = np.asarray(values, dtype=float)
    if index is None:
        index = np.arange(values.shape[0])
    if len(index) != values.shape[0]:
        raise ValueError(f"the index has {len(index)} entries but the values have {values.shape[0]} rows")
    return index, values


def _flag_and_finish(ax, x, y, flags, flag_label, ylabel, title):
    """Mark the flagged points of ``(x, y)`` in red, label the axes and finish them."""
    mask = _flag_mask(flags, y.shape[0])
    if mask is not None and mask.any():
        ax.scatter(
            np.asarray(x)[mask],
            y[mask],
            s=_marker_size(mask.sum()),
            color=_FLAG_COLOR,
            zorder=3,
            label=f"{flag_label} ({mask.sum()})",
        )
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    _finish(ax)
    return ax


def _flag_mask(flags, length):
    """Return ``flags`` as a boolean array of ``length`` (None stays None)."""
    if flags is None:
        return None
    mask = np.asarray(flags.to_numpy() if isinstance(flags, pd.Series) else flags)
    if mask.shape != (length,):
        raise ValueError(f"flags must have one entry per row ({length}), got shape {mask.shape}")
    return np.nan_to_num(mask.astype(float)) > 0


def plot_windows(ax, windows, label="labelled anomaly window", color=_WINDOW_COLOR, alpha=0.2):
    """Shade labelled windows on ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    windows : iterable of (start, end)
        Window bounds on the x axis: timestamps for a time axis, numbers
        otherwise.
    label : str, default "labelled anomaly window"
        Legend entry, given to the first window only.
    color : str
    alpha : float

    Returns
    -------
    matplotlib.axes.Axes
    """
    for number, (start, end) in enumerate(windows or ()):
        ax.axvspan(start, end, color=color, alpha=alpha, lw=0, label=label if number == 0 else None)
    return ax


def plot_series(series, flags=None, windows=None, ax=None, title=None, ylabel="value", flag_label="flagged"):
    """Plot a series, its flagged points and the labelled windows.

    Parameters
    ----------
    series : pandas.Series or array-like of shape (n_rows,)
    flags : array-like of bool of shape (n_rows,), optional
        Points to mark in red.
    windows : iterable of (start, end), optional
        Labelled windows to shade.
    ax : matplotlib.axes.Axes, optional
    title : str, optional
    ylabel : str, default "value"
    flag_label : str, default "flagged"
        Legend entry of the flagged points.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    x, y = _positions(series)
    plot_windows(ax, windows)
    ax.plot(x, y, color=_SERIES_COLOR, lw=0.7, label=getattr(series, "name", None) or "series")
    return _flag_and_finish(ax, x, y, flags, flag_label, ylabel, title)


def plot_scores(scores, threshold=None, flags=None, windows=None, ax=None, title=None, ylabel="anomaly score"):
    """Plot anomaly scores with their threshold and the points above it.

    Parameters
    ----------
    scores : pandas.Series or array-like of shape (n_rows,)
        NaN entries (rows without a shingle) are left blank.
    threshold : float or array-like of shape (n_rows,), optional
        A fixed threshold, drawn as a dashed line, or one per row, drawn as
        a step line.
    flags : array-like of bool of shape (n_rows,), optional
        Points to mark; by default those with ``scores > threshold``.
    windows : iterable of (start, end), optional
    ax : matplotlib.axes.Axes, optional
    title : str, optional
    ylabel : str, default "anomaly score"

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    x, y = _positions(scores)
    plot_windows(ax, windows)
    ax.plot(x, y, color=_SCORE_COLOR, lw=0.7, label="score")
    if threshold is not None:
        if np.ndim(threshold) == 0:
            ax.axhline(float(threshold), color=_THRESHOLD_COLOR, ls="--", lw=1, label=f"threshold {threshold:.3g}")
            limit = np.full(y.shape, float(threshold))
        else:
            _, limit = _positions(threshold, index=x)
            ax.step(x, limit, where="post", color=_THRESHOLD_COLOR, ls="--", lw=0.8, label="threshold")
        if flags is None:
            with np.errstate(invalid="ignore"):
                flags = y > limit
    return _flag_and_finish(ax, x, y, flags, "flagged", ylabel, title)


def plot_grades(grades, windows=None, ax=None, title=None):
    """Plot anomaly grades (0 = normal, up to 1) as vertical bars.

    Parameters
    ----------
    grades : pandas.Series or array-like of shape (n_rows,)
    windows : iterable of (start, end), optional
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    The y axis runs to 1 when some grade passes 0.5, else just above the
    largest grade, so that small grades stay visible.
    """
    ax = _axes(ax)
    x, y = _positions(grades)
    plot_windows(ax, windows)
    positive = np.nan_to_num(y) > 0
    ax.vlines(np.asarray(x)[positive], 0, y[positive], color=_FLAG_COLOR, lw=1.2, label=f"graded ({positive.sum()})")
    # A dot on top of each bar keeps small grades visible.
    ax.scatter(np.asarray(x)[positive], y[positive], s=_marker_size(positive.sum()), color=_FLAG_COLOR, zorder=3)
    top = float(np.nanmax(y, initial=0.0))
    ax.set_ylim(0, 1.05 if top > 0.5 else max(1.15 * top, 0.05))
    ax.set_ylabel("anomaly grade")
    if title:
        ax.set_title(title)
    _finish(ax)
    return ax


def _attribution_matrix(attribution):
    """Return (index, matrix, names, signed) for the accepted attribution inputs."""
    signed = False
    if isinstance(attribution, tuple) and len(attribution) == 2:
        high, low = attribution
        names = list(high.columns) if isinstance(high, pd.DataFrame) else None
        index, high = _positions(high)
        _, low = _positions(low, index=index)
        matrix, signed = high - low, True
    elif isinstance(attribution, pd.Series):
        # One array (or None/NaN) per row, as a streaming detector reports it.
        width = max((np.size(v) for v in attribution if np.ndim(v) > 0), default=0)
        rows = [np.asarray(v, float) if np.ndim(v) > 0 else np.full(width, np.nan) for v in attribution]
        index, matrix, names = attribution.index, np.vstack(rows) if rows else np.empty((0, 0)), None
    else:
        names = list(attribution.columns) if isinstance(attribution, pd.DataFrame) else None
        index, matrix = _positions(attribution)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if names is None:
        names = [f"dim {i}" for i in range(matrix.shape[1])]
    return index, matrix, names, signed


def plot_attribution(attribution, windows=None, ax=None, kind="heatmap", title=None, top=8, max_columns=1000):
    """Show which input dimensions explain the scores over time.

    Parameters
    ----------
    attribution : DataFrame, ndarray, Series of arrays, or tuple (high, low)
        Per-row attribution of shape (n_rows, n_dimensions), for example
        ``Forest.attribution(X)``. A ``(high, low)`` pair is drawn signed:
        red where the data lie above what the forest expects, blue below.
    windows : iterable of (start, end), optional
    ax : matplotlib.axes.Axes, optional
    kind : {"heatmap", "stack"}, default "heatmap"
        ``heatmap``: time on x, dimension on y (for shingles: the lag).
        ``stack``: stacked areas of the ``top`` dimensions with the largest
        total attribution, the rest summed as "other".
    title : str, optional
    top : int, default 8
        Dimensions kept by ``kind="stack"``.
    max_columns : int, default 1000
        ``kind="heatmap"`` averages consecutive rows into at most this many
        columns, so that no row is lost to the screen's resolution.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if kind not in ("heatmap", "stack"):
        raise ValueError(f"kind must be 'heatmap' or 'stack', got {kind!r}")
    ax = _axes(ax)
    index, matrix, names, signed = _attribution_matrix(attribution)
    if kind == "heatmap":
        is_time = isinstance(index, pd.DatetimeIndex)
        x = mdates.date2num(index.to_pydatetime()) if is_time else np.asarray(index, float)
        left, right = (x[0], x[-1]) if len(x) > 1 else (0, 1)
        matrix = _binned(matrix, max_columns)
        finite = matrix[np.isfinite(matrix)]
        limit = float(np.quantile(np.abs(finite), 0.995)) if finite.size else 1.0
        limit = limit if limit > 0 else 1.0
        image = ax.imshow(
            matrix.T,
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            extent=(left, right, -0.5, matrix.shape[1] - 0.5),
            cmap="RdBu_r" if signed else "viridis",
            vmin=-limit if signed else 0,
            vmax=limit,
        )
        if is_time:
            ax.xaxis_date()
        label = "attribution (red: above, blue: below)" if signed else "attribution"
        ax.figure.colorbar(image, ax=ax, label=label, pad=0.01, fraction=0.03)
        ticks = np.unique(np.linspace(0, matrix.shape[1] - 1, min(6, matrix.shape[1])).round().astype(int))
        ax.set_yticks(ticks, [names[i] for i in ticks])
        ax.set_ylabel("dimension")
        for start, end in windows or ():
            ax.axvspan(start, end, ymin=0.97, ymax=1.0, color=_WINDOW_COLOR, lw=0, alpha=0.9)
            ax.axvspan(start, end, ymin=0.0, ymax=0.03, color=_WINDOW_COLOR, lw=0, alpha=0.9)
    else:
        magnitude = np.nan_to_num(np.abs(matrix))
        order = np.argsort(-magnitude.sum(axis=0))
        keep = order[:top]
        layers = [magnitude[:, i] for i in keep]
        labels = [names[i] for i in keep]
        if order.size > top:
            layers.append(magnitude[:, order[top:]].sum(axis=1))
            labels.append("other")
        plot_windows(ax, windows)
        ax.stackplot(np.asarray(index), *layers, labels=labels, lw=0)
        ax.set_ylabel("attribution")
        ax.legend(loc="upper left", fontsize="small", ncol=min(len(labels), 5))
    if title:
        ax.set_title(title)
    ax.grid(False)
    return ax


def _aligned(series, values):
    """Reindex pandas ``values`` onto the index of pandas ``series`` (NaN where missing)."""
    if isinstance(series, pd.Series) and isinstance(values, pd.Series) and not values.index.equals(series.index):
        return values.reindex(series.index)
    return values


def _binned(matrix, max_columns):
    """Average consecutive rows of ``matrix`` into at most ``max_columns`` rows (NaN ignored)."""
    if matrix.shape[0] <= max_columns:
        return matrix
    edges = np.linspace(0, matrix.shape[0], max_columns + 1).astype(int)
    with np.errstate(invalid="ignore"):
        sums = np.add.reduceat(np.nan_to_num(matrix), edges[:-1], axis=0)
        counts = np.add.reduceat(np.isfinite(matrix).astype(float), edges[:-1], axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_detection(
    series,
    scores,
    threshold=None,
    flags=None,
    grades=None,
    windows=None,
    attribution=None,
    title=None,
    figsize=None,
):
    """One figure with the series, the scores and, if given, grades and attributions.

    Parameters
    ----------
    series : pandas.Series or array-like of shape (n_rows,)
    scores : pandas.Series or array-like of shape (n_rows,)
        A Series indexed differently from ``series`` (for example shingle
        scores that start later) is aligned to it by index.
    threshold : float or array-like of shape (n_rows,), optional
    flags : array-like of bool of shape (n_rows,), optional
        Flagged rows, marked on the series and the scores. By default the
        rows with a positive grade, else those above the threshold.
    grades : array-like of shape (n_rows,), optional
        Adds a grade panel.
    windows : iterable of (start, end), optional
        Labelled windows, shaded on every panel.
    attribution : see :func:`plot_attribution`, optional
        Adds an attribution heat map.
    title : str, optional
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    scores, threshold, grades = (_aligned(series, values) for values in (scores, threshold, grades))
    x, score_values = _positions(scores)
    if flags is None and grades is not None:
        flags = np.nan_to_num(np.asarray(grades, dtype=float)) > 0
    if flags is None and threshold is not None:
        _, limit = _positions(threshold, index=x) if np.ndim(threshold) else (x, np.full(len(x), float(threshold)))
        with np.errstate(invalid="ignore"):
            flags = score_values > limit
    panels = 2 + (grades is not None) + (attribution is not None)
    heights = [3, 2] + [1.2] * (grades is not None) + [2] * (attribution is not None)
    figure, axes = plt.subplots(
        panels,
        1,
        sharex=True,
        figsize=figsize or (13, 1.6 * sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights},
        constrained_layout=True,
    )
    plot_series(series, flags=flags, windows=windows, ax=axes[0])
    plot_scores(scores, threshold=threshold, flags=flags, windows=windows, ax=axes[1])
    row = 2
    if grades is not None:
        plot_grades(grades, windows=windows, ax=axes[row])
        row += 1
    if attribution is not None:
        plot_attribution(attribution, windows=windows, ax=axes[row])
    axes[-1].set_xlabel("time" if isinstance(x, pd.DatetimeIndex) else "row")
    if title:
        figure.suptitle(title)
    return figure


def _marker_size(count):
    """Bigger markers when there are few flagged points, so that each one is seen."""
    return 40 if count <= 50 else 12


def _finish(ax):
    """Add a light grid and the legend."""
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", ncol=4, framealpha=0.85)
