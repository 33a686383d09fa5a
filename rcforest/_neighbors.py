"""Near neighbours of a query among the points the trees hold.

Each tree is searched exactly for the ``k`` distinct points of its sample
nearest to the query, by branch and bound over its boxes (a box's distance
from the query bounds the distance of every point below it); the forest's
answer merges the trees' lists. A point among the ``k`` nearest of the
whole forest's sample is among the ``k`` nearest of every tree that holds
it, so the merged list is exact, and the number of trees that report a
point is the number of trees that hold it.

Notes
-----
AWS random-cut-forest-by-aws, ``getNearNeighborsInSample`` and
``NearNeighborVisitor``, reports the leaf each tree's path reaches when it
lies within a distance threshold, merged across trees and sorted by
distance (Euclidean). The search here finds the points that visitor finds
when they are among the nearest, and the nearer ones it can miss.
"""

import numpy as np
from numba import prange

from rcforest._jit import INLINE, JIT, njit

__all__ = ["neighbors_batch"]


@njit(**INLINE)
def _box_distance2(box_min, box_max, node, point):
    """Squared Euclidean distance from ``point`` to internal ``node``'s box (0 inside)."""
    total = 0.0
    for i in range(point.shape[0]):
        below = np.float64(box_min[node, i]) - point[i]
        above = point[i] - np.float64(box_max[node, i])
        gap = max(below, above, 0.0)
        total += gap * gap
    return total


@njit(**INLINE)
def _point_distance2(store, row, point):
    """Squared Euclidean distance from ``point`` to store row ``row``."""
    total = 0.0
    for i in range(point.shape[0]):
        diff = store[row, i] - point[i]
        total += diff * diff
    return total


@njit(**INLINE)
def _offer(best_d2, best_row, count, d2, row):
    """Keep ``row`` at squared distance ``d2`` among the ``k`` best, a max-heap on distance; return the count."""
    k = best_d2.shape[0]
    if count < k:
        j = count
        best_d2[j] = d2
        best_row[j] = row
        while j > 0:  # sift up
            up = (j - 1) // 2
            if best_d2[up] >= best_d2[j]:
                break
            best_d2[up], best_d2[j] = best_d2[j], best_d2[up]
            best_row[up], best_row[j] = best_row[j], best_row[up]
            j = up
        return count + 1
    if d2 >= best_d2[0]:
        return count
    best_d2[0] = d2
    best_row[0] = row
    _sift_down(best_d2, best_row, k)
    return count


@njit(**INLINE)
def _sift_down(best_d2, best_row, size):
    """Restore the max-heap order of the first ``size`` entries after the top one changed."""
    j = 0
    while True:
        child = 2 * j + 1
        if child >= size:
            break
        if child + 1 < size and best_d2[child + 1] > best_d2[child]:
            child += 1
        if best_d2[child] <= best_d2[j]:
            break
        best_d2[child], best_d2[j] = best_d2[j], best_d2[child]
        best_row[child], best_row[j] = best_row[j], best_row[child]
        j = child


@njit(**INLINE)
def nearest_in_tree(tr, t, point, limit2, best_d2, best_row, stack, stack_d2):
    """The ``k`` points of tree ``t`` nearest to ``point``, within squared distance ``limit2``.

    Parameters
    ----------
    tr : TreeArrays
    t : int
    point : ndarray of float64, shape (dim,)
        Relative to the origin, as the trees hold points.
    limit2 : float
        Squared distance beyond which points are not reported (inf for none).
    best_d2 : ndarray of float64, shape (k,)
    best_row : ndarray of int64, shape (k,)
        Overwritten: the squared distances and store rows found, nearest
        first; ``inf`` and ``-1`` after the last.
    stack : ndarray of int32, shape (num_nodes,)
    stack_d2 : ndarray of float64, shape (num_nodes,)
        Work space.

    Returns
    -------
    int
        Number of points found; ``-1`` for a corrupt tree (a walk longer
        than the tree).
    """
    k = best_d2.shape[0]
    for j in range(k):
        best_d2[j] = np.inf
        best_row[j] = -1
    root = tr.root[t]
    if root == -1 or k == 0:
        return 0
    internal = tr.left.shape[1]
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    count = 0
    top = 1
    stack[0] = root
    stack_d2[0] = 0.0
    steps = 0
    while top > 0:
        steps += 1
        if steps > 2 * tr.parent.shape[1]:
            return -1
        top -= 1
        node = stack[top]
        bound = stack_d2[top]
        if bound > limit2 or (count == k and bound >= best_d2[0]):
            continue
        if node >= internal:
            row = tr.leaf_point[t, node - internal]
            d2 = _point_distance2(tr.store, row, point)
            if d2 <= limit2:
                count = _offer(best_d2, best_row, count, d2, row)
            continue
        if top + 2 > stack.shape[0]:
            return -1
        near = tr.left[t, node]
        far = tr.right[t, node]
        if point[tr.cut_dim[t, node]] > tr.cut_value[t, node]:
            near, far = far, near
        # The far child first, so that the near one is searched first; the
        # far one only if it may hold a point nearer than the worst kept.
        far_d2 = _child_distance2(tr, t, box_min, box_max, far, point, internal)
        if far_d2 <= limit2 and (count < k or far_d2 < best_d2[0]):
            stack[top] = far
            stack_d2[top] = far_d2
            top += 1
        stack[top] = near
        stack_d2[top] = bound  # the parent's bound holds for the child (its box is inside)
        top += 1
    # Heap order to nearest first (a heap sort of the kept entries).
    for last in range(count - 1, 0, -1):
        best_d2[0], best_d2[last] = best_d2[last], best_d2[0]
        best_row[0], best_row[last] = best_row[last], best_row[0]
        _sift_down(best_d2, best_row, last)
    return count


