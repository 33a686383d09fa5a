"""The NYC taxi loader: local copies, the cache, and downloads from a real HTTP server on loopback."""

import functools
import hashlib
import json
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcforest import datasets
from rcforest.datasets import DataUnavailableError, get_data_home, load_nyc_taxi

# CI lays a copy of shared/ beside the clone; a developer's checkout has it there too.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEY = "realKnownCause/nyc_taxi.csv"


@pytest.fixture(autouse=True)
def shared_data(monkeypatch):
    monkeypatch.setenv("RCFOREST_DATA", str(SHARED_DATA))


def _nab_tree(root, csv_bytes=None, with_key=True):
    """Lay out ``root`` like NAB's repository: the csv and the combined label files."""
    labels = json.loads((SHARED_DATA / "nyc_taxi_labels.json").read_text())
    other = "realKnownCause/other.csv"
    combined_labels = {other: ["2014-01-01 00:00:00"]}
    combined_windows = {other: [["2013-12-31 00:00:00.000000", "2014-01-02 00:00:00.000000"]]}
    if with_key:
        combined_labels[KEY] = labels["anomalies"]
        # NAB writes window bounds with microseconds.
        combined_windows[KEY] = [[f"{start}.000000", f"{end}.000000"] for start, end in labels["windows"]]
    (root / "data" / "realKnownCause").mkdir(parents=True)
    (root / "labels").mkdir()
    csv = root / "data" / "realKnownCause" / "nyc_taxi.csv"
    if csv_bytes is None:
        shutil.copyfile(SHARED_DATA / "nyc_taxi.csv", csv)
    else:
        csv.write_bytes(csv_bytes)
    (root / "labels" / "combined_labels.json").write_text(json.dumps(combined_labels, indent=4))
    (root / "labels" / "combined_windows.json").write_text(json.dumps(combined_windows, indent=4))


class _Server:
    """A threaded HTTP server on 127.0.0.1 serving a directory, counting requests by path."""

    def __init__(self, root):
        self.requests = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                server.requests.append(self.path)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/NAB/master"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _serve(tmp_path, **tree):
    root = tmp_path / "www"
    _nab_tree(root / "NAB" / "master", **tree)
    return _Server(root)


def _closed_port_url():
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/NAB/master"


def _check_nyc_taxi(data):
    series, anomalies, windows = data
    assert isinstance(series.index, pd.DatetimeIndex)
    assert series.shape == (10320,)
    assert series.dtype == np.float64 and series.name == "value"
    assert series.index[0] == pd.Timestamp("2014-07-01 00:00") and series.index[-1] == pd.Timestamp("2015-01-31 23:30")
    assert (np.diff(series.index.asi8) == np.diff(series.index.asi8)[0]).all()  # every half hour
    assert len(anomalies) == len(windows) == 5
    for anomaly, (start, end) in zip(anomalies, windows):
        assert start < anomaly < end
    # The marathon window holds the series' largest value.
    start, end = windows[0]
    assert series.idxmax() == series[start:end].idxmax()
    assert anomalies[0] == pd.Timestamp("2014-11-01 19:00")


def test_loads_from_the_rcforest_data_directory():
    data = load_nyc_taxi(download=False)
    _check_nyc_taxi(data)
    assert data.series.iloc[0] == 10844.0 and data.series.iloc[-1] == 26288.0


def test_loads_from_a_csv_path_or_a_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("RCFOREST_DATA", str(tmp_path / "empty"))
    by_file = load_nyc_taxi(SHARED_DATA / "nyc_taxi.csv", download=False)
    by_directory = load_nyc_taxi(str(SHARED_DATA), download=False)
    _check_nyc_taxi(by_file)
    pd.testing.assert_series_equal(by_file.series, by_directory.series)
    assert not (tmp_path / "empty").exists()


def test_downloads_checks_and_caches(tmp_path):
    cache = tmp_path / "cache"
    with _serve(tmp_path) as server:
        data = load_nyc_taxi(data_home=cache, base_url=server.url)
        assert sorted(server.requests) == [
            "/NAB/master/data/realKnownCause/nyc_taxi.csv",
            "/NAB/master/labels/combined_labels.json",
            "/NAB/master/labels/combined_windows.json",
        ]
        again = load_nyc_taxi(data_home=cache, base_url=server.url)
        assert len(server.requests) == 3, "the second load must come from the cache"
    _check_nyc_taxi(data)
    expected = load_nyc_taxi(SHARED_DATA)
    pd.testing.assert_series_equal(data.series, expected.series)
    pd.testing.assert_index_equal(data.anomalies, expected.anomalies)
    assert data.windows == expected.windows == again.windows
    assert sorted(p.name for p in cache.iterdir()) == ["nyc_taxi.csv", "nyc_taxi_labels.json"]
    assert hashlib.sha256((cache / "nyc_taxi.csv").read_bytes()).hexdigest() == datasets.NYC_TAXI_SHA256


