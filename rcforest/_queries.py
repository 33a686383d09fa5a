"""What a forest says beyond its scores: near neighbours, density, imputation and forecasts.

:class:`ForestQueries` adds these read-only queries to
:class:`rcforest.forest.Forest`; the kernels are in
:mod:`rcforest._neighbors`, :mod:`rcforest._density` and
:mod:`rcforest._conditional`. None of them changes the forest.
"""

import numpy as np

from rcforest import _conditional, _density, _neighbors
from rcforest._compiled import ARRAY_1D, ARRAY_2D, for_reader
from rcforest._core import FLOAT64, MAX_ABS_VALUE, as_numbers, as_rows, check_float, check_int, shingle
from rcforest._jit import threads_for

__all__ = ["ForestQueries", "summarize_samples"]

# Rows per jitted call of the batch queries, bounding their per-tree buffers.
_CHUNK = 4096

MAX_HORIZON = 100000
"""Most rows :meth:`ForestQueries.extrapolate` forecasts in one call."""

_MAX_TYPICAL_PER_DIMENSION = 2
_MAX_TYPICAL = 5
"""At most ``min(2 * dimensions, 5)`` representatives (AWS's ``ConditionalSampleSummarizer``)."""


def _raise_if_corrupt(broken):
    if broken:
        raise RuntimeError(
            "a tree of this forest is corrupt (a walk through it does not end); "
            "fit the forest again or load a saved copy"
        )


def _check_magnitude(values, name):
    """Refuse finite values beyond :data:`MAX_ABS_VALUE` (NaN is allowed: it marks a missing value)."""
    bad = np.abs(values) > MAX_ABS_VALUE
    if bad.any():
        where = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds {values[where]} at {where}; rcforest accepts magnitudes up to {MAX_ABS_VALUE:g}: "
            "rescale the data (for example divide it by a power of ten)"
        )


