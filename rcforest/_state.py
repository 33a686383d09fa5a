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

- version 3 adds the trees' origin, the point their points and cuts are
  relative to (:func:`rcforest._store.relative`); files of version 2 or 1
  hold them as given, with a zero origin;
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
    saved_named,
    without_negative_zeros,
)
from rcforest._layout import check_sampling
from rcforest._store import pack
from rcforest._tree import TreeArrays, allocate_trees, internal_per_tree, leaves_per_tree

__all__ = []

VERSION = 3
"""The layout of the arrays :func:`to_arrays` makes."""
READ_VERSIONS = (1, 2, 3)
"""The layouts :func:`from_arrays` reads."""

PARAMS = ("num_trees", "sample_size", "shingle_size", "time_decay", "random_state", "sampling")
"""The constructor arguments of :class:`rcforest.Forest` that a model file keeps. Files written
before ``sampling`` existed lack it: their forests used the reservoir."""


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
    named : bool or None
        Whether DataFrames are read by the ``columns``' names (the forest
        was fitted on a DataFrame with named columns); None when not known
        (a file written before the field existed), to be inferred from the
        names.
    """

    params: dict
    columns: list = None
    points_seen: int = 0
    trees: TreeArrays = None
    tail: np.ndarray = None
    named: bool = None


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
            "named": parts.named,
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
        if len(set(columns)) != n_features:
            raise ValueError("a column name occurs twice")
        named = saved_named(params.get("named"), columns)  # files written before it lack the flag
        points_seen = check_int(params["points_seen"], "points_seen", 0)
        checked = parts.params
        check_model_size(checked["num_trees"], checked["sample_size"], checked["shingle_size"] * n_features)
        shape = (checked["num_trees"], checked["sample_size"], checked["shingle_size"] * n_features)
        trees = _trees_v1(arrays, *shape) if version == 1 else _trees_stored(arrays, *shape, with_origin=version >= 3)
        _check_trees(trees)
        tail = without_negative_zeros(_array(arrays, "tail", np.float64, (range(checked["shingle_size"]), n_features)))
        if not _within_bound(tail).all():
            raise ValueError(f"the stream tail holds NaN, infinite or values beyond {MAX_ABS_VALUE:g}")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"inconsistent forest: {error}") from None
    return parts._replace(columns=columns, points_seen=points_seen, trees=trees, tail=tail, named=named)


def _checked_params(params):
    """The constructor arguments in ``params``, checked as :class:`rcforest.Forest` checks them."""
    random_state = params["random_state"]
    sampling = params.get("sampling", "reservoir")  # files written before it lack it
    return {
        "num_trees": check_int(params["num_trees"], "num_trees", 1),
        "sample_size": check_int(params["sample_size"], "sample_size", 1, MAX_SAMPLE_SIZE),
        "shingle_size": check_int(params["shingle_size"], "shingle_size", 1),
        "time_decay": check_time_decay(params["time_decay"]),
        "random_state": None if random_state is None else check_int(random_state, "random_state", 0),
        "sampling": check_sampling(sampling),
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
    """The trees of a version 1 file: every field of rcforest 0.1's trees, every node's box included."""
    t, s, n = num_trees, sample_size, _stored.node_count(sample_size)
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
    nodes = {k: _array(arrays, f"tree.{k}", *v) for k, v in shapes.items()}
    for k in ("box_min", "box_max"):  # rcforest 0.1.0 kept input's -0.0: read as 0.0, as input now is
        nodes[k] = without_negative_zeros(nodes[k])
    return _from_file_nodes(nodes, sample_size)


def _from_file_nodes(a, sample_size):
    """:class:`TreeArrays` from a version 1 file's node arrays: one node numbering, a box for every node.

    Nodes are renumbered, internal nodes and leaves apart, in their order;
    each leaf's point goes to the store once per distinct value (bit for
    bit). Only what the renumbering needs is checked here: node numbers in
    range, free slots reset, leaves without cut, range or spread. The
    result still has to pass :func:`rcforest._kernels.check_trees`.
    """
    t, n = a["parent"].shape
    top = a["free_top"]
    _stored.fail((top < 0) | (top > n), "its free stack is out of range")
    listed = np.arange(n) < top[:, None]
    stack = a["free_stack"]
    _stored.fail((listed & ((stack < 0) | (stack >= n))).any(axis=1), "its free stack is out of range")
    count = np.zeros((t, n), np.int64)
    rows = np.broadcast_to(np.arange(t)[:, None], (t, n))
    np.add.at(count, (rows[listed], stack[listed]), 1)
    _stored.fail((count > 1).any(axis=1), "a node is on the free stack twice")
    free = count == 1
    for name in ("parent", "left", "right"):
        _stored.fail(((a[name] < -1) | (a[name] >= n)).any(axis=1), f"a {name} link is out of range")
    _stored.fail((a["root"] < -1) | (a["root"] >= n), "the root is out of range")
    _stored.fail((a["heap_leaf"] < -1) | (a["heap_leaf"] >= n), "a reservoir leaf is out of range")
    leaf = ~free & (a["left"] == -1)
    internal = ~free & ~leaf
    box_min, box_max = a["box_min"], a["box_max"]
    checks = {
        "a free node is not reset": free
        & (
            (a["parent"] != -1)
            | (a["left"] != -1)
            | (a["right"] != -1)
            | (a["cut_dim"] != -1)
            | (a["cut_value"] != 0)
            | (a["mass"] != 0)
            | (a["range_sum"] != 0)
            | (box_min != 0).any(axis=2)
            | (box_max != 0).any(axis=2)
        ),
        "a leaf has a cut or a range": leaf
        & ((a["right"] != -1) | (a["cut_dim"] != -1) | (a["cut_value"] != 0) | (a["range_sum"] != 0)),
        "a leaf's box is not a point": leaf & (box_min != box_max).any(axis=2),
        f"a box is not finite or beyond {MAX_ABS_VALUE:g}": ~_within_bound(box_min).all(axis=2)
        | ~_within_bound(box_max).all(axis=2),
        "a box is not the union of its children's": internal & ~_is_union_of_children(a),
    }
    for message, bad in checks.items():
        _stored.fail(bad, message)
    num_internal, num_leaves = internal_per_tree(sample_size), leaves_per_tree(sample_size)
    _stored.fail(internal.sum(axis=1) > num_internal, "it has more internal nodes than it has room for")
    _stored.fail(leaf.sum(axis=1) > num_leaves, "it has more leaves than it has room for")
    number = _stored.numbering(internal, leaf, num_internal)
    trees = allocate_trees(t, sample_size, box_min.shape[2], a["rng"])
    tree_of, old = np.nonzero(~free)
    new = number[tree_of, old]
    trees.parent[tree_of, new] = _stored.renumber(number, a["parent"])[tree_of, old]
    trees.mass[tree_of, new] = a["mass"][tree_of, old]
    inner_tree, inner_old = np.nonzero(internal)
    inner_new = number[inner_tree, inner_old]
    for name in ("left", "right"):
        getattr(trees, name)[inner_tree, inner_new] = _stored.renumber(number, a[name])[inner_tree, inner_old]
    for name in ("cut_dim", "cut_value"):
        getattr(trees, name)[inner_tree, inner_new] = a[name][inner_tree, inner_old]
    leaf_tree, leaf_old = np.nonzero(leaf)
    trees.leaf_point[leaf_tree, number[leaf_tree, leaf_old] - num_internal] = np.arange(leaf_tree.size)
    trees = trees._replace(store=box_min[leaf_tree, leaf_old], store_size=np.array([leaf_tree.size], np.int64))
    taken = np.zeros(trees.parent.shape, bool)
    taken[tree_of, new] = True
    for tree in range(t):
        _stored.set_free_stacks(trees, tree, np.flatnonzero(~taken[tree])[::-1])
    trees.root[:] = _stored.renumber(number, a["root"][:, None])[:, 0]
    trees.heap_leaf[:] = _stored.renumber(number, a["heap_leaf"])
    trees.heap_weight[:] = a["heap_weight"]
    trees.heap_size[:] = a["heap_size"]
    trees = pack(trees)
    _stored.rebuild(trees)  # the file's boxes were exact: they are rebuilt in single precision
    return trees


def _is_union_of_children(a):
    """Where a version 1 file's box and range sum are those of its node's children (a leaf's box being its point).

    The trees keep their boxes in single precision, rebuilt from the
    points; the file's exact boxes are checked here, as the file holds them.
    """
    t, n = a["left"].shape
    rows = np.arange(t)[:, None]
    low, high = a["box_min"], a["box_max"]
    left, right = np.maximum(a["left"], 0), np.maximum(a["right"], 0)  # free slots: masked by the caller
    union_low = np.minimum(low[rows, left], low[rows, right])
    union_high = np.maximum(high[rows, left], high[rows, right])
    sides = np.zeros((t, n))
    for i in range(low.shape[2]):  # summed in order, as the boxes were
        sides += union_high[:, :, i] - union_low[:, :, i]
    return (union_low == low).all(axis=2) & (union_high == high).all(axis=2) & (sides == a["range_sum"])


def _trees_stored(arrays, num_trees, sample_size, dim, with_origin):
    """The trees of a version 2 or 3 file (``with_origin``), rebuilt from their structure and points."""
    shapes = _stored.layout(num_trees, sample_size, _stored.node_count(sample_size), dim)
    if not with_origin:
        del shapes["origin"]
    stored = {k: _array(arrays, f"tree.{k}", *v) for k, v in shapes.items()}
    stored["points"] = without_negative_zeros(stored["points"])
    if not _within_bound(stored["points"], 2 * MAX_ABS_VALUE).all():
        raise ValueError(f"a stored point holds NaN, infinite or values beyond {2 * MAX_ABS_VALUE:g} from the origin")
    if not with_origin:
        stored["origin"] = np.zeros(dim)
    elif not _within_bound(stored["origin"]).all():
        raise ValueError(f"the origin holds NaN, infinite or values beyond {MAX_ABS_VALUE:g}")
    stored["origin"] = without_negative_zeros(stored["origin"])
    return _stored.assemble(_stored.StoredTrees(**stored), sample_size)


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

    Free node slots must hold their reset values (links, cut dimension and
    leaf point ``-1``, zeros elsewhere), the origin is within the input
    bound (:data:`rcforest._core.MAX_ABS_VALUE`) and every stored point
    within twice the bound of it (points are relative to the origin), every
    box and every cut is finite, and the reservoir weights in use are not
    NaN.
    """
    t, internal = trees.left.shape
    free = np.zeros(trees.parent.shape, bool)
    for tree in range(t):
        free[tree, trees.free_internal[tree, : trees.free_internal_top[tree]]] = True
        free[tree, trees.free_leaf[tree, : trees.free_leaf_top[tree]]] = True
    free_internal, free_leaf = free[:, :internal], free[:, internal:]
    checks = {
        "a free node is not reset": (free & ((trees.parent != -1) | (trees.mass != 0))).any(axis=1)
        | (
            free_internal
            & (
                (trees.left != -1)
                | (trees.right != -1)
                | (trees.cut_dim != -1)
                | (trees.cut_value != 0)
                | (trees.range_sum != 0)
                | (trees.box_min != 0).any(axis=2)
                | (trees.box_max != 0).any(axis=2)
            )
        ).any(axis=1)
        | (free_leaf & (trees.leaf_point != -1)).any(axis=1),
        "a box is not finite": ~np.isfinite(trees.box_min).all(axis=(1, 2))
        | ~np.isfinite(trees.box_max).all(axis=(1, 2)),
        "a cut value is not finite": (~free_internal & ~np.isfinite(trees.cut_value)).any(axis=1),
    }
    for message, bad in checks.items():
        _stored.fail(bad, message)
    if not _within_bound(trees.store, 2 * MAX_ABS_VALUE).all():
        raise ValueError(f"a stored point is not finite or beyond {2 * MAX_ABS_VALUE:g} from the origin")
    if not _within_bound(trees.origin).all():
        raise ValueError(f"the origin is not finite or beyond {MAX_ABS_VALUE:g}")
    in_heap = np.arange(trees.heap_weight.shape[1]) < trees.heap_size[:, None]
    _stored.fail(in_heap & np.isnan(trees.heap_weight), "a reservoir weight is NaN")


def _within_bound(values, bound=MAX_ABS_VALUE):
    """Where ``values`` are at most ``bound`` (:data:`rcforest._core.MAX_ABS_VALUE`) in magnitude (NaN is not).

    Two comparisons rather than ``abs``: no float copy of a forest's boxes.
    """
    return (values >= -bound) & (values <= bound)
