"""The Random Cut Forest that users import: batch and streaming, scores and explanations."""

import numpy as np

from rcforest import _kernels, _layout, _reading
from rcforest._core import (
    FLOAT64,
    MAX_ABS_VALUE,
    MAX_SAMPLE_SIZE,
    as_rows,
    check_int,
    check_model_size,
    check_time_decay,
    shingle,
    shingle_names,
)
from rcforest._jit import threads_for
from rcforest._persist import ForestFiles
from rcforest._queries import ForestQueries
from rcforest._rng import tree_seeds
from rcforest._store import pack, relative, store_rows
from rcforest._tree import allocate_trees

__all__ = ["Forest"]

# Rows per jitted call when a per-tree output buffer is needed, bounding memory.
_CHUNK = 16384

_MODES = {
    "score": _kernels.MODE_SCORE,
    "codisp": _kernels.MODE_CODISP,
    "displacement": _kernels.MODE_DISPLACEMENT,
}


def _tree_mean(per_tree):
    """Mean over trees (rows) of a per-tree output (see :func:`_kernels.tree_mean`)."""
    out = np.empty(per_tree.shape[1])
    _kernels.tree_mean(per_tree, out)
    return out


# A stream call of this many rows or more ends with the point store packed to
# the distinct points the trees hold; shorter calls leave room for the next rows.
_COMPACT_ROWS = 1024


def _plain_row(X, width):
    """``X`` as ``width`` numbers when it is one row of plain, valid numbers, else None.

    A live stream's reading, checked in plain Python: a float or int (for
    one column), a list or tuple of ``width`` of them, each within
    :data:`~rcforest._core.MAX_ABS_VALUE` (NaN is not), or a float64 array
    (1-D, or one row) of ``width`` values, returned as it is (its values
    the kernel checks, :data:`rcforest._reading.INVALID`). Anything else
    (pandas, masked arrays, booleans, other dtypes, NaN, more rows) gives
    None and goes the general way, through :func:`~rcforest._core.as_rows`,
    which accepts or refuses it with its messages.
    """
    if type(X) is np.ndarray:
        if X.dtype is not FLOAT64 or X.size != width or X.ndim > 2 or X.shape[-1] != width:
            return None
        return X
    elif isinstance(X, (list, tuple)):
        if len(X) != width:
            return None
        values = X
    elif width == 1 and (isinstance(X, float) or type(X) is int):
        values = (X,)
    else:
        return None
    for value in values:
        if not ((isinstance(value, float) or type(value) is int) and -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE):
            return None
    return values


