"""A forest's state as parts, and those parts as a model file's parameters and arrays.

:class:`ForestParts` is everything a fitted :class:`rcforest.Forest` holds
beyond its constructor arguments. ``Forest._parts()`` returns them and
``Forest._from_parts(parts)`` builds a forest from them: the one way code
outside :mod:`rcforest.forest` (the detector, the Dask fit) reads or makes
a forest's state. :func:`to_arrays` and :func:`from_arrays` turn parts into
the JSON-ready parameters and named arrays of :mod:`rcforest._format` and
back; reading checks every array, so a damaged file is refused with a
``ValueError`` instead of crashing a kernel.
"""

from typing import NamedTuple

import numpy as np

from rcforest import _kernels
from rcforest._core import MAX_ABS_VALUE, MAX_SAMPLE_SIZE, check_int, check_model_size, check_time_decay
from rcforest._tree import TreeArrays, nodes_per_tree

__all__ = []

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
        ``tree.<field>`` for each :class:`TreeArrays` field, and ``tail``.
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
        arrays.update({f"tree.{k}": v for k, v in parts.trees._asdict().items()})
        arrays["tail"] = parts.tail
    return params, arrays


def from_arrays(params, arrays):
    """Parts from a model file's parameters and arrays, checking every array.

    Parameters
    ----------
    params : dict
    arrays : dict of str to ndarray

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
        trees = _trees_from(arrays, parts.params, n_features)
        tail = _array(arrays, "tail", np.float64, (range(checked["shingle_size"]), n_features))
        if not (np.abs(tail) <= MAX_ABS_VALUE).all():
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


def _trees_from(arrays, params, n_features):
    """Rebuild and check :class:`TreeArrays` from a model file's arrays."""
    t, s, n = params["num_trees"], params["sample_size"], nodes_per_tree(params["sample_size"])
    d = params["shingle_size"] * n_features
    shapes = {
        "parent": (np.int32, (t, n)),
        "left": (np.int32, (t, n)),
        "right": (np.int32, (t, n)),
        "cut_dim": (np.int32, (t, n)),
        "cut_value": (np.float64, (t, n)),
        "mass": (np.int64, (t, n)),
        "box_min": (np.float64, (t, n, d)),
        "box_max": (np.float64, (t, n, d)),
        "range_sum": (np.float64, (t, n)),
        "free_stack": (np.int32, (t, n)),
        "free_top": (np.int32, (t,)),
        "root": (np.int32, (t,)),
        "rng": (np.uint64, (t,)),
        "heap_weight": (np.float64, (t, s)),
        "heap_leaf": (np.int32, (t, s)),
        "heap_size": (np.int32, (t,)),
    }
    trees = TreeArrays(**{k: _array(arrays, f"tree.{k}", *v) for k, v in shapes.items()})
    failures = np.empty(t, np.int64)
    _kernels.check_trees(trees, failures)
    if failures.any():
        bad = int(np.flatnonzero(failures)[0])
        raise ValueError(f"tree {bad} is inconsistent (check {failures[bad]} failed)")
    _check_values(trees)
    return trees


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
        f"a box is not finite or beyond {MAX_ABS_VALUE:g}": ~(np.abs(trees.box_min) <= MAX_ABS_VALUE).all(axis=2)
        | ~(np.abs(trees.box_max) <= MAX_ABS_VALUE).all(axis=2),
        "a cut value is not finite": internal & ~np.isfinite(trees.cut_value),
    }
    for message, bad in checks.items():
        if bad.any():
            raise ValueError(f"tree {int(np.argwhere(bad)[0][0])} is inconsistent: {message}")
    in_heap = np.arange(trees.heap_weight.shape[1]) < trees.heap_size[:, None]
    bad = in_heap & np.isnan(trees.heap_weight)
    if bad.any():
        raise ValueError(f"tree {int(np.argwhere(bad)[0][0])} is inconsistent: a reservoir weight is NaN")
