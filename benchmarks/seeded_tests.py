"""The test suite's assertions on models whose training draws its own seed, over many seeds.

Usage::

    python benchmarks/seeded_tests.py [--seeds N] [--start S] [CHECK ...]

A SageMaker training job (``RandomCutForest.fit``, ``rcforest aws``,
``rcforest train``) draws its own seed, so a test asserting on its model
sees a different forest in every run. Each check below copies one test's
data and statistic and builds the job's forest outside the servers, on the
data as the job reads it (float32 for ``record_set``, the CSV's digits
otherwise), as ``Forest(num_trees, sample_size, sampling="sagemaker",
random_state=s)`` for each seed. It prints, per assertion, the runs that
would fail out of those tried. CHECKs: all by default.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rcforest import Forest  # noqa: E402
from rcforest.sagemaker.metrics import evaluate  # noqa: E402
from tests.seeded_data import labelled_test, normal_rows, spaced_anomalies, taxi_like_series  # noqa: E402

__all__ = ["CHECKS", "main"]


def f32(a):
    """``a`` as the RecordIO-protobuf of ``record_set`` carries it: float32 values."""
    return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)


def csv6(a):
    """``a`` as written with 6 decimals."""
    return np.array([float(f"{v:.6f}") for v in np.ravel(a)]).reshape(np.shape(a))


def job(rows, trees, samples, seed):
    """The forest a training job fits on ``rows``, with ``seed`` for the one it draws."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim == 1:
        rows = rows[:, None]
    return Forest(num_trees=trees, sample_size=samples, sampling="sagemaker", random_state=seed).fit(rows)


# ----------------------------------------------------------------- tests/test_aws_server.py


def aws_taxi(seed):
    _, value, anomalies = taxi_like_series()
    x = value.astype(np.float64)[:, None]
    scores = pd.Series(job(f32(x), 50, 512, seed).score(x))
    cutoff = scores.mean() + 3 * scores.std()
    flagged = set(np.flatnonzero(scores > cutoff))
    out = {
        "aws_taxi: {300,820} flagged": {anomalies[0], anomalies[2]} <= flagged,
        "aws_taxi: <=20 flagged": len(flagged) <= 20,
    }
    shingled = np.lib.stride_tricks.sliding_window_view(value.astype(float), 48)[:-1]
    s = job(f32(shingled), 50, 512, seed + 100_000).score(shingled)
    flagged = np.flatnonzero(s > s.mean() + 3 * s.std())
    injected = [anomalies[0], *range(anomalies[1], anomalies[1] + 6), anomalies[2]]
    highest = np.argsort(s)[-5:]
    out["aws_taxi48: flagged+top5 hold an anomaly"] = all(
        any(n <= a < n + 48 for a in injected) for n in [*flagged, *highest]
    )
    return out


def aws_clickstream(seed):
    from tests.stored_outputs import FOLDER, STORED, clickstream

    stored = STORED["clickstream"]
    frame, train, test = clickstream()
    forest = job(f32(train), stored["num_trees"], stored["num_samples_per_tree"], seed)
    scores = forest.score(train)
    cutoff = scores.mean() + 3 * scores.std()
    out = {"click: cutoff rel 3%": abs(cutoff / stored["train_cutoff_mean_plus_3_std"] - 1) <= 0.03}
    fault = forest.score(test[64:67])
    out["click: fault rtol 3%"] = bool(
        np.all(
            np.abs(fault - np.array(list(stored["flagged"].values())))
            <= 0.03 * np.abs(list(stored["flagged"].values()))
        )
    )
    # tests/test_sagemaker_scale.py's version, on the same forest
    test_scores = forest.score(test)
    out["scale click: min 6%"] = abs(scores.min() / stored["train_score_min"] - 1) <= 0.06
    out["scale click: max 3%"] = abs(scores.max() / stored["train_score_max"] - 1) <= 0.03
    times = frame["timestamp"].iloc[stored["train_rows"] :].dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    idx = [times.index(t) for t in stored["flagged"]]
    expected = np.array(list(stored["flagged"].values()))
    out["scale click: fault rtol 3%"] = bool(np.all(np.abs(test_scores[idx] - expected) <= 0.03 * np.abs(expected)))
    aws_scores = pd.read_csv(FOLDER / "clickstream_aws_test_scores.csv")["score_digitized"].to_numpy()
    out["scale click: mean ratio < 3%"] = np.mean(np.abs(test_scores / aws_scores - 1)) < 0.03
    flagged = np.flatnonzero(test_scores > stored["threshold"])
    out["scale click: flagged subset"] = set(flagged) <= set(np.flatnonzero(aws_scores >= stored["threshold"] / 1.03))
    out["scale click: fault >= thr/1.03"] = bool((test_scores[idx] >= stored["threshold"] / 1.03).all())
    out["scale click: >=1 flagged"] = len(flagged) >= 1
    out["_click_stats"] = (
        cutoff / stored["train_cutoff_mean_plus_3_std"] - 1,
        float(np.max(np.abs(test_scores[idx] / expected - 1))),
        float(np.mean(np.abs(test_scores / aws_scores - 1))),
    )
    return out