def _weighted_kmeans(values, weights, k):
    """Deterministic weighted k-means: centres, labels and the within-cluster sum of squares.

    The first centre is the heaviest point (the first of equals), each next
    one the point farthest from the centres so far; then Lloyd's steps.
    """
    centres = [values[int(np.argmax(weights))]]
    for _ in range(1, k):
        gaps = np.min([((values - c) ** 2).sum(axis=1) for c in centres], axis=0)
        centres.append(values[int(np.argmax(gaps))])
    centres = np.array(centres)
    labels = np.zeros(len(values), np.int64)
    for _ in range(50):
        distances = ((values[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new_labels = np.argmin(distances, axis=1)
        for j in range(k):
            member = new_labels == j
            if member.any():
                centres[j] = np.average(values[member], axis=0, weights=weights[member])
        if (new_labels == labels).all() and _ > 0:
            break
        labels = new_labels
    spread = float((weights * ((values - centres[labels]) ** 2).sum(axis=1)).sum())
    return centres, labels, spread


def summarize_samples(values, weights, max_clusters):
    """Representatives of weighted samples: the fewest cluster centres that explain their spread.

    A further cluster is added while it removes more than three quarters of
    the remaining within-cluster sum of squares (one cluster split in two
    removes about 64% for a normal sample, two well separated clusters
    nearly all).

    Parameters
    ----------
    values : ndarray of float64, shape (num_samples, dim)
    weights : ndarray of float64, shape (num_samples,)
    max_clusters : int

    Returns
    -------
    centres : ndarray of float64, shape (num_clusters, dim)
    shares : ndarray of float64, shape (num_clusters,)
        Each cluster's share of the weight, largest first.
    """
    max_clusters = max(1, min(max_clusters, len(values)))
    centres, labels, spread = _weighted_kmeans(values, weights, 1)
    for k in range(2, max_clusters + 1):
        if spread <= 0.0:
            break
        more = _weighted_kmeans(values, weights, k)
        if more[2] >= 0.25 * spread:
            break
        centres, labels, spread = more
    shares = np.array([weights[labels == j].sum() for j in range(len(centres))]) / weights.sum()
    order = np.argsort(-shares, kind="stable")
    return centres[order], shares[order]


class ForestQueries:
    """Near neighbours, density, imputation and forecasts of a :class:`~rcforest.forest.Forest`.

    A mixin: it uses the forest's trees, its input checks and its
    ``n_jobs``; every method is read-only.
    """

    # ------------------------------------------------------------ input

    def _query_point(self, point, name="point", missing=False):
        """One point of the trees' dimension (a shingle, oldest row first), as given."""
        self._require_data()
        if type(point) is np.ndarray and point.dtype == np.float64:
            values = point.reshape(-1)  # what as_numbers makes of it, without a copy (callers make new arrays)
        else:
            values = as_numbers(point, name).reshape(-1)
        if values.size != self.dimensions_:
            raise ValueError(
                f"{name} has {values.size} values but the forest's points have {self.dimensions_} "
                f"(shingle_size={self.shingle_size} x {self.n_features_} features); pass one point of that length"
            )
        if missing:
            values = np.where(np.isfinite(values), values, np.nan)
            _check_magnitude(values, name)
        elif not np.abs(values).max() <= MAX_ABS_VALUE:  # also for NaN
            bad = ~(np.abs(values) <= MAX_ABS_VALUE)
            if bad.any():
                where = int(np.argmax(bad))
                raise ValueError(
                    f"{name} holds {values[where]} at position {where}; pass finite values up to {MAX_ABS_VALUE:g}"
                )
        return values

    def _plain_point(self, X):
        """``X`` as one point when it is one plain row of a forest without shingles, else None.

        A C-ordered float64 array (1-D, or one row) of ``n_features_``
        values, or a list of ``n_features_`` floats and ints (ints within
        :data:`~rcforest._core.MAX_ABS_VALUE`): the one-row calls take a
        serial kernel without the batch path's conversions, and the kernel
        checks the values (a row it refuses goes the general way).
        Anything else (pandas, other dtypes, more rows) gives None and goes
        the general way, which accepts or refuses it with its messages.

        Returns
        -------
        ndarray of float64, shape (n_features_,), C-ordered, or None
            The row's values (the array itself, a view of it or, for a
            list, a new array), unchecked.
        """
        if self.shingle_size != 1 or self._trees is None or not self.points_seen_:
            return None
        width = self.n_features_
        if type(X) is np.ndarray:
            if X.dtype is not FLOAT64 or X.size != width or not 1 <= X.ndim <= 2 or not X.flags.c_contiguous:
                return None
            return X if X.ndim == 1 else X.reshape(-1)
        if not isinstance(X, list) or len(X) != width:
            return None
        for value in X:
            if type(value) is int:
                if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
                    return None  # too large for a float64, maybe
            elif not isinstance(value, float):
                return None
        return np.array(X, np.float64)

    def _missing_rows(self, X):
        """Rows that may hold NaN for missing values (infinite values count as missing)."""
        self._require_data()
        rows = as_rows(self._one_row(X), missing=True, names=self.feature_names_in_ if self._named else None)
        if rows.values.shape[0] == 0:
            raise ValueError(f"X is empty (shape {rows.values.shape}); pass at least one row")
        if rows.values.shape[1] != self.n_features_:
            raise ValueError(
                f"X has {rows.values.shape[1]} features but the forest was built on "
                f"{self.n_features_}; pass rows with {self.n_features_} columns"
            )
        _check_magnitude(rows.values, "X")
        return rows

    def _absolute(self, values):
        """Values relative to the origin back in the input's coordinates."""
        return values + self._trees.origin

    # --------------------------------------------------------- neighbours

    def near_neighbors(self, point, k=10, max_distance=None):
        """Points of the forest's sample nearest to ``point``, closest first.

        Parameters
        ----------
        point : array-like of shape (dimensions_,)
            One point as the trees hold it: with shingling, the last
            ``shingle_size`` rows, oldest first, flattened (or as a
            ``(shingle_size, n_features)`` array).
        k : int, default 10
            Most neighbours to return.
        max_distance : float or None, default None
            Leave out points farther than this (Euclidean distance).

        Returns
        -------
        dict
            ``"points"``: ndarray of shape (m, dimensions_), the ``m <= k``
            distinct points nearest to ``point`` among those the trees
            hold; ``"distances"``: their Euclidean distances, increasing;
            ``"trees"``: how many trees hold each. Points at equal distance
            come in the order of their values.

        Notes
        -----
        AWS's ``getNearNeighborsInSample`` reports the leaf each tree's
        path reaches; here the trees are searched exactly, by branch and
        bound with one bound for all trees, so the list holds the true
        nearest points of the sample and the exact count of trees holding
        each (see :mod:`rcforest._neighbors`). One serial jitted call.
        """
        query = self._query_point(point) - self._trees.origin
        k = check_int(k, "k", 1, 1 << 20)
        limit2 = np.inf
        if max_distance is not None:
            limit2 = check_float(max_distance, "max_distance") ** 2
        size = min(k, self.num_trees * self._trees.leaf_point.shape[1])
        points = np.empty((size, self.dimensions_))
        distances = np.empty(size)
        trees = np.empty(size, np.int64)
        count = _neighbors.near_neighbors(self._handle(), query, k, limit2, points, distances, trees)
        _raise_if_corrupt(count < 0)
        return {"points": points[:count], "distances": distances[:count], "trees": trees[:count]}

    def _handle(self):
        """The forest's :class:`rcforest._reading.Reader`: its trees passed to a kernel as one handle.

        A call with the trees' twenty-odd arrays spends microseconds
        unboxing them; a query about one point takes this handle instead
        (the one the forest's single-row readings use, made again when the
        trees or the tail were replaced).
        """
        reader = self._reader
        if reader is None or reader[0] is not self._trees or reader[1] is not self._tail:
            reader = self._new_reader()
        return reader[4]

    # ------------------------------------------------------------ density

    def density(self, X, directional=False):
        """The RCF density estimate at each row (AWS's ``getSimpleDensity``).

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)
        directional : bool, default False
            Also return the density split by dimension and side.

        Returns
        -------
        density : ndarray of shape (n_rows,), or pandas.Series for pandas input
            Higher where the sample is denser around the row; NaN for rows
            without a shingle.
        high, low : ndarray of shape (n_rows, dimensions_), or DataFrames
            Only with ``directional=True``: the part of the density due to
            sample points below the row (``high``: the row lies above
            them, as in :meth:`attribution`) or above it (``low``) in each
            dimension, as AWS's ``getDirectionalDensity``;
            ``high.sum(1) + low.sum(1)`` equals ``density``.

        Notes
        -----
        See :mod:`rcforest._density`. AWS returns 0 until every tree's
        sample is full; here the estimate uses the sample as it is.
        """
        if not isinstance(directional, (bool, np.bool_)):
            raise TypeError(f"directional must be True or False, got {directional!r}")
        values = self._plain_point(X)
        if values is not None:
            # One row: one serial call through the forest's handle, no thread pool.
            status, parts = _density.density_one(self._handle(), values, self.sample_size)
            _raise_if_corrupt(status == _density.CORRUPT)
            if status != _density.INVALID:  # else the general path refuses the row with its message
                return parts if directional else parts[0]
        rows, points = self._batch_points(X)
        measure = np.empty((points.shape[0], 6, points.shape[1]))
        with threads_for(self.n_jobs, points.shape[0]):
            for start in range(0, points.shape[0], _CHUNK):
                part = np.empty((min(_CHUNK, points.shape[0] - start), 6, points.shape[1]))
                _density.interpolation_batch(self._trees, np.ascontiguousarray(points[start : start + _CHUNK]), part)
                measure[start : start + part.shape[0]] = part
        _raise_if_corrupt(np.isnan(measure).any())
        density, high, low = _density.density_from_measure(measure, self.sample_size)
        n = rows.values.shape[0]
        density = self._wrap(rows, self._aligned(n, density), "density")
        if not directional:
            return density
        return density, self._wrap(rows, self._aligned(n, high), "high"), self._wrap(rows, self._aligned(n, low), "low")

    # --------------------------------------------------------- imputation

    def impute(self, X):
        """Fill the missing values (NaN) of each row from the forest.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)
            Rows with NaN (or None, or infinite values) where values are
            missing; in time order when shingling.

        Returns
        -------
        ndarray of shape (n_rows, n_features), or a DataFrame for pandas input
            ``X`` with every missing value replaced by the median over
            trees of each tree's conditional estimate (AWS's
            ``imputeMissingValues``); the other values unchanged.

        Notes
        -----
        With shingling, a row's missing values are estimated from the
        shingle that ends at that row (given the rows before it, which may
        also have missing values); the first ``shingle_size - 1`` rows from
        the first shingle. See :mod:`rcforest._conditional`.
        """
        values = self._plain_point(X)
        if values is not None:
            # One row: one serial call through the forest's handle, no thread pool.
            out = np.empty((1, values.size))
            handle = self._handle()
            status = for_reader(_conditional.impute_one, handle, ARRAY_1D, ARRAY_2D)(handle, values, out)
            _raise_if_corrupt(status == _conditional.CORRUPT)
            if status != _conditional.INVALID:  # else the general path refuses the row with its message
                return out
        rows = self._missing_rows(X)
        values = rows.values
        n, size, width = values.shape[0], self.shingle_size, self.n_features_
        if n < size:
            raise ValueError(f"X has {n} rows, fewer than shingle_size={size}; pass at least {size} consecutive rows")
        gaps = np.isnan(values).any(axis=1)
        ends = np.unique(np.maximum(np.flatnonzero(gaps), size - 1))  # the shingle each row is read from
        out = values.copy()
        if ends.size:
            points = shingle(values, size)[ends - size + 1]
            filled = self._impute_points(points).reshape(ends.size, size, width)
            # Each shingle fills the row it ends at; the first shingle also the rows before it.
            out[ends] = np.where(np.isnan(out[ends]), filled[:, -1], out[ends])
            if ends[0] == size - 1:
                out[: size - 1] = np.where(np.isnan(out[: size - 1]), filled[0, :-1], out[: size - 1])
        if rows.index is None:
            return out
        import pandas as pd  # loaded already: the input was a pandas object

        return pd.DataFrame(out, index=rows.index, columns=rows.columns)

    def _impute_points(self, points):
        """:func:`rcforest._conditional.impute_batch` on absolute points, in chunks."""
        missing = np.isnan(points)
        query = np.where(missing, 0.0, points - self._trees.origin)
        out = np.empty_like(query)
        with threads_for(self.n_jobs, query.shape[0]):
            for start in range(0, query.shape[0], _CHUNK):
                stop = start + _CHUNK
                part = np.empty_like(query[start:stop])
                chunk = np.ascontiguousarray(query[start:stop])
                _conditional.impute_batch(self._trees, chunk, np.ascontiguousarray(missing[start:stop]), part)
                out[start:stop] = part
        _raise_if_corrupt(np.isnan(out).any())
        return self._absolute(out)

    def conditional_summary(self, point, centrality=1.0):
        """What the trees say about a point's missing entries: representatives and their weights.

        Parameters
        ----------
        point : array-like of shape (dimensions_,)
            One point as the trees hold it (see :meth:`near_neighbors`),
            NaN where values are missing; at least one must be missing.
        centrality : float in [0, 1], default 1.0
            1 keeps only the trees' estimates near the point on its known
            entries (distances up to about the median's); 0 keeps them all.

        Returns
        -------
        dict
            ``"points"``: ndarray of shape (m, dimensions_), ``point`` with
            its missing entries set to each representative (the centres of
            the fewest clusters of the estimates that explain their spread,
            at most ``min(2 * dimensions_, 5)``); ``"weights"``: each one's
            share of the estimates kept, largest first; ``"median"``,
            ``"lower"``, ``"upper"`` and ``"mean"``: ndarrays of shape
            (dimensions_,), the median, 10th and 90th percentiles and mean
            over trees of the completed point.

        Notes
        -----
        AWS's ``getConditionalFieldSummary`` and
        ``ConditionalSampleSummarizer``: each tree's estimate (see
        :mod:`rcforest._conditional`), the same points merged with their
        count of trees as weight, sorted by distance on the known entries,
        and those beyond a threshold set by ``centrality`` left out before
        clustering.
        """
        given = self._query_point(point, missing=True)
        query = given - self._trees.origin
        centrality = check_float(centrality, "centrality")
        if centrality > 1.0:
            raise ValueError(f"centrality must be between 0 and 1, got {centrality}")
        missing = np.isnan(query)
        if not missing.any():
            raise ValueError("point has no missing values (NaN); mark the entries to estimate with NaN")
        rows = np.empty((self.num_trees, 1), np.int64)
        distances = np.empty((self.num_trees, 1))
        with threads_for(self.n_jobs, 1):
            _conditional.conditional_batch(
                self._trees, np.where(missing, 0.0, query)[None, :], missing[None, :], rows, distances
            )
        _raise_if_corrupt((rows < 0).any())
        samples = self._trees.store[rows[:, 0]]
        completed = np.where(missing, samples, query)
        ordered = np.sort(completed, axis=0)
        pick = np.vectorize(lambda fraction, i: _conditional.pick_quantile(ordered[:, i], fraction))
        columns = np.arange(query.size)
        origin = self._trees.origin
        summary = {
            "median": np.where(missing, pick(0.5, columns) + origin, given),
            "lower": np.where(missing, pick(_conditional.LOWER, columns) + origin, given),
            "upper": np.where(missing, pick(_conditional.UPPER, columns) + origin, given),
            "mean": np.where(missing, completed.mean(axis=0) + origin, given),
        }
        unique, first, weights = np.unique(samples, axis=0, return_index=True, return_counts=True)
        dist = distances[first, 0]
        order = np.lexsort(tuple(unique[:, i] for i in range(unique.shape[1] - 1, -1, -1)) + (dist,))
        unique, dist, weights = unique[order], dist[order], weights[order].astype(np.float64)
        keep = _typical(dist, weights, centrality)
        max_clusters = min(query.size * _MAX_TYPICAL_PER_DIMENSION, _MAX_TYPICAL, keep)
        centres, shares = summarize_samples(unique[:keep][:, missing], weights[:keep], max_clusters)
        points = np.repeat(given[None, :], len(centres), axis=0)
        points[:, missing] = centres + origin[missing]
        summary["points"] = points
        summary["weights"] = shares
        return summary

    # ----------------------------------------------------------- forecast

    def extrapolate(self, horizon):
        """Forecast the next ``horizon`` rows of a shingled series, with bounds.

        Parameters
        ----------
        horizon : int
            Rows to forecast after the last row the forest was given.

        Returns
        -------
        dict
            ``"value"``, ``"lower"``, ``"upper"``: ndarrays of shape
            (horizon, n_features): each step's median over trees of the
            trees' estimates, and their 10th and 90th percentiles. Each
            step's value joins the shingle from which the next is forecast.

        Raises
        ------
        ValueError
            For a forest without shingles (``shingle_size == 1``) or with
            no data.

        Notes
        -----
        AWS's ``extrapolateFromShingle``: the shingle's newest row treated
        as missing and imputed, one row at a time (see
        :mod:`rcforest._conditional`).
        """
        if self.shingle_size < 2:
            raise ValueError(
                "extrapolate needs a forest of shingles (shingle_size >= 2): it forecasts a series "
                "from its last rows; build the forest with shingle_size > 1"
            )
        self._require_data()
        horizon = check_int(horizon, "horizon", 1, MAX_HORIZON)
        out = np.empty((3, horizon, self.n_features_))
        _raise_if_corrupt(_conditional.extrapolate(self._handle(), out))
        return {"value": out[0], "lower": out[1], "upper": out[2]}


def _typical(distances, weights, centrality):
    """How many of the samples, sorted by distance, AWS's summarizer keeps for ``centrality``.

    The threshold is ``centrality`` times the distance where the weight
    beyond the exact matches passes a third and a half (the later of the
    two), plus ``1 - centrality`` times the largest distance.
    """
    total = weights.sum()
    exact = int(np.searchsorted(distances, 0.0, side="right"))
    remainder = total - weights[:exact].sum()
    threshold = centrality * distances[0]
    current = 0.0
    for j in range(1, len(distances)):
        after = current + weights[j]
        if (current < remainder / 3 <= after) or (current < remainder / 2 <= after):
            threshold = centrality * distances[j]
        current = after
    threshold += (1.0 - centrality) * distances[-1]
    return max(1, int(np.searchsorted(distances, threshold, side="right")))
