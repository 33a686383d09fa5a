"""Random Cut Forests on Dask: score, fit and run per-entity detectors on data beyond one machine.

Install with ``pip install "rcforest[dask]"`` (``dask[dataframe]`` and
``distributed``). Every function takes a ``dask.dataframe.DataFrame`` and
runs on whatever scheduler is active: a ``distributed.Client`` connected to
a cluster, a ``LocalCluster``, or dask's local threads.

- :func:`score_dataframe` scores a frame partition by partition with a
  fitted :class:`~rcforest.forest.Forest`. The forest is one task of the
  graph that the partitions depend on, so it travels to each worker once,
  not once per partition.
- :func:`fit_dataframe` fits a forest from a frame larger than memory: each
  partition contributes the entries of its per-tree reservoirs, the entries
  are merged in a tree reduction keeping the smallest weights, and the
  trees are built from the merged sample (see :mod:`rcforest._merge`). The
  forest equals ``Forest(...).fit`` on the whole frame for the same seed.
- :func:`fit_score_by_key` runs one
  :class:`~rcforest.thresholded.ThresholdedForest` per entity over that
  entity's rows in time order, and saves each detector's state so the next
  batch continues where this one ended.

Notes
-----
Work is split into ordinary dask tasks, so a worker lost mid-job costs
only a recomputation of its tasks: every input row still gives exactly
one output row.
"""

import copy
import numbers
import operator
import os
import tempfile
from urllib.parse import quote

import dask
import numpy as np
import pandas as pd

from rcforest import _merge
from rcforest._core import as_rows, check_int
from rcforest._jit import threads
from rcforest._rng import tree_seeds
from rcforest.detector import COLUMNS as DETECTOR_COLUMNS
from rcforest.detector import ThresholdedForest
from rcforest.forest import Forest

__all__ = ["fit_dataframe", "fit_score_by_key", "score_dataframe"]

_KINDS = ("score", "codisp", "displacement")
_STATE_SUFFIX = ".rcft"


def _check_frame(ddf):
    """Raise a TypeError unless ``ddf`` is a dask DataFrame."""
    if not hasattr(ddf, "to_delayed") or not hasattr(ddf, "npartitions") or not hasattr(ddf, "columns"):
        raise TypeError(
            f"expected a dask DataFrame, got {type(ddf).__name__}; "
            "convert pandas data with dask.dataframe.from_pandas(frame, npartitions=...)"
        )


def _check_columns(ddf, columns, what="columns"):
    """Return ``columns`` as a list of names present in ``ddf``."""
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    if not columns:
        raise ValueError(f"{what} is empty; name at least one column of {list(ddf.columns)}")
    missing = [c for c in columns if c not in ddf.columns]
    if missing:
        raise ValueError(f"{what} {missing} are not in the frame; its columns are {list(ddf.columns)}")
    return columns


def _scoring_columns(ddf, forest, columns):
    """The columns to score: given, else the forest's feature names, else all columns."""
    if columns is not None:
        columns = _check_columns(ddf, columns)
    elif all(name in ddf.columns for name in forest.feature_names_in_):
        columns = list(forest.feature_names_in_)
    elif len(ddf.columns) == forest.n_features_:
        columns = list(ddf.columns)
    else:
        raise ValueError(
            f"the forest was fitted on columns {forest.feature_names_in_}, which the frame "
            f"(columns {list(ddf.columns)}) lacks; pass columns=[...] with {forest.n_features_} names"
        )
    if len(columns) != forest.n_features_:
        raise ValueError(
            f"columns {columns} are {len(columns)} but the forest was fitted on {forest.n_features_} features"
        )
    return columns


# ------------------------------------------------------------------ scoring


def _score_part(part, forest, columns, kind, n_jobs, tail=None):
    """Score one partition; ``tail`` holds the rows before it, for shingles."""
    scorer = copy.copy(forest)  # shares the trees; only the thread count differs
    scorer.n_jobs = n_jobs
    values = part[columns].to_numpy(dtype=np.float64)
    lead = 0 if tail is None else tail.shape[0]
    if lead:
        values = np.concatenate([tail, values])
    if values.shape[0] == 0:
        scores = np.empty(0)
    elif values.shape[0] < forest.shingle_size:
        scores = np.full(values.shape[0], np.nan)
    else:
        scores = np.asarray(getattr(scorer, kind)(values), dtype=np.float64)
    return pd.Series(scores[lead:], index=part.index, name=kind)


