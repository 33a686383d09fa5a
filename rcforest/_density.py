"""The RCF density estimate: AWS's interpolation measure, per tree and over the forest.

A query's path is walked from its leaf to the root, as for the score. At
each node, the chance that a random cut of the node's box extended by the
query separates them is split by dimension and side; each side collects
that chance (the *probability mass*), the chance times the distance across
the extended box (the *distance*), and the chance times the node's mass
(the *measure*), each earlier value discounted by the chance of no
separation. A query equal to a stored point is compared with the box of
the other points below each node instead (its "shadow box").

The forest's measure is the mean over trees. The density is
``s / (q s + sum_i (d_i / p_i)^D p_i)`` with ``s`` the measure's total
divided by the sample size, ``d_i`` and ``p_i`` the distance and
probability mass of dimension ``i`` (both sides), ``D`` the dimension and
``q = 0.001``; the directional density splits it in proportion to the
measure's sides.

Notes
-----
AWS random-cut-forest-by-aws: ``SimpleInterpolationVisitor`` (with the
default field ``mass + 1`` and influence 1), ``InterpolationMeasure`` and
``DensityOutput.getDensity`` / ``getDirectionalDensity``.
"""

import numpy as np
from numba import prange

from rcforest._box import child_bounds
from rcforest._compiled import ARRAY_1D, ARRAY_2D, ARRAY_3D, for_reader
from rcforest._core import MAX_ABS_VALUE
from rcforest._jit import INLINE, JIT, njit

__all__ = [
    "CORRUPT",
    "DENSITY_FLOOR",
    "INVALID",
    "LARGE",
    "density_from_measure",
    "density_one",
    "interpolation_batch",
    "interpolation_one",
]

DENSITY_FLOOR = 0.001
"""AWS's ``DEFAULT_SUM_OF_POINTS_SCALING_FACTOR``: ``q`` in the density's denominator."""

# Rows of a measure array: the six per-dimension sums of InterpolationMeasure.
MEASURE_HIGH, MEASURE_LOW, DISTANCE_HIGH, DISTANCE_LOW, MASS_HIGH, MASS_LOW = range(6)


@njit(**INLINE)
def _leaves(tr, t, points, nodes):
    """The leaf of tree ``t`` each row of ``points`` reaches, into ``nodes``; False for a corrupt tree.

    The rows descend together, one level of every row at a time: their
    walks are independent, so the processor overlaps their loads.
    """
    internal = tr.left.shape[1]
    left = tr.left[t]
    right = tr.right[t]
    cut_dim = tr.cut_dim[t]
    cut_value = tr.cut_value[t]
    root = tr.root[t]
    for r in range(points.shape[0]):
        nodes[r] = root
    for _ in range(tr.parent.shape[1] + 1):
        moved = False
        for r in range(points.shape[0]):
            node = nodes[r]
            if node < internal:
                # Without a branch (its outcome is a coin toss): left, or right past the cut.
                nodes[r] = left[node] + np.int32(points[r, cut_dim[node]] > cut_value[node]) * (
                    right[node] - left[node]
                )
                moved = True
        if not moved:
            return True
    return False


@njit(**INLINE)
def _leaf_sides(diff, spread, field):
    """One dimension's three sums at the leaf: its share of the distance ``diff`` of the query from the leaf's point."""
    prob = diff / spread
    return prob, prob * field, prob * diff


@njit(**INLINE)
def _extended(box_min, box_max, node, i, value):
    """Dimension ``i`` of ``node``'s box extended by ``value``: its width, the gap added and the distance across.

    At most one of the box's two gaps is positive (no branches); the
    distance across is taken times a share of 0 where there is no gap.
    """
    small_lo = np.float64(box_min[node, i])
    small_hi = np.float64(box_max[node, i])
    large_lo = min(small_lo, value)
    large_hi = max(small_hi, value)
    gap = (large_hi - small_hi) + (small_lo - large_lo)
    return large_hi - large_lo, gap, gap + (small_hi - small_lo)


