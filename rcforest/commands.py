"""The ``score``, ``fit`` and ``demo`` subcommands of the ``rcforest`` program.

``rcforest score data.csv -o scores.csv`` fits a forest on the selected
columns of a CSV file and writes the file back with a ``score`` column (and,
with ``--stream``, the streaming detector's ``grade`` and ``threshold``).
``rcforest fit data.csv -o model.rcf`` saves the forest instead, for
``rcforest score --model model.rcf new.csv``. ``rcforest demo`` runs the
NYC taxi example end to end and prints how well it found NAB's labelled
events.

Heavy modules (numpy, pandas, numba, matplotlib, tqdm) are imported inside
the commands, so that ``rcforest --help`` stays fast.
"""

import sys
from pathlib import Path

from rcforest.cli import UsageError

__all__ = ["add_commands"]


# Rows per scoring or streaming call, so that a progress bar can move on long inputs.
_CHUNK_ROWS = 1024
# A progress bar appears only once the work has taken this long (seconds).
_PROGRESS_DELAY = 2.0
_DEFAULT_TIME_COLUMN = "timestamp"
_FOREST_DEFAULTS = {"num_trees": 100, "sample_size": 256, "shingle_size": 1}
_DEMO_DEFAULTS = {"num_trees": 100, "sample_size": 256, "shingle_size": 48}
# NAB leaves the first 15% of a file, at most 750 rows, out of its false positives.
_NAB_PROBATION = 750
_NYC_EVENTS = ("NYC marathon", "Thanksgiving", "Christmas", "New Year's Day", "January blizzard")


def add_commands(subparsers):
    """Add ``score``, ``fit`` and ``demo`` to the ``rcforest`` program.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    score = subparsers.add_parser(
        "score",
        help="score each row of a CSV file",
        description=(
            "Score each row of a CSV file with a Random Cut Forest and write the file back with a 'score' "
            "column (higher means more anomalous). By default a forest is fitted on the whole file; with "
            "--model a saved forest is used; with --stream a streaming detector scores each row before "
            "learning it and adds 'grade' (0 normal, up to 1) and 'threshold' columns."
        ),
    )
    score.add_argument("input", help="CSV file with a header row, one row per observation, in time order")
    score.add_argument("-o", "--output", default="-", help="CSV file to write (default: standard output)")
    score.add_argument("--model", help="score with a forest saved by 'rcforest fit' instead of fitting one")
    score.add_argument(
        "--stream",
        action="store_true",
        help="score as a stream with rcforest.thresholded.ThresholdedForest; adds 'grade' and 'threshold'",
    )
    score.add_argument("--plot", metavar="PNG", help="also draw the series, scores and flagged rows to this image")
    _add_forest_options(score)
    _add_column_options(score)
    _add_quiet(score)
    score.set_defaults(func=_run_score)

    fit = subparsers.add_parser(
        "fit",
        help="fit a forest on a CSV file and save it",
        description="Fit a Random Cut Forest on the selected columns of a CSV file and save it as a model file.",
    )
    fit.add_argument("input", help="CSV file with a header row, one row per observation, in time order")
    fit.add_argument("-o", "--output", required=True, help="model file to write, for example model.rcf")
    _add_forest_options(fit)
    _add_column_options(fit)
    _add_quiet(fit)
    fit.set_defaults(func=_run_fit)

    demo = subparsers.add_parser(
        "demo",
        help="run the NYC taxi example end to end",
        description=(
            "Stream NAB's NYC taxi passenger counts (10,320 half-hours, 2014-07-01 to 2015-01-31) through a "
            "thresholded forest and print which of NAB's five labelled events it found, how soon, and its "
            "false positives. The data come from --data, else RCFOREST_DATA, else the user cache, else "
            "NAB's public repository."
        ),
    )
    demo.add_argument("--data", metavar="PATH", help="nyc_taxi.csv, or a directory holding it")
    demo.add_argument("--plot", metavar="PNG", help="also draw the series, scores, grades and windows to this image")
    demo.add_argument("-o", "--output", help="also write the per-row results to this CSV file")
    demo.add_argument("--num-trees", type=int, default=_DEMO_DEFAULTS["num_trees"], help="trees (default: 100)")
    demo.add_argument(
        "--sample-size", type=int, default=_DEMO_DEFAULTS["sample_size"], help="points per tree (default: 256)"
    )
    demo.add_argument(
        "--shingle-size",
        type=int,
        default=_DEMO_DEFAULTS["shingle_size"],
        help="consecutive values per point (default: 48, one day)",
    )
    demo.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    _add_quiet(demo)
    demo.set_defaults(func=_run_demo)


# ------------------------------------------------------------------ options


def _add_forest_options(parser):
    """Add --num-trees, --sample-size, --shingle-size and --random-state (None: the defaults)."""
    group = parser.add_argument_group("forest")
    group.add_argument("--num-trees", type=int, help="number of trees (default: 100)")
    group.add_argument("--sample-size", type=int, help="points each tree keeps (default: 256)")
    group.add_argument(
        "--shingle-size",
        type=int,
        help="consecutive rows stacked into one point (default: 1; 48 for a day of half-hours)",
    )
    group.add_argument(
        "--random-state", type=int, default=0, help="seed; the same seed gives the same scores (default: 0)"
    )


def _add_column_options(parser):
    """Add --column and --time-column."""
    group = parser.add_argument_group("columns")
    group.add_argument(
        "--column",
        action="append",
        metavar="NAME",
        help="column to score; repeat for several (default: every column but the time column)",
    )
    group.add_argument(
        "--time-column",
        metavar="NAME",
        help=f"column of timestamps, kept in the output and used to plot (default: {_DEFAULT_TIME_COLUMN!r} if any)",
    )


def _add_quiet(parser):
    """Add -q/--quiet."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary on stderr")


