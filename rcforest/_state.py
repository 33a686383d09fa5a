"""A forest's state as parts, and those parts as a model file's parameters and arrays.

:class:`ForestParts` is everything a fitted :class:`rcforest.Forest` holds
beyond its constructor arguments. ``Forest._parts()`` returns them and
``Forest._from_parts(parts)`` builds a forest from them: the one way code
outside :mod:`rcforest.forest` (the detector, the Dask fit) reads or makes
a forest's state. :func:`to_arrays` and :func:`from_arrays` turn parts into
the JSON-ready parameters and named arrays of :mod:`rcforest._format` and
back; reading checks every array, so a damaged file is refused with a
``ValueError`` instead of crashing a kernel.

The arrays' layout has a version, :data:`VERSION`:

- version 2 keeps the trees' structure and one table of their distinct
  points (:mod:`rcforest._stored`), and rebuilds the rest on load;
- version 1 kept every :class:`rcforest._tree.TreeArrays` field, every node's
  bounding box included. Such files still load.
"""

from typing import NamedTuple

import numpy as np

from rcforest import _kernels, _stored
from rcforest._core import (
    MAX_ABS_VALUE,
    MAX_SAMPLE_SIZE,
    check_int,
    check_model_size,
    check_time_decay,
    without_negative_zeros,
)
from rcforest._tree import TreeArrays, nodes_per_tree

__all__ = []

VERSION = 2
"""The layout of the arrays :func:`to_arrays` makes."""
READ_VERSIONS = (1, 2)
"""The layouts :func:`from_arrays` reads."""

PARAMS = ("num_trees", "sample_size", "shingle_size", "time_decay", "random_state")
"""The constructor arguments of :class:`rcforest.Forest` that a model file keeps."""


class ForestParts(NamedTuple):
    """A forest's state.

    Attributes
    ----------
    params : dict
        The constructor arguments named in :data:`PARAMS`.
    columns : list of str or None
        Names of the input columns; None for a forest that has seen no data.
    points_seen : int
        Points (shingles) offered to the trees so far.
    trees : TreeArrays or None
        The trees; None for a forest that has seen no data.
    tail : ndarray of float64, shape (rows, len(columns)), or None
        The last ``shingle_size - 1`` input rows (fewer at the start), from
        which a stream makes its next shingle.
    """

    params: dict
    columns: list = None
    points_seen: int = 0
    trees: TreeArrays = None
    tail: np.ndarray = None


def to_arrays(parts):
    """The parameters and named arrays a model file stores for ``parts``.

    Parameters
    ----------
    parts : ForestParts

    Returns
    -------
    params : dict
        JSON-ready.
    arrays : dict of str to ndarray
        ``tree.<field>`` for each :class:`rcforest._stored.StoredTrees`
        field, and ``tail``: the layout of :data:`VERSION`.
    """
    params = dict(parts.params)
    params.update(
        {
            "n_features": None if parts.columns is None else len(parts.columns),
            "points_seen": parts.points_seen,
            "columns": parts.columns,
        }
    )
    arrays = {}
    if parts.trees is not None:
        arrays.update({f"tree.{k}": v for k, v in _stored.extract(parts.trees)._asdict().items()})
        arrays["tail"] = parts.tail
    return params, arrays


def from_arrays(params, arrays, version):
    """Parts from a model file's parameters and arrays, checking every array.

    Parameters
    ----------
    params : dict
    arrays : dict of str to ndarray
    version : int
        The arrays' layout, one of :data:`READ_VERSIONS`.

    Returns
    -------
    ForestParts

    Raises
    ------
    ValueError
        If the parameters or arrays are missing, malformed or inconsistent.
    """
    try:
        if not isinstance(params, dict):
            raise TypeError(f"the parameters are a {type(params).__name__}, not a dict")
        parts = ForestParts(_checked_params(params))
        if params["n_features"] is None:
            return parts
        n_features = check_int(params["n_features"], "n_features", 1)
        columns = params["columns"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns must be a list of names, got {columns!r:.80}")
        if len(columns) != n_features:
            raise ValueError(f"{len(columns)} column names for {n_features} features")
        points_seen = check_int(params["points_seen"], "points_seen", 0)
        checked = parts.params
        check_model_size(checked["num_trees"], checked["sample_size"], checked["shingle_size"] * n_features)
        read_trees = _trees_v1 if version == 1 else _trees_v2
        trees = read_trees(arrays, checked["num_trees"], checked["sample_size"], checked["shingle_size"] * n_features)
        _check_trees(trees)
        tail = without_negative_zeros(_array(arrays, "tail", np.float64, (range(checked["shingle_size"]), n_features)))
        if not _within_bound(tail).all():
            raise ValueError(f"the stream tail holds NaN, infinite or values beyond {MAX_ABS_VALUE:g}")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"inconsistent forest: {error}") from None
    return parts._replace(columns=columns, points_seen=points_seen, trees=trees, tail=tail)


def _checked_params(params):
    """The constructor arguments in ``params``, checked as :class:`rcforest.Forest` checks them."""
    random_state = params["random_state"]
    return {
        "num_trees": check_int(params["num_trees"], "num_trees", 1),
        "sample_size": check_int(params["sample_size"], "sample_size", 1, MAX_SAMPLE_SIZE),
        "shingle_size": check_int(params["shingle_size"], "shingle_size", 1),
        "time_decay": check_time_decay(params["time_decay"]),
        "random_state": None if random_state is None else check_int(random_state, "random_state", 0),
    }