@njit(**INLINE)
def _mixed_sides(prob, keep, field, far, side_mass, side_measure, side_distance):
    """One dimension's three sums after a node: its share ``prob`` of the chance, the rest kept."""
    return prob + keep * side_mass, prob * field + keep * side_measure, prob * far + keep * side_distance


@njit(**INLINE)
def _add_sides(out, i, high, measure, distance, mass):
    """Add dimension ``i``'s sums to ``out``'s high side (``high``: the query is above the leaf's point) or low side."""
    side = np.int64(high)  # 1 on the high side, 0 on the low side (or neither)
    out[MEASURE_LOW - side, i] += measure
    out[DISTANCE_LOW - side, i] += distance
    out[MASS_LOW - side, i] += mass


@njit(**INLINE)
def _interpolate_apart(tr, t, point, leaf, row, spread, out, work):
    """:func:`interpolate_tree` for a query that is not the leaf's point: one side of each dimension.

    The leaf's point lies in every box of the path, so in each dimension
    the query lies beyond the boxes on one side only, the side it lies on
    from the leaf's point (none where they are equal): that side's sums
    are kept, the other side's stay 0 (AWS's visitor computes both). The
    same values as both sides, in the same order.
    """
    dim = point.shape[0]
    num_nodes = tr.parent.shape[1]
    parent = tr.parent[t]
    mass = tr.mass[t]
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    store = tr.store
    side_mass, side_measure, side_distance, gaps, far = work[0], work[1], work[2], work[3], work[4]
    field = mass[leaf] + 1.0
    for i in range(dim):
        side_mass[i], side_measure[i], side_distance[i] = _leaf_sides(abs(point[i] - store[row, i]), spread, field)
    node = parent[leaf]
    steps = 0
    while node != -1:
        steps += 1
        if steps > 2 * num_nodes:
            return False
        new_range = 0.0
        separation = 0.0
        for i in range(dim):
            width, gap, far[i] = _extended(box_min, box_max, node, i, point[i])
            new_range += width
            separation += gap
            gaps[i] = gap
        chance = separation / new_range if new_range > 0.0 else 0.0
        if chance <= 0.0:
            break
        field = mass[node] + 1.0
        keep = 1.0 - chance
        for i in range(dim):
            side_mass[i], side_measure[i], side_distance[i] = _mixed_sides(
                gaps[i] / new_range, keep, field, far[i], side_mass[i], side_measure[i], side_distance[i]
            )
        node = parent[node]
    for i in range(dim):
        _add_sides(out, i, point[i] > store[row, i], side_measure[i], side_distance[i], side_mass[i])
    return True