def aws_generic(seed):
    train, test, labels = spaced_anomalies(3, 400, 200, 40, 8.0)
    forest = job(csv6(train), 50, 128, seed)
    f1 = evaluate(forest.score(csv6(test)), labels)["f1"]
    scores = forest.score(f32(test))
    return {
        "aws_generic: f1 > 0.8": f1 > 0.8,
        "aws_generic: anomalies above median": scores[labels == 1].min() > np.median(scores),
        "_generic_f1": f1,
    }


def aws_transform(seed):
    rng = np.random.default_rng(5)
    train = rng.normal(size=(300, 1))
    batch = np.vstack([rng.normal(size=(20, 1)), [[9.0]]])
    scores = job(f32(train), 50, 64, seed).score(csv6(batch))
    return {"aws_transform: argmax == 20": int(np.argmax(scores)) == 20}


def aws_tuner(seed):
    # The tuner draws num_samples_per_tree in [32, 128] and num_trees in [50, 80]; the test compares the best job
    # with the maximum of the listed values (the same order, so ties agree); the f1 values are recorded here.
    train, test, labels = spaced_anomalies(9, 300, 100, 25, 6.0)
    r = np.random.default_rng(seed + 7)
    trees, samples = int(r.integers(50, 81)), int(r.integers(32, 129))
    f1 = evaluate(job(f32(train), trees, samples, seed).score(f32(test)), labels)["f1"]
    return {"aws_tuner: job completes (f1 defined)": np.isfinite(f1), "_tuner_f1": f1}


def series_csv(rows=300, seed=0):
    return csv6(np.random.default_rng(seed).normal(size=rows))


def aws_update(seed):
    first = job(series_csv(seed=1), 50, 64, seed)
    second = job(np.r_[series_csv(seed=2), np.full(50, 40.0)], 50, 64, seed + 100_000)
    return {"aws_update: 40 scores lower on the second model": second.score([[40.0]])[0] < first.score([[40.0]])[0]}


def aws_invoke(seed):
    s = job(series_csv(seed=0), 50, 64, seed).score([[0.1], [5.0]])
    return {"aws_invoke: 5.0 above 0.1": s[1] > s[0]}


# ----------------------------------------------------------------- tests/test_sagemaker_estimator.py


def estimator(seed):
    forest = job(f32(normal_rows()), 50, 64, seed)
    test = f32(np.r_[normal_rows(seed=5, rows=20), [[7.0, -7.0]]])
    s = forest.score(test)
    out = {"est issue: last > 2 median": s[-1] > 2 * np.median(s[:-1])}
    test, labels = labelled_test()
    m = evaluate(forest.score(f32(test)), labels)
    out["est metrics: f1 >= 0.9"] = m["f1"] >= 0.9
    out["est metrics: accuracy >= 0.99"] = m["accuracy"] >= 0.99
    forest = job(normal_rows(rows=800), 50, 64, seed + 100_000)
    test, labels = labelled_test(rows=200, anomalies=4)
    out["est csv: f1 >= 0.8"] = evaluate(forest.score(test), labels)["f1"] >= 0.8
    t = np.arange(2400)
    rng = np.random.default_rng(11)
    values = 15000 + 8000 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 300, t.size)
    values[2000] = 60000.0
    scores = pd.Series(job(f32(values), 50, 512, seed + 200_000).score(values[:, None]))
    cutoff = scores.mean() + 3 * scores.std()
    anomalies = scores[scores > cutoff]
    out["est taxi: 2000 flagged, idxmax"] = 2000 in anomalies.index and scores.idxmax() == 2000
    out["est taxi: < 100 flagged"] = len(anomalies) < 100
    out["_est_taxi_count"] = len(anomalies)
    return out


