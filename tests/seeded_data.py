"""Data of the tests whose training job draws its own seed, shared with ``benchmarks/seeded_tests.py``.

The benchmark replays these tests' assertions over many seeds; building
their data here, once, keeps it the data the tests use.
"""

import numpy as np

__all__ = ["labelled_test", "normal_rows", "spaced_anomalies", "taxi_like_series"]


def taxi_like_series(days=21, seed=7):
    """Half-hourly passenger counts with a daily and weekly rhythm and three injected anomalies.

    Returns
    -------
    timestamps : ndarray of datetime64[m]
    value : ndarray of int64
    anomalies : list of int
        The rows of the marathon, the first of six snow-storm rows, and a second spike.
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(days * 48)
    daily = 10000 + 8000 * np.sin(2 * np.pi * (steps % 48) / 48 - 2.0)
    weekly = 1500 * np.sin(2 * np.pi * steps / (7 * 48))
    value = np.round(daily + weekly + rng.normal(0, 400, steps.size)).astype(int)
    anomalies = [300, 520, 820]
    value[anomalies[0]] = 40000  # a marathon
    value[anomalies[1] : anomalies[1] + 6] = 500  # a snow storm
    value[anomalies[2]] = 38000
    timestamps = np.datetime64("2014-07-01T00:00") + steps * np.timedelta64(30, "m")
    return timestamps, value, anomalies


def normal_rows(seed=0, rows=1500, features=2):
    """Standard normal rows: an estimator's training data."""
    return np.random.default_rng(seed).normal(size=(rows, features))


def labelled_test(seed=1, rows=400, features=2, anomalies=8):
    """Standard normal rows, ``anomalies`` of them moved by 9 in every feature, shuffled; and their labels."""
    rng = np.random.default_rng(seed)
    test = rng.normal(size=(rows, features))
    labels = np.zeros(rows)
    test[:anomalies] += 9.0
    labels[:anomalies] = 1
    order = rng.permutation(rows)
    return test[order], labels[order]


def spaced_anomalies(seed, train_rows, test_rows, every, shift):
    """Two-feature normal train and test rows; every ``every``-th test row moved by ``shift``, labelled 1.

    Returns
    -------
    train : ndarray of float64, shape (train_rows, 2)
    test : ndarray of float64, shape (test_rows, 2)
    labels : ndarray of float64, shape (test_rows,)
    """
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(train_rows, 2))
    test = rng.normal(size=(test_rows, 2))
    labels = np.zeros(test_rows)
    labels[::every] = 1
    test[labels == 1] += shift
    return train, test, labels