@njit(**INLINE)
def _interpolate_apart4(tr, t, point, leaf, row, spread, out):
    """:func:`_interpolate_apart` for four dimensions: the same operations in the same order, the sums in registers.

    The general walk keeps each dimension's sums in work arrays, read and
    written at every node; here the twelve sums are variables, which
    takes about a tenth off a 4-D density (same-process A/B).
    """
    parent = tr.parent[t]
    mass = tr.mass[t]
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    p0, p1, p2, p3 = point[0], point[1], point[2], point[3]
    s0, s1, s2, s3 = tr.store[row, 0], tr.store[row, 1], tr.store[row, 2], tr.store[row, 3]
    field = mass[leaf] + 1.0
    m0, e0, c0 = _leaf_sides(abs(p0 - s0), spread, field)
    m1, e1, c1 = _leaf_sides(abs(p1 - s1), spread, field)
    m2, e2, c2 = _leaf_sides(abs(p2 - s2), spread, field)
    m3, e3, c3 = _leaf_sides(abs(p3 - s3), spread, field)
    node = parent[leaf]
    steps = 0
    while node != -1:
        steps += 1
        if steps > 2 * parent.shape[0]:
            return False
        r0, g0, f0 = _extended(box_min, box_max, node, 0, p0)
        r1, g1, f1 = _extended(box_min, box_max, node, 1, p1)
        r2, g2, f2 = _extended(box_min, box_max, node, 2, p2)
        r3, g3, f3 = _extended(box_min, box_max, node, 3, p3)
        new_range = 0.0 + r0 + r1 + r2 + r3
        separation = 0.0 + g0 + g1 + g2 + g3
        chance = separation / new_range if new_range > 0.0 else 0.0
        if chance <= 0.0:
            break
        field = mass[node] + 1.0
        keep = 1.0 - chance
        m0, e0, c0 = _mixed_sides(g0 / new_range, keep, field, f0, m0, e0, c0)
        m1, e1, c1 = _mixed_sides(g1 / new_range, keep, field, f1, m1, e1, c1)
        m2, e2, c2 = _mixed_sides(g2 / new_range, keep, field, f2, m2, e2, c2)
        m3, e3, c3 = _mixed_sides(g3 / new_range, keep, field, f3, m3, e3, c3)
        node = parent[node]
    _add_sides(out, 0, p0 > s0, e0, c0, m0)
    _add_sides(out, 1, p1 > s1, e1, c1, m1)
    _add_sides(out, 2, p2 > s2, e2, c2, m2)
    _add_sides(out, 3, p3 > s3, e3, c3, m3)
    return True


@njit(**INLINE)
def _interpolate_equal(tr, t, leaf, dim, out, work):
    """:func:`interpolate_tree` for a query equal to the leaf's point: the shadow boxes, both sides."""
    num_nodes = tr.parent.shape[1]
    # One tree's arrays, taken once (each access through ``tr`` costs reference counts).
    left = tr.left[t]
    right = tr.right[t]
    parent = tr.parent[t]
    mass = tr.mass[t]
    steps = 0
    measure_high, measure_low, distance_high, distance_low, mass_high, mass_low = (
        work[0],
        work[1],
        work[2],
        work[3],
        work[4],
        work[5],
    )
    inside, shadow_lo, shadow_hi, up, down, far_up, far_down = (
        work[6],
        work[7],
        work[8],
        work[9],
        work[10],
        work[11],
        work[12],
    )
    work[:6] = 0.0
    # The query is the leaf's point: its own mass, spread evenly.
    saved = 1.0 + mass[leaf]
    for i in range(dim):
        inside[i] = 0.0
        measure_high[i] = measure_low[i] = 0.5 * saved / dim
        mass_high[i] = mass_low[i] = 0.5 / dim
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    child = leaf
    node = parent[leaf]
    first = True
    while node != -1:
        steps += 1
        if steps > 2 * num_nodes:
            return False
        sibling = left[node]
        if sibling == child:
            sibling = right[node]
        for i in range(dim):
            lo, hi = child_bounds(tr.leaf_point, tr.store, box_min, box_max, t, sibling, i)
            if first or lo < shadow_lo[i]:
                shadow_lo[i] = lo
            if first or hi > shadow_hi[i]:
                shadow_hi[i] = hi
        first = False
        new_range = 0.0
        separation = 0.0
        for i in range(dim):
            large_lo = np.float64(box_min[node, i])
            large_hi = np.float64(box_max[node, i])
            small_lo = np.float64(shadow_lo[i])
            small_hi = np.float64(shadow_hi[i])
            new_range += large_hi - large_lo
            up[i] = 0.0
            down[i] = 0.0
            far_up[i] = 0.0
            far_down[i] = 0.0
            if inside[i] != 0.0:
                continue
            max_gap = max(large_hi - small_hi, 0.0)
            min_gap = max(small_lo - large_lo, 0.0)
            if max_gap + min_gap > 0.0:
                separation += max_gap + min_gap
                up[i] = max_gap
                down[i] = min_gap
                if max_gap > 0.0:
                    far_up[i] = max_gap + (small_hi - small_lo)
                else:
                    far_down[i] = min_gap + (small_hi - small_lo)
            else:
                inside[i] = 1.0
        chance = separation / new_range if new_range > 0.0 else 0.0
        if chance <= 0.0:
            break
        field = mass[node] + saved
        keep = 1.0 - chance
        for i in range(dim):
            prob = up[i] / new_range
            mass_high[i] = prob + keep * mass_high[i]
            measure_high[i] = prob * field + keep * measure_high[i]
            distance_high[i] = prob * far_up[i] + keep * distance_high[i]
            prob = down[i] / new_range
            mass_low[i] = prob + keep * mass_low[i]
            measure_low[i] = prob * field + keep * measure_low[i]
            distance_low[i] = prob * far_down[i] + keep * distance_low[i]
        child = node
        node = parent[node]
    for i in range(dim):
        out[MEASURE_HIGH, i] += measure_high[i]
        out[MEASURE_LOW, i] += measure_low[i]
        out[DISTANCE_HIGH, i] += distance_high[i]
        out[DISTANCE_LOW, i] += distance_low[i]
        out[MASS_HIGH, i] += mass_high[i]
        out[MASS_LOW, i] += mass_low[i]
    return True


