"""Record what the alert policy sees on NAB's files and the stress suite once; replay policy variants on it.

Usage::

    python benchmarks/replay.py record DIR [--data NAB_DIR] [--what nab,stress]
    python benchmarks/replay.py replay DIR [--variant NAME ...]
    python benchmarks/replay.py check DIR

The forest's scores, the thresholds and the likelihood test do not depend
on the alert policy (:class:`rcforest.detector.alerts.AlertPolicy`): it only
turns them into alerts. ``record`` runs ``ThresholdedForest()`` with its
defaults over every file of a NAB-layout folder (as ``benchmarks/nab.py``
does, without timestamps) and every series of the stress suite (as
``benchmarks/stress.py`` does, with them), and stores, per call of
``AlertPolicy.decide``, its arguments (grade, score over threshold, hold,
likelihood grade), the score, the threshold, the threshold's statistics and
the period in use, and the explanation of every row the policy may ask to
explain (a crossing or a likely anomaly). ``replay`` runs a policy over
those records, puts its alerts back on the rows, and prints the figures of
``benchmarks/nab.py --folds`` and ``benchmarks/stress.py`` (computed with
their own functions): NAB's three profiles and false-alert rows, the
leave-one-category-out folds (standard profile), the suite's NAB score,
recall, event precision and F1, false events and clean false rows per
10,000 after warm-up. The variant ``main`` replays the package's own
policy; ``record`` (and ``check``) checks that it gives the recorded
alerts exactly. The other variants of :data:`VARIANTS` are those of the
fifth round of false alerts in ``benchmarks/README.md``; the ones named
with a quantile ``q`` read the series' own residual quantiles, which
``replay`` adds to the explanations (:func:`add_tails`).
"""

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import nab  # noqa: E402
import stress  # noqa: E402

from rcforest import ThresholdedForest  # noqa: E402
from rcforest.detector.alerts import REPEAT_MEMORY, WEAK_DEVIATION, WEAK_GRADE, AlertPolicy  # noqa: E402
from rcforest.detector.period import HISTORY  # noqa: E402
from rcforest.detector.preprocess import reference  # noqa: E402
from rcforest.evaluate.synthetic import stress_suite  # noqa: E402

__all__ = ["record", "replay", "VARIANTS"]

FIELDS = ("grade", "strength", "hold", "likely", "score", "threshold", "mean", "var", "count", "period")


class _Recorder(AlertPolicy):
    """The package's policy, keeping its inputs and the explanation of every row it may explain."""

    def __init__(self, detector, min_deviation, ignore_relative):
        super().__init__(min_deviation, ignore_relative)
        self.detector = detector
        self.calls = {field: [] for field in FIELDS}
        self.explanations = {}

    def decide(self, grade, strength, hold, explain, likely=0.0):
        thresholder = self.detector._thresholder
        row = {
            "grade": grade,
            "strength": strength,
            "hold": hold,
            "likely": likely,
            "threshold": thresholder.threshold(),
            "mean": thresholder.mean,
            "var": thresholder.var,
            "count": thresholder.count,
            "period": self.detector._preprocessor.period,
        }
        row["score"] = strength * row["threshold"]
        for field in FIELDS:
            self.calls[field].append(row[field])
        if grade > 0 or likely > 0:
            explanation = explain()
            self.explanations[len(self.calls["grade"]) - 1] = explanation
            explain = lambda: explanation  # noqa: E731
        return super().decide(grade, strength, hold, explain, likely)


class _Recording(ThresholdedForest):
    """``ThresholdedForest`` whose output's ``confidence`` holds the number of the policy's call on the row."""

    def _reset(self):
        super()._reset()
        self._alerts = _Recorder(self, self.min_deviation, self.ignore_relative)

    def _judge(self, score, imputed, explainer, taken=None):
        threshold, alert, _, explanation = super()._judge(score, imputed, explainer, taken)
        return threshold, alert, float(len(self._alerts.calls["grade"])), explanation


