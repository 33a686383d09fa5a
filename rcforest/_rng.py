"""The splitmix64 generator each tree draws from, and the trees' seeds.

Each tree has its own 64-bit state, so a tree's draws do not depend on the
thread that runs it. A draw adds a constant to the state and mixes the
result; so a state ``n`` draws ahead is the state plus ``n`` times that
constant (:func:`advance`), which lets a part of a data set start at its
first row without drawing for the rows before it.

Notes
-----
Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014 (splitmix64), with Vigna's mixing constants.
"""

import numpy as np

from rcforest._jit import JIT, njit

__all__ = []

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


# Compiled on its own, not inlined: numba's parfor loses stores to a NamedTuple's
# arrays (here ``tr.rng``) made by code inlined into a prange body.
@njit(**JIT)
def uniform(rng, t):
    """Draw a float in [0, 1) from the splitmix64 state ``rng[t]``.

    Parameters
    ----------
    rng : ndarray of uint64
        Generator states; ``rng[t]`` is advanced.
    t : int
        Which state to use.

    Returns
    -------
    float
    """
    state = rng[t] + _GOLDEN
    rng[t] = state
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * _TO_UNIT


def tree_seeds(num_trees, random_state):
    """The initial generator state of each tree of a forest.

    Parameters
    ----------
    num_trees : int
    random_state : int or None
        None draws fresh entropy.

    Returns
    -------
    ndarray of uint64, shape (num_trees,)
    """
    return np.random.SeedSequence(random_state).generate_state(num_trees, np.uint64)


def advance(seeds, draws):
    """Generator states after ``draws`` uniforms from ``seeds``.

    Parameters
    ----------
    seeds : ndarray of uint64
    draws : int

    Returns
    -------
    ndarray of uint64
        ``seeds + draws * constant`` modulo 2**64: splitmix64 adds a
        constant to its state per draw.
    """
    step = (int(draws) * int(_GOLDEN)) % (1 << 64)
    return np.array([(int(s) + step) % (1 << 64) for s in seeds], dtype=np.uint64)