@njit(**INLINE)
def interpolate_tree(tr, t, point, leaf, out, work):
    """Add tree ``t``'s interpolation measure of ``point`` to ``out``.

    Parameters
    ----------
    tr : TreeArrays
    t : int
    point : ndarray of float64, shape (dim,)
        Relative to the origin.
    leaf : int
        The leaf ``point``'s path reaches in tree ``t`` (:func:`_leaves`).
    out : ndarray of float64, shape (6, dim)
        The measure's high and low sides, the distances' and the
        probability masses' (``MEASURE_HIGH`` ...): the tree's values are
        added to it.
    work : ndarray of float64, shape (13, dim)
        Work space.

    Returns
    -------
    bool
        False for a corrupt tree (a walk longer than the tree).
    """
    row = tr.leaf_point[t, leaf - tr.left.shape[1]]
    spread = 0.0
    for i in range(point.shape[0]):
        spread += abs(point[i] - tr.store[row, i])
    if spread <= 0.0:
        return _interpolate_equal(tr, t, leaf, point.shape[0], out, work)
    if point.shape[0] == 4:  # the common small case, unrolled
        return _interpolate_apart4(tr, t, point, leaf, row, spread, out)
    return _interpolate_apart(tr, t, point, leaf, row, spread, out, work)


@njit(**JIT, _nrt=False)
def _interpolation_block(tr, points, out, work, broken, nodes):
    """:func:`interpolation_batch` for a block of rows, tree after tree (each tree's arrays stay in cache).

    Each row's measure sums the trees in tree order, as a row at a time
    would. ``work`` (float64, shape (13, dim)), ``broken`` (bool, shape
    (block,)) and ``nodes`` (int64, shape (block,)) are work space. Compiled without numba's reference counts:
    it allocates nothing.
    """
    num_trees = tr.root.shape[0]
    out[:, :, :] = 0.0
    broken[:] = False
    for t in range(num_trees):
        if tr.root[t] == -1:
            continue
        if not _leaves(tr, t, points, nodes):
            broken[:] = True
            break
        for r in range(points.shape[0]):
            if not broken[r] and not interpolate_tree(tr, t, points[r], nodes[r], out[r], work):
                broken[r] = True
    for r in range(points.shape[0]):
        for j in range(6):
            for i in range(points.shape[1]):
                out[r, j, i] = np.nan if broken[r] else out[r, j, i] / num_trees


_BLOCK = 64
"""Rows per block of :func:`interpolation_batch` (tree-major within a block)."""