# ----------------------------------------------------------------- tests/test_sagemaker_container.py


def container(seed):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(1200, 2))
    test = rng.normal(size=(300, 2))
    labels = np.zeros(300)
    test[:6] += 9.0
    labels[:6] = 1
    s = job(train, 50, 64, seed).score(test)
    predicted = s > s.mean() + 3 * s.std()
    tp = np.sum(predicted & (labels == 1))
    f1 = 2 * tp / (predicted.sum() + labels.sum())
    return {"container: f1 >= 0.9": f1 >= 0.9, "_container_f1": f1}


# ----------------------------------------------------------------- tests/test_sagemaker_v3.py


def _taxi():
    from rcforest.datasets import load_nyc_taxi

    return load_nyc_taxi()


def v3(seed):
    series = _taxi().series
    values = series.to_numpy(np.float64)
    scores = pd.Series(job(values, 50, 512, seed).score(values[:, None]))
    anomalous = scores > scores.mean() + 3 * scores.std()
    labels = json.loads((ROOT / "rcforest" / "data" / "nyc_taxi_labels.json").read_text())
    flagged = np.array(series.index[anomalous.to_numpy()], dtype="datetime64[s]")
    windows = np.array(labels["windows"], dtype="datetime64[s]")
    rows = np.random.default_rng(0).normal(size=(400, 2))
    core = job(np.round(rows, 5), 50, 128, seed + 100_000).score([[0.1, 0.2], [9, 9]])
    return {
        "v3 readme: 1 <= flagged <= 4%": 1 <= anomalous.sum() <= 0.04 * len(values),
        "v3 readme: a flag in a window": any(((flagged >= a) & (flagged <= b)).any() for a, b in windows),
        "v3 core: [9,9] above": core[1] > core[0],
    }


# ----------------------------------------------------------------- tests/test_sagemaker_scale.py (taxi, 4 runs)


def scale_taxi(seed):
    from tests.stored_outputs import STORED

    stored = STORED["nyc_taxi"]
    series = _taxi().series
    values = series.to_numpy(np.float64).reshape(-1, 1)
    runs = []
    for run in range(4):
        forest = job(f32(values), stored["num_trees"], stored["num_samples_per_tree"], 4 * seed + run)
        runs.append((forest.score(values), forest.score([[2000.0]])[0]))
    marathon = series.index.get_loc(pd.Timestamp("2014-11-02 01:00:00"))
    out = {}
    out["scale taxi: marathon 5%"] = all(
        abs(s[marathon] / stored["score_of_2014_11_02_01_00_value_39197"] - 1) <= 0.05 for s, _ in runs
    )
    out["scale taxi: marathon+1 5%"] = all(
        abs(s[marathon + 1] / stored["listed_anomaly_scores"][-1] - 1) <= 0.05 for s, _ in runs
    )
    mean_scores = np.mean([s for s, _ in runs], axis=0)
    above = mean_scores[mean_scores > np.mean([r.mean() + 6 * r.std(ddof=1) for r, _ in runs])]
    out["scale taxi: listed near an above row"] = all(
        len(above) and np.min(np.abs(above / listed - 1)) < 0.03 for listed in stored["listed_anomaly_scores"]
    )
    cutoffs = [s.mean() + 6 * s.std(ddof=1) for s, _ in runs]
    counts = [(s > c).sum() for (s, _), c in zip(runs, cutoffs)]
    out["scale taxi: cutoff 8%"] = abs(np.mean(cutoffs) / stored["cutoff_mean_plus_6_std"] - 1) <= 0.08
    out["scale taxi: count 30%"] = abs(np.mean(counts) / stored["rows_above_cutoff"] - 1) <= 0.3
    first_10 = np.mean([s[:10].mean() for s, _ in runs])
    out["scale taxi: first 10 8%"] = abs(first_10 / np.mean(stored["first_10_scores"]) - 1) <= 0.08
    out["scale taxi: query 10%"] = abs(np.mean([q for _, q in runs]) / stored["score_of_a_query_of_2000"] - 1) <= 0.1
    out["_scale_taxi"] = (
        np.mean(cutoffs) / stored["cutoff_mean_plus_6_std"] - 1,
        np.mean(counts) / stored["rows_above_cutoff"] - 1,
        first_10 / np.mean(stored["first_10_scores"]) - 1,
        np.mean([q for _, q in runs]) / stored["score_of_a_query_of_2000"] - 1,
    )
    return out