@njit(**INLINE)
def _child_distance2(tr, t, box_min, box_max, node, point, internal):
    """Lower bound of the squared distance from ``point`` to the points below ``node`` (tree ``t``'s boxes)."""
    if node >= internal:
        return _point_distance2(tr.store, tr.leaf_point[t, node - internal], point)
    return _box_distance2(box_min, box_max, node, point)


@njit(**JIT, parallel=True)
def neighbors_batch(tr, points, limit2, rows, distances):
    """The ``k`` nearest points of every tree for every query.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_queries, dim)
        Relative to the origin.
    limit2 : float
        Squared distance beyond which points are left out.
    rows : ndarray of int64, shape (num_trees, num_queries, k)
        Store rows found, nearest first, ``-1`` after the last; ``-2`` in
        the first slot for a corrupt tree.
    distances : ndarray of float64, shape (num_trees, num_queries, k)
        Their Euclidean distances, ``inf`` after the last.
    """
    num_nodes = tr.parent.shape[1]
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        stack = np.empty(num_nodes + 2, np.int32)
        stack_d2 = np.empty(num_nodes + 2)
        for q in range(points.shape[0]):
            found = nearest_in_tree(tr, t, points[q], limit2, distances[t, q], rows[t, q], stack, stack_d2)
            if found < 0:
                rows[t, q, 0] = -2
            for j in range(distances.shape[2]):
                distances[t, q, j] = np.sqrt(distances[t, q, j])


@njit(**INLINE)
def _before(store, a, b):
    """Whether store row ``a`` comes before row ``b`` in the order of their values."""
    for i in range(store.shape[1]):
        if store[a, i] != store[b, i]:
            return store[a, i] < store[b, i]
    return False


@njit(**INLINE)
def _same(store, a, b):
    for i in range(store.shape[1]):
        if store[a, i] != store[b, i]:
            return False
    return True


@njit(**JIT)
def merge_neighbors(rows, distances, store, k, out_rows, out_distances, out_trees):
    """Merge the trees' lists of one query into the ``k`` nearest distinct points.

    Parameters
    ----------
    rows : ndarray of int64, shape (num_trees, k_tree)
    distances : ndarray of float64, shape (num_trees, k_tree)
        From :func:`neighbors_batch` for one query.
    store : ndarray of float64, shape (capacity, dim)
    k : int
    out_rows, out_distances, out_trees : ndarray, shape (k,)
        A store row of each point, its distance and the number of trees
        that report it (trees hold a point at most once).

    Returns
    -------
    int
        Number of points written. Points are distinct by value (two store
        rows may hold the same point); equal distances are ordered by the
        points' values, so the result does not depend on the store's layout.
    """
    flat_rows = rows.ravel()
    flat_distances = distances.ravel()
    order = np.argsort(flat_distances)
    count = 0
    group = 0  # first output of the current run of equal distances
    for j in range(order.shape[0]):
        row = flat_rows[order[j]]
        if row < 0:
            continue
        distance = flat_distances[order[j]]
        if count and distance != out_distances[count - 1]:
            if count >= k:
                break
            group = count
        merged = False
        for m in range(group, count):
            if _same(store, out_rows[m], row):
                out_trees[m] += 1
                merged = True
                break
        if merged:
            continue
        if count == out_rows.shape[0]:
            continue  # a point tied at the last distance kept: only its count would change
        out_rows[count] = row
        out_distances[count] = distance
        out_trees[count] = 1
        m = count
        while m > group and _before(store, out_rows[m], out_rows[m - 1]):  # equal distances by value
            out_rows[m], out_rows[m - 1] = out_rows[m - 1], out_rows[m]
            out_trees[m], out_trees[m - 1] = out_trees[m - 1], out_trees[m]
            m -= 1
        count += 1
    return min(count, k)
