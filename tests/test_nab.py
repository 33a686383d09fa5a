"""NAB's score: the reward curve, probation, the corpus threshold and the normalisation, on small fixtures."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from rcforest.evaluate import nab_score
from rcforest.evaluate.nab import PROFILES, probation_length, scaled_sigmoid

TIMES = pd.date_range("2024-01-01", periods=200, freq="5min")
WINDOW = [str(TIMES[100]), str(TIMES[119])]  # rows 100..119, 20 rows wide


def _frame(spikes, n=200, times=TIMES):
    scores = np.zeros(n)
    for row, value in spikes.items():
        scores[row] = value
    return pd.DataFrame({"timestamp": times[:n], "anomaly_score": scores})


def _sigmoid(x):
    return 2 / (1 + math.exp(5 * x)) - 1


def test_reward_curve_matches_nab():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)  # a window's first row
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)  # halfway in
    assert scaled_sigmoid(0.0) == 0.0  # just past the window
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == pytest.approx(_sigmoid(3.0))
    assert scaled_sigmoid(3.01) == -1.0  # far past: the full penalty
    assert np.all(np.diff(scaled_sigmoid(np.linspace(-1, 3, 50))) < 0)


def test_probation_is_fifteen_percent_capped_at_750_rows():
    assert probation_length(200) == 30
    assert probation_length(4032) == 604
    assert probation_length(10000) == 750
    assert probation_length(1) == 0


def test_one_file_by_hand():
    # Row 10 lies in probation (ignored), row 50 is a false positive before any window,
    # row 110 detects the window halfway in, row 130 is a false positive 11 rows past it.
    spikes = {10: 0.95, 50: 0.8, 110: 0.9, 130: 0.7}
    result = nab_score({"demo/a.csv": _frame(spikes)}, {"demo/a.csv": [WINDOW]})
    tp = _sigmoid(-(119 - 110 + 1) / 20) / _sigmoid(-1.0)
    assert tp == pytest.approx(0.84828 / 0.98661, abs=1e-5)
    # The best threshold detects row 110 only: the false positives cost more than they add.
    assert result.thresholds["standard"] == 0.9
    assert result.raw["standard"] == pytest.approx(tp)
    # The null detector is best detecting nothing: one missed window.
    assert result.null == {"standard": -1.0, "reward_low_FP_rate": -1.0, "reward_low_FN_rate": -2.0}
    assert result.perfect == {"standard": 1.0, "reward_low_FP_rate": 1.0, "reward_low_FN_rate": 1.0}
    assert result["standard"] == pytest.approx(100 * (tp + 1) / 2)
    assert result["reward_low_FN_rate"] == pytest.approx(100 * (tp + 2) / 3)
    detail = result.files.set_index("profile").loc["standard"]
    assert (detail["detected"], detail["missed"], detail["tp"], detail["fp"]) == (1, 0, 1, 0)
    assert detail["tn"] + detail["fp"] == 200 - 30 - 20


def test_false_positives_cost_by_distance_past_the_window():
    # The window's detection scores below a false positive just past it: the best threshold takes
    # both, and the false positive costs its sweep score, small so close to the window.
    spikes = {50: 0.8, 100: 0.85, 130: 0.9}
    result = nab_score({"demo/a.csv": _frame(spikes)}, {"demo/a.csv": [WINDOW]}, profiles={"all": PROFILES["standard"]})
    assert result.thresholds["all"] == 0.85
    expected = 1.0 + 0.11 * _sigmoid(abs(119 - 130) / 19)
    assert result.raw["all"] == pytest.approx(expected)
    detail = result.files.iloc[0]
    assert detail["fp"] == 1 and detail["tp"] == 1


def test_perfect_and_null_detectors_score_100_and_0():
    windows = {"demo/a.csv": [WINDOW], "demo/b.csv": [[str(TIMES[150]), str(TIMES[160])]]}
    perfect = {"demo/a.csv": _frame({100: 1.0}), "demo/b.csv": _frame({150: 1.0})}
    null = {name: _frame(dict.fromkeys(range(200), 0.5)) for name in windows}
    assert nab_score(perfect, windows) == pytest.approx(dict.fromkeys(PROFILES, 100.0))
    assert nab_score(null, windows) == pytest.approx(dict.fromkeys(PROFILES, 0.0))


def test_one_threshold_for_the_whole_corpus():
    # File a wants threshold 0.9 (its 0.6 is a false positive); file b's detection scores only 0.6.
    windows = {"demo/a.csv": [WINDOW], "demo/b.csv": [WINDOW]}
    scores = {"demo/a.csv": _frame({100: 0.9, 60: 0.6}), "demo/b.csv": _frame({105: 0.6})}
    result = nab_score(scores, windows, profiles={"p": PROFILES["standard"]})
    assert result.thresholds["p"] == 0.6
    assert result.files["threshold"].tolist() == [0.6, 0.6]
    assert result.files["fp"].tolist() == [1, 0]
    assert result.raw["p"] == pytest.approx(result.files["score"].sum())


def test_a_window_inside_probation_is_not_scored_but_counts_as_possible():
    early = [str(TIMES[5]), str(TIMES[9])]
    result = nab_score({"demo/a.csv": _frame({100: 1.0})}, {"demo/a.csv": [early, WINDOW]})
    assert result.raw["standard"] == pytest.approx(1.0)  # the early window is neither hit nor missed
    assert result.perfect["standard"] == 2.0


def test_folders_with_gzipped_files_and_profiles_files(tmp_path):
    folder = tmp_path / "detector" / "demo"
    folder.mkdir(parents=True)
    _frame({110: 0.9}).to_csv(folder / "a.csv.gz", index=False)
    _frame({150: 0.9}).to_csv(folder / "b.csv", index=False)
    windows = {"demo/a.csv": [WINDOW], "demo/b.csv": [[str(TIMES[150]), str(TIMES[160])]]}
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    (tmp_path / "profiles.json").write_text(json.dumps({k: {"CostMatrix": v} for k, v in PROFILES.items()}))
    from_files = nab_score(tmp_path / "detector", tmp_path / "windows.json", tmp_path / "profiles.json")
    in_memory = nab_score({"demo/a.csv": _frame({110: 0.9}), "demo/b.csv": _frame({150: 0.9})}, windows)
    assert from_files == pytest.approx(in_memory)
    assert sorted(from_files.files["file"].unique()) == ["demo/a.csv", "demo/b.csv"]


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="no windows for"):
        nab_score({"demo/a.csv": _frame({})}, {"demo/other.csv": []})
    bad = _frame({})
    bad.loc[3, "anomaly_score"] = np.nan
    with pytest.raises(ValueError, match="finite"):
        nab_score({"demo/a.csv": bad}, {"demo/a.csv": []})
    with pytest.raises(ValueError, match="timestamp"):
        nab_score({"demo/a.csv": pd.DataFrame({"value": [1.0]})}, {"demo/a.csv": []})
    with pytest.raises(ValueError, match="not a folder"):
        nab_score(tmp_path / "missing", {"demo/a.csv": []})
    with pytest.raises(ValueError, match="holds no row"):
        nab_score({"demo/a.csv": _frame({})}, {"demo/a.csv": [[str(TIMES[20]), str(TIMES[10])]]})
    with pytest.raises(ValueError, match="CostMatrix"):
        nab_score({"demo/a.csv": _frame({})}, {"demo/a.csv": []}, profiles={"p": {"tpWeight": 1.0}})
