"""``rcforest warmup`` fills numba's cache: a later process compiles nothing."""

import os
import subprocess
import sys

_LATER_PROCESS = """
import os
import sys
import tempfile
import numba
import numpy as np
import rcforest
from rcforest import Forest, ThresholdedForest

X = np.random.default_rng(1).normal(size=(300, 3))
forest = Forest(num_trees=10, sample_size=32, shingle_size=3, random_state=1).fit(X)
forest.score(X)
forest.codisp(X[:20])
forest.attribution(X[:5])
forest.score_update(X[:50])
forest.score_update(X[:1], kind="displacement")
Forest(num_trees=10, sample_size=32, random_state=1, sampling="sagemaker").fit(X).score(X[:5])
ThresholdedForest(num_trees=10, sample_size=32).run(X[:, 0])
with tempfile.TemporaryDirectory() as folder:
    forest.save(os.path.join(folder, "model.rcf"))
    Forest.load(os.path.join(folder, "model.rcf"))
compiled = sorted(
    f"{name}.{attr}"
    for name, module in sys.modules.items()
    if name.startswith("rcforest")
    for attr, value in vars(module).items()
    if isinstance(value, numba.core.registry.CPUDispatcher) and sum(value.stats.cache_misses.values())
)
print(" ".join(compiled) or "nothing compiled")
"""


def test_warmup_leaves_nothing_to_compile(tmp_path):
    # numba's cache alone: the package's prebuilt kernels (if it was built with them) are not read.
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), RCFOREST_PREBUILT="0")
    warm = subprocess.run(
        [sys.executable, "-m", "rcforest.cli", "warmup"], env=env, capture_output=True, text=True, timeout=1200
    )
    assert warm.returncode == 0, warm.stderr
    assert f"cache: {tmp_path}" in warm.stderr
    assert any(name.endswith(".nbi") for _, _, names in os.walk(tmp_path) for name in names)  # numba's index files
    later = subprocess.run([sys.executable, "-c", _LATER_PROCESS], env=env, capture_output=True, text=True, timeout=600)
    assert later.returncode == 0, later.stderr
    assert later.stdout.strip() == "nothing compiled"
