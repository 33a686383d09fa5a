"""benchmarks/nab.py's per-file explanation: windows missed, and each false alert with what came before it."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _nab():
    spec = importlib.util.spec_from_file_location("nab_benchmark", ROOT / "benchmarks" / "nab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_explain_gives_each_false_alert_its_strength_and_the_rows_since_the_previous_alert(capsys):
    nab = _nab()
    n = 2000
    times = pd.date_range("2020-01-01", periods=n, freq="5min")
    out = pd.DataFrame(
        {
            "timestamp": times.astype(str),
            "grade": 0.0,
            "score": 0.5,
            "threshold": 1.0,
            "attribution": "value[t]",
            "expected_value": 3.0,
        }
    )
    out.loc[1400, "score"] = 0.3  # the lowest score between the two false alerts
    for row, grade, score in ((1000, 0.6, 1.6), (1300, 0.2, 1.25), (1500, 0.4, 1.5), (1501, 0.3, 1.4)):
        out.loc[row, ["grade", "score"]] = grade, score
    windows = {"x/a.csv": [[str(times[950]), str(times[1050])], [str(times[1700]), str(times[1800])]]}
    nab._explain({"x/a.csv": out}, windows)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"x/a.csv ({n} rows, probation {nab.probation_length(n)})"
    assert lines[1].startswith("  hit    ") and lines[1].endswith("+50 of 101 rows")
    assert lines[2].startswith("  MISSED ") and "peak score/threshold 0.50" in lines[2]
    false = [line for line in lines if line.startswith("  FALSE")]
    assert len(false) == 3
    assert "(x1.25)" in false[0]
    assert false[0].endswith("; 300 rows after an alert, score/threshold down to 0.50 between")
    assert "(x1.50)" in false[1]
    assert false[1].endswith("; 200 rows after an alert, score/threshold down to 0.30 between")
    assert "(x1.40)" in false[2] and false[2].endswith("; the row after an alert")


def _replay():
    spec = importlib.util.spec_from_file_location("replay_benchmark", ROOT / "benchmarks" / "replay.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_replayed_policy_gives_the_detector_s_alerts_row_for_row():
    replay = _replay()
    from rcforest import ThresholdedForest

    rng = np.random.default_rng(3)
    t = np.arange(1500)
    values = 10 + 3 * np.sin(2 * np.pi * t / 48) + rng.normal(size=t.size)
    values[[900, 1200]] += [15, -12]
    rec = replay._record_one(values)
    out = ThresholdedForest().run(values)
    assert np.array_equal(rec["grade"], out["grade"].to_numpy())
    assert np.array_equal(rec["score"], out["score"].to_numpy(), equal_nan=True)
    assert (rec["grade"][900:910] > 0).any() and (rec["grade"][1200:1210] > 0).any()
    assert np.array_equal(replay.policy_alerts(rec, replay.VARIANTS["main"]), rec["grade"])