def _forest_parameters(args):
    """The forest's parameters from the command line, with the defaults filled in."""
    return {
        name: getattr(args, name) if getattr(args, name) is not None else value
        for name, value in _FOREST_DEFAULTS.items()
    }


def _say(args, message):
    """Print ``message`` on stderr unless --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr)


def _progress(args, total, description):
    """A tqdm bar on stderr, shown only on a terminal, without --quiet, once the work is slow."""
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a convenience: work on without them
        return _NoProgress()
    return tqdm(
        total=total,
        desc=description,
        unit="row",
        unit_scale=True,
        file=sys.stderr,
        delay=_PROGRESS_DELAY,
        leave=False,
        disable=args.quiet or not sys.stderr.isatty(),
    )


class _NoProgress:
    """Stands in for a tqdm bar when tqdm is not installed."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, count=1):
        """Ignore progress."""


# ------------------------------------------------------------------- input


class _Table:
    """A CSV file read for scoring: the whole table, the features and the time axis."""

    def __init__(self, frame, features, time):
        self.frame = frame
        self.features = features
        self.time = time

    @property
    def series(self):
        """The features as a Series (one column) or DataFrame, indexed by time or row number."""
        data = self.features.set_axis(self.time if self.time is not None else self.features.index)
        return data.iloc[:, 0] if data.shape[1] == 1 else data


