"""Near neighbours of a query among the points the trees hold.

The forest's ``k`` nearest distinct points are found by branch and bound
over the trees' boxes (a box's distance from the query bounds the distance
of every point below it), with one bound shared by all trees: the
``k``-th nearest distinct point found so far in any tree, first from the
leaf each tree's path reaches, then from each tree's search in turn. A
point among the ``k`` nearest of the whole forest's sample lies within
that bound at every moment, so every tree that holds it reports it: the
answer is exact, and the number of trees that report a point is the
number of trees that hold it.

Notes
-----
AWS random-cut-forest-by-aws, ``getNearNeighborsInSample`` and
``NearNeighborVisitor``, reports the leaf each tree's path reaches when it
lies within a distance threshold, merged across trees and sorted by
distance (Euclidean). The search here finds the points that visitor finds
when they are among the nearest, and the nearer ones it can miss.
"""

import numpy as np

from rcforest._jit import INLINE, JIT, njit

__all__ = ["merge_neighbors", "near_neighbors"]


@njit(**INLINE)
def _box_distance2(box_min, box_max, node, point):
    """Squared Euclidean distance from ``point`` to internal ``node``'s box (0 inside), one tree's boxes."""
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
def _offer_distinct(store, best_d2, best_row, count, d2, row):
    """:func:`_offer` for a point not already kept (by value): the ``k`` nearest distinct points so far."""
    if count == best_d2.shape[0] and d2 >= best_d2[0]:
        return count
    for j in range(count):
        if best_d2[j] == d2 and _same(store, best_row[j], row):
            return count
    return _offer(best_d2, best_row, count, d2, row)


@njit(**JIT, _nrt=False)
def _search(tr, point, limit2, best_d2, best_row, found_d2, found_row, stack, stack_d2):
    """Every tree's points that may be among the ``k`` nearest distinct points of the forest's sample.

    First each tree's path to ``point`` gives a point (its leaf): the ``k``
    nearest distinct ones bound the search. Then each tree is searched by
    branch and bound over its boxes, skipping every node whose box lies
    farther than the ``k``-th nearest distinct point found so far (in any
    tree), and reports every point no farther than it.

    Parameters
    ----------
    tr : TreeArrays
    point : ndarray of float64, shape (dim,)
        Relative to the origin.
    limit2 : float
        Squared distance beyond which points are not reported (inf for none).
    best_d2 : ndarray of float64, shape (k,)
    best_row : ndarray of int64, shape (k,)
        Work space: a max-heap of the nearest distinct points so far.
    found_d2 : ndarray of float64, shape (num_trees * L,)
    found_row : ndarray of int64, shape (num_trees * L,)
        Overwritten: the squared distance and store row of each point
        reported, one entry per tree that reports it.
    stack : ndarray of int32, shape (I + L + 2,)
    stack_d2 : ndarray of float64, shape (I + L + 2,)
        Work space.

    Returns
    -------
    int
        Number of entries reported; ``-1`` for a corrupt tree (a walk
        longer than the tree).

    Notes
    -----
    A point among the forest's ``k`` nearest lies no farther than the
    ``k``-th nearest distinct point known at any time, so every tree that
    holds it reports it: the reports hold the answer and, for each of its
    points, one entry per tree holding it. Compiled without numba's
    reference counts (the loops take the trees' arrays again and again).
    """
    k = best_d2.shape[0]
    num_trees = tr.root.shape[0]
    internal = tr.left.shape[1]
    num_nodes = tr.parent.shape[1]
    store = tr.store
    kept = 0
    found = 0
    for t in range(num_trees):
        root = tr.root[t]
        if root == -1:
            continue
        cut_dim = tr.cut_dim[t]
        cut_value = tr.cut_value[t]
        left = tr.left[t]
        right = tr.right[t]
        leaf_point = tr.leaf_point[t]
        box_min = tr.box_min[t]
        box_max = tr.box_max[t]
        bound = limit2 if kept < k else min(limit2, best_d2[0])
        top = 1
        stack[0] = root
        stack_d2[0] = 0.0
        steps = 0
        while top > 0:
            steps += 1
            if steps > 2 * num_nodes:
                return -1
            top -= 1
            node = stack[top]
            node_d2 = stack_d2[top]
            if node_d2 > bound:
                continue
            if node >= internal:
                row = leaf_point[node - internal]
                d2 = _point_distance2(store, row, point)
                if d2 > bound:
                    continue
                found_d2[found] = d2
                found_row[found] = row
                found += 1
                kept = _offer_distinct(store, best_d2, best_row, kept, d2, row)
                if kept == k:
                    bound = min(limit2, best_d2[0])
                continue
            if top + 2 > stack.shape[0]:
                return -1
            near = left[node]
            far = right[node]
            if point[cut_dim[node]] > cut_value[node]:
                near, far = far, near
            # The far child first, so that the near one is searched first.
            far_d2 = _child_distance2(store, leaf_point, box_min, box_max, far, point, internal)
            if far_d2 <= bound:
                stack[top] = far
                stack_d2[top] = far_d2
                top += 1
            stack[top] = near
            stack_d2[top] = node_d2  # the parent's bound holds for the child (its box is inside)
            top += 1
    return found


