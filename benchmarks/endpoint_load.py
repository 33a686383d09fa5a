"""Load test of ``rcforest serve`` on loopback: 16 clients, good and bad requests, the server's memory.

The server runs as a ``python -m rcforest serve`` child process on
127.0.0.1 and serves SageMaker's default forest (100 trees of 256 points)
on 4 features. Clients are threads with keep-alive ``http.client``
connections. Three phases, each bounded by a request count and by
``--seconds``:

1. 1-row CSV requests, 16 clients: throughput, p50 and p99 latency;
2. 1,000-row CSV requests, 16 clients: the same;
3. 5,000 mixed requests, 16 clients, about half of them bad (sparse shapes
   of 1e8 and 1e12, nested JSON, a 400-digit number, ``1_000``, Arabic-Indic
   digits, NaN, wrong feature counts and types, a 7 MB body, 1e308 values):
   the server's RSS before and after (and after a second round of the same
   requests, to see whether it stays flat), its peak RSS, the answers by status
   (no 5xx expected), and the latency of its 1-row requests, which
   shows whether they wait behind the 1,000-row ones.

Between phases 2 and 3, one 150,000-row request (5.4 MB) is sent while a
second client sends 1-row requests one after another: their latency shows
how long a small request waits behind a large one.

Run ``python benchmarks/endpoint_load.py`` (``--clients``, ``--seconds``,
``--mixed``, 0 to skip phase 3); ``--code DIR`` serves another checkout's
code, for a before/after comparison (with ``--mixed 0`` where the bad
requests would take the memory they took before).
"""

import argparse
import http.client
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = 4


def _rss(pid, field="VmRSS"):
    """A process's resident memory (or its peak, ``VmHWM``) in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _start(model, code):
    """Start ``rcforest serve`` on a free loopback port; return the process and the port."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [code, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "rcforest", "serve", model, "--port", "0", "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=code, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"rcforest serve did not start: {line!r}")
    port = int(match.group(1))
    deadline = time.monotonic() + 60
    while True:
        try:
            _request(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "GET", "/ping", b"", "")
            return process, port
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)


def _request(connection, method, path, body, content_type):
    """Send one request on a keep-alive connection; return the status and the body."""
    connection.request(method, path, body, {"Content-Type": content_type} if content_type else {})
    response = connection.getresponse()
    return response.status, response.read()


def _csv(rows):
    return "\n".join(",".join(f"{v:.5f}" for v in row) for row in rows).encode() + b"\n"


def _sparse(shape):
    return {"data": {"features": {"keys": [0], "values": [1.0], "shape": [shape]}}}


def _requests(rng):
    """The requests of each kind: (name, content type, body, expected status)."""
    good = [("1 row", "text/csv", _csv(rng.normal(size=(1, FEATURES))), 200) for _ in range(50)]
    big = [("1,000 rows", "text/csv", _csv(rng.normal(size=(1000, FEATURES))), 200) for _ in range(5)]
    bad = [
        ("sparse 1e8", "application/json", json.dumps({"instances": [_sparse(10**8)]}).encode(), 400),
        ("sparse 1e12", "application/json", json.dumps({"instances": [_sparse(10**12)]}).encode(), 400),
        ("sparse 1e8 lines", "application/jsonlines", json.dumps(_sparse(10**8)).encode() + b"\n", 400),
        ("nested JSON", "application/json", b"[" * 50_000 + b"]" * 50_000, 400),
        ("400 digits", "application/json", b'{"instances": [[1, 2, 3, ' + b"9" * 400 + b"]]}", 400),
        ("1_000", "text/csv", b"1_000,2,3,4\n", 400),
        ("Arabic-Indic", "text/csv", "\u0661,2,3,4\n".encode(), 400),
        ("NaN", "text/csv", b"nan,2,3,4\n", 400),
        ("1e308", "text/csv", b"1e308,1e308,1e308,1e308\n", 400),
        ("2 features", "text/csv", b"1,2\n", 400),
        ("not CSV", "text/csv", b"a,b,c,d\n", 400),
        ("image/png", "image/png", b"1,2,3,4\n", 415),
        ("7 MB", "text/csv", b"1,2,3,4\n" * (7 << 17), 413),
    ]
    return good, big, bad


def _run(port, plan, clients, seconds):
    """Send ``plan`` (a list of requests) from ``clients`` threads; return (answers, seconds)."""
    answers, lock, position = [], threading.Lock(), itertools.count()
    deadline = time.monotonic() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < deadline:
            index = next(position)
            if index >= len(plan):
                break
            name, content_type, body, expected = plan[index]
            started = time.perf_counter()
            try:
                status, _ = _request(connection, "POST", "/invocations", body, content_type)
            except (OSError, http.client.HTTPException):
                status = "closed"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                answers.append((name, expected, status, time.perf_counter() - started))
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, time.perf_counter() - started


def _latency(answers, name):
    times = np.array([seconds for kind, _, status, seconds in answers if kind == name and status == 200]) * 1000
    if not times.size:
        return "-", "-", 0
    return f"{np.percentile(times, 50):.1f}", f"{np.percentile(times, 99):.1f}", times.size


