"""How long the first call takes, with numba's cache cold and warm, and where the compile time goes.

Usage::

    python benchmarks/cold_start.py                # all four cases, cold then warm, and the profile
    python benchmarks/cold_start.py --cases a d    # some of them
    python benchmarks/cold_start.py --top 30       # longer profile

The cases:

- ``a``: ``Forest(...).fit(X).score(X)`` on 2,000 x 3 rows;
- ``b``: a streaming ``Forest(shingle_size=4).score_update`` over a
  2,000-point series, then one more point;
- ``c``: ``ThresholdedForest().run(series)`` on a 2,000-point series;
- ``d``: ``rcforest serve MODEL`` started, and its first ``POST
  /invocations`` (one CSV row) answered.

Each case runs in a new interpreter with an empty ``NUMBA_CACHE_DIR``
(cold), then in another new interpreter with the cache that run left
(warm). The time is from the interpreter's start (``python -c ''`` takes
about 0.02 s) to the answer: imports included. Beside the wall time, the
CPU time of the process (user plus system; for ``d``, the server's) is
printed: on a shared machine it varies far less than the wall time. The
cold runs record numba's ``numba:compile`` events, and the profile lists,
per jitted function and signature, the CPU time the compiling thread spent
in it, its own (without the functions it compiled on the way) and in total.
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
CASES = {
    "a": "Forest(...).fit(X).score(X)",
    "b": "streaming score_update, shingle 4",
    "c": "ThresholdedForest().run(series)",
    "d": "rcforest serve: first request",
}
_ROWS = 2000


class _CompileProfile:
    """Listener for ``numba:compile`` events: own and total seconds per function and signature."""

    def __init__(self):
        self.stack = []
        self.records = []

    def on_start(self, event):
        self.stack.append([time.thread_time(), 0.0])

    def on_end(self, event):
        start, nested = self.stack.pop()
        total = time.thread_time() - start
        if self.stack:
            self.stack[-1][1] += total
        dispatcher = event.data["dispatcher"]
        name = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
        args = ", ".join(str(a) for a in event.data["args"])
        self.records.append({"function": name, "args": args, "own": total - nested, "total": total})

    def install(self):
        from numba.core import event

        class Listener(event.Listener):
            on_start = staticmethod(self.on_start)
            on_end = staticmethod(self.on_end)

        event.register("numba:compile", Listener())


def _series(n=_ROWS):
    import numpy as np

    t = np.arange(n)
    return 100 + 50 * np.sin(2 * np.pi * t / 100) + np.random.default_rng(0).normal(scale=5, size=n)


def _case_a():
    import numpy as np

    from rcforest import Forest

    X = np.random.default_rng(0).normal(size=(_ROWS, 3))
    Forest(num_trees=100, sample_size=256, random_state=0).fit(X).score(X)


def _case_b():
    from rcforest import Forest

    series = _series()
    forest = Forest(num_trees=100, sample_size=256, shingle_size=4, time_decay=1 / 2560, random_state=0)
    forest.score_update(series)
    forest.score_update(series[-1:])


def _case_c():
    import pandas as pd

    from rcforest import ThresholdedForest

    series = pd.Series(_series(), index=pd.date_range("2026-01-01", periods=_ROWS, freq="30min"), name="value")
    ThresholdedForest().run(series)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _case_d(model, started):
    """Start ``rcforest serve`` and time until its first scoring answer; return the server's profile."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = os.path.join(tmp, "profile.json")
        command = [sys.executable, __file__, "--serve-child", profile_path, "serve", model, "--port", str(port)]
        command += ["--log-level", "warning"]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            body = b"1.0,2.0,3.0\n"
            deadline = started + 300
            while True:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=body,
                    headers={"Content-Type": "text/csv", "Accept": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=300) as response:
                        json.loads(response.read())
                    break
                except (ConnectionError, urllib.error.URLError):
                    if server.poll() is not None or time.perf_counter() > deadline:
                        raise RuntimeError("the server stopped or never answered") from None
                    time.sleep(0.02)
            seconds = time.perf_counter() - started
        finally:
            server.send_signal(signal.SIGINT)  # uvicorn shuts down; the child then writes its profile
            server.wait(30)
        records = json.loads(Path(profile_path).read_text()) if os.path.exists(profile_path) else []
    return seconds, records, _cpu(resource.RUSAGE_CHILDREN)