@njit(**JIT, parallel=True)
def interpolation_batch(tr, points, out):
    """Forest-mean interpolation measure of every row, read-only.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_rows, dim)
        Relative to the origin.
    out : ndarray of float64, shape (num_rows, 6, dim)
        Overwritten with the mean over trees of :func:`interpolate_tree`;
        NaN for a row whose walk met a corrupt tree.
    """
    dim = points.shape[1]
    num_blocks = (points.shape[0] + _BLOCK - 1) // _BLOCK
    for b in prange(num_blocks):
        start = b * _BLOCK
        stop = min(start + _BLOCK, points.shape[0])
        _interpolation_block(
            tr,
            points[start:stop],
            out[start:stop],
            np.empty((13, dim)),
            np.empty(stop - start, np.bool_),
            np.empty(stop - start, np.int64),
        )


@njit(**INLINE)
def _block_sum(values, start, count):
    """:func:`_sum` of at most 128 values: in order below eight, else in eight running sums combined as a tree."""
    if count < 8:
        total = -0.0
        for i in range(count):
            total += values[start + i]
        return total
    lane0, lane1, lane2, lane3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    lane4, lane5, lane6, lane7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    i = 8
    while i < count - count % 8:
        lane0 += values[start + i]
        lane1 += values[start + i + 1]
        lane2 += values[start + i + 2]
        lane3 += values[start + i + 3]
        lane4 += values[start + i + 4]
        lane5 += values[start + i + 5]
        lane6 += values[start + i + 6]
        lane7 += values[start + i + 7]
        i += 8
    total = ((lane0 + lane1) + (lane2 + lane3)) + ((lane4 + lane5) + (lane6 + lane7))
    while i < count:
        total += values[start + i]
        i += 1
    return total


@njit(**INLINE)
def _half(count):
    """Where numpy splits more than 128 values: half of them, rounded down to a multiple of eight."""
    half = count // 2
    return half - half % 8


@njit(**INLINE)
def _sum(values, count, frames, lefts):
    """``values[:count].sum()`` summed as numpy sums a row: pairwise.

    numpy's ``add.reduce`` over a contiguous axis (``pairwise_sum``) sums
    fewer than eight values in order, up to 128 in eight running sums
    combined as a tree, and more as the sums of two parts (the first
    :func:`_half` of them), each summed so in turn; the same order gives
    the same bits as ``sum(axis=...)``. The parts are taken depth first
    from an explicit stack, not by recursion: ``frames`` (int64, shape (3,
    64): each part's start, length and whether it is a second part) and
    ``lefts`` (float64, 64: the sum of a second part's first part).
    """
    if count <= 128:
        return _block_sum(values, 0, count)
    starts, counts, seconds = frames[0], frames[1], frames[2]
    starts[0] = 0
    counts[0] = count
    seconds[0] = 0
    top = 1
    while True:
        while counts[top - 1] > 128:  # down the first parts
            starts[top] = starts[top - 1]
            counts[top] = _half(counts[top - 1])
            seconds[top] = 0
            top += 1
        top -= 1
        value = _block_sum(values, starts[top], counts[top])
        while True:  # up: a first part's sum waits for the second part's, which is summed next
            if top == 0:
                return value
            if seconds[top] == 0:
                half = _half(counts[top - 1])
                lefts[top] = value
                starts[top] = starts[top - 1] + half
                counts[top] = counts[top - 1] - half
                seconds[top] = 1
                top += 1
                break
            value = lefts[top] + value
            top -= 1


@njit(**JIT)
def _ratios(measure, ratio):
    """Each dimension's distance over its probability mass, into ``ratio``; 1 where either is 0 (no factor)."""
    for r in range(measure.shape[0]):
        for i in range(measure.shape[2]):
            mass = measure[r, MASS_HIGH, i] + measure[r, MASS_LOW, i]
            share = (measure[r, DISTANCE_HIGH, i] + measure[r, DISTANCE_LOW, i]) / mass if mass > 0.0 else 0.0
            ratio[r, i] = share if share > 0.0 else 1.0