@njit(**INLINE)
def _child_distance2(store, leaf_point, box_min, box_max, node, point, internal):
    """Lower bound of the squared distance from ``point`` to the points below ``node`` (exact for a leaf)."""
    if node >= internal:
        return _point_distance2(store, leaf_point[node - internal], point)
    return _box_distance2(box_min, box_max, node, point)


@njit(**JIT)
def near_neighbors(reader, point, k, limit2, out_points, out_distances, out_trees):
    """The ``k`` nearest distinct points of the forest's sample, merged across trees, in one call.

    Parameters
    ----------
    reader : rcforest._reading.Reader
        Holds the trees (``reader.trees``): one handle to pass, not their arrays.
    point : ndarray of float64, shape (dim,)
        Relative to the origin.
    k : int
    limit2 : float
        Squared distance beyond which points are left out.
    out_points : ndarray of float64, shape (min(k, num_trees * L), dim)
        The points, in the input's coordinates (the origin added back).
    out_distances, out_trees : ndarray, shape (min(k, num_trees * L),)
        As :func:`merge_neighbors` writes them.

    Returns
    -------
    int
        Number of points written; ``-1`` for a corrupt tree.
    """
    tr = reader.trees
    capacity = tr.root.shape[0] * tr.leaf_point.shape[1]
    found_d2 = np.empty(capacity)
    found_row = np.empty(capacity, np.int64)
    stack = np.empty(tr.parent.shape[1] + 2, np.int32)
    stack_d2 = np.empty(tr.parent.shape[1] + 2)
    size = min(k, capacity)
    found = _search(tr, point, limit2, np.empty(size), np.empty(size, np.int64), found_d2, found_row, stack, stack_d2)
    if found < 0:
        return -1
    for j in range(found):
        found_d2[j] = np.sqrt(found_d2[j])
    out_rows = np.empty(out_points.shape[0], np.int64)
    count = merge_neighbors(found_row[:found], found_d2[:found], tr.store, k, out_rows, out_distances, out_trees)
    for j in range(count):
        for i in range(out_points.shape[1]):
            out_points[j, i] = tr.store[out_rows[j], i] + tr.origin[i]
    return count


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
    """Merge the trees' reports for one query into the ``k`` nearest distinct points.

    Parameters
    ----------
    rows : ndarray of int64, shape (n,)
    distances : ndarray of float64, shape (n,)
        The store row of each point a tree reports (``-1`` for none) and
        its distance.
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
    flat_rows = rows
    flat_distances = distances
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
        m = count
        if count == out_rows.shape[0]:
            # Tied at the last distance kept with no room: it takes the last place if its value comes first.
            m = count - 1
            if not _before(store, row, out_rows[m]):
                continue
        else:
            count += 1
        out_rows[m] = row
        out_distances[m] = distance
        out_trees[m] = 1
        while m > group and _before(store, out_rows[m], out_rows[m - 1]):  # equal distances by value
            out_rows[m], out_rows[m - 1] = out_rows[m - 1], out_rows[m]
            out_trees[m], out_trees[m - 1] = out_trees[m - 1], out_trees[m]
            m -= 1
    return min(count, k)