def _read_table(path, columns=None, time_column=None, model_columns=None, allow_empty=False):
    """Read ``path`` and check the selected columns; raise UsageError with the fix.

    With ``allow_empty``, empty cells are kept as NaN (the streaming detector
    imputes them); non-numeric values are refused either way.
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise UsageError(f"input file {path} does not exist")
    if path.is_dir():
        raise UsageError(f"{path} is a directory; pass a CSV file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UsageError(
            f"{path} is empty; expected a CSV file with a header row and one row per observation"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not a readable CSV file: {str(error).strip()}") from None
    if frame.empty:
        raise UsageError(f"{path} has a header ({', '.join(map(str, frame.columns))}) but no data rows")
    frame.columns = [str(c) for c in frame.columns]

    if time_column is not None and time_column not in frame.columns:
        raise UsageError(f"time column {time_column!r} is not in {path}; its columns are {list(frame.columns)}")
    if time_column is None and _DEFAULT_TIME_COLUMN in frame.columns:
        time_column = _DEFAULT_TIME_COLUMN
    time = None
    if time_column is not None:
        try:
            time = pd.DatetimeIndex(_to_datetime(frame[time_column]), name=time_column)
        except (ValueError, TypeError, OverflowError) as error:
            raise UsageError(
                f"time column {time_column!r} of {path} holds values that are not dates ({error}); "
                "name the right column with --time-column"
            ) from None

    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise UsageError(
                f"column {missing[0]!r} is not in {path}; its columns are {list(frame.columns)}; choose with --column"
            )
    elif model_columns and all(c in frame.columns for c in model_columns):
        columns = list(model_columns)
    else:
        columns = [c for c in frame.columns if c != time_column]
        if not columns:
            raise UsageError(f"{path} has no column to score besides the time column {time_column!r}")
    if time_column in columns:
        raise UsageError(f"column {time_column!r} is the time column; it cannot also be scored")

    features = {}
    for name in columns:
        raw = frame[name]
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if allow_empty:
            bad &= ~raw.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "an empty value" if pd.isna(raw.iloc[row]) else f"the non-numeric value {raw.iloc[row]!r}"
            if pd.isna(raw.iloc[row]):
                hint = "fill or drop the empty rows"
            elif _looks_like_time(raw):
                hint = f"if it holds timestamps, pass --time-column {name}; or choose numeric columns with --column"
            else:
                hint = "choose numeric columns with --column, or clean the file"
            raise UsageError(f"column {name!r} of {path} has {what} on data row {row + 1} (line {row + 2}); {hint}")
        features[name] = values
    return _Table(frame, pd.DataFrame(features), time)


def _looks_like_time(column):
    """Whether the first values of a text column parse as dates."""
    try:
        _to_datetime(column.head(5))
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _to_datetime(column):
    """``pandas.to_datetime`` without its warning about guessing each value's format."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
        return pd.to_datetime(column)


def _check_parameters(params):
    """Refuse parameters below 1, naming the option."""
    for name, value in params.items():
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


# ----------------------------------------------------------------- scoring


def _batch_scores(forest, values, args):
    """Score ``values`` (2-D) with a fitted forest in chunks, with a progress bar."""
    import numpy as np

    rows = values.shape[0]
    history = forest.shingle_size - 1
    scores = np.full(rows, np.nan)
    with _progress(args, rows, "scoring") as bar:
        for start in range(0, rows, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, rows)
            first = max(0, start - history)
            scores[start:stop] = forest.score(values[first:stop])[start - first :]
            bar.update(stop - start)
    return scores


def _fit_forest(table, params, random_state):
    """Fit a batch forest on the table's features; refuse inputs shorter than a shingle."""
    from rcforest import Forest

    values = table.features.to_numpy()
    if values.shape[0] < params["shingle_size"]:
        raise UsageError(
            f"the input has {values.shape[0]} rows, fewer than --shingle-size {params['shingle_size']}; "
            "pass more rows or a smaller shingle size"
        )
    # One jitted call, fast next to scoring (its cost grows with the sample, not the rows): no bar.
    return Forest(random_state=random_state, **params).fit(table.features)


def _load_model(path):
    """Load a model file; refuse a missing file or a forest that holds no data."""
    from rcforest import Forest

    if not Path(path).is_file():
        raise UsageError(f"model file {path} does not exist; write one with 'rcforest fit data.csv -o {path}'")
    forest = Forest.load(path)
    if forest.n_features_ is None:
        raise UsageError(f"model {path} holds no data; fit it on some rows first")
    return forest