@njit(**JIT)
def _densities(measure, ratio, powered, sample_size, density, high, low):
    """The density and its directional split from ``powered`` (each ratio to the power ``dim``, from numpy)."""
    dim = measure.shape[2]
    factors = np.empty(dim)
    frames = np.empty((3, 64), np.int64)
    lefts = np.empty(64)
    for r in range(measure.shape[0]):
        for i in range(dim):
            mass = measure[r, MASS_HIGH, i] + measure[r, MASS_LOW, i]
            share = (measure[r, DISTANCE_HIGH, i] + measure[r, DISTANCE_LOW, i]) / mass if mass > 0.0 else 0.0
            factors[i] = powered[r, i] * mass if share > 0.0 else 0.0
        total = _sum(measure[r, MEASURE_HIGH], dim, frames, lefts) + _sum(measure[r, MEASURE_LOW], dim, frames, lefts)
        points = total / sample_size
        value = points / (DENSITY_FLOOR * points + _sum(factors, dim, frames, lefts)) if points > 0.0 else 0.0
        share = value / total if total > 0.0 else 0.0
        density[r] = value
        for i in range(dim):
            high[r, i] = measure[r, MEASURE_HIGH, i] * share
            low[r, i] = measure[r, MEASURE_LOW, i] * share


@njit(**JIT, _nrt=False)
def _interpolation_trees(tr, point, out, work, leaves):
    """:func:`interpolation_one`'s work: the trees' paths down together, then each tree's walk up in order.

    The paths are independent, so the processor overlaps their loads; the
    measure sums the trees in tree order, as :func:`_interpolation_block`
    does. ``work`` (float64, shape (13, dim)) and ``leaves`` (int64, shape
    (num_trees,)) are work space; allocates nothing.
    """
    num_trees = tr.root.shape[0]
    internal = tr.left.shape[1]
    for t in range(num_trees):
        leaves[t] = tr.root[t]
    broken = True
    for _ in range(tr.parent.shape[1] + 1):
        moved = False
        for t in range(num_trees):
            node = leaves[t]
            if 0 <= node < internal:
                # Without a branch (its outcome is a coin toss): left, or right past the cut.
                left = tr.left[t, node]
                leaves[t] = left + np.int32(point[tr.cut_dim[t, node]] > tr.cut_value[t, node]) * (
                    tr.right[t, node] - left
                )
                moved = True
        if not moved:
            broken = False
            break
    out[:, :] = 0.0
    for t in range(num_trees):
        if broken:
            break
        if tr.root[t] != -1:
            broken = not interpolate_tree(tr, t, point, leaves[t], out, work)
    for j in range(6):
        for i in range(point.shape[0]):
            out[j, i] = np.nan if broken else out[j, i] / num_trees


LARGE = 1
"""Status of :func:`interpolation_one`: a power of a ratio may overflow."""
CORRUPT = 2
"""Status of :func:`interpolation_one`: a tree is corrupt (a walk through it does not end)."""
INVALID = 3
"""Status of :func:`interpolation_one`: a value of the row is NaN or too large; nothing was done."""

_LARGE_LOG = 700.0
"""Above this ``dim * log(ratio)``, numpy's ``exp`` may overflow (its largest finite result is near ``exp(709.78)``)."""