def _is_future(value):
    """Whether ``value`` is a ``distributed.Future``."""
    try:
        from distributed import Future
    except ImportError:  # pragma: no cover - dask without distributed
        return False
    return isinstance(value, Future)


def _next_tail(tail, part, columns, length):
    """The last ``length`` rows of the series up to the end of ``part``."""
    values = part[columns].to_numpy(dtype=np.float64)
    if tail is not None:
        values = np.concatenate([tail, values])
    return values[max(0, values.shape[0] - length) :]


def score_dataframe(ddf, forest, columns=None, *, kind="score", n_jobs=1):
    """Score every row of a dask DataFrame with a fitted forest.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    forest : Forest or distributed.Future
        A fitted forest, or a future of one (for example from
        ``client.scatter(forest, broadcast=True)``).
    columns : list of str, optional
        The feature columns, in the forest's order. By default the forest's
        ``feature_names_in_``, or all columns when the frame has exactly
        ``n_features_`` of them.
    kind : {"score", "codisp", "displacement"}, default "score"
        Which read-only score of :class:`~rcforest.forest.Forest` to compute.
    n_jobs : int or None, default 1
        Threads per partition for the forest's kernels. Dask already runs
        one partition per worker thread; None lets each partition use all
        cores.

    Returns
    -------
    dask.dataframe.Series
        Lazy; one float per input row, with the frame's index and
        partitions, named ``kind``. Higher means more anomalous.

    Notes
    -----
    The forest enters the graph as a single task that the per-partition
    tasks depend on, so each worker receives it once. With
    ``shingle_size > 1`` each partition also receives the last
    ``shingle_size - 1`` rows before it (a small chain of tasks), and the
    scores equal those of ``forest.score`` on the whole series.
    """
    _check_frame(ddf)
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
    n_jobs = None if n_jobs is None else check_int(n_jobs, "n_jobs", 1)
    meta = pd.Series([], dtype="float64", name=kind)
    if isinstance(forest, Forest):
        if forest.points_seen_ == 0:
            raise ValueError("the forest holds no data yet; fit it before scoring")
        columns = _scoring_columns(ddf, forest, columns)
        shingle_size = forest.shingle_size
        shipped = dask.delayed(forest, pure=True)
    elif _is_future(forest):
        if columns is None:
            raise ValueError("pass columns=[...] when the forest is given as a future")
        columns = _check_columns(ddf, columns)
        shingle_size = forest.client.submit(operator.attrgetter("shingle_size"), forest).result()
        shipped = forest
    else:
        raise TypeError(f"forest must be a fitted rcforest.Forest or a future of one, got {type(forest).__name__}")
    if shingle_size == 1:
        return ddf.map_partitions(_score_part, shipped, columns, kind, n_jobs, meta=meta)
    import dask.dataframe as dd

    parts = ddf.to_delayed()
    tails = [None]
    for part in parts[:-1]:
        tails.append(dask.delayed(_next_tail)(tails[-1], part, columns, shingle_size - 1))
    scored = [dask.delayed(_score_part)(part, shipped, columns, kind, n_jobs, tail) for part, tail in zip(parts, tails)]
    return dd.from_delayed(scored, meta=meta, divisions=ddf.divisions, verify_meta=False)


# ------------------------------------------------------------------ fitting


def _part_entries(part, columns, row_start, seeds, sample_size, time_decay):
    """Reservoir entries of one partition (see :func:`rcforest._merge.part_entries`)."""
    frame = part[columns]
    if len(frame) == 0:
        values = np.empty((0, len(columns)))
    else:
        values = as_rows(frame, name=f"the partition starting at row {row_start}").values
    with threads(1):  # dask runs one task per worker thread already
        return _merge.part_entries(values, row_start, seeds, sample_size, time_decay)


def _merge_all(entries, sample_size):
    """Merge a list of consecutive entries, left to right."""
    merged = entries[0]
    with threads(1):
        for other in entries[1:]:
            merged = _merge.merge(merged, other, sample_size)
    return merged


