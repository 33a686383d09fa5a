"""The scoring server under hostile requests, on a real server on loopback.

Each reproducer of issue 14's server items is sent to a running server;
every test is bounded in time, and after each bad request the server keeps
serving. Timeouts are set short here (1 s) so that the tests are quick.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rcforest import Forest
from rcforest.sagemaker import formats
from rcforest.sagemaker.server import BackgroundServer, FairLock, ServerLimits, create_app, score_in_turns
from tests import processes
from tests.test_sagemaker_formats import sparse_records

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)
_CSV_HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n"
LIMITS = ServerLimits(header_timeout=1.0, body_timeout=1.0, keep_alive_timeout=1.0, max_connections=8)


@pytest.fixture(scope="module")
def forest():
    return Forest(num_trees=10, sample_size=32, random_state=0).fit(np.random.default_rng(0).normal(size=(200, 2)))


@pytest.fixture(scope="module")
def server(forest):
    running = BackgroundServer(forest, limits=LIMITS).start()
    yield running
    running.stop()


def _post(port, body, content_type, path="/invocations", timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body, {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        connection.close()


def _assert_error(answer, status, text):
    got, content_type, body = answer
    assert got == status, body
    assert content_type == "application/json"
    document = json.loads(body)
    assert set(document) == {"error", "message"}
    assert re.search(text, document["message"]), document["message"]


def _assert_serving(port, forest):
    status, _, body = _post(port, b"0.5,0.5\n3,3\n", "text/csv")
    assert status == 200
    assert [s["score"] for s in json.loads(body)["scores"]] == forest.score([[0.5, 0.5], [3, 3]]).tolist()


def _ping(sock):
    """Send GET /ping on an open socket and read the whole answer; return its status line."""
    sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))
    while len(body) < length:
        body += sock.recv(4096)
    return head.split(b"\r\n")[0]


def _sparse_json(shape, keys="[0]"):
    return f'{{"data": {{"features": {{"keys": {keys}, "values": [1], "shape": [{shape}]}}}}}}'


# ----------------------------------------------------------------- item 3


@pytest.mark.parametrize("shape", [100_000_000, 10**12, 2**64 - 1])
def test_sparse_shapes_are_checked_before_anything_is_allocated(server, forest, shape):
    json_body = f'{{"instances": [{_sparse_json(shape)}]}}'.encode()
    _assert_error(_post(server.port, json_body, formats.JSON), 400, rf"shape \[{shape}\] but the model takes 2")
    lines = (_sparse_json(2) + "\n" + _sparse_json(shape) + "\n").encode()
    _assert_error(_post(server.port, lines, formats.JSONLINES), 400, rf"JSON line 2 has shape \[{shape}\]")
    _assert_error(_post(server.port, sparse_records([shape]), formats.RECORDIO), 400, rf"shape \[{shape}\]")
    _assert_serving(server.port, forest)


def test_sparse_keys_outside_the_shape_and_too_many_values(server, forest):
    body = f'{{"instances": [{_sparse_json(2, "[5]")}]}}'.encode()
    _assert_error(_post(server.port, body, formats.JSON), 400, r"keys outside \[0, 2\)")
    body = f'{{"instances": [{_sparse_json(2, "[" + "9" * 400 + "]")}]}}'.encode()
    _assert_error(_post(server.port, body, formats.JSON), 400, r"keys outside")
    _assert_error(_post(server.port, sparse_records([2], key=7), formats.RECORDIO), 400, r"keys outside")
    # Sparse rows are small on the wire but dense in memory: the values per request are bounded.
    small = ServerLimits(max_values=1000)
    limited = BackgroundServer(forest, limits=small).start()
    try:
        lines = ((_sparse_json(2) + "\n") * 501).encode()
        _assert_error(_post(limited.port, lines, formats.JSONLINES), 413, r"more than 1000 values")
        _assert_serving(limited.port, forest)
    finally:
        limited.stop()


def test_sparse_requests_leave_the_server_memory_flat(tmp_path, forest):
    """The issue's reproducer: 20 requests of shape 1e7 took the server to 12.4 GB."""
    with _served(tmp_path, forest) as (process, port):
        before = _peak_rss(process.pid)
        for _ in range(20):
            body = f'{{"instances": [{_sparse_json(10_000_000)}]}}'.encode()
            _assert_error(_post(port, body, formats.JSON), 400, "shape")
            _assert_error(_post(port, sparse_records([10_000_000]), formats.RECORDIO), 400, "shape")
        assert _peak_rss(process.pid) - before < 50 * 2**20


