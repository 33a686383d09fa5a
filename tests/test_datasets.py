"""The NYC taxi loader: the bundled copy, local copies, and downloads from a real HTTP server on loopback."""

import fnmatch
import functools
import gzip
import hashlib
import importlib.resources
import json
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcforest import datasets
from rcforest.datasets import DataUnavailableError, get_data_home, load_nyc_taxi

BUNDLED = importlib.resources.files("rcforest").joinpath("data")
CSV = gzip.decompress(BUNDLED.joinpath("nyc_taxi.csv.gz").read_bytes())
LABELS = json.loads(BUNDLED.joinpath("nyc_taxi_labels.json").read_text())
KEY = "realKnownCause/nyc_taxi.csv"


@pytest.fixture(autouse=True)
def no_user_directories(monkeypatch, tmp_path):
    """No RCFOREST_DATA, and an empty home and cache: nothing from the machine can help."""
    monkeypatch.delenv("RCFOREST_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))


def _local_copy(directory, csv_bytes=CSV, labels=LABELS):
    """Write ``nyc_taxi.csv`` and its labels into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nyc_taxi.csv").write_bytes(csv_bytes)
    (directory / "nyc_taxi_labels.json").write_text(json.dumps(labels))
    return directory


def _shifted_labels(hours=1):
    """Valid labels that differ from NAB's: every window ends ``hours`` later, so a test can tell the copies apart."""
    later = [[start, str(pd.Timestamp(end) + pd.Timedelta(hours=hours))] for start, end in LABELS["windows"]]
    return {**LABELS, "windows": later}


def _nab_tree(root, csv_bytes=CSV, with_key=True):
    """Lay out ``root`` like NAB's repository: the csv and the combined label files."""
    other = "realKnownCause/other.csv"
    combined_labels = {other: ["2014-01-01 00:00:00"]}
    combined_windows = {other: [["2013-12-31 00:00:00.000000", "2014-01-02 00:00:00.000000"]]}
    if with_key:
        combined_labels[KEY] = LABELS["anomalies"]
        # NAB writes window bounds with microseconds.
        combined_windows[KEY] = [[f"{start}.000000", f"{end}.000000"] for start, end in LABELS["windows"]]
    (root / "data" / "realKnownCause").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data" / "realKnownCause" / "nyc_taxi.csv").write_bytes(csv_bytes)
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


def test_the_bundled_copy_is_nab_s_file_with_its_source_and_licence():
    assert hashlib.sha256(CSV).hexdigest() == datasets.NYC_TAXI_SHA256
    assert len(BUNDLED.joinpath("nyc_taxi.csv.gz").read_bytes()) < len(CSV) / 4  # compressed
    notice = BUNDLED.joinpath("README.md").read_text()
    for phrase in ("Numenta Anomaly Benchmark", "MIT License", "Copyright (c) 2014-2024 Numenta", "Limousine"):
        assert phrase in notice


def test_every_bundled_file_is_declared_as_package_data():
    """A wheel holds rcforest/data/ only through pyproject.toml's package-data patterns."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rcforest"]
    files = sorted(p.relative_to(root / "rcforest").as_posix() for p in (root / "rcforest" / "data").iterdir())
    assert files == ["data/README.md", "data/nyc_taxi.csv.gz", "data/nyc_taxi_labels.json"]
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files)


def test_loads_the_bundled_copy_by_default_with_nothing_on_disk(tmp_path):
    data = load_nyc_taxi()
    _check_nyc_taxi(data)
    assert data.series.iloc[0] == 10844.0 and data.series.iloc[-1] == 26288.0
    assert [list(map(str, window)) for window in data.windows] == LABELS["windows"]
    assert not (tmp_path / "home").exists(), "no cache is written"


def test_an_empty_rcforest_data_directory_falls_back_to_the_bundled_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("RCFOREST_DATA", str(tmp_path / "empty"))
    _check_nyc_taxi(load_nyc_taxi())
    assert not (tmp_path / "empty").exists()


def test_the_rcforest_data_directory_overrides_the_bundled_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("RCFOREST_DATA", str(_local_copy(tmp_path / "mine", labels=_shifted_labels())))
    data = load_nyc_taxi()
    assert data.windows[0][1] == pd.Timestamp(LABELS["windows"][0][1]) + pd.Timedelta(hours=1)
    # data_home comes before RCFOREST_DATA, and an empty one falls back to the bundled copy.
    bundled = [tuple(map(pd.Timestamp, window)) for window in LABELS["windows"]]
    assert load_nyc_taxi(data_home=tmp_path / "elsewhere").windows == bundled != data.windows
    monkeypatch.delenv("RCFOREST_DATA")
    assert load_nyc_taxi(data_home=tmp_path / "mine").windows == data.windows


def test_loads_from_a_csv_path_or_a_directory(tmp_path):
    directory = _local_copy(tmp_path / "mine", labels=_shifted_labels())
    by_file = load_nyc_taxi(directory / "nyc_taxi.csv")
    by_directory = load_nyc_taxi(str(directory))
    _check_nyc_taxi(by_file)
    pd.testing.assert_series_equal(by_file.series, by_directory.series)
    assert by_file.windows == by_directory.windows != load_nyc_taxi().windows  # the labels beside it
    (directory / "nyc_taxi_labels.json").unlink()
    assert load_nyc_taxi(directory).windows == load_nyc_taxi().windows  # else the bundled labels


def test_downloads_checks_and_caches(tmp_path):
    cache = tmp_path / "cache"
    with _serve(tmp_path) as server:
        data = load_nyc_taxi(data_home=cache, download=True, base_url=server.url)
        assert sorted(server.requests) == [
            "/NAB/master/data/realKnownCause/nyc_taxi.csv",
            "/NAB/master/labels/combined_labels.json",
            "/NAB/master/labels/combined_windows.json",
        ]
        again = load_nyc_taxi(data_home=cache, download=True, base_url=server.url)
        assert len(server.requests) == 3, "the second load must come from the cache"
    _check_nyc_taxi(data)
    expected = load_nyc_taxi()
    pd.testing.assert_series_equal(data.series, expected.series)
    pd.testing.assert_index_equal(data.anomalies, expected.anomalies)
    assert data.windows == expected.windows == again.windows
    assert sorted(p.name for p in cache.iterdir()) == ["nyc_taxi.csv", "nyc_taxi_labels.json"]
    assert hashlib.sha256((cache / "nyc_taxi.csv").read_bytes()).hexdigest() == datasets.NYC_TAXI_SHA256


def test_downloads_into_the_rcforest_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("RCFOREST_DATA", str(tmp_path / "from-env"))
    with _serve(tmp_path) as server:
        _check_nyc_taxi(load_nyc_taxi(download=True, base_url=server.url))
    assert (tmp_path / "from-env" / "nyc_taxi.csv").is_file()


def test_downloads_into_the_user_cache_by_default(tmp_path):
    with _serve(tmp_path) as server:
        _check_nyc_taxi(load_nyc_taxi(download=True, base_url=server.url))
    assert (tmp_path / "home" / ".cache" / "rcforest" / "nyc_taxi_labels.json").is_file()


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(tmp_path):
    tampered = CSV.replace(b"2014-07-01 00:00:00,10844", b"2014-07-01 00:00:00,10845", 1)
    assert tampered != CSV and len(tampered) == len(CSV)
    cache = tmp_path / "cache"
    with _serve(tmp_path, csv_bytes=tampered) as server:
        with pytest.raises(ValueError, match="SHA-256") as error:
            load_nyc_taxi(data_home=cache, download=True, base_url=server.url)
    assert hashlib.sha256(tampered).hexdigest() in str(error.value)
    assert datasets.NYC_TAXI_SHA256 in str(error.value)
    assert not cache.exists() or not any(cache.iterdir()), "nothing may be left in the cache"


def test_labels_without_the_nyc_taxi_entry_are_refused(tmp_path):
    cache = tmp_path / "cache"
    with _serve(tmp_path, with_key=False) as server:
        with pytest.raises(ValueError, match="realKnownCause/nyc_taxi.csv"):
            load_nyc_taxi(data_home=cache, download=True, base_url=server.url)
    assert not (cache / "nyc_taxi_labels.json").exists()


def test_without_network_the_error_says_where_to_put_the_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataUnavailableError) as error:
        load_nyc_taxi(data_home=cache, download=True, base_url=_closed_port_url())
    message = str(error.value)
    assert str(cache / "nyc_taxi.csv") in message
    assert "RCFOREST_DATA" in message and "could not download" in message
    assert isinstance(error.value, FileNotFoundError)


def test_without_download_nothing_is_fetched(tmp_path):
    # A closed port: any attempt to download would fail.
    _check_nyc_taxi(load_nyc_taxi(data_home=tmp_path / "cache", base_url=_closed_port_url()))
    assert not (tmp_path / "cache").exists()


def test_an_installation_without_the_bundled_copy_says_what_to_do(monkeypatch):
    monkeypatch.setattr(datasets, "_BUNDLED", "no-such-directory")
    with pytest.raises(DataUnavailableError) as error:
        load_nyc_taxi()
    for phrase in ("reinstall rcforest", "download=True", "RCFOREST_DATA"):
        assert phrase in str(error.value)


def test_a_missing_local_path_is_reported(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_nyc_taxi(tmp_path / "nowhere.csv")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace(b"timestamp,value", b"time,passengers", 1), "columns"),
        (lambda text: text.rsplit(b"\n", 1)[0], "10319 rows"),
        (lambda text: text.replace(b",10844\n", b",10845\n", 1), "SHA-256"),
    ],
    ids=["columns", "rows", "checksum"],
)
def test_a_local_copy_that_is_not_nab_s_file_is_refused(tmp_path, edit, message):
    _local_copy(tmp_path, csv_bytes=edit(CSV))
    with pytest.raises(ValueError, match=message):
        load_nyc_taxi(tmp_path)


def test_labels_that_do_not_match_the_series_are_refused(tmp_path):
    labels = {**LABELS, "anomalies": ["2014-08-01 00:00:00", *LABELS["anomalies"][1:]]}  # in no window
    _local_copy(tmp_path, labels=labels)
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
