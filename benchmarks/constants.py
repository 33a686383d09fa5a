"""The detector's constants one at a time at half and double their value: NAB's dev half and the stress suite.

Usage::

    python benchmarks/constants.py [--jobs N] [--names a,b] [--factors 0.5,2] [--no-nab] [--out FILE]

For each constant of :mod:`rcforest.detector` (a module constant, or a
default of ``ThresholdedForest``) and each factor, a child process sets the
constant to ``factor * value`` (rounded for integers), everywhere it was
imported and in the function defaults that hold it, then runs
``ThresholdedForest()`` over NAB's dev half (as ``benchmarks/nab.py``:
standard / low FP / low FN, false-alert rows after probation, the standard
score per category) and over the stress suite's ``--quick`` subset (as
``benchmarks/stress.py``: NAB standard, window recall, event F1, false
alerts per 10,000 clean rows). One JSON line per run goes to ``--out`` and
a table to stdout. The first run is the defaults themselves (factor 1).

The children fork their workers (the patch is inherited): run it on Linux.
"""

import argparse
import inspect
import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

__all__ = ["CONSTANTS", "main", "patch"]

CONSTANTS = {
    # ThresholdedForest's defaults
    "z_factor": "param",
    "min_threshold": "param",
    "threshold_horizon": "param",
    "min_deviation": "param",
    # the alert policy
    "ESCALATION": "rcforest.detector.alerts",
    "ALERT_MEMORY": "rcforest.detector.alerts",
    "STRONG": "rcforest.detector.alerts",
    "WEAK_GRADE": "rcforest.detector.alerts",
    "WEAK_DEVIATION": "rcforest.detector.alerts",
    "DEVIATION_SPAN": "rcforest.detector.alerts",
    "REPEAT": "rcforest.detector.alerts",
    "REPEAT_MEMORY": "rcforest.detector.alerts",
    # the thresholder
    "INITIAL_THRESHOLD": "rcforest.detector.thresholder",
    "RAMP": "rcforest.detector.thresholder",
    "CLIP_FACTOR": "rcforest.detector.thresholder",
    "SHORT_WINDOW": "rcforest.detector.thresholder",
    "LIKELIHOOD_Z": "rcforest.detector.thresholder",
    "LIKELIHOOD_WARMUP": "rcforest.detector.thresholder",
    "LIKELIHOOD_GRADE": "rcforest.detector.thresholder",
    # preprocessing and the period
    "RESIDUAL_FLOOR": "rcforest.detector.preprocess",
    "MIN_SHINGLE": "rcforest.detector.preprocess",
    "MAX_SHINGLE": "rcforest.detector.preprocess",
    "HISTORY": "rcforest.detector.period",
    "MIN_STRENGTH": "rcforest.detector.period",
    "NOISE_SIGMAS": "rcforest.detector.period",
    "MIN_PROMINENCE": "rcforest.detector.period",
    "SEASONAL_ERROR_RATIO": "rcforest.detector.period",
    "TOLERANCE": "rcforest.detector.period",
    "SWITCH": "rcforest.detector.period",
    "MIN_RANK_PERIOD": "rcforest.detector.period",
    # explanation
    "CANDIDATES": "rcforest.detector.explanation",
    "START_FRACTION": "rcforest.detector.explanation",
}
"""Each constant swept, and the module that defines it ("param": a default of ``ThresholdedForest``)."""

# Function parameters whose defaults hold a module constant.
_DEFAULTS = {
    "MIN_STRENGTH": ("estimate_period", "min_strength"),
    "TOLERANCE": ("estimate_period", "tolerance"),
    "SWITCH": ("estimate_period", "switch"),
}


def value_of(name):
    """The constant's value in the code as it stands."""
    import importlib

    from rcforest import ThresholdedForest

    where = CONSTANTS[name]
    if where == "param":
        return inspect.signature(ThresholdedForest).parameters[name].default
    return getattr(importlib.import_module(where), name)


def patch(name, value):
    """Set constant ``name`` to ``value`` in every detector module that holds it, and in the defaults holding it."""
    import importlib

    import rcforest.detector as package
    from rcforest import ThresholdedForest

    for module in ("alerts", "explanation", "output", "period", "preprocess", "thresholded_forest", "thresholder"):
        importlib.import_module(f"{package.__name__}.{module}")
    if CONSTANTS[name] == "param":
        ThresholdedForest.__init__.__kwdefaults__[name] = value
        return
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("rcforest.detector") and hasattr(module, name):
            setattr(module, name, value)
    if name in _DEFAULTS:
        function_name, parameter = _DEFAULTS[name]
        function = getattr(importlib.import_module(CONSTANTS[name]), function_name)
        names = [p for p in inspect.signature(function).parameters][-len(function.__defaults__) :]
        defaults = list(function.__defaults__)
        defaults[names.index(parameter)] = value
        function.__defaults__ = tuple(defaults)


