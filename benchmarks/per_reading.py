"""One reading per call, rcforest alone, steadier than workload 9 on a shared machine.

Usage::

    python benchmarks/per_reading.py            # 4-D and 48-D, as workload 9
    python benchmarks/per_reading.py 4 48 96    # and 96-D points (the detector's at shingle 48, two channels)

Workload 9's streams and calls (``score``, ``update`` and ``score_update``
of one reading, 4-D and 48-D, 100 trees of 256, one thread, after 1,000
readings), timed as CPU time of the thread in twelve blocks of 250 calls;
it prints the lower quartile of the blocks, microseconds per call for the
100 trees. A block that another job slowed does not move the figure much,
so two checkouts can be compared by running this script in each, in turn
(``PYTHONPATH`` set to the checkout).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import workloads  # noqa: E402

__all__ = ["main"]

BLOCK = 250
"""Calls per timed block."""


def _calls(width, call):
    """The forest's method and the readings it is called with, as workload 9 makes them."""
    from rcforest import Forest

    series = workloads._reading_series(width)
    warmup = workloads.READINGS_WARMUP
    if call == "score":
        points = np.lib.stride_tricks.sliding_window_view(series, width)
        forest = Forest(workloads.NUM_TREES, workloads.SAMPLE_SIZE, 1, workloads.TIME_DECAY, random_state=0, n_jobs=1)
        forest.update(points[:warmup])
        return forest.score, list(np.ascontiguousarray(points[warmup:]))
    forest = Forest(workloads.NUM_TREES, workloads.SAMPLE_SIZE, width, workloads.TIME_DECAY, random_state=0, n_jobs=1)
    forest.update(series[:warmup])
    return getattr(forest, call), series[warmup:].tolist()


def main(argv=None):
    widths = [int(width) for width in (sys.argv[1:] if argv is None else argv)] or [4, 48]
    results = {}
    for width in widths:
        for call in workloads.READING_CALLS:
            method, readings = _calls(width, call)
            method(readings[0])  # compiled, or loaded, outside the timing
            blocks = []
            for first in range(1, len(readings) - BLOCK + 1, BLOCK):
                start = time.thread_time()
                for reading in readings[first : first + BLOCK]:
                    method(reading)
                blocks.append((time.thread_time() - start) / BLOCK * 1e6)
            results[f"{call}-{width}"] = round(float(np.percentile(blocks, 25)), 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
