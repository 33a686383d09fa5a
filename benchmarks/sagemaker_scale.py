"""Score statistics of the SageMaker training path against what the built-in algorithm returned.

Trains the two public notebooks' forests (clickstream: 100 trees of 512 on
1,152 rows; NYC taxi: 50 trees of 512 on 10,320 rows) with ``Forest``'s own
sampling (what SageMaker training used before ``sampling="sagemaker"``) and
with SageMaker's layout, over several seeds, and prints each statistic's
range next to the stored figure (``tests/data/sagemaker_outputs``).

Run: ``python benchmarks/sagemaker_scale.py [--seeds 10]``
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rcforest import Forest  # noqa: E402
from rcforest.datasets import load_nyc_taxi  # noqa: E402
from tests.stored_outputs import FOLDER, STORED, clickstream  # noqa: E402


def _clickstream_stats(sampling, seed):
    stored = STORED["clickstream"]
    frame, train, test = clickstream()
    forest = Forest(stored["num_trees"], stored["num_samples_per_tree"], random_state=seed, sampling=sampling)
    train_scores, test_scores = forest.fit(train).score(train), forest.score(test)
    aws = pd.read_csv(FOLDER / "clickstream_aws_test_scores.csv")["score_digitized"].to_numpy()
    times = frame["timestamp"].iloc[stored["train_rows"] :].dt.strftime("%H:%M").to_numpy()
    flagged = " ".join(times[test_scores > stored["threshold"]]) or "none"
    return {
        "train mean + 3 std": (train_scores.mean() + 3 * train_scores.std(), stored["train_cutoff_mean_plus_3_std"]),
        "train min": (train_scores.min(), stored["train_score_min"]),
        "train max": (train_scores.max(), stored["train_score_max"]),
        "07-15 10:40": (test_scores[64], stored["flagged"]["2020-07-15 10:40:00"]),
        "07-15 10:50": (test_scores[65], stored["flagged"]["2020-07-15 10:50:00"]),
        "07-15 11:00": (test_scores[66], stored["flagged"]["2020-07-15 11:00:00"]),
        "test: mean |ours / AWS - 1|": (np.mean(np.abs(test_scores / aws - 1)), 0.0),
        "flagged above 2.62": (flagged, "10:40 10:50 11:00"),
    }


def _taxi_stats(sampling, seed):
    stored = STORED["nyc_taxi"]
    series = load_nyc_taxi().series
    values = series.to_numpy(np.float64).reshape(-1, 1)
    forest = Forest(stored["num_trees"], stored["num_samples_per_tree"], random_state=seed, sampling=sampling)
    scores = forest.fit(values).score(values)
    cutoff = scores.mean() + 6 * scores.std(ddof=1)
    marathon = series.index.get_loc(pd.Timestamp("2014-11-02 01:00:00"))
    return {
        "mean + 6 std": (cutoff, stored["cutoff_mean_plus_6_std"]),
        "rows above it": ((scores > cutoff).sum(), stored["rows_above_cutoff"]),
        "first 10, mean": (scores[:10].mean(), np.mean(stored["first_10_scores"])),
        "2014-11-02 01:00 (39197)": (scores[marathon], stored["score_of_2014_11_02_01_00_value_39197"]),
        "2014-11-02 01:30": (scores[marathon + 1], stored["listed_anomaly_scores"][-1]),
        "2014-09-06 23:00 (cf. 3.22)": (scores[series.index.get_loc(pd.Timestamp("2014-09-06 23:00:00"))], 3.22),
        "a query of 2000": (forest.score([[2000.0]])[0], stored["score_of_a_query_of_2000"]),
    }


def _table(name, stats, seeds):
    print(f"\n{name}: range over {seeds} seeds (mean)")
    print(f"{'statistic':30} {'reservoir (before)':>26} {'sagemaker (after)':>26} {'AWS':>18}")
    runs = {sampling: [stats(sampling, seed) for seed in range(seeds)] for sampling in ("reservoir", "sagemaker")}
    for key, (_, aws) in runs["sagemaker"][0].items():
        cells = []
        for sampling in ("reservoir", "sagemaker"):
            got = [run[key][0] for run in runs[sampling]]
            if isinstance(got[0], str):
                common = max(set(got), key=got.count)
                cells.append(f"{common} ({got.count(common)}/{seeds})")
            elif isinstance(got[0], (int, np.integer)):
                cells.append(f"{min(got)}-{max(got)} ({np.mean(got):.1f})")
            else:
                cells.append(f"{min(got):.3f}-{max(got):.3f} ({np.mean(got):.3f})")
        aws = aws if isinstance(aws, str) else f"{aws:.4g}"
        print(f"{key:30} {cells[0]:>26} {cells[1]:>26} {aws:>18}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    seeds = parser.parse_args().seeds
    _table("Clickstream, 100 trees x 512, 1,152 training rows", _clickstream_stats, seeds)
    _table("NYC taxi, 50 trees x 512, 10,320 rows", _taxi_stats, seeds)


if __name__ == "__main__":
    main()