def fit_dataframe(
    ddf,
    columns=None,
    *,
    num_trees=100,
    sample_size=256,
    time_decay=0.0,
    random_state=None,
    n_jobs=None,
    split_every=8,
):
    """Fit a forest from a dask DataFrame, reading each partition where it lives.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Training rows, numeric, without missing values.
    columns : list of str, optional
        Feature columns; all columns by default.
    num_trees, sample_size, time_decay, random_state, n_jobs
        As for :class:`~rcforest.forest.Forest`. ``n_jobs`` is the thread
        count of the returned forest (and of the final build).
    split_every : int, default 8
        How many partitions' entries each merge task combines.

    Returns
    -------
    Forest
        Fitted, equal to ``Forest(num_trees, sample_size, 1, time_decay,
        random_state).fit(ddf[columns].compute())``: the same trees, scores
        and state for :meth:`~rcforest.forest.Forest.update`.

    Notes
    -----
    The frame is read twice: once for the partition lengths (which give each
    row its global number, so that its reservoir weight is the one a single
    pass draws), once for the reservoir entries. Each partition sends only
    its entries and their rows, about ``num_trees * sample_size * (1 +
    log(rows / sample_size))`` entries with ``time_decay == 0``. The merges
    form a tree of ``split_every``-way tasks; the trees are built on the
    client from the merged sample. With ``random_state=None`` a seed is drawn
    on the client, so every partition uses the same one. Shingling across
    partitions is not supported here: pass ``shingle_size > 1`` data already
    shingled, or fit a streaming forest with :meth:`Forest.update`.
    """
    _check_frame(ddf)
    columns = list(ddf.columns) if columns is None else _check_columns(ddf, columns)
    forest = Forest(num_trees, sample_size, 1, time_decay, random_state, n_jobs=n_jobs)
    split_every = check_int(split_every, "split_every", 2)
    if forest.random_state is None:
        forest.random_state = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    seeds = tree_seeds(num_trees, forest.random_state)
    parts = ddf[columns].to_delayed()
    (lengths,) = dask.compute([dask.delayed(len)(part) for part in parts])
    if sum(lengths) == 0:
        raise ValueError("the frame has no rows; pass at least one row to fit on")
    starts = np.concatenate([[0], np.cumsum(lengths)])
    level = [
        dask.delayed(_part_entries)(part, columns, int(start), seeds, forest.sample_size, forest.time_decay)
        for part, start in zip(parts, starts)
    ]
    while len(level) > 1:
        level = [
            dask.delayed(_merge_all)(level[i : i + split_every], forest.sample_size)
            for i in range(0, len(level), split_every)
        ]
    (entries,) = dask.compute(level[0])
    return _assemble(forest, entries, seeds, columns)


def _assemble(forest, entries, seeds, columns):
    """The forest built from ``entries``, as :meth:`Forest.fit` leaves it, with ``forest``'s parameters."""
    with threads(forest.n_jobs):
        trees = _merge.build_trees(entries, seeds, forest.sample_size)
    parts = forest._parts()._replace(
        columns=[str(c) for c in columns],
        points_seen=int(entries.row_stop),
        trees=trees,
        tail=np.empty((0, len(columns))),
    )
    return Forest._from_parts(parts, n_jobs=forest.n_jobs)


# ------------------------------------------------------------ per entity


def _state_path(root, entity):
    """Where the state of ``entity`` lives under ``root``: its URL-quoted key plus a suffix.

    A key that is not a string is prefixed with its kind and ``=`` (which
    quoting never leaves in a string key), so that ``1`` and ``"1"`` keep
    separate files.
    """
    name = quote(str(entity), safe="")
    if not isinstance(entity, str):
        name = f"{_key_kind(entity)}={name}"
    return f"{root.rstrip('/')}/{name}{_STATE_SUFFIX}"


def _key_kind(entity):
    """``int``, ``float``, ``bool`` or the type's name, for a key that is not a string."""
    if isinstance(entity, (bool, np.bool_)):
        return "bool"
    if isinstance(entity, numbers.Integral):
        return "int"
    if isinstance(entity, numbers.Real):
        return "float"
    return type(entity).__name__


def _load_detector(state_in, entity, params):
    """The entity's saved detector from ``state_in``, or a new one."""
    if state_in is None:
        return ThresholdedForest(**params)
    import fsspec

    fs, root = fsspec.core.url_to_fs(state_in)
    path = _state_path(root, entity)
    if not fs.exists(path):
        return ThresholdedForest(**params)
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, "state" + _STATE_SUFFIX)
        with open(local, "wb") as file:
            file.write(fs.cat_file(path))
        return ThresholdedForest.load(local)


