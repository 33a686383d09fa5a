"""Compile every kernel ahead of the first call: ``rcforest warmup``, and the prebuilt kernels.

rcforest's kernels are loaded from the package's prebuilt cache, which
the build of the package fills with :func:`prebuild`, or else compiled by
numba on first use and cached on disk (in ``__pycache__`` beside the
package, or in ``NUMBA_CACHE_DIR``); see :mod:`rcforest._kernel_cache`.
A process that finds them starts in about a second; one that does not
compiles what it uses first, a few seconds per kind of call.
:func:`warmup` runs each kind of call once on a few rows, so that numba's
cache holds every kernel: run it where the cache will be read, when a
Docker image is built or when a Dask worker starts, if the package's
prebuilt kernels were built on a machine with another CPU.

Notes
-----
numba keys its cache, and the prebuilt one, on the CPU it compiled for:
its name and its feature flags. An image built on one machine and run on
another compiles again unless both set ``NUMBA_CPU_NAME=generic``
(portable code, a little slower).
"""

import os
import tempfile
import time

import numpy as np

from rcforest import _kernel_cache, _merge
from rcforest._rng import tree_seeds
from rcforest.detector import Forecaster, ThresholdedForest
from rcforest.forest import Forest

__all__ = ["prebuild", "warmup"]


def warmup():
    """Compile (or load from numba's cache) every kernel rcforest uses.

    Fits (both layouts), scores, streams, saves and loads a small forest,
    asks it for near neighbours, density, imputations and a forecast, runs
    a small :class:`~rcforest.ThresholdedForest` and
    :class:`~rcforest.Forecaster` and merges reservoir samples as the Dask
    fit does. Nothing is kept.

    Returns
    -------
    float
        Seconds it took.

    Examples
    --------
    Warm every worker of a Dask cluster (each worker compiles once, or reads
    the cache it shares with the others)::

        client.run(rcforest.warmup.warmup)
    """
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    values = rng.normal(size=(64, 2))
    forest = Forest(num_trees=4, sample_size=16, shingle_size=2, random_state=0).fit(values)
    forest.score(values)
    forest.codisp(values)
    forest.displacement(values)
    forest.attribution(values)
    for kind in ("score", "codisp", "displacement"):
        forest.score_update(values[:12], kind=kind)
    forest.update(values[:12])
    forest.score_update(values[12])  # one reading: the single-reading kernel (rcforest._reading)
    Forest(num_trees=4, sample_size=16, random_state=0, sampling="sagemaker").fit(values).score(values[:12])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.rcf")
        forest.save(path)
        Forest.load(path).score(values[:12])
    forest.near_neighbors(values[:2].ravel())
    forest.density(values, directional=True)
    holes = values.copy()
    holes[5, 1] = np.nan
    forest.impute(holes)
    forest.conditional_summary([values[0, 0], np.nan, values[1, 0], np.nan])
    plain = Forest(num_trees=4, sample_size=16, random_state=0).fit(values)  # one row: the serial kernels
    plain.density(values[0])
    plain.impute([values[0, 0], np.nan])
    forest.extrapolate(3)
    series = 10.0 + np.sin(np.arange(300) / 5.0) + rng.normal(scale=0.1, size=300)
    ThresholdedForest(num_trees=4, sample_size=16, random_state=0).run(series)
    caster = Forecaster(horizon=2, shingle_size=4, num_trees=4, sample_size=16, output_after=4, random_state=0)
    caster.process(series[:40])
    seeds = tree_seeds(4, 0)
    first = _merge.part_entries(values[:32], 0, seeds, 16, 0.0)
    second = _merge.part_entries(values[32:], 32, seeds, 16, 0.0)
    _merge.build_trees(_merge.merge(first, second, 16), seeds, 16)
    return time.perf_counter() - start


def prebuild(folder):
    """Compile every kernel into a prebuilt cache folder, as the build of the package does.

    Runs :func:`warmup` with kernels loaded from and saved to ``folder``
    only (numba's own cache is neither read nor written). Run it in a new
    interpreter: kernels this process compiled before are not saved again.

    Parameters
    ----------
    folder : str
        The folder to fill, ``rcforest/_prebuilt`` in the package being
        built (see ``setup.py``).

    Returns
    -------
    float
        Seconds it took.
    """
    with _kernel_cache.building(folder):
        return warmup()
