"""ThresholdedForest on the Numenta Anomaly Benchmark, scored as NAB scores, next to the published detectors.

Usage::

    python benchmarks/nab.py [--data DIR] [--jobs N] [--explain] [--save DIR] [--folds]
    python benchmarks/nab.py --check-scorer

``--data`` is a folder laid out like NAB (``data/<category>/<file>.csv``,
``labels/combined_windows.json``, ``labels/profiles.json`` and, for the
comparison, ``reference/<detector>/<category>/<file>.csv[.gz]``); by default
``shared/data/nab-dev`` beside the repository or beside one of its parent
folders (``$RCFOREST_DATA/nab-dev`` when that variable is set). Every series runs through
``ThresholdedForest()`` with its defaults, one row at a time in stream
order; a row's NAB anomaly score is ``0.5 + 0.5 * grade`` where the detector
alerts (``grade > 0``) and ``0.49 * min(score / threshold, 1)`` elsewhere, so
the detector's own alerts decide and the optimiser keeps a continuous knob
below them.

The table gives NAB's three normalised scores over all files and per
category (the corpus threshold, each category normalised by its own null
and perfect scores), the stored published detectors scored the same way,
and the detector's seconds per 1,000 rows. ``--explain`` lists, per file,
the windows the detector's alerts missed and the alerts outside windows
after probation, each with its score over threshold and the rows since the
previous alert (and how low the score fell in between). ``--folds`` adds
leave-one-category-out folds: for each category, its score when NAB's
corpus threshold (the one constant NAB chooses per detector) is optimised
on the other categories only, next to its in-sample score (the
threshold chosen on all categories, as in the table) and the score at the
threshold best for that category alone; then the folds' mean, minimum and
standard deviation. ``--check-scorer`` scores the stored ``null``,
``randomCutForest`` and ``numenta`` outputs and compares them with NAB's
published figures for these files (to 0.01).
"""

import argparse
import functools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rcforest import ThresholdedForest  # noqa: E402
from rcforest.evaluate import nab_score  # noqa: E402
from rcforest.evaluate.nab import NULL_SCORE, _cost_matrices, _File, _file_score, _raw_scores, probation_length  # noqa: E402

__all__ = ["main", "nab_anomaly_score", "fold_scores"]

# ``shared/data`` beside the repository, or beside the folder that holds it (a clone in a work tree).
_SHARED = next((p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()), None)
DEFAULT_DATA = Path(os.environ.get("RCFOREST_DATA", _SHARED or ROOT.parent / "shared" / "data")) / "nab-dev"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
SHORT = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}
# NAB's official scores on the 31 files of the development half (nab-dev/README.md).
PUBLISHED = {
    "null": (0.00, 0.00, 0.00),
    "randomCutForest": (52.00, 38.28, 60.98),
    "knncad": (64.40, 50.44, 71.00),
    "htmjava": (68.45, 61.30, 73.12),
    "numenta": (71.21, 64.99, 75.87),
    "contextOSE": (74.05, 71.66, 76.85),
    "ARTime": (78.15, 70.44, 83.10),
}
REFERENCE = ("null", "randomCutForest", "numenta")
ALERT_FLOOR = 0.5  # NAB scores of alerted rows start here
QUIET_CEILING = 0.49  # and those of the other rows stay below this


def nab_anomaly_score(out):
    """NAB anomaly scores from a detector's output: alerts above 0.5, other rows below 0.49."""
    grade = out["grade"].to_numpy()
    ratio = np.nan_to_num(out["score"].to_numpy() / out["threshold"].to_numpy(), nan=0.0)
    quiet = QUIET_CEILING * np.clip(ratio, 0.0, 1.0)
    return np.where(grade > 0, ALERT_FLOOR + ALERT_FLOOR * grade, quiet)


def _detect(path, timestamps=False):
    """Run the default detector over one file (with its timestamps if asked); return its output and seconds."""
    frame = pd.read_csv(path)
    times = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])) if timestamps else None
    start = time.perf_counter()
    out = ThresholdedForest().run(frame["value"].to_numpy(), timestamps=times)
    seconds = time.perf_counter() - start
    out = out.reset_index(drop=True)  # the timestamps index it when passed; positions, as without
    out.insert(0, "timestamp", frame["timestamp"].to_numpy())
    return out, seconds


def _files(data):
    files = sorted((data / "data").glob("*/*.csv"))
    if not files:
        raise SystemExit(f"{data / 'data'} holds no <category>/<file>.csv series")
    return {f"{path.parent.name}/{path.name}": path for path in files}