def _save_detector(state_out, entity, detector):
    """Write ``detector`` as the state of ``entity`` under ``state_out``, replacing any file there."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(state_out)
    fs.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, "state" + _STATE_SUFFIX)
        detector.save(local)
        with open(local, "rb") as file:
            fs.pipe_file(_state_path(root, entity), file.read())


def _detector_meta(key_dtype, time_dtype, key, time_column):
    """The empty output frame of :func:`fit_score_by_key`, with its dtypes."""
    columns = {key: pd.Series([], dtype=key_dtype), time_column: pd.Series([], dtype=time_dtype)}
    columns.update({name: pd.Series([], dtype=dtype) for name, dtype in DETECTOR_COLUMNS.items()})
    return pd.DataFrame(columns)


def _detect_part(part, key, time_column, columns, params, state_in, state_out):
    """Run each entity of ``part`` through its detector, in time order."""
    meta = _detector_meta(part.dtypes[key], part.dtypes[time_column], key, time_column)
    outputs = [meta]
    for entity, rows in part.groupby(key, sort=True, dropna=False):
        rows = rows.sort_index(kind="stable").sort_values(time_column, kind="stable")
        detector = _load_detector(state_in, entity, params)
        out = detector.run(rows[columns])
        if state_out is not None:
            _save_detector(state_out, entity, detector)
        out.insert(0, time_column, rows[time_column].to_numpy())
        out.insert(0, key, rows[key].to_numpy())
        outputs.append(out)
    result = pd.concat(outputs)
    return result.astype(meta.dtypes.to_dict())


def fit_score_by_key(
    ddf,
    key="entity",
    time_column="timestamp",
    columns=None,
    *,
    state_in=None,
    state_out=None,
    shuffle_method=None,
    **detector_params,
):
    """Run one streaming detector per entity and report on every row.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Rows of many series, with a key column naming the entity (host,
        card, sensor...) and a time column.
    key : str, default "entity"
    time_column : str, default "timestamp"
        Each entity's rows are processed in this column's order; equal
        times are taken in index order.
    columns : list of str, optional
        The value columns fed to the detectors; by default every column
        but ``key`` and ``time_column``.
    state_in : str, optional
        Folder or fsspec URL (``s3://bucket/states``) holding the detectors
        saved by a previous batch; entities without a saved state start
        afresh. It is only read, so a task run twice reads the same state.
    state_out : str, optional
        Where to save each entity's detector after this batch, one
        :meth:`ThresholdedForest.save` file per entity named after the
        URL-quoted key (prefixed with ``int=``, ``float=``... for a key that
        is not a string, so that ``1`` and ``"1"`` stay apart). Use a new
        location per batch (for example ``states/batch-0042``) and pass it
        as ``state_in`` next time.
    shuffle_method : str, optional
        Passed to ``ddf.shuffle`` (``"tasks"`` or ``"p2p"``); dask's
        default when None.
    **detector_params
        Parameters of :class:`~rcforest.thresholded.ThresholdedForest`,
        the same for every entity (``n_jobs`` defaults to 1 here). They
        apply to entities without a saved state; saved ones keep theirs.

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; one row per input row, with its index, the key and time
        columns and the detector's outputs (``score``, ``grade``,
        ``threshold``, ``confidence``, ``attribution``, ``expected_value``,
        ``start_of_anomaly``, ``imputed``). Rows are grouped by entity,
        in time order within each.

    Notes
    -----
    The rows are shuffled so that each entity lives in one partition;
    each partition then runs its entities one after another. The output
    for an entity equals ``ThresholdedForest(**detector_params).run`` on its
    time-ordered rows, and a batch that starts from ``state_in`` continues
    bit-identically where the previous one stopped. State files are written
    whole, so a task that is retried after a lost worker overwrites them
    with the same content.
    """
    _check_frame(ddf)
    key, time_column = _check_columns(ddf, [key, time_column], "key and time_column")
    if columns is None:
        columns = [c for c in ddf.columns if c not in (key, time_column)]
    columns = _check_columns(ddf, columns)
    params = {"n_jobs": 1, **detector_params}
    ThresholdedForest(**params)  # fail early on bad parameters
    meta = _detector_meta(ddf.dtypes[key], ddf.dtypes[time_column], key, time_column)
    shuffled = ddf.shuffle(on=key, shuffle_method=shuffle_method) if ddf.npartitions > 1 else ddf
    return shuffled.map_partitions(_detect_part, key, time_column, columns, params, state_in, state_out, meta=meta)
