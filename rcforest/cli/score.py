"""The ``score`` and ``fit`` subcommands of the ``rcforest`` program.

``rcforest score data.csv -o scores.csv`` fits a forest on the selected
columns of a CSV file and writes the file back with a ``score`` column (and,
with ``--stream``, the streaming detector's ``grade`` and ``threshold``).
``rcforest fit data.csv -o model.rcf`` saves the forest instead, for
``rcforest score --model model.rcf new.csv``.
"""

from pathlib import Path

from rcforest.cli.options import (
    FOREST_DEFAULTS,
    add_column_options,
    add_forest_options,
    add_quiet,
    check_parameters,
    forest_parameters,
)
from rcforest.cli.report import check_output_folder, check_outputs, draw, progress, say, write_csv
from rcforest.cli.table import read_table
from rcforest.errors import UsageError

__all__ = ["add_commands", "stream"]

# Rows per scoring or streaming call, so that a progress bar can move on long inputs.
_CHUNK_ROWS = 1024
_INPUT_HELP = "CSV file, one row per observation, in time order; a first row of numbers is data, not names"


def add_commands(subparsers):
    """Add ``score`` and ``fit`` to the ``rcforest`` program.

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
    score.add_argument("input", help=_INPUT_HELP)
    score.add_argument("-o", "--output", default="-", help="CSV file to write (default: standard output)")
    score.add_argument("--model", help="score with a forest saved by 'rcforest fit' instead of fitting one")
    score.add_argument(
        "--stream",
        action="store_true",
        help="score as a stream with rcforest.thresholded.ThresholdedForest; adds 'grade' and 'threshold'",
    )
    score.add_argument("--plot", metavar="PNG", help="also draw the series, scores and flagged rows to this image")
    add_forest_options(score)
    add_column_options(score)
    add_quiet(score)
    score.set_defaults(func=_run_score)

    fit = subparsers.add_parser(
        "fit",
        help="fit a forest on a CSV file and save it",
        description="Fit a Random Cut Forest on the selected columns of a CSV file and save it as a model file.",
    )
    fit.add_argument("input", help=_INPUT_HELP)
    fit.add_argument("-o", "--output", required=True, help="model file to write, for example model.rcf")
    add_forest_options(fit)
    add_column_options(fit)
    add_quiet(fit)
    fit.set_defaults(func=_run_fit)


# ----------------------------------------------------------------- scoring


def _batch_scores(forest, values, args):
    """Score ``values`` (2-D) with a fitted forest in chunks, with a progress bar."""
    import numpy as np

    rows = values.shape[0]
    history = forest.shingle_size - 1
    scores = np.full(rows, np.nan)
    with progress(args, rows, "scoring") as bar:
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
    from rcforest._fitted import load_fitted

    if not Path(path).exists():
        raise UsageError(f"model file {path} does not exist; write one with 'rcforest fit data.csv -o {path}'")
    return load_fitted(path)


def _run_score(args):
    """``rcforest score``: write the input with its scores; return the exit code."""
    import numpy as np

    from rcforest._core import name_mismatch
    from rcforest._fitted import cutoff, named_columns

    check_outputs({"input": args.input, "model": args.model}, {"-o": args.output, "--plot": args.plot})
    if args.model is not None:
        given = [f"--{name.replace('_', '-')}" for name in FOREST_DEFAULTS if getattr(args, name) is not None]
        if args.stream:
            given.append("--stream")
        if given:
            raise UsageError(f"{' and '.join(given)} cannot be used with --model: the saved model fixes them")
        forest = _load_model(args.model)
        # The names of the columns the model was fitted on, kept in its file.
        model_columns = forest.feature_names_in_
        table = read_table(args.input, args.column, args.time_column, model_columns, header=args.header)
        selected = list(table.features.columns)
        if forest.n_features_ != len(selected):
            trained = f" ({', '.join(model_columns)})" if model_columns else ""
            raise UsageError(
                f"model {args.model} was fitted on {forest.n_features_} column(s){trained}, but "
                f"{len(selected)} were selected from {args.input} ({', '.join(selected)}); choose them with --column"
            )
        # Columns are matched by name as the library matches a DataFrame's, unless chosen with
        # --column or the file has no header row (its columns are then positions, not names).
        names = named_columns(forest) if table.header and not args.column else []
        mismatch = name_mismatch(selected, names) if names else ""
        if mismatch:
            raise UsageError(
                f"model {args.model} was fitted on columns {model_columns}, but {args.input} has {selected}: "
                f"{mismatch}; choose the columns to score, in the model's order, with --column"
            )
        scores = _batch_scores(forest, table.features.to_numpy(), args)
        output = {"score": scores}
        how = f"model {args.model}"
    else:
        params = forest_parameters(args)
        check_parameters(params)
        table = read_table(args.input, args.column, args.time_column, allow_empty=args.stream, header=args.header)
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
    write_csv(result, args.output)

    scores = np.asarray(output["score"], dtype=float)
    if "grade" in output:
        flags = np.nan_to_num(np.asarray(output["grade"], dtype=float)) > 0
        threshold = output["threshold"]
        rule = "with a positive grade"
    else:
        threshold = cutoff(scores)
        with np.errstate(invalid="ignore"):
            flags = scores > threshold
        rule = f"above mean + 3 std = {threshold:.3f}"
    destination = "standard output" if args.output == "-" else args.output
    say(args, table.reading)
    say(args, f"scored {len(scores)} rows with {how}; {int(flags.sum())} rows {rule}; wrote {destination}")
    if args.plot:
        series = table.series
        draw(
            series if series.ndim == 1 else series.iloc[:, 0],
            output,
            threshold,
            flags,
            args.plot,
            title=f"{Path(args.input).name}: {int(flags.sum())} rows flagged",
        )
        say(args, f"drew {args.plot}")
    return 0


def _stream_scores(table, params, args):
    """Run the streaming thresholded forest; return its score, grade and threshold columns."""
    from rcforest.thresholded import ThresholdedForest

    detector = ThresholdedForest(random_state=args.random_state, **params)
    result = stream(detector, table.series, args)
    return {name: result[name].to_numpy() for name in ("score", "grade", "threshold")}


def stream(detector, data, args):
    """Feed ``data`` to a streaming detector in pieces, with a progress bar.

    Parameters
    ----------
    detector : rcforest.ThresholdedForest
    data : pandas.Series or pandas.DataFrame
    args : argparse.Namespace
        For --quiet.

    Returns
    -------
    pandas.DataFrame
        The detector's output for every row.
    """
    import pandas as pd

    parts = []
    with progress(args, len(data), "streaming") as bar:
        for start in range(0, len(data), _CHUNK_ROWS):
            parts.append(detector.run(data.iloc[start : start + _CHUNK_ROWS]))
            bar.update(len(parts[-1]))
    return pd.concat(parts)


# --------------------------------------------------------------------- fit


def _run_fit(args):
    """``rcforest fit``: fit a forest on the input and save it; return the exit code."""
    check_outputs({"input": args.input}, {"-o": args.output})
    params = forest_parameters(args)
    check_parameters(params)
    table = read_table(args.input, args.column, args.time_column, header=args.header)
    forest = _fit_forest(table, params, args.random_state)
    check_output_folder(args.output)
    forest.save(args.output)
    names = list(table.features.columns)
    say(args, table.reading)
    say(
        args,
        f"fitted {params['num_trees']} trees of {min(params['sample_size'], forest.points_seen_)} points on "
        f"{len(table.frame)} rows of column{'s' if len(names) > 1 else ''} {', '.join(names)} "
        f"(shingle {params['shingle_size']}); wrote {args.output}",
    )
    return 0