def test_downloads_into_the_rcforest_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("RCFOREST_DATA", str(tmp_path / "from-env"))
    with _serve(tmp_path) as server:
        _check_nyc_taxi(load_nyc_taxi(base_url=server.url))
    assert (tmp_path / "from-env" / "nyc_taxi.csv").is_file()


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(tmp_path):
    original = (SHARED_DATA / "nyc_taxi.csv").read_bytes()
    tampered = original.replace(b"2014-07-01 00:00:00,10844", b"2014-07-01 00:00:00,10845", 1)
    assert tampered != original and len(tampered) == len(original)
    cache = tmp_path / "cache"
    with _serve(tmp_path, csv_bytes=tampered) as server:
        with pytest.raises(ValueError, match="SHA-256") as error:
            load_nyc_taxi(data_home=cache, base_url=server.url)
    assert hashlib.sha256(tampered).hexdigest() in str(error.value)
    assert datasets.NYC_TAXI_SHA256 in str(error.value)
    assert not cache.exists() or not any(cache.iterdir()), "nothing may be left in the cache"


def test_labels_without_the_nyc_taxi_entry_are_refused(tmp_path):
    cache = tmp_path / "cache"
    with _serve(tmp_path, with_key=False) as server:
        with pytest.raises(ValueError, match="realKnownCause/nyc_taxi.csv"):
            load_nyc_taxi(data_home=cache, base_url=server.url)
    assert not (cache / "nyc_taxi_labels.json").exists()


def test_without_network_or_copy_the_error_says_where_to_put_the_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataUnavailableError) as error:
        load_nyc_taxi(data_home=cache, base_url=_closed_port_url())
    message = str(error.value)
    assert str(cache / "nyc_taxi.csv") in message
    assert "RCFOREST_DATA" in message and "could not download" in message
    assert isinstance(error.value, FileNotFoundError)


def test_download_false_names_the_file_and_fetches_nothing(tmp_path):
    with pytest.raises(DataUnavailableError, match="download=False") as error:
        load_nyc_taxi(data_home=tmp_path, download=False, base_url=_closed_port_url())
    assert str(tmp_path / "nyc_taxi.csv") in str(error.value)


def test_a_missing_local_path_is_reported(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_nyc_taxi(tmp_path / "nowhere.csv")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("timestamp,value", "time,passengers", 1), "columns"),
        (lambda text: text.rsplit("\n", 1)[0], "10319 rows"),
        (lambda text: text.replace(",10844\n", ",10845\n", 1), "SHA-256"),
    ],
    ids=["columns", "rows", "checksum"],
)
def test_a_local_copy_that_is_not_nab_s_file_is_refused(tmp_path, edit, message):
    text = (SHARED_DATA / "nyc_taxi.csv").read_text()
    (tmp_path / "nyc_taxi.csv").write_text(edit(text))
    shutil.copyfile(SHARED_DATA / "nyc_taxi_labels.json", tmp_path / "nyc_taxi_labels.json")
    with pytest.raises(ValueError, match=message):
        load_nyc_taxi(tmp_path)


def test_labels_that_do_not_match_the_series_are_refused(tmp_path):
    shutil.copyfile(SHARED_DATA / "nyc_taxi.csv", tmp_path / "nyc_taxi.csv")
    labels = json.loads((SHARED_DATA / "nyc_taxi_labels.json").read_text())
    labels["anomalies"][0] = "2014-08-01 00:00:00"  # in no window
    (tmp_path / "nyc_taxi_labels.json").write_text(json.dumps(labels))
    with pytest.raises(ValueError, match="does not match the series"):
        load_nyc_taxi(tmp_path)


def test_data_home_order(monkeypatch, tmp_path):
    assert get_data_home(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv("RCFOREST_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    monkeypatch.delenv("RCFOREST_DATA")
    monkeypatch.setattr(datasets.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "rcforest"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_data_home() == Path.home() / ".cache" / "rcforest"
