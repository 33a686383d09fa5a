"""Run every workload for rcforest and its peers and print one comparison table.

Usage::

    python benchmarks/compare.py [--repeat 3] [--markdown] [--workloads 4,8]

Each (library, workload) pair runs in a fresh Python process, so one
library's threads, JIT or allocator never touch another's timings. Times
are medians over ``--repeat`` runs inside that process (after a warm-up for
the JIT). Workload numbers follow ``benchmarks/README.md``. The table is
preceded by each library's version and the thread settings of every run.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402
from queries import query_rows  # noqa: E402

__all__ = ["main"]


def _worker(library, workload, n_jobs, repeat):
    runner = workloads.RUNNERS[(library, workload)]
    results = [runner(n_jobs=n_jobs) for _ in range(repeat)]
    print(json.dumps(results))


def _run(library, workload, n_jobs=1, repeat=3):
    """Median seconds of a workload, run in a fresh process."""
    command = [sys.executable, __file__, "--worker", library, workload, str(n_jobs), str(repeat)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE)
    results = json.loads(done.stdout.strip().splitlines()[-1])
    seconds = statistics.median(r["seconds"] for r in results)
    return seconds, results[0]


def _in_fresh_process(code, env=None):
    """Wall time of a fresh interpreter running ``code``, and what it printed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE, env=env)
    return time.perf_counter() - start, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _per_point_tree(seconds, info):
    return seconds / (info["points"] * workloads.NUM_TREES) * 1e6


def _batch_rows(repeat):
    rows = []
    for n_jobs in (1, 2):
        rcb, _ = _run("rcforest", "batch", n_jobs, repeat)
        skb, _ = _run("sklearn", "batch", n_jobs, repeat)
        rows.append(
            (
                f"4 batch 100k x 48 fit+score, n_jobs={n_jobs} (s)",
                f"{rcb:.2f}",
                f"IsolationForest {skb:.2f}",
                f"{rcb / skb:.2f}x IF",
                "<= 1.0x",
                rcb <= skb,
            )
        )
    return rows


def _endpoint_rows(repeat):
    rows = []
    for n_jobs in (1, 2):
        rce, _ = _run("rcforest", "endpoint", n_jobs, repeat)
        kre, kinfo = _run("krcf", "endpoint", n_jobs, repeat)
        ske, _ = _run("sklearn", "endpoint", n_jobs, repeat)
        rows.append(
            (
                f"8 endpoint: score 100k x 48, 50 trees x 512, n_jobs={n_jobs} (s)",
                f"{rce:.2f}",
                f"krcf {kre:.1f} ({kinfo['rows']:,} rows scaled), IsolationForest {ske:.2f}",
                f"{rce / kre:.2f}x krcf, {rce / ske:.2f}x IF",
                "<= 0.2x krcf, <= 2.0x IF",
                rce <= 0.2 * kre and rce <= 2.0 * ske,
            )
        )
    return rows


def _stream_rows(repeat):
    rows = []
    rc1, info = _run("rcforest", "stream", 1, repeat)
    kr1, kinfo = _run("krcf", "stream", 1, repeat)
    rc_us, kr_us = _per_point_tree(rc1, info), _per_point_tree(kr1, kinfo)
    rows.append(
        (
            "1 stream 4-D, 1 thread (us/point/tree)",
            f"{rc_us:.3f}",
            f"krcf {kr_us:.3f}",
            f"{rc_us / kr_us:.2f}x krcf",
            "<= 0.5x",
            rc_us / kr_us <= 0.5,
        )
    )

    rc2, info2 = _run("rcforest", "stream", 2, repeat)
    kr2, kinfo2 = _run("krcf", "stream", 2, repeat)
    rc2_us = _per_point_tree(rc2, info2)
    rows.append(
        (
            "2 stream 4-D, 2 threads (us/point/tree)",
            f"{rc2_us:.3f}",
            f"krcf {_per_point_tree(kr2, kinfo2):.3f}",
            f"{rc1 / rc2:.2f}x faster than 1 thread",
            ">= 1.7x",
            rc1 / rc2 >= 1.7,
        )
    )
    return rows