def _run_score(args):
    """``rcforest score``: write the input with its scores; return the exit code."""
    import numpy as np

    if args.model is not None:
        given = [f"--{name.replace('_', '-')}" for name in _FOREST_DEFAULTS if getattr(args, name) is not None]
        if args.stream:
            given.append("--stream")
        if given:
            raise UsageError(f"{' and '.join(given)} cannot be used with --model: the saved model fixes them")
        forest = _load_model(args.model)
        # The names of the columns the model was fitted on, kept in its file.
        model_columns = forest.feature_names_in_
        table = _read_table(args.input, args.column, args.time_column, model_columns)
        selected = list(table.features.columns)
        if forest.n_features_ != len(selected):
            trained = f" ({', '.join(model_columns)})" if model_columns else ""
            raise UsageError(
                f"model {args.model} was fitted on {forest.n_features_} column(s){trained}, but "
                f"{len(selected)} were selected from {args.input} ({', '.join(selected)}); choose them with --column"
            )
        scores = _batch_scores(forest, table.features.to_numpy(), args)
        output = {"score": scores}
        how = f"model {args.model}"
    else:
        params = _forest_parameters(args)
        _check_parameters(params)
        table = _read_table(args.input, args.column, args.time_column, allow_empty=args.stream)
        if args.stream:
            output = _stream_scores(table, params, args)
            how = "a streaming thresholded forest"
        else:
            forest = _fit_forest(table, params, args.random_state)
            output = {"score": _batch_scores(forest, table.features.to_numpy(), args)}
            how = "a forest fitted on the file"
        how += f" ({params['num_trees']} trees, {params['sample_size']} points each, shingle {params['shingle_size']})"

    result = table.frame.copy()
    for name, values in output.items():
        result[name] = values
    _write_csv(result, args.output)

    scores = np.asarray(output["score"], dtype=float)
    if "grade" in output:
        flags = np.nan_to_num(np.asarray(output["grade"], dtype=float)) > 0
        threshold = output["threshold"]
        rule = "with a positive grade"
    else:
        threshold = float(np.nanmean(scores) + 3 * np.nanstd(scores))
        with np.errstate(invalid="ignore"):
            flags = scores > threshold
        rule = f"above mean + 3 std = {threshold:.3f}"
    destination = "standard output" if args.output == "-" else args.output
    _say(args, f"scored {len(scores)} rows with {how}; {int(flags.sum())} rows {rule}; wrote {destination}")
    if args.plot:
        series = table.series
        _plot(
            series if series.ndim == 1 else series.iloc[:, 0],
            output,
            threshold,
            flags,
            args.plot,
            title=f"{Path(args.input).name}: {int(flags.sum())} rows flagged",
        )
        _say(args, f"drew {args.plot}")
    return 0


def _stream_scores(table, params, args):
    """Run the streaming thresholded forest; return its score, grade and threshold columns."""
    detector_class = _thresholded_forest()
    detector = detector_class(random_state=args.random_state, **params)
    result = _stream(detector, table.series, args)
    return {name: result[name].to_numpy() for name in ("score", "grade", "threshold")}


def _stream(detector, data, args):
    """Feed ``data`` to a streaming detector in pieces, with a progress bar; return its output."""
    import pandas as pd

    parts = []
    with _progress(args, len(data), "streaming") as bar:
        for start in range(0, len(data), _CHUNK_ROWS):
            parts.append(detector.run(data.iloc[start : start + _CHUNK_ROWS]))
            bar.update(len(parts[-1]))
    return pd.concat(parts)


def _thresholded_forest():
    """Import and return :class:`rcforest.thresholded.ThresholdedForest`."""
    try:
        from rcforest.thresholded import ThresholdedForest
    except ImportError as error:
        raise UsageError(f"streaming needs rcforest.thresholded, which cannot be imported here ({error})") from None
    return ThresholdedForest


def _write_csv(frame, output):
    """Write ``frame`` to the path ``output``, or to stdout for ``-``."""
    if output == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    path = Path(output)
    if path.parent != Path("") and not path.parent.is_dir():
        raise UsageError(f"cannot write {output}: directory {path.parent} does not exist")
    frame.to_csv(path, index=False)