def _category_table(name, scores, windows, profiles):
    """Rows (detector, category, standard, low FP, low FN) for one detector's outputs."""
    result = nab_score(scores, windows, profiles)
    null = {name: pd.DataFrame({"timestamp": f["timestamp"], "anomaly_score": 0.5}) for name, f in scores.items()}
    baseline = nab_score(null, windows, profiles)
    files = result.files.assign(category=result.files["file"].str.split("/").str[0])
    nulls = baseline.files.assign(category=baseline.files["file"].str.split("/").str[0])
    rows = [(name, "all", *(result[p] for p in PROFILES))]
    for category in sorted(files["category"].unique()):
        values = []
        for profile in PROFILES:
            mine = files[(files["profile"] == profile) & (files["category"] == category)]
            base = nulls[(nulls["profile"] == profile) & (nulls["category"] == category)]
            weight = result.perfect[profile] / max(result.files[result.files["profile"] == profile]["windows"].sum(), 1)
            perfect = weight * base["windows"].sum()
            span = perfect - base["score"].sum()
            values.append(100 * (mine["score"].sum() - base["score"].sum()) / span if span else np.nan)
        rows.append((name, category, *values))
    return rows, result


def _read_reference(folder):
    frames = {}
    for path in sorted(folder.glob("*/*.csv*")):
        frames[f"{path.parent.name}/{path.name.removesuffix('.gz')}"] = pd.read_csv(path)
    return frames


def check_scorer(data):
    """Score the stored reference outputs; return True when every figure matches NAB's to 0.01."""
    windows = data / "labels" / "combined_windows.json"
    profiles = data / "labels" / "profiles.json"
    ok = True
    print(f"{'detector':<18}" + "".join(f"{SHORT[p]:>20}" for p in PROFILES))
    for name in REFERENCE:
        result = nab_score(data / "reference" / name, windows, profiles)
        cells = []
        for profile, published in zip(PROFILES, PUBLISHED[name]):
            match = abs(result[profile] - published) <= 0.01
            ok &= match
            cells.append(f"{result[profile]:8.2f} vs {published:6.2f}{'' if match else ' !'}")
        print(f"{name:<18}" + "".join(f"{c:>20}" for c in cells))
    print("scorer reproduces NAB's published scores" if ok else "MISMATCH: the scorer does not reproduce NAB")
    return ok


def _false_alerts(outputs, windows):
    """Per file: alerted rows after probation outside every window."""
    counts = {}
    for name, out in outputs.items():
        times = pd.DatetimeIndex(pd.to_datetime(out["timestamp"]))
        inside = np.zeros(len(out), bool)
        for start, end in windows.get(name, []):
            inside[times.searchsorted(pd.Timestamp(start)) : times.searchsorted(pd.Timestamp(end), "right")] = True
        alerted = out["grade"].to_numpy() > 0
        alerted[: probation_length(len(out))] = False
        counts[name] = int((alerted & ~inside).sum())
    return counts


def _explain(outputs, windows):
    """Per file: windows missed by the detector's alerts, and alerts outside windows after probation."""
    for name, out in outputs.items():
        times = pd.DatetimeIndex(pd.to_datetime(out["timestamp"]))
        probation = probation_length(len(out))
        grade = out["grade"].to_numpy()
        alerts = np.flatnonzero(grade > 0)
        inside = np.zeros(len(out), bool)
        lines = []
        for start, end in windows.get(name, []):
            first, last = times.searchsorted(pd.Timestamp(start)), times.searchsorted(pd.Timestamp(end), "right") - 1
            inside[first : last + 1] = True
            hits = alerts[(alerts >= first) & (alerts <= last)]
            if last < probation:
                continue
            if hits.size:
                lines.append(f"  hit    {start[:16]} .. {end[:16]}: +{hits[0] - first} of {last - first + 1} rows")
            else:
                ratios = (out["score"] / out["threshold"]).to_numpy()[first : last + 1]
                best = first + int(np.nanargmax(ratios)) if np.isfinite(ratios).any() else first
                ratio = ratios[best - first]
                lines.append(
                    f"  MISSED {start[:16]} .. {end[:16]} ({last - first + 1} rows): "
                    f"peak score/threshold {ratio:.2f} at +{best - first}"
                )
        ratio = (out["score"] / out["threshold"]).to_numpy()
        for row in alerts[(alerts >= probation) & ~inside[alerts]]:
            r = out.iloc[row]
            before = alerts[alerts < row]
            after = "the first alert" if not before.size else "the row after an alert"
            if before.size and row - before[-1] > 1:
                low = np.nanmin(ratio[before[-1] + 1 : row])
                after = f"{row - before[-1]} rows after an alert, score/threshold down to {low:.2f} between"
            lines.append(
                f"  FALSE  {str(times[row])[:16]} grade {r['grade']:.2f} score {r['score']:.2f}/{r['threshold']:.2f} "
                f"(x{ratio[row]:.2f}) {r['attribution']} expected {r['expected_value']:.4g}; {after}"
            )
        if lines:
            print(f"{name} ({len(out)} rows, probation {probation})")
            print("\n".join(lines))


