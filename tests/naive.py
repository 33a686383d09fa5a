"""Slow, obviously correct references for the jitted kernels.

``NaiveTree`` is a pointer-based random cut tree in the style of rrcf: one
Python object per node, recursion-free but written for reading, not speed.
It draws from the same splitmix64 sequence as the kernels, so the same seed
gives the same tree. A node keeps the exact bounding box of its points; the
kernels keep it in single precision, rounded outwards, and so does the
reference when ``rounded`` (the default), so that both draw the same cuts.
``check_invariants`` checks the flat-array trees directly, independently of
the library's own checker.
"""

import math

import numpy as np

MASK = (1 << 64) - 1


class SplitMix64:
    """The splitmix64 generator, in plain Python integers."""

    def __init__(self, state):
        self.state = int(state) & MASK

    def uniform(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        return (z >> 11) * 2.0**-53


def round_outwards(low, high):
    """``[low, high]`` widened to the nearest float32 bounds on the outside (``-0.0`` as ``0.0``)."""
    down, up = float(np.float32(low)), float(np.float32(high))
    if down > low:
        down = float(np.nextafter(np.float32(down), np.float32(-np.inf)))
    if up < high:
        up = float(np.nextafter(np.float32(up), np.float32(np.inf)))
    return down + 0.0, up + 0.0


class Node:
    def __init__(self, parent=None):
        self.parent = parent
        self.left = None
        self.right = None
        self.cut_dim = None
        self.cut_value = None
        self.point = None  # leaves only
        self.mass = 0
        self.box_min = None
        self.box_max = None

    @property
    def is_leaf(self):
        return self.left is None

    def sibling(self):
        return self.parent.right if self.parent.left is self else self.parent.left


class NaiveTree:
    """A random cut tree with insertion, deletion and the scores, on Node objects."""

    def __init__(self, seed, rounded=True):
        self.root = None
        self.rng = SplitMix64(seed)
        self.rounded = rounded

    def bounds(self, node):
        """``(low, high)`` lists of the box the tree uses: a leaf's point, else the box, rounded if ``rounded``."""
        if node.is_leaf or not self.rounded:
            return node.box_min, node.box_max
        pairs = [round_outwards(lo, hi) for lo, hi in zip(node.box_min, node.box_max)]
        return [lo for lo, _ in pairs], [hi for _, hi in pairs]

    # -- updates ---------------------------------------------------------

    def insert(self, point, rng=None):
        """Insert ``point`` (a list of floats); return its leaf."""
        rng = rng or self.rng
        point = [float(v) for v in point]
        if self.root is None:
            self.root = self._leaf(point, None)
            return self.root
        node = self.root
        while True:
            low, high = self.bounds(node)
            gap = 0.0
            for p, lo, hi in zip(point, low, high):
                gap += max(lo - p, 0.0) + max(p - hi, 0.0)
            if gap > 0.0:
                # A random cut of the box extended by the point separates it
                # with probability gap / (range_sum + gap); where it does, it
                # is uniform over the gaps. A leaf has no range: the cut
                # always separates there (the test fails only by rounding).
                range_sum = 0.0
                for lo, hi in zip(low, high):
                    range_sum += hi - lo
                if rng.uniform() * (range_sum + gap) < gap or node.is_leaf:
                    dim, value = self._cut_in_gap(low, high, point, rng.uniform() * gap)
                    return self._split(node, point, dim, value)
            elif node.is_leaf:  # the same point again
                self._grow(node, point)
                return node
            node = node.left if point[node.cut_dim] <= node.cut_value else node.right

    def _leaf(self, point, parent):
        leaf = Node(parent)
        leaf.point = list(point)
        leaf.mass = 1
        leaf.box_min = list(point)
        leaf.box_max = list(point)
        return leaf

    @staticmethod
    def _cut_in_gap(low, high, point, r):
        """Lay the gaps (below, then above the box, dimension by dimension) end to end; cut at ``r``."""
        segments = []  # (dim, start, end): cuts in [start, end) separate
        for i, (p, lo, hi) in enumerate(zip(point, low, high)):
            if p < lo:
                segments.append((i, p, lo))
            elif p > hi:
                segments.append((i, hi, p))
        for dim, start, end in segments:
            if r < end - start:
                return dim, min(start + r, float(np.nextafter(end, -np.inf)))
            r -= end - start
        dim, _, end = segments[-1]
        return dim, float(np.nextafter(end, -np.inf))

    def _split(self, node, point, dim, value):
        split = Node(node.parent)
        leaf = self._leaf(point, split)
        split.cut_dim = dim
        split.cut_value = value
        if point[dim] <= value:
            split.left, split.right = leaf, node
        else:
            split.left, split.right = node, leaf
        if node.parent is None:
            self.root = split
        elif node.parent.left is node:
            node.parent.left = split
        else:
            node.parent.right = split
        node.parent = split
        split.mass = node.mass
        split.box_min = list(node.box_min)
        split.box_max = list(node.box_max)
        self._grow(split, point)
        return leaf

    def _grow(self, node, point):
        while node is not None:
            node.mass += 1
            node.box_min = [min(a, b) for a, b in zip(node.box_min, point)]
            node.box_max = [max(a, b) for a, b in zip(node.box_max, point)]
            node = node.parent

    def delete(self, leaf):
        """Remove one copy of ``leaf``'s point."""
        leaf.mass -= 1
        if leaf.mass > 0:
            node = leaf.parent
            while node is not None:
                node.mass -= 1
                node = node.parent
            return
        parent = leaf.parent
        if parent is None:
            self.root = None
            return
        sibling = leaf.sibling()
        grandparent = parent.parent
        sibling.parent = grandparent
        if grandparent is None:
            self.root = sibling
        elif grandparent.left is parent:
            grandparent.left = sibling
        else:
            grandparent.right = sibling
        node = grandparent
        while node is not None:
            node.mass -= 1
            node.box_min = [min(a, b) for a, b in zip(node.left.box_min, node.right.box_min)]
            node.box_max = [max(a, b) for a, b in zip(node.left.box_max, node.right.box_max)]
            node = node.parent

    def find(self, point):
        """The leaf holding ``point``, or None."""
        node = self.root
        while node is not None and not node.is_leaf:
            node = node.left if point[node.cut_dim] <= node.cut_value else node.right
        if node is not None and node.point == [float(v) for v in point]:
            return node
        return None

    # -- scores ----------------------------------------------------------

    def _path(self, point):
        """Nodes from the root to the leaf that ``point`` reaches."""
        path = [self.root]
        while not path[-1].is_leaf:
            node = path[-1]
            path.append(node.left if point[node.cut_dim] <= node.cut_value else node.right)
        return path

    def _gaps(self, node, point):
        low, high = self.bounds(node)
        above = [max(p - hi, 0.0) for p, hi in zip(point, high)]
        below = [max(lo - p, 0.0) for p, lo in zip(point, low)]
        range_sum = sum(hi - lo for lo, hi in zip(low, high))
        return above, below, range_sum

    def score(self, point, mass_offset=1.0):
        """Expected inverse depth, as specified in rcf-facts.md section 2, scaled by ``log2(M + mass_offset)``.

        ``mass_offset`` is 1 in random-cut-forest-by-aws and 0 in SageMaker's
        built-in algorithm, which scales each tree by ``log2`` of its own mass.
        """
        if self.root is None:
            return 0.0
        total = self.root.mass
        path = self._path(point)
        leaf = path[-1]
        depth = len(path) - 1
        if leaf.point == list(point):
            damp = 1 - leaf.mass / (2 * total)
            return damp / (depth + math.log2(leaf.mass + 1)) * math.log2(total + mass_offset)
        score = 1 / (depth + 1)
        for depth in range(len(path) - 2, -1, -1):
            above, below, range_sum = self._gaps(path[depth], point)
            gap = sum(above) + sum(below)
            if gap == 0:
                break
            prob = gap / (range_sum + gap)
            score = prob / (depth + 1) + (1 - prob) * score
        return score * math.log2(total + mass_offset)

    def attribution(self, point):
        """(high, low) lists whose total is :meth:`score`."""
        dim = len(point)
        total = self.root.mass
        scale = math.log2(total + 1)
        path = self._path(point)
        leaf = path[-1]
        depth = len(path) - 1
        if leaf.point == list(point):
            share = self.score(point) / (2 * dim)
            return [share] * dim, [share] * dim
        leaf_score = 1 / (depth + 1)
        diffs = [p - q for p, q in zip(point, leaf.point)]
        spread = sum(abs(v) for v in diffs)
        high = [leaf_score * max(v, 0.0) / spread for v in diffs]
        low = [leaf_score * max(-v, 0.0) / spread for v in diffs]
        for depth in range(len(path) - 2, -1, -1):
            above, below, range_sum = self._gaps(path[depth], point)
            gap = sum(above) + sum(below)
            if gap == 0:
                break
            new_range = range_sum + gap
            prob = gap / new_range
            high = [a / new_range / (depth + 1) + (1 - prob) * h for a, h in zip(above, high)]
            low = [b / new_range / (depth + 1) + (1 - prob) * lo for b, lo in zip(below, low)]
        return [h * scale for h in high], [lo * scale for lo in low]

    @staticmethod
    def displacement(leaf):
        """(CoDisp, Disp) of a stored leaf, rrcf's definition."""
        codisp = 0.0
        disp = float(leaf.sibling().mass) if leaf.parent is not None else 0.0
        node = leaf
        while node.parent is not None:
            codisp = max(codisp, node.sibling().mass / node.mass)
            node = node.parent
        return codisp, disp

    def structure(self):
        """A nested tuple describing the tree, for comparisons."""
        return describe(self.root)


def describe(node):
    if node is None:
        return None
    if node.is_leaf:
        return ("leaf", tuple(node.point), node.mass)
    return ("cut", node.cut_dim, node.cut_value, node.mass, describe(node.left), describe(node.right))


def insert_values(trees, t, point, rng=None, k=0):
    """Append ``point`` to the store of a ``TreeArrays`` (made with room) and insert it into tree ``t``."""
    from rcforest._update import insert_point

    index = int(trees.store_size[0])
    assert index < trees.store.shape[0], "no room left in the store"
    trees.store[index] = point
    trees.store_size[0] = index + 1
    return insert_point(trees, t, index, trees.rng if rng is None else rng, k)


def leaf_of(trees, t, leaf):
    """The point held by ``leaf`` of tree ``t`` of a ``TreeArrays``: its row of the store."""
    internal = trees.left.shape[1]
    assert leaf >= internal, f"node {leaf} is not a leaf"
    index = int(trees.leaf_point[t, leaf - internal])
    assert 0 <= index < trees.store_size[0], f"leaf {leaf} holds store row {index}"
    return trees.store[index]


def points_below(trees, t, node):
    """The points of the leaves below ``node`` of tree ``t`` of a ``TreeArrays``."""
    if node >= trees.left.shape[1]:
        return [leaf_of(trees, t, node)]
    return points_below(trees, t, int(trees.left[t, node])) + points_below(trees, t, int(trees.right[t, node]))


def describe_flat(trees, t, node=None):
    """The same nested tuple for tree ``t`` of a ``TreeArrays``."""
    if node is None:
        node = int(trees.root[t])
        if node == -1:
            return None
    if node >= trees.left.shape[1]:
        return ("leaf", tuple(float(v) for v in leaf_of(trees, t, node)), int(trees.mass[t, node]))
    return (
        "cut",
        int(trees.cut_dim[t, node]),
        float(trees.cut_value[t, node]),
        int(trees.mass[t, node]),
        describe_flat(trees, t, int(trees.left[t, node])),
        describe_flat(trees, t, int(trees.right[t, node])),
    )


def flat_absolute(trees, t):
    """:func:`describe_flat` of tree ``t`` as one list, cuts and points back in the input's coordinates.

    Trees hold points relative to their origin: two forests that saw the
    same data with different origins (files of version 1 or 2 have none)
    compare equal to rounding.
    """
    origin = trees.origin

    def flat(item):
        if item is None:
            return [None]
        if item[0] == "leaf":
            return ["leaf", *(float(v) + float(o) for v, o in zip(item[1], origin)), item[2]]
        _, dim, value, mass, left, right = item
        return ["cut", dim, value + float(origin[dim]), mass, *flat(left), *flat(right)]

    return flat(describe_flat(trees, t))


def assert_similar(got, expected, rel=1e-6, abs=1e-9):
    """Lists from :func:`flat_absolute`: the same but for rounding of their floats."""
    assert [v if not isinstance(v, float) else "float" for v in got] == [
        v if not isinstance(v, float) else "float" for v in expected
    ]
    np.testing.assert_allclose(
        [v for v in got if isinstance(v, float)], [v for v in expected if isinstance(v, float)], rtol=rel, atol=abs
    )


def check_invariants(trees, t):
    """Assert the invariants of tree ``t`` of a ``TreeArrays``.

    Masses add up, each box is the bounding box of the points below,
    rounded outwards to float32, its stored range sum matches, every child points back to its parent, every
    leaf holds a row of the point store, every point lies on its side of
    each cut, nodes below ``I`` are internal and the others leaves, and the
    free stacks hold exactly the nodes outside the tree, each in its
    canonical free state.
    """
    internal = trees.left.shape[1]
    num_nodes = trees.parent.shape[1]
    free_internal = [int(v) for v in trees.free_internal[t, : trees.free_internal_top[t]]]
    free_leaf = [int(v) for v in trees.free_leaf[t, : trees.free_leaf_top[t]]]
    assert all(0 <= v < internal for v in free_internal), "a free internal slot out of range"
    assert all(internal <= v < num_nodes for v in free_leaf), "a free leaf slot out of range"
    free = free_internal + free_leaf
    assert len(set(free)) == len(free), "a node is on a free stack twice"
    reached = []
    root = int(trees.root[t])
    if root != -1:
        assert trees.parent[t, root] == -1, "root has a parent"
        stack = [(root, [])]  # a node and the cuts above it: (dim, value, goes left)
        while stack:
            node, cuts = stack.pop()
            reached.append(node)
            if node >= internal:
                assert trees.mass[t, node] >= 1, f"leaf {node} has mass {trees.mass[t, node]}"
                point = leaf_of(trees, t, node)
                for dim, value, left in cuts:
                    assert (point[dim] <= value) == left, f"leaf {node} is on the wrong side of a cut"
                continue
            left, right = int(trees.left[t, node]), int(trees.right[t, node])
            for child in (left, right):
                assert trees.parent[t, child] == node, f"child {child} does not point back to {node}"
            assert trees.mass[t, node] == trees.mass[t, left] + trees.mass[t, right], f"mass of {node}"
            below = np.array(points_below(trees, t, node))
            union = [round_outwards(*bounds) for bounds in zip(below.min(axis=0), below.max(axis=0))]
            assert trees.box_min.dtype == trees.box_max.dtype == np.float32
            assert [float(v) for v in trees.box_min[t, node]] == [lo for lo, _ in union], f"box of {node}"
            assert [float(v) for v in trees.box_max[t, node]] == [hi for _, hi in union], f"box of {node}"
            sides = [float(hi) - float(lo) for lo, hi in zip(trees.box_min[t, node], trees.box_max[t, node])]
            assert trees.range_sum[t, node] == sum(sides), f"range sum of {node}"
            dim, value = int(trees.cut_dim[t, node]), float(trees.cut_value[t, node])
            stack += [(left, cuts + [(dim, value, True)]), (right, cuts + [(dim, value, False)])]
    assert len(set(reached)) == len(reached), "a node is reached twice"
    assert sorted(reached + free) == list(range(num_nodes)), "nodes lost or shared between tree and free stacks"
    for node in free:
        assert trees.parent[t, node] == -1 and trees.mass[t, node] == 0
        if node >= internal:
            assert trees.leaf_point[t, node - internal] == -1
            continue
        assert trees.left[t, node] == trees.right[t, node] == -1
        assert trees.cut_dim[t, node] == -1 and trees.cut_value[t, node] == 0 and trees.range_sum[t, node] == 0
        assert not trees.box_min[t, node].any() and not trees.box_max[t, node].any()


def displacement_at(trees, t, leaf):
    """CoDisp and Disp of the point held by ``leaf`` in tree ``t`` of a ``TreeArrays``.

    Returns
    -------
    codisp : float
        Maximum over the nodes ``v`` on the path from the leaf to the root
        (the root excluded) of ``mass(sibling(v)) / mass(v)``.
    disp : float
        Mass of the leaf's sibling subtree: the number of points whose depth
        changes when the leaf is removed.

    Notes
    -----
    Guha et al. 2016, section 4, definitions 5 and 6, with the subsets
    ``C`` restricted to the ancestors of the point's leaf, as in rrcf.
    """
    codisp = 0.0
    disp = 0.0
    node = leaf
    parent = int(trees.parent[t, node])
    while parent != -1:
        sibling = int(trees.left[t, parent])
        if sibling == node:
            sibling = int(trees.right[t, parent])
        ratio = trees.mass[t, sibling] / trees.mass[t, node]
        if node == leaf:
            disp = float(trees.mass[t, sibling])
        if ratio > codisp:
            codisp = ratio
        node = parent
        parent = int(trees.parent[t, node])
    return codisp, disp


def naive_tree_of(trees, t):
    """A :class:`NaiveTree` with the structure of tree ``t`` of a ``TreeArrays``: its cuts, points and masses.

    The boxes are recomputed from the points, exactly, and rounded as the
    kernels round them; the points are relative to the trees' origin, as
    the kernels hold them.
    """

    def build(item, parent):
        node = Node(parent)
        if item[0] == "leaf":
            node.point = list(item[1])
            node.mass = item[2]
            node.box_min, node.box_max = list(node.point), list(node.point)
            return node
        _, node.cut_dim, node.cut_value, node.mass, left, right = item
        node.left, node.right = build(left, node), build(right, node)
        node.box_min = [min(a, b) for a, b in zip(node.left.box_min, node.right.box_min)]
        node.box_max = [max(a, b) for a, b in zip(node.left.box_max, node.right.box_max)]
        return node

    tree = NaiveTree(0)
    description = describe_flat(trees, t)
    tree.root = None if description is None else build(description, None)
    return tree


def forest_score(trees, point, mass_offset):
    """The forest's score of ``point`` (input coordinates): the mean over trees of each tree's own scaled score.

    Each tree's expected inverse depth is scaled by ``log2`` of that tree's
    own mass plus ``mass_offset`` (:meth:`NaiveTree.score`).
    """
    relative = [float(p) - float(o) for p, o in zip(point, trees.origin)]
    scores = [naive_tree_of(trees, t).score(relative, mass_offset) for t in range(trees.root.shape[0])]
    return sum(scores) / len(scores)
