"""Period estimation on generated series with a known period: how often the detector's period is right.

Usage::

    python benchmarks/period.py [--seeds N] [--periods 12,24,...] [--detail] [--code DIR]
    python benchmarks/period.py --code DIR --compare FOLDER

Each case of :func:`rcforest.evaluate.periods.period_case` (6,144 rows) is
replayed through the detector's checkpoints
(:func:`rcforest.evaluate.periods.period_track`). A checkpoint counts once
the history holds two periods; its estimate is *right* when it lies within
2% (at least 1 row) of the true period, 5% for ``drift``, and is 0 for the
kinds without a period. Per kind and period: the share of such checkpoints
right, and whether the last one is. ``--code DIR`` scores the estimator of
another checkout (``DIR/rcforest/detector/period.py``) on the same cases.

``--compare FOLDER`` instead replays every ``*/*.csv`` series under
``FOLDER`` (a ``value`` column; a NAB-layout ``data`` folder, say) through
the checkpoints with the installed estimator and with ``--code``'s, and
prints the checkpoints where the two periods differ, each with how well it
predicts the history: the mean absolute difference of values a period apart
around its median, next to the previous value's (period 1). Files whose
periods agree at every checkpoint are counted, not listed.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rcforest.detector.period import HISTORY, estimate_period_robust  # noqa: E402
from rcforest.evaluate.periods import NO_PERIOD_KINDS, PERIOD_KINDS, period_case, period_track, true_period  # noqa: E402

__all__ = ["main", "right", "compare"]

PERIODS = (12, 24, 48, 96, 144, 288, 720, 1024)


def right(kind, period, seed, n, rows, estimate):
    """Whether ``estimate`` at checkpoint ``rows`` is right (see the module's docstring)."""
    truth = true_period(kind, period, seed, n, rows)
    if not truth:
        return estimate == 0
    tolerance = max(1.0, (0.05 if kind == "drift" else 0.02) * truth)
    return abs(estimate - truth) <= tolerance


def _lag_error(history, lag):
    """Mean absolute difference of the values ``lag`` apart around its median (1 without a period)."""
    difference = history[max(lag, 1) :] - history[: -max(lag, 1)]
    return float(np.abs(difference - np.median(difference)).mean())


def compare(folder, estimate, other):
    """Print the checkpoints of the series under ``folder`` where ``estimate`` and ``other`` differ."""
    files = sorted(Path(folder).glob("*/*.csv"))
    if not files:
        raise SystemExit(f"{folder} holds no <group>/<file>.csv series")
    same = 0
    for path in files:
        values = pd.read_csv(path)["value"].to_numpy(dtype=float)
        mine, theirs = period_track(values, estimate), period_track(values, other)
        if mine == theirs:
            same += 1
            continue
        print(f"{path.parent.name}/{path.name} ({values.size} rows)")
        for (rows, a), (_, b) in zip(mine, theirs):
            if a != b:
                history = values[max(0, rows - HISTORY) : rows]
                print(
                    f"  {rows:6d} rows: {a:5d} (error {_lag_error(history, a):.4g})  "
                    f"other {b:5d} (error {_lag_error(history, b):.4g});  previous value {_lag_error(history, 1):.4g}"
                )
    print(f"the same period at every checkpoint in {same} of {len(files)} series")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--periods", default=",".join(map(str, PERIODS)))
    parser.add_argument("--detail", action="store_true", help="per case: the estimates at each checkpoint")
    parser.add_argument("--code", type=Path, help="score the period estimator of this checkout instead")
    parser.add_argument("--compare", type=Path, help="the periods of these series (*/*.csv): installed vs --code")
    args = parser.parse_args(argv)
    estimate = estimate_period_robust
    if args.code:
        spec = importlib.util.spec_from_file_location("other_period", args.code / "rcforest/detector/period.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        estimate = module.estimate_period_robust
    if args.compare:
        if not args.code:
            parser.error("--compare needs --code (the estimator to compare with)")
        compare(args.compare, estimate_period_robust, estimate)
        return 0
    periods = [int(p) for p in args.periods.split(",")]
    n = HISTORY + 2048
    rows = []
    for kind in PERIOD_KINDS + NO_PERIOD_KINDS:
        for period in periods if kind in PERIOD_KINDS else [0]:
            for seed in range(args.seeds):
                track = period_track(period_case(kind, period, seed, n), estimate)
                counted = [(r, p) for r, p in track if r >= 2 * period]
                ok = [right(kind, period, seed, n, r, p) for r, p in counted]
                rows.append(
                    {
                        "kind": kind,
                        "period": period,
                        "seed": seed,
                        "checkpoints": len(ok),
                        "right": sum(ok),
                        "last_right": bool(ok and ok[-1]),
                    }
                )
                if args.detail:
                    print(kind, period, seed, [p for _, p in counted])
    table = pd.DataFrame(rows)
    by_kind = table.groupby(["kind", "period"], sort=False)[["checkpoints", "right", "last_right"]].sum()
    by_kind["share"] = (by_kind["right"] / by_kind["checkpoints"]).round(2)
    pd.set_option("display.width", 200)
    print(by_kind.unstack("period")[["share"]].to_string() if len(periods) > 1 else by_kind.to_string())
    total = table[["checkpoints", "right", "last_right"]].sum()
    with_period = table[table["kind"].isin(PERIOD_KINDS)]
    without = table[table["kind"].isin(NO_PERIOD_KINDS)]
    print(
        f"\ncheckpoints right: {total['right']} of {total['checkpoints']} "
        f"({total['right'] / total['checkpoints']:.3f}); last checkpoint right: "
        f"{with_period['last_right'].sum()} of {len(with_period)} series with a period, "
        f"{without['last_right'].sum()} of {len(without)} without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