class Forest(ForestQueries, ForestFiles):
    """Random Cut Forest for anomaly detection on batches and streams.

    Parameters
    ----------
    num_trees : int, default 100
        Number of trees.
    sample_size : int, default 256
        Points each tree keeps.
    shingle_size : int, default 1
        Number of consecutive input rows stacked into one point. With
        ``shingle_size > 1`` the inputs are raw rows of a series, and the
        forest builds the shingles itself, across calls when streaming.
    time_decay : float, default 0.0
        Decay of the streaming reservoir, between 0 and 1e6: 0 keeps a
        uniform sample of everything seen; ``1 / (10 * sample_size)`` (AWS's
        default) favours roughly the last ``10 * sample_size`` points; from
        about 41 on, the trees keep the latest ``sample_size`` points.
    random_state : int or None, default None
        Seed. The same seed gives the same forest and scores, whatever the
        number of threads.
    sampling : {"reservoir", "sagemaker"}, default "reservoir"
        Which rows :meth:`fit` gives each tree, and how tree scores are
        scaled. ``"reservoir"``: each tree keeps its own sample of
        ``sample_size`` rows drawn from all of them, and scores are scaled
        as in AWS's random-cut-forest-by-aws. ``"sagemaker"``: the layout
        of SageMaker's built-in Random Cut Forest, whose scores it matches.
        When the ``N`` points fit in the forest (``N <= num_trees *
        sample_size``), tree ``t`` holds the consecutive points ``t * k`` to
        ``t * k + k - 1``, ``k = N // num_trees``, and the rest go unused;
        otherwise each tree samples ``sample_size`` points. Each tree's score
        is scaled by ``log2`` of its own size (see :mod:`rcforest._layout`).
        A small batch so makes small trees, each of one stretch of the data,
        and higher scores than ``"reservoir"``. Streaming (:meth:`update`)
        is the same for both.
    n_jobs : int or None, default None
        Threads for the parallel kernels; None uses numba's setting (all cores).

    Attributes
    ----------
    n_features_ : int
        Number of input columns (before shingling).
    feature_names_in_ : list of str
        Names of the input columns: a DataFrame's or Series' names, else
        ``x0``, ``x1``, ... When the forest was fitted (or first fed) on a
        DataFrame whose column names are all strings, later DataFrames are
        read by these names: their columns are put in this order, and a
        DataFrame without exactly these columns is refused with a
        ``ValueError`` naming the missing and unexpected ones. Arrays, and
        DataFrames after a fit on an array, are read by position.
    dimensions_ : int
        Dimension of the points in the trees, ``shingle_size * n_features_``.
    points_seen_ : int
        Number of points (shingles) offered to the trees so far.

    Notes
    -----
    Scores: :meth:`score` is the expected-inverse-depth score of AWS's
    random-cut-forest-by-aws and of SageMaker, about 1 for points like the
    data and higher for anomalies; :meth:`codisp` is the collusive
    displacement of Guha et al. 2016. Higher always means more anomalous.

    Examples
    --------
    >>> import numpy as np
    >>> from rcforest import Forest
    >>> X = np.random.default_rng(0).normal(size=(1000, 3))
    >>> forest = Forest(num_trees=50, sample_size=128, random_state=0).fit(X)
    >>> scores = forest.score([[0.0, 0.0, 0.0], [8.0, 8.0, 8.0]])
    >>> bool(scores[1] > 2 * scores[0])
    True
    """

    def __init__(
        self,
        num_trees=100,
        sample_size=256,
        shingle_size=1,
        time_decay=0.0,
        random_state=None,
        *,
        sampling="reservoir",
        n_jobs=None,
    ):
        self.num_trees = check_int(num_trees, "num_trees", 1)
        self.sample_size = check_int(sample_size, "sample_size", 1, MAX_SAMPLE_SIZE)
        self.shingle_size = check_int(shingle_size, "shingle_size", 1)
        self.time_decay = check_time_decay(time_decay)
        check_model_size(self.num_trees, self.sample_size, self.shingle_size)
        if random_state is not None:
            random_state = check_int(random_state, "random_state", 0)
        self.random_state = random_state
        self.sampling = _layout.check_sampling(sampling)
        self.n_jobs = None if n_jobs is None else check_int(n_jobs, "n_jobs", 1)
        self._trees = None
        self._tail = None
        self.feature_names_in_ = None
        self._named = None  # whether feature_names_in_ names the columns of DataFrames (see as_rows)
        self.n_features_ = None
        self.points_seen_ = 0
        self._reader = None  # (trees, tail, row, query, Reader, compiled read) of the single-row kernel, see _read_one

    def __repr__(self):
        return (
            f"Forest(num_trees={self.num_trees}, sample_size={self.sample_size}, "
            f"shingle_size={self.shingle_size}, time_decay={self.time_decay}, "
            f"random_state={self.random_state}"
            + ("" if self.sampling == "reservoir" else f", sampling={self.sampling!r}")
            + ")"
        )

    @property
    def dimensions_(self):
        if self.n_features_ is None:
            return None
        return self.shingle_size * self.n_features_

    # ----------------------------------------------------------------- input

    def _new_trees(self, num_features):
        check_model_size(self.num_trees, self.sample_size, self.shingle_size * num_features)
        seeds = tree_seeds(self.num_trees, self.random_state)
        return allocate_trees(self.num_trees, self.sample_size, self.shingle_size * num_features, seeds)

    def _rows(self, data):
        """Convert ``data`` (a DataFrame by its column names, see ``feature_names_in_``) and check its feature count."""
        rows = as_rows(self._one_row(data), names=self.feature_names_in_ if self._named else None)
        if self.n_features_ is not None and rows.values.shape[1] != self.n_features_:
            raise ValueError(
                f"X has {rows.values.shape[1]} features but the forest was built on "
                f"{self.n_features_}; pass rows with {self.n_features_} columns"
            )
        return rows

    def _require_data(self):
        if self.points_seen_ == 0:
            raise ValueError(
                "the forest holds no data yet; call fit(X) or update(X) first"
                + (f" (with at least {self.shingle_size} rows to make a shingle)" if self.shingle_size > 1 else "")
            )

    def _wrap(self, rows, values, name):
        """Return ``values`` aligned with the input: pandas in, pandas out."""
        if rows.index is None:
            return values
        import pandas as pd  # loaded already: the input was a pandas object

        if values.ndim == 1:
            return pd.Series(values, index=rows.index, name=name)
        return pd.DataFrame(values, index=rows.index, columns=shingle_names(rows.columns, self.shingle_size))

    def _last_rows(self, values):
        """The rows a stream must remember to make the next shingle."""
        return values[max(0, values.shape[0] - self.shingle_size + 1) :].copy()

    def _aligned(self, num_rows, values):
        """Pad per-shingle ``values`` with NaN rows for the first rows without a shingle."""
        out = np.full((num_rows,) + values.shape[1:], np.nan)
        out[num_rows - values.shape[0] :] = values
        return out

    # ----------------------------------------------------------------- batch

    def fit(self, X):
        """Build the forest from a batch: each tree samples without replacement (see ``sampling``).

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)
            Training rows, in time order when shingling.

        Returns
        -------
        Forest
            ``self``, rebuilt from scratch.

        Notes
        -----
        Each tree keeps the ``sample_size`` rows of smallest reservoir weight
        (see :mod:`rcforest._sampler`), a sample without replacement, so
        :meth:`update` can carry on from the fitted sample. With
        ``sampling="sagemaker"`` and few rows, each tree keeps its block of
        consecutive rows instead, with the reservoir weights those rows draw,
        and :meth:`update` carries on from there.

        Raises
        ------
        ValueError
            If ``sampling="sagemaker"`` would give a tree fewer than 2 points
            (fewer than ``2 * num_trees`` points, see
            :func:`rcforest._layout.block_size`).
        """
        rows = as_rows(X)
        points = shingle(rows.values, self.shingle_size)
        if points.shape[0] == 0:
            raise ValueError(
                f"X has {rows.values.shape[0]} rows, fewer than shingle_size={self.shingle_size}; "
                "pass a longer series or a smaller shingle_size"
            )
        block = None
        if self.sampling == "sagemaker":
            block = _layout.block_size(points.shape[0], self.num_trees, self.sample_size)
        trees = self._new_trees(rows.values.shape[1])
        rows_kept = np.full_like(trees.heap_leaf, -1)
        with threads_for(self.n_jobs, points.shape[0]):
            if block is None:
                _kernels.select_sample(
                    trees.rng, trees.heap_weight, rows_kept, trees.heap_size, points.shape[0], 0, self.time_decay
                )
            else:
                _kernels.select_blocks(trees.rng, trees.heap_weight, rows_kept, trees.heap_size, block, self.time_decay)
            trees = _kernels.build_from_rows(trees, points, rows_kept)
        self._trees = trees
        self.n_features_ = rows.values.shape[1]
        self.feature_names_in_ = rows.columns
        self._named = rows.named
        self._tail = self._last_rows(rows.values)
        self.points_seen_ = points.shape[0]
        return self

    def _mass_offset(self):
        """How tree scores are scaled: see :func:`rcforest._layout.mass_offset`."""
        return _layout.mass_offset(self.sampling)

    def _per_tree(self, kernel, points, outputs=1, *args):
        """Run a per-tree read-only kernel over ``points`` in chunks, ``args`` after its outputs; average over trees."""
        results = [np.empty(points.shape[0]) for _ in range(outputs)]
        with threads_for(self.n_jobs, points.shape[0]):
            for start in range(0, points.shape[0], _CHUNK):
                chunk = points[start : start + _CHUNK]
                # A fresh C-ordered buffer per chunk: slices of one buffer would
                # change the array layout and make numba compile a second variant.
                per_tree = [np.empty((self.num_trees, chunk.shape[0])) for _ in range(outputs)]
                kernel(self._trees, chunk, *per_tree, *args)
                _kernels.raise_if_corrupt(*per_tree)
                for result, values in zip(results, per_tree):
                    result[start : start + chunk.shape[0]] = _tree_mean(values)
        return results

    def _batch_points(self, X):
        self._require_data()
        rows = self._rows(X)
        return rows, relative(self._trees, shingle(rows.values, self.shingle_size))

    def score(self, X):
        """Expected-inverse-depth anomaly score of each row, read-only.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)

        Returns
        -------
        ndarray of shape (n_rows,), or pandas.Series for pandas input
            About 1 for rows like the data, higher for anomalies (at most
            about ``log2`` of the trees' size: ``sample_size``, or fewer
            points with ``sampling="sagemaker"``). With shingling, the first
            ``shingle_size - 1`` rows have no shingle and score NaN.
        """
        if self.shingle_size == 1 and self.points_seen_:
            score = self._read_one(X, _reading.SCORE)
            if score is not None:
                out = np.empty(1)
                out[0] = score
                return out
        rows, points = self._batch_points(X)
        (scores,) = self._per_tree(_kernels.score_batch, points, 1, self._mass_offset())
        return self._wrap(rows, self._aligned(rows.values.shape[0], scores), "score")

    def _displacements(self, X):
        rows, points = self._batch_points(X)
        codisp, disp = self._per_tree(_kernels.displacement_batch, points, outputs=2)
        n = rows.values.shape[0]
        return rows, self._aligned(n, codisp), self._aligned(n, disp)

    def codisp(self, X):
        """Collusive displacement (CoDisp) of each row, the paper's score.

        Each row is inserted into every tree, measured and removed again,
        so the forest is left unchanged.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)

        Returns
        -------
        ndarray of shape (n_rows,), or pandas.Series for pandas input
            Mean over trees of the largest ratio of displaced to colluding
            mass along the row's path; NaN for rows without a shingle.
        """
        rows, codisp, _ = self._displacements(X)
        return self._wrap(rows, codisp, "codisp")

    def displacement(self, X):
        """Displacement (Disp) of each row: how many points its removal moves up.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)

        Returns
        -------
        ndarray of shape (n_rows,), or pandas.Series for pandas input
            Mean over trees of the mass of the row's sibling subtree after
            inserting it; NaN for rows without a shingle.
        """
        rows, _, disp = self._displacements(X)
        return self._wrap(rows, disp, "displacement")

    def attribution(self, X):
        """Split each row's score over dimensions and directions.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)

        Returns
        -------
        high, low : ndarray of shape (n_rows, dimensions_), or DataFrames
            The part of the score due to the row lying above (``high``) or
            below (``low``) the data in each shingled dimension;
            ``high.sum(1) + low.sum(1)`` equals :meth:`score`. Columns are
            ordered oldest lag first.
        """
        rows, points = self._batch_points(X)
        high = np.empty_like(points)
        low = np.empty_like(points)
        with threads_for(self.n_jobs, points.shape[0]):
            _kernels.attribution_batch(self._trees, points, high, low, self._mass_offset())
        _kernels.raise_if_corrupt(high, low)
        n = rows.values.shape[0]
        return (
            self._wrap(rows, self._aligned(n, high), "high"),
            self._wrap(rows, self._aligned(n, low), "low"),
        )

    # ------------------------------------------------------------- streaming

    def _stream(self, X, mode):
        rows = self._rows(X)
        tail = self._tail if self._tail is not None else rows.values[:0]
        series = np.concatenate([tail, rows.values]) if tail.shape[0] else rows.values
        points = shingle(series, self.shingle_size)
        trees = self._trees if self._trees is not None else self._new_trees(rows.values.shape[1])
        scores = np.empty(points.shape[0])
        with threads_for(self.n_jobs, points.shape[0]):
            for start in range(0, points.shape[0], _CHUNK):
                chunk = relative(trees, points[start : start + _CHUNK])
                trees, first = store_rows(trees, chunk)
                if self._trees is not None:
                    self._trees = trees  # changed in place from here on: with the store it refers to
                per_tree = np.zeros((self.num_trees, chunk.shape[0]))  # C-ordered: see _per_tree
                _kernels.stream(
                    trees, chunk, first, self.points_seen_ + start, self.time_decay, mode, per_tree, self._mass_offset()
                )
                _kernels.raise_if_corrupt(per_tree)
                if mode != _kernels.MODE_NONE:
                    scores[start : start + chunk.shape[0]] = _tree_mean(per_tree)
        if points.shape[0] >= _COMPACT_ROWS:
            trees = pack(trees)
        self._trees = trees
        self.n_features_ = rows.values.shape[1]
        if self.feature_names_in_ is None:
            self.feature_names_in_ = rows.columns
            self._named = rows.named
        self._tail = self._last_rows(series)
        self.points_seen_ += points.shape[0]
        return rows, self._aligned(rows.values.shape[0], scores)

    def update(self, X):
        """Feed rows, in order, through each tree's reservoir sampler.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)
            The next rows of the stream; a single row may be passed as a
            1-D array of length ``n_features`` when ``n_features > 1``.

        Returns
        -------
        Forest
            ``self``.
        """
        if self._read_one(X, _reading.FEED) is None:
            self._stream(X, _kernels.MODE_NONE)
        return self

    def score_update(self, X, kind="score"):
        """Score each row against the forest as it is, then feed it to the forest.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)
            The next rows of the stream.
        kind : {"score", "codisp", "displacement"}, default "score"
            Which score to return.

        Returns
        -------
        ndarray of shape (n_rows,), or pandas.Series for pandas input
            Scores of the rows before each joined the forest; 0 while the
            forest is empty and NaN for the first ``shingle_size - 1``
            rows of the stream.
        """
        if kind not in _MODES:
            raise ValueError(f"kind must be one of {sorted(_MODES)}, got {kind!r}")
        if kind == "score":
            score = self._read_one(X, _reading.SCORE_FEED)
            if score is not None:
                out = np.empty(1)
                out[0] = score
                return out
        rows, scores = self._stream(X, _MODES[kind])
        return self._wrap(rows, scores, kind)

    def _read_one(self, X, mode, query=None):
        """Score and/or feed one plain row in one serial kernel call (:func:`rcforest._reading.read`).

        Parameters
        ----------
        X : object
            The call's input, taken here only if :func:`_plain_row` reads it as one row.
        mode : int
            :data:`rcforest._reading.SCORE`, ``FEED``, ``SCORE_FEED`` or ``FEED_SCORE``.
        query : ndarray of float64, shape (dimensions_,), optional
            With ``FEED_SCORE``, the point scored after the row is fed.

        Returns
        -------
        float or None
            The row's score; None when the general path must take the call:
            no trees yet, a stream's first shingle not full, the point store
            full, or input that is not one plain row (the general path
            accepts or refuses it). The values are checked by
            :func:`_plain_row`, or are a float64 array that the kernel
            checks (None if one is out of range).
        """
        values = _plain_row(X, self.n_features_)  # None without data: n_features_ is None
        if values is None:
            return None
        reader = self._reader
        if reader is None or reader[0] is not self._trees or reader[1] is not self._tail:
            if self._trees is None or self._tail.shape[0] != self.shingle_size - 1:
                return None
            reader = self._new_reader()
        row = reader[2]
        if len(values) == 1 and type(values) is not np.ndarray:
            row[0] = values[0]
        else:
            row[:] = values  # a (1, n_features_) array too, without a reshaped view
        if query is not None:
            reader[3][:] = query
        status, score = reader[5](reader[4], self.points_seen_, self.time_decay, mode, self._mass_offset())
        if status:  # 0 but for the rare cases below
            if status == _reading.FULL or status == _reading.INVALID:
                return None
            if status == _reading.CORRUPT:
                _kernels.raise_if_corrupt(np.array([np.nan]))
        if mode != _reading.SCORE:
            self.points_seen_ += 1
        return score

    def _new_reader(self):
        """Make the handle of :meth:`_read_one` for the current trees and tail (a writable C-ordered tail)."""
        tail = self._tail
        if not (tail.dtype == np.float64 and tail.flags.c_contiguous and tail.flags.writeable):
            self._tail = tail = np.array(tail, np.float64)
        row = np.zeros(self.n_features_)
        query = np.zeros(self.dimensions_)
        handle = _reading.new_reader(self._trees, tail, row, np.zeros(self.dimensions_), query)
        self._reader = (self._trees, tail, row, query, handle, _reading.compiled_read(handle))
        return self._reader

    def _feed_then_score(self, row, point):
        """Feed ``row``, then score the point ``point``, in one pass over the trees: a live detector's reading.

        The same as ``update(row)`` followed by ``score(point)``, bit for
        bit, for a forest without shingling that holds data: each tree is
        offered the row and then scores the point
        (:data:`rcforest._reading.FEED_SCORE`).

        Parameters
        ----------
        row, point : ndarray of float64, shape (n_features_,)
            Checked by the caller: finite, within
            :data:`~rcforest._core.MAX_ABS_VALUE`.

        Returns
        -------
        float
        """
        score = self._read_one(row, _reading.FEED_SCORE, point)
        if score is not None:
            return score
        self.update(row[None, :])
        return float(self.score(point[None, :])[0])

    def _one_row(self, X):
        """Read a flat vector of ``n_features`` values as one row, not a column."""
        if (
            self.n_features_ is not None
            and self.n_features_ > 1
            and isinstance(X, (list, tuple, np.ndarray))
            and np.ndim(X) == 1
            and len(X) == self.n_features_
        ):
            return [X]
        return X