def _record_one(values, timestamps=None):
    detector = _Recording()
    out = detector.run(values, timestamps=timestamps).reset_index(drop=True)
    policy = detector._alerts
    return {
        "calls": {field: np.asarray(column) for field, column in policy.calls.items()},
        "explanations": policy.explanations,
        "call": out["confidence"].to_numpy().astype(int) - 1,  # -1: no call (before the first forest)
        "grade": out["grade"].to_numpy(),
        "score": out["score"].to_numpy(),
        "threshold": out["threshold"].to_numpy(),
    }


def record(folder, data, what):
    """Record the NAB files of ``data`` and/or the stress suite into ``folder`` (``nab.pkl``, ``stress.pkl``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if "nab" in what:
        records = {}
        for name, path in nab._files(data).items():
            frame = pd.read_csv(path)
            records[name] = _record_one(frame["value"].to_numpy())
            records[name]["timestamp"] = frame["timestamp"].to_numpy()
            print(f"recorded {name}", flush=True)
        (folder / "nab.pkl").write_bytes(pickle.dumps({"data": str(data), "records": records}))
    if "stress" in what:
        records = {}
        for series in stress_suite(3, 2):
            records[series.name] = _record_one(series.values, series.timestamps)
            print(f"recorded {series.name}", flush=True)
        (folder / "stress.pkl").write_bytes(pickle.dumps({"records": records}))


def policy_alerts(rec, make_policy):
    """The grades a policy from ``make_policy()`` gives on one series' record, per output row."""
    calls, explanations = rec["calls"], rec["explanations"]
    policy = make_policy()
    alerts = np.zeros(len(calls["grade"]))
    for k in range(len(alerts)):

        def explain(k=k):
            return explanations[k]

        inputs = {field: calls[field][k] for field in FIELDS}
        if hasattr(policy, "observe"):
            policy.observe(inputs)
        alerts[k] = policy.decide(
            float(calls["grade"][k]),
            float(calls["strength"][k]),
            int(calls["hold"][k]),
            explain,
            float(calls["likely"][k]),
        )[0]
    grade = np.zeros(len(rec["call"]))
    called = rec["call"] >= 0
    grade[called] = alerts[rec["call"][called]]
    return grade


def _frame(rec, grade):
    return pd.DataFrame({"grade": grade, "score": rec["score"], "threshold": rec["threshold"]})


def nab_figures(recorded, make_policy):
    """NAB dev's three profiles, false rows and the standard folds for a policy."""
    data = Path(recorded["data"])
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    outputs, scores = {}, {}
    for name, rec in recorded["records"].items():
        out = _frame(rec, policy_alerts(rec, make_policy))
        out.insert(0, "timestamp", rec["timestamp"])
        outputs[name] = out
        scores[name] = pd.DataFrame({"timestamp": out["timestamp"], "anomaly_score": nab.nab_anomaly_score(out)})
    _, result = nab._category_table("ThresholdedForest", scores, windows, data / "labels" / "profiles.json")
    folds = nab.fold_scores(scores, windows, data / "labels" / "profiles.json")
    standard = folds[folds["profile"] == "standard"].set_index("category")["fold"].dropna()
    return {
        "dev": tuple(result[p] for p in nab.PROFILES),
        "false rows": sum(nab._false_alerts(outputs, windows).values()),
        "folds": standard.to_dict(),
        "fold mean": standard.mean(),
        "outputs": outputs,
    }


def stress_figures(recorded, make_policy, suite=None):
    """The stress suite's "all" row for a policy."""
    suite = suite if suite is not None else stress_suite(3, 2)
    outputs = {
        s.name: _frame(recorded["records"][s.name], policy_alerts(recorded["records"][s.name], make_policy))
        for s in suite
    }
    counts = pd.DataFrame([stress.score_series(s, outputs[s.name]) for s in suite])
    _, result = stress._nab(suite, outputs)
    summary = stress._summary(counts)
    summary["NAB"] = result["standard"]
    clean = counts[counts["clean"]]
    summary["clean rows"] = dict(zip(clean["name"], clean["false_rows"]))
    summary["outputs"] = outputs
    return summary


_DEFAULTS = (ThresholdedForest().min_deviation, ThresholdedForest().ignore_relative)