def _head_of_line(port, rng, rows=150_000):
    """Time 1-row requests sent one after another while one ``rows``-row request (5.4 MB) is scored."""
    body = _csv(rng.normal(size=(rows, FEATURES)))
    small = _csv(rng.normal(size=(1, FEATURES)))
    timing = {}

    def large():
        started = time.perf_counter()
        status, _ = _request(
            http.client.HTTPConnection("127.0.0.1", port, timeout=300), "POST", "/invocations", body, "text/csv"
        )
        timing["large"] = (status, time.perf_counter() - started)

    thread = threading.Thread(target=large)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    thread.start()
    latencies = []
    while thread.is_alive():
        started = time.perf_counter()
        _request(connection, "POST", "/invocations", small, "text/csv")
        latencies.append((time.perf_counter() - started) * 1000)
    thread.join()
    status, seconds = timing["large"]
    print(f"\none {rows:,}-row request ({len(body) / 2**20:.1f} MiB): {status} in {seconds * 1000:.0f} ms; meanwhile")
    print(
        f"{len(latencies)} 1-row requests one after another: p50 {np.percentile(latencies, 50):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--small", type=int, default=3000, help="1-row requests (default: 3000)")
    parser.add_argument("--large", type=int, default=320, help="1,000-row requests (default: 320)")
    parser.add_argument("--mixed", type=int, default=5000, help="mixed requests (default: 5000)")
    parser.add_argument("--seconds", type=float, default=120, help="time bound of each phase (default: 120)")
    parser.add_argument("--code", default=ROOT, help="checkout whose rcforest is served (default: this one)")
    args = parser.parse_args()

    sys.path.insert(0, ROOT)
    from rcforest import Forest

    rng = np.random.default_rng(0)
    forest = Forest(num_trees=100, sample_size=256, random_state=0).fit(rng.normal(size=(5000, FEATURES)))
    with tempfile.TemporaryDirectory() as folder:
        model = os.path.join(folder, "model.rcf")
        forest.save(model)
        process, port = _start(model, os.path.abspath(args.code))
        try:
            good, big, bad = _requests(rng)
            _run(port, good[:20] + big[:2], 2, args.seconds)  # warm-up: compiled kernels, connections
            print(f"rcforest serve ({args.code}) on 127.0.0.1:{port}, 100 trees x 256 points, {FEATURES} features")
            print(f"{args.clients} clients, keep-alive connections\n")
            print(f"{'requests':<12}{'count':>7}{'req/s':>9}{'rows/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
            for name, plan, rows in [("1 row", good, 1), ("1,000 rows", big, 1000)]:
                count = args.small if rows == 1 else args.large
                answers, elapsed = _run(
                    port, list(itertools.islice(itertools.cycle(plan), count)), args.clients, args.seconds
                )
                done = sum(status == 200 for *_, status, _ in answers)
                p50, p99, _ = _latency(answers, name)
                print(f"{name:<12}{done:>7}{done / elapsed:>9.0f}{done * rows / elapsed:>10.0f}{p50:>9}{p99:>9}")

            _head_of_line(port, rng)
            if not args.mixed:
                return
            plan = list(itertools.islice(itertools.cycle(good[:10] + big[:1] + bad), args.mixed))
            rng.shuffle(plan)
            rss_before = _rss(process.pid)
            answers, elapsed = _run(port, plan, args.clients, args.seconds)
            rss_after, peak = _rss(process.pid), _rss(process.pid, "VmHWM")
            _run(port, plan, args.clients, args.seconds)  # the same again: is the memory flat?
            rss_again = _rss(process.pid)
            rate = len(answers) / elapsed
            print(f"\nmixed: {len(answers)} requests in {elapsed:.1f} s ({rate:.0f} req/s), {args.clients} clients")
            print(f"server RSS before {rss_before:.0f} MiB, after {rss_after:.0f} MiB, peak {peak:.0f} MiB")
            print(f"server RSS after the same {len(plan)} requests again: {rss_again:.0f} MiB")
            statuses = {}
            for _, _, status, _ in answers:
                statuses[status] = statuses.get(status, 0) + 1
            print("answers by status:", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
            wrong = {}
            for name, expected, status, _ in answers:
                if status != expected:
                    wrong[(name, expected, status)] = wrong.get((name, expected, status), 0) + 1
            for (name, expected, status), count in sorted(wrong.items(), key=str):
                print(f"  unexpected: {count} x {name}: {status}, expected {expected}")
            p50, p99, count = _latency(answers, "1 row")
            print(f"1-row requests among them: {count}, p50 {p50} ms, p99 {p99} ms")
            p50, p99, count = _latency(answers, "1,000 rows")
            print(f"1,000-row requests among them: {count}, p50 {p50} ms, p99 {p99} ms")
            ok = _request(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "GET", "/ping", b"", "")[0]
            print(f"after the load: GET /ping {ok}")
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