def _serve_child(profile_path, argv):
    """Run the ``rcforest`` command line with the compile profile on, and write the profile on exit."""
    profile = _CompileProfile()
    profile.install()
    from rcforest.cli import main as cli_main

    try:
        cli_main(argv)
    finally:
        Path(profile_path).write_text(json.dumps(profile.records))


def _child(case, model):
    """Run one case in this (new) interpreter; print seconds since its start and the profile."""
    started = _process_start()
    profile = _CompileProfile()
    profile.install()
    if case == "d":
        seconds, records, cpu = _case_d(model, started)
    else:
        {"a": _case_a, "b": _case_b, "c": _case_c}[case]()
        seconds, records, cpu = time.perf_counter() - started, profile.records, _cpu(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "profile": records}))


def _cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _process_start():
    """``time.perf_counter()``'s value when this interpreter started (from /proc, else now)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.perf_counter() - (uptime - start_ticks / ticks)
    except (OSError, ValueError, IndexError):
        return time.perf_counter()


def _run_case(case, cache, model, home, prebuilt=True):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, HOME=home)
    if not prebuilt:
        env["RCFOREST_PREBUILT"] = "0"
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, model], capture_output=True, text=True, env=env, cwd=HERE
    )
    if done.returncode:
        raise RuntimeError(f"case {case} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write_model(path):
    """A fitted 3-feature model for case ``d``, written with its own throwaway cache."""
    code = (
        "import numpy as np; from rcforest import Forest; "
        f"Forest(100, 256, random_state=0).fit(np.random.default_rng(0).normal(size=(2000, 3))).save({path!r})"
    )
    with tempfile.TemporaryDirectory() as cache:
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, NUMBA_CACHE_DIR=cache))


def _profile_table(records, top):
    merged = {}
    for r in records:
        key = (r["function"], r["args"])
        own, total, count = merged.get(key, (0.0, 0.0, 0))
        merged[key] = (own + r["own"], total + r["total"], count + 1)
    rows = sorted(merged.items(), key=lambda item: -item[1][0])
    lines = [f"  {'own s':>7} {'total s':>8}  function (signature)"]
    for (function, args), (own, total, _) in rows[:top]:
        short = args if len(args) <= 90 else args[:87] + "..."
        lines.append(f"  {own:7.2f} {total:8.2f}  {function.removeprefix('rcforest.')} ({short})")
    if len(rows) > top:
        rest = sum(v[0] for _, v in rows[top:])
        lines.append(f"  {rest:7.2f} {'':8}  {len(rows) - top} more")
    lines.append(f"  {sum(v[0] for v in merged.values()):7.2f} {'':8}  all {len(rows)} compilations")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--top", type=int, default=20, help="profile lines per case (default: 20)")
    parser.add_argument(
        "--no-prebuilt",
        dest="prebuilt",
        action="store_false",
        help="ignore the package's prebuilt kernels (RCFOREST_PREBUILT=0): numba compiles everything",
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-child", metavar="PROFILE", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.serve_child:
        return _serve_child(args.serve_child, rest)
    if args.child:
        return _child(*args.child)
    load = os.getloadavg()[0]
    print(f"# {os.cpu_count()} cores, load average {load:.1f}; numba cache emptied before each cold run", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.rcf")
        if "d" in args.cases:
            _write_model(model)
        for case in args.cases:
            cache = os.path.join(tmp, f"cache-{case}")
            home = os.path.join(tmp, f"home-{case}")
            os.mkdir(cache)
            os.mkdir(home)
            cold = _run_case(case, cache, model, home, args.prebuilt)
            warm = _run_case(case, cache, model, home, args.prebuilt)
            results[case] = (cold, warm)
            print(
                f"({case}) {CASES[case]}: cold {cold['seconds']:.1f} s (CPU {cold['cpu']:.1f} s), "
                f"warm {warm['seconds']:.1f} s (CPU {warm['cpu']:.1f} s)",
                flush=True,
            )
    for case, (cold, _) in results.items():
        print(f"\ncompile profile, ({case}) {CASES[case]}, cold:")
        print(_profile_table(cold["profile"], args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