def _taxi_rows(repeat):
    rows = []
    rct, tinfo = _run("rcforest", "taxi", 1, repeat)
    krt, ktinfo = _run("krcf", "taxi", 1, repeat)
    rows.append(
        (
            "3 stream 48-D NYC taxi, 1 thread (us/point/tree)",
            f"{_per_point_tree(rct, tinfo):.3f}",
            f"krcf {_per_point_tree(krt, ktinfo):.3f}",
            f"{rct / krt:.2f}x krcf",
            "report",
            None,
        )
    )

    return rows


def _codisp_rows(repeat):
    rows = []
    rcc, cinfo = _run("rcforest", "codisp", 1, repeat)
    rrc, rinfo = _run("rrcf", "codisp", 1, 1)
    rc_c, rr_c = _per_point_tree(rcc, cinfo), _per_point_tree(rrc, rinfo)
    rows.append(
        (
            "5 CoDisp stream 4-D, 1 thread (us/point/tree)",
            f"{rc_c:.3f}",
            f"rrcf {rr_c:.1f}",
            f"{rr_c / rc_c:.0f}x faster than rrcf",
            ">= 200x",
            rr_c / rc_c >= 200,
        )
    )
    return rows


def _memory_rows(repeat):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        code = "import json, workloads; print(json.dumps(workloads.{}({!r})))"
        _, rc_mem = _in_fresh_process(code.format("rcforest_memory", f"{tmp}/model.rcf"))
        _, kr_mem = _in_fresh_process(code.format("krcf_memory", f"{tmp}/model.msgpack"))
    rc_mem, kr_mem = json.loads(rc_mem), json.loads(kr_mem)
    rows.append(
        (
            "6 memory: 100 trees x 256 x 48-D, peak RSS (MB)",
            f"{rc_mem['peak_rss_mb']:.0f}",
            f"krcf {kr_mem['peak_rss_mb']:.0f}",
            "",
            "<= 200 MB",
            rc_mem["peak_rss_mb"] <= 200,
        )
    )
    rows.append(
        (
            "6 memory: model file (MB)",
            f"{rc_mem['file_mb']:.2f} (arrays {rc_mem['model_mb']:.1f})",
            f"krcf msgpack {kr_mem['file_mb']:.2f}, json {kr_mem['json_mb']:.2f}",
            f"{rc_mem['file_mb'] / kr_mem['file_mb']:.2f}x krcf",
            "<= 5 MB (arrays <= 20 MB)",
            rc_mem["file_mb"] <= 5 and rc_mem["model_mb"] <= 20,
        )
    )
    return rows


def _cold_start_rows(repeat):
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        code = "import workloads; workloads.{}()"
        cold, _ = _in_fresh_process(code.format("rcforest_first_score"), env)
        warm, _ = _in_fresh_process(code.format("rcforest_first_score"), env)
        krcf_start, _ = _in_fresh_process(code.format("krcf_first_score"), env)
    rows.append(
        (
            "7 cold start: import + first fit/score (s)",
            f"cold {cold:.1f}, warm {warm:.1f}",
            f"krcf {krcf_start:.1f}",
            "",
            "report",
            None,
        )
    )
    return rows


def _reading_rows(repeat):
    """Workload 9: one call per reading, against the faster of rcf3 and krcf at the same call."""
    rows = []
    for width in (4, 48):
        for call in workloads.READING_CALLS:
            workload = f"reading-{call}-{width}"
            us = {}
            for library in ("rcforest", "rcf3", "krcf"):
                seconds, info = _run(library, workload, 1, repeat)
                us[library] = _per_point_tree(seconds, info)
            peer = min(us["rcf3"], us["krcf"])
            rows.append(
                (
                    f"9 {call}, one reading per call, {width}-D, 1 thread (CPU us/point/tree)",
                    f"{us['rcforest']:.3f}",
                    f"rcf3 {us['rcf3']:.3f}, krcf {us['krcf']:.3f}",
                    f"{us['rcforest'] / peer:.2f}x the faster",
                    "<= 0.35x",
                    us["rcforest"] <= 0.35 * peer,
                )
            )
    return rows