# --------------------------------------------------------- items 7 and 10


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        (b"1,1_000\n", formats.CSV, r"line 1 is not all numbers: column 2 is '1_000'"),
        ("1,2\n\u0661\u0662,3\n".encode(), formats.CSV, r"line 2 is not all numbers: column 1"),
        ("1,\uff11\n".encode(), formats.CSV, r"column 2"),
        (b"1,2\n1,nan\n", formats.CSV, r"line 2 is not all numbers: column 2 is 'nan'"),
        (b"1,inf\n", formats.CSV, r"column 2 is 'inf'"),
        (b"1,2\n3," + b"9" * 400 + b"\n", formats.CSV, r"line 2, column 2 holds 9+\.\.\., beyond the range of float64"),
        (b"1,1e400\n", formats.CSV, r"beyond the range of float64"),
        (b'{"instances": [[1, ' + b"9" * 400 + b"]]}", formats.JSON, r"beyond the range of float64"),
        (b'{"instances": [[1, NaN]]}', formats.JSON, r"NaN is not a JSON number"),
        (b'{"features": [1, -Infinity]}\n', formats.JSONLINES, r"-Infinity is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, formats.JSON, r"nested too deeply"),
        (b'{"features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", formats.JSONLINES, r"nested too deeply"),
    ],
)
def test_numbers_must_be_plain_and_finite(server, forest, body, content_type, text):
    _assert_error(_post(server.port, body, content_type), 400, text)
    _assert_serving(server.port, forest)


def test_a_non_finite_score_is_never_answered_as_null(server, forest):
    # Forest.score([[1e308, 1e308]]) gave NaN, which the endpoint answered 200 {"score": null}.
    for content_type, body in [
        (formats.CSV, b"0,0\n1e308,1e308\n"),
        (formats.JSON, b'{"instances": [[0, 0], [1e308, 1e308]]}'),
        (formats.JSONLINES, b"[-1.7e308, 1.7e308]\n"),
    ]:
        status, answer_type, answer = _post(server.port, body, content_type)
        if status == 200:
            assert b"null" not in answer and b"NaN" not in answer
            assert all(np.isfinite(s["score"]) for s in json.loads(answer)["scores"])
        else:
            _assert_error((status, answer_type, answer), 400, "")
    _assert_serving(server.port, forest)