def _category(name):
    return name.split("/")[0]


def _score_at(files, costs, threshold):
    """Raw NAB total of ``files`` (scored by the scorer's own rules) and their detections outside windows."""
    total = fp = 0
    for f in files:
        sweep, window = f.sweep(costs)
        detail = _file_score(f.scores, sweep, window, len(f.windows), threshold, costs["fnWeight"])
        total += detail["score"]
        fp += detail["fp"]
    return total, fp


def _normalised(files, nulls, costs, threshold, null_threshold):
    """A group of files' normalised score at ``threshold`` (the null at ``null_threshold``), and its false rows."""
    raw, fp = _score_at(files, costs, threshold)
    null, _ = _score_at(nulls, costs, null_threshold)
    perfect = costs["tpWeight"] * sum(len(f.windows) for f in files)
    return (100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")), fp, raw


def fold_scores(scores, windows, profiles=None):
    """Leave-one-category-out folds of NAB's score: each category scored at a threshold chosen without it.

    Parameters
    ----------
    scores : dict
        ``"<category>/<file>.csv"`` to a DataFrame with ``timestamp`` and ``anomaly_score``.
    windows : dict
        NAB's windows per file.
    profiles : None, path or dict
        Cost profiles, as :func:`rcforest.evaluate.nab_score` takes them.

    Returns
    -------
    pandas.DataFrame
        One row per profile and category: ``fold`` (the threshold optimised on the other categories),
        ``in_sample`` (optimised on all categories, as :func:`nab_score` does), ``own`` (on the category
        alone), the fold's raw (unnormalised) total, its threshold and the rows detected outside windows
        after probation at it (``fold_fp_rows``). Each category is normalised by its own null and perfect
        scores, the null's threshold chosen on the same files as the detector's; a category without
        windows (``artificialNoAnomaly``) has null = perfect = 0 and no normalised score (NaN), only its
        raw total, the penalty of its false detections.
    """
    costs_by_profile = _cost_matrices(profiles)
    files, nulls = [], []
    for name, frame in sorted(scores.items()):
        times = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
        values = frame["anomaly_score"].to_numpy(dtype=float)
        files.append(_File(name, times, values, windows[name], 0.15))
        nulls.append(_File(name, times, np.full(len(values), NULL_SCORE), windows[name], 0.15))
    categories = sorted({_category(f.name) for f in files})
    rows = []
    for profile, costs in costs_by_profile.items():
        everywhere = _raw_scores(files, costs)[0], _raw_scores(nulls, costs)[0]
        for category in categories:
            inside = [_category(f.name) == category for f in files]
            test = [f for f, keep in zip(files, inside) if keep], [f for f, keep in zip(nulls, inside) if keep]
            train = [f for f, keep in zip(files, inside) if not keep], [f for f, keep in zip(nulls, inside) if not keep]
            fold = _raw_scores(train[0], costs)[0], _raw_scores(train[1], costs)[0]
            own = _raw_scores(test[0], costs)[0], _raw_scores(test[1], costs)[0]
            held, fp, raw = _normalised(*test, costs, *fold)
            rows.append(
                {
                    "profile": profile,
                    "category": category,
                    "files": len(test[0]),
                    "windows": sum(len(f.windows) for f in test[0]),
                    "fold": held,
                    "in_sample": _normalised(*test, costs, *everywhere)[0],
                    "own": _normalised(*test, costs, *own)[0],
                    "fold_raw": raw,
                    "fold_threshold": fold[0],
                    "fold_fp_rows": fp,
                }
            )
    return pd.DataFrame(rows)


def print_folds(outputs, data):
    """Print the leave-one-category-out folds of the detector's ``outputs``."""
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    scores = {
        name: pd.DataFrame({"timestamp": out["timestamp"], "anomaly_score": nab_anomaly_score(out)})
        for name, out in outputs.items()
    }
    table = fold_scores(scores, windows, data / "labels" / "profiles.json")
    false_alerts = pd.Series(_false_alerts(outputs, windows)).groupby(_category).sum()
    standard = table[table["profile"] == "standard"].set_index("category")
    columns = ["files", "windows", "in_sample", "fold", "own", "fold_raw", "fold_threshold", "fold_fp_rows"]
    shown = standard[columns].copy()
    for profile in PROFILES[1:]:
        shown[f"fold {SHORT[profile]}"] = table[table["profile"] == profile].set_index("category")["fold"]
    shown["false alerts"] = false_alerts
    print("\nleave-one-category-out folds: each category at the threshold optimised on the other categories")
    print("(standard profile unless named; in_sample: threshold on all categories; own: on the category alone)\n")
    print(shown.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-"))
    print("\nover the folds with windows (std with ddof=0):")
    for column in ["in_sample", "fold", "own", *(f"fold {SHORT[p]}" for p in PROFILES[1:])]:
        values = shown[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        print(
            f"  {column:<14} mean {values.mean():6.2f}  min {values.min():6.2f}  std {values.std():5.2f}"
            f"  ({values.size} folds)"
        )
    print(f"  false alerts: {int(false_alerts.sum())} rows after probation outside windows (the detector's alerts)")
    return table


def report(outputs, data, seconds, jobs=1, explain=False):
    """Print the tables for detector ``outputs`` (per file: the output of ``run`` with a timestamp column)."""
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    profiles = data / "labels" / "profiles.json"
    rows = sum(len(out) for out in outputs.values())
    scores = {
        name: pd.DataFrame({"timestamp": out["timestamp"], "anomaly_score": nab_anomaly_score(out)})
        for name, out in outputs.items()
    }
    table, result = _category_table("ThresholdedForest", scores, windows, profiles)
    for name in ("numenta", "randomCutForest"):
        folder = data / "reference" / name
        if folder.is_dir():
            table += _category_table(name, _read_reference(folder), windows, profiles)[0]
    frame = pd.DataFrame(table, columns=["detector", "category", *(SHORT[p] for p in PROFILES)])
    pivot = frame.pivot(index="category", columns="detector", values="standard")
    print(f"NAB on {len(outputs)} files ({rows:,} rows) of {data}: ThresholdedForest() with its defaults\n")
    mine = frame[frame["detector"] == "ThresholdedForest"].drop(columns="detector").set_index("category")
    mine["false alerts"] = pd.Series(_false_alerts(outputs, windows)).groupby(lambda n: n.split("/")[0]).sum()
    mine.loc["all", "false alerts"] = mine["false alerts"].sum()  # the "all" row is NaN before this
    mine["false alerts"] = mine["false alerts"].astype(int)
    print(mine.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-"))
    print("\nstandard per category, next to the stored published detectors:")
    print(pivot.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-"))
    print("\nall files, NAB's published scores on these files:")
    overall = dict(PUBLISHED)
    overall["ThresholdedForest"] = tuple(result[p] for p in PROFILES)
    for name, values in sorted(overall.items(), key=lambda item: item[1][0]):
        print(f"  {name:<18}" + "".join(f"{SHORT[p]:>10} {v:6.2f}" for p, v in zip(PROFILES, values)))
    print(f"\nthresholds: { {SHORT[p]: round(result.thresholds[p], 4) for p in PROFILES} }")
    print(f"seconds per 1,000 rows: {1000 * seconds / rows:.3f} (detector only, {jobs} process(es))")
    if explain:
        print()
        _explain(outputs, windows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="NAB-layout folder (default: ../shared/data/nab-dev)")
    parser.add_argument("--check-scorer", action="store_true", help="check the scorer against NAB's published rows")
    parser.add_argument("--explain", action="store_true", help="per file, the windows missed and the false alerts")
    parser.add_argument("--jobs", type=int, default=1, help="files run in parallel (default 1)")
    parser.add_argument("--save", type=Path, help="write the NAB anomaly scores here (<category>/<file>.csv)")
    parser.add_argument("--timestamps", action="store_true", help="pass the files' timestamps to the detector")
    parser.add_argument("--folds", action="store_true", help="also leave-one-category-out folds of the score")
    args = parser.parse_args(argv)
    data = args.data or DEFAULT_DATA
    if not (data / "labels" / "combined_windows.json").is_file():
        raise SystemExit(
            f"no NAB data at {data}: pass --data DIR, a folder with NAB's data/ and labels/ (and reference/ for the "
            "published detectors); NAB is at https://github.com/numenta/NAB (MIT licence)"
        )
    if args.check_scorer:
        return 0 if check_scorer(data) else 1
    paths = _files(data)
    with ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else _Serial() as pool:
        results = dict(zip(paths, pool.map(functools.partial(_detect, timestamps=args.timestamps), paths.values())))
    outputs = {name: out for name, (out, _) in results.items()}
    seconds = sum(s for _, s in results.values())
    if args.save:
        for name, out in outputs.items():
            target = args.save / name
            target.parent.mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame({"timestamp": out["timestamp"], "anomaly_score": nab_anomaly_score(out)})
            frame.to_csv(target, index=False)
    report(outputs, data, seconds, args.jobs, args.explain)
    if args.folds:
        print_folds(outputs, data)
    return 0


class _Serial:
    """A stand-in for a process pool that maps in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, function, items):
        return [function(item) for item in items]


if __name__ == "__main__":
    sys.exit(main())