def _array(arrays, name, dtype, shape):
    """Fetch ``arrays[name]`` once its dtype and shape check out.

    Each entry of ``shape`` is a length or a range of allowed lengths.

    When ``arrays`` can describe a member without reading it (a model
    file's :class:`rcforest._format.Arrays`), the check comes first.
    """
    describe = getattr(arrays, "describe", None)
    if describe is not None:
        _check_layout(name, *describe(name), dtype, shape)
    value = arrays[name]
    _check_layout(name, value.dtype, value.shape, dtype, shape)
    return np.ascontiguousarray(value)


def _check_layout(name, have_dtype, have_shape, dtype, shape):
    """Raise unless ``have_dtype`` and ``have_shape`` match ``dtype`` and ``shape``."""
    if have_dtype != dtype or len(have_shape) != len(shape):
        raise ValueError(f"array {name} has dtype {have_dtype} and shape {have_shape}")
    for have, want in zip(have_shape, shape):
        if have not in (want if isinstance(want, range) else (want,)):
            raise ValueError(f"array {name} has shape {have_shape}, expected {shape}")


def _trees_v1(arrays, num_trees, sample_size, dim):
    """The trees of a version 1 file: every :class:`TreeArrays` field, as stored."""
    t, s, n = num_trees, sample_size, nodes_per_tree(sample_size)
    shapes = {
        "parent": (np.int32, (t, n)),
        "left": (np.int32, (t, n)),
        "right": (np.int32, (t, n)),
        "cut_dim": (np.int32, (t, n)),
        "cut_value": (np.float64, (t, n)),
        "mass": (np.int64, (t, n)),
        "box_min": (np.float64, (t, n, dim)),
        "box_max": (np.float64, (t, n, dim)),
        "range_sum": (np.float64, (t, n)),
        "free_stack": (np.int32, (t, n)),
        "free_top": (np.int32, (t,)),
        "root": (np.int32, (t,)),
        "rng": (np.uint64, (t,)),
        "heap_weight": (np.float64, (t, s)),
        "heap_leaf": (np.int32, (t, s)),
        "heap_size": (np.int32, (t,)),
    }
    trees = {k: _array(arrays, f"tree.{k}", *v) for k, v in shapes.items()}
    for k in ("box_min", "box_max"):  # rcforest 0.1.0 kept input's -0.0: read as 0.0, as input now is
        trees[k] = without_negative_zeros(trees[k])
    return TreeArrays(**trees)


def _trees_v2(arrays, num_trees, sample_size, dim):
    """The trees of a version 2 file, rebuilt from their structure and points."""
    shapes = _stored.layout(num_trees, sample_size, nodes_per_tree(sample_size), dim)
    stored = {k: _array(arrays, f"tree.{k}", *v) for k, v in shapes.items()}
    stored["points"] = without_negative_zeros(stored["points"])
    if not _within_bound(stored["points"]).all():
        raise ValueError(f"a stored point holds NaN, infinite or values beyond {MAX_ABS_VALUE:g}")
    return _stored.assemble(_stored.StoredTrees(**stored))


def _check_trees(trees):
    """Raise unless every tree passes the structural check and the value checks."""
    failures = np.empty(trees.root.shape[0], np.int64)
    _kernels.check_trees(trees, failures)
    if failures.any():
        bad = int(np.flatnonzero(failures)[0])
        raise ValueError(f"tree {bad} is inconsistent (check {failures[bad]} failed)")
    _check_values(trees)


def _check_values(trees):
    """Check the values that the structural check leaves alone.

    Free node slots must hold their reset values (links and cut dimension
    ``-1``, zeros elsewhere), leaves have no cut and no range, every box
    value is within the input bound (:data:`rcforest._core.MAX_ABS_VALUE`,
    so cuts are too), every cut is finite, and the reservoir weights in use
    are not NaN.
    """
    t, n = trees.parent.shape
    free = np.zeros((t, n), bool)
    for tree, top in enumerate(trees.free_top):
        free[tree, trees.free_stack[tree, :top]] = True
    leaf = ~free & (trees.left == -1)
    internal = ~free & ~leaf
    checks = {
        "a free node is not reset": free
        & (
            (trees.parent != -1)
            | (trees.left != -1)
            | (trees.right != -1)
            | (trees.cut_dim != -1)
            | (trees.cut_value != 0)
            | (trees.mass != 0)
            | (trees.range_sum != 0)
            | (trees.box_min != 0).any(axis=2)
            | (trees.box_max != 0).any(axis=2)
        ),
        "a leaf has a cut or a range": leaf & ((trees.cut_dim != -1) | (trees.cut_value != 0) | (trees.range_sum != 0)),
        f"a box is not finite or beyond {MAX_ABS_VALUE:g}": ~_within_bound(trees.box_min).all(axis=2)
        | ~_within_bound(trees.box_max).all(axis=2),
        "a cut value is not finite": internal & ~np.isfinite(trees.cut_value),
    }
    for message, bad in checks.items():
        if bad.any():
            raise ValueError(f"tree {int(np.argwhere(bad)[0][0])} is inconsistent: {message}")
    in_heap = np.arange(trees.heap_weight.shape[1]) < trees.heap_size[:, None]
    bad = in_heap & np.isnan(trees.heap_weight)
    if bad.any():
        raise ValueError(f"tree {int(np.argwhere(bad)[0][0])} is inconsistent: a reservoir weight is NaN")


def _within_bound(values):
    """Where ``values`` are at most :data:`rcforest._core.MAX_ABS_VALUE` in magnitude (NaN is not).

    Two comparisons rather than ``abs``: no float copy of a forest's boxes.
    """
    return (values >= -MAX_ABS_VALUE) & (values <= MAX_ABS_VALUE)
