"""The ``demo`` subcommand: the NYC taxi example end to end.

``rcforest demo`` streams NAB's NYC taxi passenger counts through a
thresholded forest and prints which of NAB's labelled events it found, how
soon, and its false positives.
"""

from rcforest.cli.options import add_quiet, check_parameters
from rcforest.cli.report import check_outputs, draw, say, write_csv
from rcforest.cli.score import stream

__all__ = ["add_commands"]

_DEMO_DEFAULTS = {"num_trees": 100, "sample_size": 256, "shingle_size": 48}
# NAB leaves the first 15% of a file, at most 750 rows, out of its false positives.
_NAB_PROBATION = 750
_NYC_EVENTS = ("NYC marathon", "Thanksgiving", "Christmas", "New Year's Day", "January blizzard")


def add_commands(subparsers):
    """Add ``demo`` to the ``rcforest`` program.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    demo = subparsers.add_parser(
        "demo",
        help="run the NYC taxi example end to end",
        description=(
            "Stream NAB's NYC taxi passenger counts (10,320 half-hours, 2014-07-01 to 2015-01-31) through a "
            "thresholded forest and print which of NAB's five labelled events it found, how soon, and its "
            "false positives. The data are the copy bundled with rcforest (NAB, MIT License), unless --data "
            "or a directory named by RCFOREST_DATA holds nyc_taxi.csv: no network or cache is needed."
        ),
    )
    demo.add_argument(
        "--data", metavar="PATH", help="nyc_taxi.csv, or a directory holding it (default: the bundled copy)"
    )
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
    add_quiet(demo)
    demo.set_defaults(func=_run_demo)


def _run_demo(args):
    """``rcforest demo``: stream the NYC taxi series and print NAB-style event metrics."""
    import numpy as np

    from rcforest.datasets import load_nyc_taxi
    from rcforest.thresholded import ThresholdedForest

    check_parameters({k: getattr(args, k) for k in _DEMO_DEFAULTS})
    check_outputs({"data": args.data}, {"-o": args.output, "--plot": args.plot})
    series, anomalies, windows = load_nyc_taxi(args.data)
    detector = ThresholdedForest(
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
    result = stream(detector, series, args)
    flags = np.nan_to_num(result["grade"].to_numpy(dtype=float)) > 0
    probation = min(_NAB_PROBATION, len(series))
    metrics = _event_metrics(flags, windows, series.index, probation)
    print(_format_metrics(metrics, windows, anomalies, series.index, probation))
    if args.output:
        frame = result.drop(columns=[c for c in result.columns if result[c].dtype == object])
        frame.insert(0, "value", series.to_numpy())
        write_csv(frame.set_axis(series.index).reset_index(), args.output)
        say(args, f"wrote {args.output}")
    if args.plot:
        output = {name: result[name].to_numpy() for name in ("score", "grade", "threshold")}
        draw(
            series,
            output,
            output["threshold"],
            flags,
            args.plot,
            title="NYC taxi passengers: streaming Random Cut Forest against NAB's labelled windows",
            windows=windows,
        )
        say(args, f"drew {args.plot}")
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