def _scaled(value, factor):
    return max(1, int(round(value * factor))) if isinstance(value, int) else value * factor


def _nab_figures(jobs):
    """NAB dev half: the three scores, false-alert rows and the standard score per category."""
    import json as json_module

    import nab

    data = nab.DEFAULT_DATA
    paths = nab._files(data)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(paths, pool.map(nab._detect, paths.values())))
    outputs = {name: out for name, (out, _) in results.items()}
    windows = json_module.loads((data / "labels" / "combined_windows.json").read_text())
    import pandas as pd

    scores = {
        name: pd.DataFrame({"timestamp": out["timestamp"], "anomaly_score": nab.nab_anomaly_score(out)})
        for name, out in outputs.items()
    }
    rows, result = nab._category_table("ThresholdedForest", scores, windows, data / "labels" / "profiles.json")
    return {
        "nab": [round(result[p], 2) for p in nab.PROFILES],
        "nab_fa": sum(nab._false_alerts(outputs, windows).values()),
        "nab_categories": {category: round(standard, 2) for _, category, standard, _, _ in rows[1:]},
    }


def _stress_figures(jobs):
    """The stress suite's --quick subset: NAB standard, recall, event F1, false alerts per 10,000 clean rows."""
    import contextlib
    import io

    import stress

    suite = stress.quick_subset(stress.stress_suite(3, 2, stress.PROPERTIES))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip((s.name for s in suite), pool.map(stress._run, [s.values for s in suite])))
    outputs = {name: out for name, (out, _) in results.items()}
    with contextlib.redirect_stdout(io.StringIO()):
        table = stress.report(suite, outputs, 1.0)
    row = table.loc["all"]
    return {
        "stress": round(float(row["NAB"]), 2),
        "recall": round(float(row["recall"]), 3),
        "f1": round(float(row["ev.F1"]), 3),
        "fa10k": round(float(row["FA/10k"]), 2),
    }


def _child(name, factor, jobs, run_nab):
    multiprocessing.set_start_method("fork", force=True)
    record = {"name": name, "factor": factor}
    if name != "defaults":
        value = value_of(name)
        record["value"] = value
        record["patched"] = _scaled(value, factor)
        patch(name, record["patched"])
    started = time.perf_counter()
    if run_nab:
        record.update(_nab_figures(jobs))
    record.update(_stress_figures(jobs))
    record["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(record))


def _line(record):
    nab = "/".join(f"{v:.2f}" for v in record["nab"]) if "nab" in record else "-"
    fa = record.get("nab_fa", "-")
    label = "defaults" if record["name"] == "defaults" else f"{record['name']} x{record['factor']:g}"
    patched = f"= {record['patched']:g}" if "patched" in record else ""
    return (
        f"{label:<24} {patched:<12} NAB {nab:<18} FA {fa:<4} stress {record['stress']:6.2f} "
        f"recall {record['recall']:.3f} F1 {record['f1']:.3f} FA/10k {record['fa10k']:6.2f}  ({record['seconds']} s)"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="processes per run (default 2)")
    parser.add_argument("--names", help="comma-separated subset of the constants")
    parser.add_argument("--factors", default="0.5,2", help="factors applied (default 0.5,2)")
    parser.add_argument("--no-nab", action="store_true", help="the stress suite only")
    parser.add_argument("--no-defaults", action="store_true", help="skip the run of the defaults")
    parser.add_argument("--out", type=Path, help="append one JSON line per run here")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "FACTOR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], float(args.child[1]), args.jobs, not args.no_nab)
        return 0
    names = [n.strip() for n in args.names.split(",")] if args.names else list(CONSTANTS)
    unknown = [n for n in names if n not in CONSTANTS]
    if unknown:
        raise SystemExit(f"unknown constants {unknown}; choose among {','.join(CONSTANTS)}")
    runs = [] if args.no_defaults else [("defaults", 1.0)]
    runs += [(name, float(f)) for name in names for f in args.factors.split(",")]
    for name, factor in runs:
        command = [sys.executable, __file__, "--child", name, str(factor), "--jobs", str(args.jobs)]
        if args.no_nab:
            command.append("--no-nab")
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(f"{name} x{factor:g}: failed\n{done.stderr[-2000:]}", flush=True)
            continue
        record = json.loads(done.stdout.strip().splitlines()[-1])
        print(_line(record), flush=True)
        if args.out:
            with args.out.open("a") as stream:
                stream.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