def _main_policy():
    return AlertPolicy(*_DEFAULTS)


QUANTILES = (0.995, 0.999)
"""Quantiles of the history's residuals that :func:`add_tails` records (see :class:`_Tail`)."""


def add_tails(rec, values):
    """Give each recorded explanation ``tail``: the :data:`QUANTILES` of the absolute residuals (value minus
    reference, around their median) of the rows before it (at most ``HISTORY``), in typical residuals.

    Measured on the input rows (missing values carried forward, no rows inserted for gaps) with the period in use.
    """
    values = pd.Series(values).ffill().bfill().to_numpy(float)
    row_of = {int(call): row for row, call in enumerate(rec["call"]) if call >= 0}
    residuals = {}
    for call, explanation in rec["explanations"].items():
        row, period = row_of.get(call), int(rec["calls"]["period"][call])
        if row is None or row < 10:
            continue
        if period not in residuals:
            residuals[period] = values - reference(values, 0, period)
        window = residuals[period][max(1, row - HISTORY) : row]
        spread = np.abs(window - np.median(window))
        if spread.mean() > 0:
            explanation["tail"] = tuple(np.quantile(spread, QUANTILES) / spread.mean())


class _Weak(AlertPolicy):
    """The package's policy with a stricter rule for weak evidence (``weak_rule``), told which rows are weak."""

    likely_only = True

    def __init__(self):
        super().__init__(*_DEFAULTS)
        self.weak_row = False

    def decide(self, grade, strength, hold, explain, likely=0.0):
        self.weak_row = (grade <= 0 < likely) or (not self.likely_only and 0 < grade < WEAK_GRADE)
        return super().decide(grade, strength, hold, explain, likely)

    def suppressed(self, explanation, factor=1.0):
        return super().suppressed(explanation, factor) or (self.weak_row and self.weak_rule(explanation))


class _WeakDeviation(_Weak):
    """Likely rows must deviate ``deviation`` typical residuals at their phase (main: ``WEAK_DEVIATION * 5`` = 6)."""

    deviation = 6.0

    def weak_rule(self, explanation):
        return explanation["deviation"] < self.deviation


class _Tail(_Weak):
    """Weak evidence must also depart beyond the history's own residual quantile ``QUANTILES[q]`` (see
    :func:`add_tails`); with ``factor`` 1 instead of ``WEAK_DEVIATION``, the quantile replaces it."""

    q, factor = 1, WEAK_DEVIATION

    def suppressed(self, explanation, factor=1.0):
        factor = self.factor if self.weak_row else factor
        return AlertPolicy.suppressed(self, explanation, factor) or (self.weak_row and self.weak_rule(explanation))

    def weak_rule(self, explanation):
        tail = explanation.get("tail")
        departure = abs(explanation["actual"] - explanation["expected_value"]) / explanation["residual"]
        return tail is not None and departure < tail[self.q]


class _Excursions(AlertPolicy):
    """The rate bound counting every excursion above the threshold (reported or not) at its peak."""

    outranked_by = 3

    def __init__(self):
        super().__init__(*_DEFAULTS)
        self.peaks, self.current, self.below = [], None, 0

    def observe(self, inputs):
        if inputs["grade"] > 0:
            if self.current is None:
                self.current = [self.clock + 1, inputs["strength"]]
                self.peaks.append(self.current)
            self.current[:] = [self.clock + 1, max(self.current[1], inputs["strength"])]
            self.below = 0
        elif self.current is not None:
            self.below += 1
            if self.below >= inputs["hold"]:
                self.current = None

    def outranked(self, strength):
        earlier = [p for p in self.peaks if p is not self.current and self.clock - p[0] <= REPEAT_MEMORY]
        return sum(peak >= strength for _, peak in earlier) >= self.outranked_by or super().outranked(strength)


class _NoLikely(AlertPolicy):
    """The package's policy without the likelihood test's rows (no likely anomaly below the threshold)."""

    def __init__(self):
        super().__init__(*_DEFAULTS)

    def decide(self, grade, strength, hold, explain, likely=0.0):
        return super().decide(grade, strength, hold, explain, 0.0)


