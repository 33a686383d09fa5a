"""Run every workload for rcforest and its peers and print one comparison table.

Usage::

    python benchmarks/compare.py [--repeat 3] [--markdown]

Each (library, workload) pair runs in a fresh Python process, so one
library's threads, JIT or allocator never touch another's timings. Times
are medians over ``--repeat`` runs inside that process (after a warm-up for
the JIT). Workload numbers follow ``benchmarks/README.md``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads  # noqa: E402

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


def measure(repeat):
    """Run all workloads; return table rows (workload, rcforest, peer, ratio, target)."""
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
            "report",
            None,
        )
    )
    rows.append(
        (
            "6 memory: model file (MB)",
            f"{rc_mem['file_mb']:.2f} (arrays {rc_mem['model_mb']:.1f})",
            f"krcf msgpack {kr_mem['file_mb']:.2f}, json {kr_mem['json_mb']:.2f}",
            f"{rc_mem['file_mb'] / kr_mem['file_mb']:.2f}x krcf",
            "report",
            None,
        )
    )

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
        "--worker", nargs=4, metavar=("LIBRARY", "WORKLOAD", "N_JOBS", "REPEAT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        library, workload, n_jobs, repeat = args.worker
        _worker(library, workload, int(n_jobs), int(repeat))
        return 0
    print(f"# {os.cpu_count()} cores, {workloads.NUM_TREES} trees, sample {workloads.SAMPLE_SIZE}", flush=True)
    print(format_table(measure(args.repeat), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