# ----------------------------------------------------------------- notebooks/nyc_taxi.ipynb


_STREAM = []


def _stream_alerts():
    """The notebook's seeded ThresholdedForest's flags (computed once)."""
    if not _STREAM:
        from rcforest.thresholded import ThresholdedForest

        series = _taxi().series
        stream = ThresholdedForest(shingle_size=48, num_trees=100, sample_size=256, random_state=0).run(series)
        _STREAM.append((stream["grade"] > 0).to_numpy())
    return _STREAM[0]


def notebook(seed):
    from rcforest.evaluate import window_mask, window_metrics

    series, anomalies, windows = _taxi()
    events = ["NYC marathon", "Thanksgiving", "Christmas", "New Year's Day", "January blizzard"]
    train = series.to_numpy().reshape(-1, 1)
    raw_scores = pd.Series(job(f32(train), 50, 512, seed).score(train), index=series.index)
    shingles = np.lib.stride_tricks.sliding_window_view(series.to_numpy(), 48)
    shingle_scores = pd.Series(
        job(f32(shingles), 50, 512, seed + 100_000).score(shingles.astype(np.float64)), index=series.index[47:]
    )

    def flag(scores):
        cutoff = scores.mean() + 3 * scores.std()
        return (scores > cutoff).reindex(series.index, fill_value=False)

    def per_window(flags):
        counts = {e: int(flags[a:b].sum()) for e, (a, b) in zip(events, windows)}
        counts["outside every window"] = int((flags & ~window_mask(len(series), windows, series.index)).sum())
        return pd.Series(counts)

    def summary(flags):
        m = window_metrics(np.asarray(flags), windows, index=series.index, probation=750)
        return {"windows hit": m["windows_hit"], "false-positive events": m["false_positive_events"]}

    raw_flags, shingle_flags = flag(raw_scores), flag(shingle_scores)
    raw_counts, shingle_counts = per_window(raw_flags), per_window(shingle_flags)
    raw_hit = [e for e in events if raw_counts[e] > 0]
    shingle_hit = [e for e in events if shingle_counts[e] > 0]
    stream_flags = _stream_alerts()
    raw, shingled, streaming = summary(raw_flags), summary(shingle_flags), summary(stream_flags)
    return {
        "nb 11: raw hits marathon, NY, blizzard": {"NYC marathon", "New Year's Day", "January blizzard"}
        <= set(raw_hit),
        "nb 11: raw outside > inside": raw_counts["outside every window"] > raw_counts[events].sum(),
        "nb 15: shingled hits marathon, blizzard": {"NYC marathon", "January blizzard"} <= set(shingle_hit),
        "nb 15: shingled outside < inside": shingle_counts["outside every window"] < shingle_counts[events].sum(),
        "nb 15: shingled outside < raw outside / 2": shingle_counts["outside every window"]
        < raw_counts["outside every window"] / 2,
        "nb 21: raw flags > 3 alerts": raw_flags.sum() > 3 * int(stream_flags.sum()),
        "nb 24: 2 shingled fp < raw fp": 2 * shingled["false-positive events"] < raw["false-positive events"],
        "nb 24: streaming hits > raw, >= shingled": streaming["windows hit"] > raw["windows hit"]
        and streaming["windows hit"] >= shingled["windows hit"],
        "_nb": (
            raw["windows hit"],
            shingled["windows hit"],
            raw["false-positive events"],
            shingled["false-positive events"],
        ),
    }


CHECKS = {
    f.__name__: f
    for f in [
        aws_taxi,
        aws_clickstream,
        aws_generic,
        aws_transform,
        aws_tuner,
        aws_update,
        aws_invoke,
        estimator,
        container,
        v3,
        scale_taxi,
        notebook,
    ]
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checks", nargs="*", metavar="CHECK", help=", ".join(CHECKS))
    parser.add_argument("--seeds", type=int, default=200, help="seeds per check (default: 200)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default: 0)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.checks) - set(CHECKS))
    if unknown:
        parser.error(f"unknown checks {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    for name in args.checks or list(CHECKS):
        fails, keys = Counter(), []
        for seed in range(args.start, args.start + args.seeds):
            result = CHECKS[name](seed)
            keys = [key for key in result if not key.startswith("_")]
            fails.update(key for key in keys if not result[key])
        for key in keys:
            print(f"{name}\t{key}\t{fails[key]}/{args.seeds}", flush=True)


if __name__ == "__main__":
    main()