@njit(**JIT)
def interpolation_one(reader, row, out, ratio):
    """:func:`interpolation_batch` and :func:`_ratios` for one row, on the calling thread, through the forest's handle.

    Parameters
    ----------
    reader : rcforest._reading.Reader
        Holds the trees (``reader.trees``): one pointer to unbox instead of
        the trees' twenty-odd arrays.
    row : ndarray of float64, shape (dim,)
        In the input's coordinates, unchecked.
    out : ndarray of float64, shape (1, 6, dim)
        As for :func:`interpolation_batch`.
    ratio : ndarray of float64, shape (1, dim)
        Each dimension's distance over its probability mass, as
        :func:`density_from_measure` takes it.

    Returns
    -------
    int
        :data:`INVALID` for a value of ``row`` that is NaN or beyond
        :data:`~rcforest._core.MAX_ABS_VALUE` in magnitude (nothing
        done), :data:`CORRUPT` for a corrupt tree (``out`` is NaN),
        :data:`LARGE` where a power of a ratio may overflow, else 0.
    """
    tr = reader.trees
    dim = row.shape[0]
    for i in range(dim):
        if not abs(row[i]) <= MAX_ABS_VALUE:  # also for NaN
            return INVALID
    point = np.empty(dim)
    for i in range(dim):
        point[i] = row[i] - tr.origin[i]
    _interpolation_trees(tr, point, out[0], np.empty((13, dim)), np.empty(tr.root.shape[0], np.int64))
    if np.isnan(out[0, 0, 0]):
        return CORRUPT
    _ratios(out, ratio)
    for i in range(dim):
        if np.log(ratio[0, i]) * dim > _LARGE_LOG:
            return LARGE
    return 0


def density_from_measure(measure, sample_size):
    """The density and its directional split from forest-mean interpolation measures.

    Parameters
    ----------
    measure : ndarray of float64, shape (num_rows, 6, dim)
        From :func:`interpolation_batch`.
    sample_size : int
        The forest's sample size (AWS normalises the measure by it).

    Returns
    -------
    density : ndarray of float64, shape (num_rows,)
    high, low : ndarray of float64, shape (num_rows, dim)
        The directional density; ``high + low`` sums to ``density``.

    Notes
    -----
    ``DensityOutput.getDensity(q=0.001, manifoldDimension=dim)`` and
    ``getDirectionalDensity``. The sums and ratios are jitted (summed as
    numpy sums); the powers are numpy's ``exp(dim * log(ratio))``, whose
    bits a jitted ``exp`` and ``log`` need not give.
    """
    num_rows, _, dim = measure.shape
    ratio = np.empty((num_rows, dim))
    _ratios(measure, ratio)
    return _density_from_ratios(measure, ratio, sample_size, True)


def _density_from_ratios(measure, ratio, sample_size, large):
    """:func:`density_from_measure` after :func:`_ratios`; ``large``: a power may overflow (numpy warns of none)."""
    num_rows, _, dim = measure.shape
    powered = np.log(ratio)
    powered *= dim
    if large:
        with np.errstate(over="ignore"):
            np.exp(powered, out=powered)
    else:
        np.exp(powered, out=powered)
    density = np.empty(num_rows)
    high = np.empty((num_rows, dim))
    low = np.empty((num_rows, dim))
    _densities(measure, ratio, powered, float(sample_size), density, high, low)
    return density, high, low


def density_one(reader, row, sample_size):
    """:func:`density_from_measure` of one row's measure (:func:`interpolation_one`): one kernel call, no thread pool.

    Parameters
    ----------
    reader : rcforest._reading.Reader
    row : ndarray of float64, shape (dim,), C-ordered
        In the input's coordinates, unchecked.
    sample_size : int

    Returns
    -------
    status : int
        0, or :data:`INVALID` or :data:`CORRUPT` (and no parts).
    parts : tuple or None
        ``density`` (ndarray of float64, shape (1,)) and ``high``,
        ``low`` (shape (1, dim)), as :func:`density_from_measure` gives
        them.
    """
    measure = np.empty((1, 6, row.shape[0]))
    ratio = np.empty((1, row.shape[0]))
    code = for_reader(interpolation_one, reader, ARRAY_1D, ARRAY_3D, ARRAY_2D)(reader, row, measure, ratio)
    if code == INVALID or code == CORRUPT:
        return code, None
    return 0, _density_from_ratios(measure, ratio, sample_size, code == LARGE)