def test_a_shingled_forest_is_not_served(tmp_path):
    # Its first 3 rows of every request would score NaN.
    shingled = Forest(num_trees=5, sample_size=16, shingle_size=4, random_state=0).fit(np.arange(100.0))
    with pytest.raises(ValueError, match="shingles of 4 rows"):
        create_app(shingled)
    shingled.save(tmp_path / "shingled.rcf")
    command = [sys.executable, "-m", "rcforest", "serve", str(tmp_path / "shingled.rcf"), "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=_environment())
    assert done.returncode == 2 and "shingles of 4 rows" in done.stderr and "Traceback" not in done.stderr


# -------------------------------------------------------------- item 10


def test_slow_headers_are_cut_off_while_others_are_served(server, forest):
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:
        slow.settimeout(10)
        started = time.monotonic()
        slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        _assert_serving(server.port, forest)  # another client meanwhile
        assert slow.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < LIMITS.header_timeout + 3
    finally:
        slow.close()


def test_slow_headers_of_a_second_request_on_a_kept_connection_are_cut_off(server):
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:
        slow.settimeout(10)
        assert _ping(slow) == b"HTTP/1.1 200 OK"
        started = time.monotonic()
        slow.sendall(b"GET /ping HTTP/1.1\r\n")
        assert slow.recv(1024) == b""
        assert time.monotonic() - started < LIMITS.header_timeout + 3
    finally:
        slow.close()


def test_slow_bodies_get_a_408_and_the_connection_closes(server, forest):
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:
        slow.settimeout(10)
        started = time.monotonic()
        slow.sendall(_CSV_HEAD % 100 + b"1,2")
        _assert_serving(server.port, forest)
        answer = b""
        while chunk := slow.recv(4096):
            answer += chunk
        assert time.monotonic() - started < LIMITS.body_timeout + 3
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
        assert json.loads(body)["error"] == "RequestTimeout"
    finally:
        slow.close()


def test_idle_connections_close_after_the_keep_alive_timeout(server):
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        idle.settimeout(10)
        assert _ping(idle) == b"HTTP/1.1 200 OK"
        started = time.monotonic()
        assert idle.recv(1024) == b""
        assert time.monotonic() - started < LIMITS.keep_alive_timeout + 3
    finally:
        idle.close()


def test_connections_beyond_the_cap_are_closed_and_the_server_recovers(forest):
    capped = BackgroundServer(forest, limits=ServerLimits(max_connections=4)).start()
    held = [socket.create_connection(("127.0.0.1", capped.port)) for _ in range(4)]
    try:
        for sock in held:  # each is really open: it is answered
            sock.settimeout(10)
            assert _ping(sock) == b"HTTP/1.1 200 OK"
        extra = socket.create_connection(("127.0.0.1", capped.port))
        extra.settimeout(10)
        assert extra.recv(1024) == b""
        extra.close()
    finally:
        for sock in held:
            sock.close()
    try:
        deadline = time.monotonic() + 10
        while True:  # the held connections' slots free up once the server sees them close
            try:
                _assert_serving(capped.port, forest)
                break
            except (ConnectionError, http.client.RemoteDisconnected):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        capped.stop()


def test_a_client_leaving_mid_body_logs_one_line(tmp_path, forest):
    with _served(tmp_path, forest) as (process, port):
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(_CSV_HEAD % 1000 + b"1,")
            time.sleep(0.1)
            sock.close()
        time.sleep(0.5)
        _assert_serving(port, forest)
    log = process.stderr_text
    assert log.count("disconnected before sending the whole request body") == 5, log
    assert "Traceback" not in log and "Exception" not in log, log


def test_server_limits_are_checked():
    with pytest.raises(ValueError, match="header_timeout must be a positive number"):
        ServerLimits(header_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        ServerLimits(max_connections=True)


@pytest.mark.parametrize("option", ["--max-connections=0", "--header-timeout=-1", "--body-timeout=nan"])
def test_serve_refuses_bad_limits(tmp_path, option):
    done = subprocess.run(
        [sys.executable, "-m", "rcforest", "serve", str(tmp_path), option],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
    )
    assert done.returncode == 2 and "give a positive number" in done.stderr


# -------------------------------------------------- the scoring lock


def test_the_scoring_lock_serves_waiting_threads_in_turn():
    lock = FairLock()
    order = []
    lock.acquire()
    threads = []
    for number in range(5):
        thread = threading.Thread(target=lambda n=number: (lock.acquire(), order.append(n), lock.release()))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while len(lock._waiting) < number + 1:  # each thread queued before the next starts
            assert time.monotonic() < deadline
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="unheld"):
        lock.release()


def test_scoring_in_turns_equals_one_call(forest):
    rows = np.random.default_rng(1).normal(size=(2500, 2))
    np.testing.assert_array_equal(score_in_turns(forest, rows, FairLock(), rows=1000), forest.score(rows))


def test_a_small_request_is_scored_between_the_turns_of_a_large_one(forest):
    """The 1-row request takes its turn at the lock between two slices of a 100,000-row request."""
    lock = FairLock()
    rows = np.random.default_rng(2).normal(size=(100_000, 2))
    events = []

    class Recording:
        n_features_ = 2

        def score(self, part):
            events.append(part.shape[0])
            return forest.score(part)

    big = threading.Thread(target=score_in_turns, args=(Recording(), rows, lock))
    big.start()
    deadline = time.monotonic() + 30
    while not events:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    score_in_turns(Recording(), rows[:1], lock)
    big.join(60)
    assert sum(events) == 100_001
    assert events.index(1) < len(events) - 1  # not after the whole large request


# -------------------------------------------------------------- helpers


def _environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _peak_rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class _served:
    """``rcforest serve`` of ``forest`` in a child process, logging at info level to stderr."""

    def __init__(self, tmp_path, forest):
        self.path = tmp_path / "model.rcf"
        forest.save(self.path)
        self.stderr_path = tmp_path / "serve.log"

    def __enter__(self):
        self.log = open(self.stderr_path, "w")
        command = [sys.executable, "-m", "rcforest", "serve", str(self.path), "--port", "0"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.log, text=True, env=_environment(), cwd=REPO
        )
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        return self.process, port

    def __exit__(self, *exc_info):
        processes.stop(self.process)
        self.log.close()
        self.process.stderr_text = self.stderr_path.read_text()