def _plot(series, output, threshold, flags, destination, title, windows=None):
    """Draw ``series``, the scores and flagged rows (and grades, when streaming) to ``destination``."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError('--plot needs matplotlib: pip install "rcforest[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from rcforest.plot import plot_detection

    index = series.index
    scores = pd.Series(output["score"], index=index, name="score")
    if not isinstance(threshold, float):
        threshold = pd.Series(threshold, index=index)
    grades = pd.Series(output["grade"], index=index) if "grade" in output else None
    figure = plot_detection(
        series, scores, threshold=threshold, flags=flags, grades=grades, windows=windows, title=title
    )
    try:
        figure.savefig(destination, dpi=100)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot write the plot to {destination}: {error}") from None
    finally:
        plt.close(figure)


# --------------------------------------------------------------------- fit


def _run_fit(args):
    """``rcforest fit``: fit a forest on the input and save it; return the exit code."""
    params = _forest_parameters(args)
    _check_parameters(params)
    table = _read_table(args.input, args.column, args.time_column)
    forest = _fit_forest(table, params, args.random_state)
    path = Path(args.output)
    if path.parent != Path("") and not path.parent.is_dir():
        raise UsageError(f"cannot write {args.output}: directory {path.parent} does not exist")
    forest.save(path)
    _say(
        args,
        f"fitted {params['num_trees']} trees of {min(params['sample_size'], forest.points_seen_)} points on "
        f"{len(table.frame)} rows of {', '.join(table.features.columns)} (shingle {params['shingle_size']}); "
        f"wrote {args.output}",
    )
    return 0


# -------------------------------------------------------------------- demo


def _run_demo(args):
    """``rcforest demo``: stream the NYC taxi series and print NAB-style event metrics."""
    import numpy as np

    from rcforest.datasets import load_nyc_taxi

    _check_parameters({k: getattr(args, k) for k in _DEMO_DEFAULTS})
    series, anomalies, windows = load_nyc_taxi(args.data)
    detector_class = _thresholded_forest()
    detector = detector_class(
        num_trees=args.num_trees,
        sample_size=args.sample_size,
        shingle_size=args.shingle_size,
        random_state=args.random_state,
    )
    print(
        f"NYC taxi: {len(series)} half-hourly passenger counts, {series.index[0]:%Y-%m-%d} to "
        f"{series.index[-1]:%Y-%m-%d}, streamed through {args.num_trees} trees of {args.sample_size} points "
        f"with shingles of {args.shingle_size}; a row is flagged when its anomaly grade is above 0.\n",
        flush=True,
    )
    result = _stream(detector, series, args)
    flags = np.nan_to_num(result["grade"].to_numpy(dtype=float)) > 0
    probation = min(_NAB_PROBATION, len(series))
    metrics = _event_metrics(flags, windows, series.index, probation)
    print(_format_metrics(metrics, windows, anomalies, series.index, probation))
    if args.output:
        frame = result.drop(columns=[c for c in result.columns if result[c].dtype == object])
        frame.insert(0, "value", series.to_numpy())
        _write_csv(frame.set_axis(series.index).reset_index(), args.output)
        _say(args, f"wrote {args.output}")
    if args.plot:
        output = {name: result[name].to_numpy() for name in ("score", "grade", "threshold")}
        _plot(
            series,
            output,
            output["threshold"],
            flags,
            args.plot,
            title="NYC taxi passengers: streaming Random Cut Forest against NAB's labelled windows",
            windows=windows,
        )
        _say(args, f"drew {args.plot}")
    return 0


def _event_metrics(flags, windows, index, probation):
    """NAB-style event metrics of the flagged rows against the labelled windows."""
    from rcforest.evaluate import window_metrics

    return window_metrics(flags, windows, index=index, probation=probation)


def _format_metrics(metrics, windows, anomalies, index, probation):
    """The demo's report: one line per labelled event, then the totals."""
    names = _NYC_EVENTS if len(windows) == len(_NYC_EVENTS) else [f"event {i + 1}" for i in range(len(windows))]
    lines = [
        f"{'event':<17} {'labelled at':<17} {'window':<36} {'first flagged':<17} {'after opening':>13} {'vs label':>9}"
    ]
    for name, label, (start, end), row in zip(names, anomalies, windows, metrics["detect_rows"]):
        window = f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
        if row is None:
            found, after_opening, after_label = "missed", "-", "-"
        else:
            found = f"{index[row]:%Y-%m-%d %H:%M}"
            after_opening = f"{(index[row] - start).total_seconds() / 3600:.1f} h"
            after_label = f"{(index[row] - label).total_seconds() / 3600:+.1f} h"
        lines.append(
            f"{name:<17} {label:%Y-%m-%d %H:%M}  {window:<36} {found:<17} {after_opening:>13} {after_label:>9}"
        )
    lines += [
        "",
        f"windows hit: {metrics['windows_hit']} of {metrics['windows']}",
        f"false positives: {metrics['false_positive_events']} events ({metrics['false_positive_rows']} rows) "
        f"flagged outside the windows, not counting the first {probation} rows (NAB's probation period)",
        "time to detect: from the window's opening, and from the labelled time (negative: flagged before it)",
    ]
    return "\n".join(lines)