def _process_rows(repeat):
    """Workload 10: ThresholdedForest.process per reading; then detectors per core and memory (detectors.py)."""
    rows = []
    for period, series in ((48, "noisy cycle of 48 rows"), (0, "random walk")):
        seconds, info = _run("rcforest", f"process-{period}", 1, repeat)
        ms = seconds / info["points"] * 1e3
        rows.append(
            (
                f"10 process, {series} (shingle {info['shingle_size']}), 1 thread (CPU ms/reading)",
                f"{ms:.3f}",
                "",
                "",
                "<= 0.15 ms",
                ms <= 0.15,
            )
        )
    _, line = _in_fresh_process("import detectors, json; print(json.dumps(detectors.measure()))")
    found = json.loads(line)
    rows.append(
        (
            f"10 detectors per core at 1 reading/s ({found['detectors']} detectors, shingle {found['shingle_size']})",
            f"{found['per_core']:,.0f}",
            "",
            f"{found['ms_per_reading']:.3f} ms CPU per reading",
            "report",
            None,
        )
    )
    rows.append(
        (
            "10 memory per detector (MB)",
            f"{found['mb']:.1f}",
            "",
            f"saved: {found['file_mb']:.2f} MB; boxes {found['boxes_mb']:.1f}, point store {found['store_mb']:.1f}",
            "report",
            None,
        )
    )
    return rows


def versions():
    """Version of each library the table measures, and where rcforest is imported from."""
    from importlib import metadata

    import rcforest

    found = {"rcforest": f"{rcforest.__version__} ({Path(rcforest.__file__).parent})"}
    for name in ("krcf", "rcf3", "rrcf", "scikit-learn", "numba", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def thread_settings():
    """How many threads each library may use, as the runs below set them."""
    import numba

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = ", ".join(f"{k}={os.environ[k]}" for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ)
    machine = platform.processor() or platform.machine()
    return [
        f"{cpus} CPUs usable of {os.cpu_count()} ({machine})" + (f"; {env}" if env else ""),
        f"rcforest: n_jobs threads of numba's pool ({numba.config.NUMBA_NUM_THREADS}, "
        f"threading layer {numba.config.THREADING_LAYER!r}), set per call",
        "IsolationForest: n_jobs (joblib) for fit and score_samples",
        "krcf: parallel_execution_enabled on the rows with 2 threads, else one thread",
        "rcf3: one thread (it starts none)",
        "rrcf: pure Python, one thread",
    ]


WORKLOADS = {
    1: _stream_rows,  # workloads 1 and 2 share their runs
    3: _taxi_rows,
    4: _batch_rows,
    5: _codisp_rows,
    6: _memory_rows,
    7: _cold_start_rows,
    8: _endpoint_rows,
    9: _reading_rows,
    10: _process_rows,
    11: query_rows,  # near neighbours, density, imputation, forecasts: benchmarks/queries.py
}


def measure(repeat, chosen=tuple(WORKLOADS)):
    """Run the chosen workloads; return table rows (workload, rcforest, peer, ratio, target, met)."""
    rows = []
    for number, rows_of in WORKLOADS.items():
        if number in chosen or (number == 1 and 2 in chosen):
            rows += rows_of(repeat)
    return rows


def format_table(rows, markdown=False):
    """Render rows as a fixed-width or Markdown table."""
    header = ("workload", "rcforest", "peer", "ratio", "target", "met")
    cells = [header] + [(*r[:5], "" if r[5] is None else ("yes" if r[5] else "NO")) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(header))) for c in cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload (median reported)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--workloads",
        default="1,2,3,4,5,6,7,8,9,10,11",
        help="comma-separated workload numbers to run (default: all)",
    )
    parser.add_argument(
        "--worker", nargs=4, metavar=("LIBRARY", "WORKLOAD", "N_JOBS", "REPEAT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        library, workload, n_jobs, repeat = args.worker
        _worker(library, workload, int(n_jobs), int(repeat))
        return 0
    chosen = tuple(int(w) for w in args.workloads.split(","))
    print(f"# {workloads.NUM_TREES} trees, sample {workloads.SAMPLE_SIZE}; medians of {args.repeat} runs", flush=True)
    print("# versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    for line in thread_settings():
        print(f"# threads: {line}")
    print(format_table(measure(args.repeat, chosen), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