def _variant(base, **attributes):
    return type(base.__name__, (base,), attributes)


VARIANTS = {
    "main": _main_policy,
    "no likely rows": _NoLikely,
    "likely rows 6.5": _variant(_WeakDeviation, deviation=6.5),
    "likely rows 7": _variant(_WeakDeviation, deviation=7.0),
    "excursions 1": _variant(_Excursions, outranked_by=1),
    "excursions 2": _variant(_Excursions, outranked_by=2),
    "excursions 3": _variant(_Excursions, outranked_by=3),
    "likely rows: q.999": _Tail,
    "likely rows: q.995": _variant(_Tail, q=0),
    "likely rows: q.999 for 1.2": _variant(_Tail, factor=1.0),
    "likely rows: q.995 for 1.2": _variant(_Tail, q=0, factor=1.0),
    "weak evidence: q.999": _variant(_Tail, likely_only=False),
    "weak evidence: q.999 for 1.2": _variant(_Tail, likely_only=False, factor=1.0),
    "weak evidence: q.995 for 1.2": _variant(_Tail, q=0, likely_only=False, factor=1.0),
}
"""Policies by name (each a callable returning a fresh policy; an ``observe(inputs)`` method, if any, sees every
call's recorded inputs first). The ``q`` variants need :func:`add_tails` (``replay`` adds them)."""


def replay(folder, names, what=("nab", "stress")):
    """Print each variant's figures on the records in ``folder``; return them."""
    results = {}
    suite = stress_suite(3, 2) if "stress" in what else None
    recorded = {w: pickle.loads((folder / f"{w}.pkl").read_bytes()) for w in what}
    if "nab" in what:
        data = Path(recorded["nab"]["data"])
        for name, rec in recorded["nab"]["records"].items():
            add_tails(rec, pd.read_csv(data / "data" / name)["value"].to_numpy())
    for series in suite or []:
        add_tails(recorded["stress"]["records"][series.name], series.values)
    for name in names:
        make = VARIANTS[name]
        line = f"{name:<30}"
        if "nab" in what:
            n = nab_figures(recorded["nab"], make)
            folds = " ".join(f"{v:.2f}" for v in n["folds"].values())
            line += " NAB {:.2f} / {:.2f} / {:.2f} ({})".format(*n["dev"], n["false rows"])
            line += f" folds {n['fold mean']:.2f}: {folds}"
            results[(name, "nab")] = n
        if "stress" in what:
            s = stress_figures(recorded["stress"], make, suite)
            line += (
                f" | stress {s['NAB']:.2f} / {s['recall']:.2f} / {s['ev.prec']:.2f} / {s['ev.F1']:.2f}"
                f" / {s['fp ev']} / {s['clean FA']} ({s['FA/10k']:.2f})"
            )
            results[(name, "stress")] = s
        print(line, flush=True)
    return results


def check(folder, what):
    """Whether the package's policy replayed gives the recorded alerts, row for row."""
    ok = True
    for w in what:
        recorded = pickle.loads((folder / f"{w}.pkl").read_bytes())
        for name, rec in recorded["records"].items():
            if not np.array_equal(policy_alerts(rec, _main_policy), rec["grade"]):
                print(f"MISMATCH {w} {name}")
                ok = False
    print("replay reproduces the recorded alerts" if ok else "replay differs")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["record", "replay", "check"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="NAB-layout folder (default: as benchmarks/nab.py)")
    parser.add_argument("--what", default="nab,stress", help="nab, stress or both (default)")
    parser.add_argument("--variant", action="append", help=f"one of {', '.join(VARIANTS)} (default: all)")
    args = parser.parse_args(argv)
    what = tuple(w for w in args.what.split(",") if w)
    if args.command == "record":
        record(args.folder, args.data or nab.DEFAULT_DATA, what)
        return 0 if check(args.folder, what) else 1
    if args.command == "check":
        return 0 if check(args.folder, what) else 1
    replay(args.folder, args.variant or list(VARIANTS), what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
