"""Mergeable reservoir samples: fit a forest from parts of a data set read separately.

:meth:`rcforest.Forest.fit` runs each tree's weighted reservoir (see
:mod:`rcforest._sampler`) over all rows, then builds the tree from the rows
it kept. Here the same reservoir runs over each part of the data on its
own and the parts are merged, with the same result as one pass, bit for
bit:

- Row ``r`` gets, in tree ``t``, the same weight in every reading: the
  generator of tree ``t`` is moved ``r`` draws ahead
  (:func:`rcforest._rng.advance`) and the weight's sequence number is
  ``r``. So a part needs only the number of rows before it.
- A part keeps its *entries*: every row its own reservoir ever admitted,
  with its weight, in row order. A row that one pass over all rows admits
  is among the ``sample_size`` smallest weights of the rows before it, so
  also of its own part's rows before it: the entries hold every row the
  single pass admits.
- Merging two consecutive parts replays their entries, in row order, through
  a fresh reservoir and keeps those admitted. The replay makes the same heap
  operations as one pass over the rows, so the final reservoir, heap layout
  included, equals :func:`rcforest._kernels.select_sample`'s; building from
  it with the generator moved past all rows gives :meth:`Forest.fit`'s trees.

A part's entries number about ``sample_size * (1 + log(rows / sample_size))``
per tree for ``time_decay == 0``; a large decay admits more (every row when
each row outweighs all before it).

Notes
-----
Efraimidis and Spirakis, "Weighted random sampling with a reservoir", 2006:
keeping the smallest keys of a sample is mergeable. The multi-instance
training of Amazon SageMaker's Random Cut Forest merges per-instance
reservoir samples in the same way.
"""

from typing import NamedTuple

import numpy as np
from numba import prange

from rcforest import _kernels
from rcforest._jit import JIT, njit
from rcforest._rng import advance
from rcforest._sampler import admits, draw_weight, heap_push, heap_replace_top
from rcforest._tree import allocate_trees

__all__ = []


class Entries(NamedTuple):
    """The reservoir entries of a run of consecutive rows, per tree.

    Attributes
    ----------
    row_start, row_stop : int
        The rows covered: ``row_start <= r < row_stop``.
    rows : ndarray of int64, shape (num_kept,)
        Sorted global numbers of the rows any tree's entries refer to.
    values : ndarray of float64, shape (num_kept, dim)
        Those rows' values.
    starts : ndarray of int64, shape (num_trees + 1,)
        Tree ``t``'s entries are ``starts[t]:starts[t + 1]``.
    entry_row : ndarray of int64, shape (num_entries,)
        Global row number of each entry, increasing within a tree.
    entry_weight : ndarray of float64, shape (num_entries,)
        Reservoir weight of each entry.
    """

    row_start: int
    row_stop: int
    rows: np.ndarray
    values: np.ndarray
    starts: np.ndarray
    entry_row: np.ndarray
    entry_weight: np.ndarray


@njit(**JIT, parallel=True)
def _admitted_rows(rng, sample_size, num_rows, sequence_start, time_decay, starts, counts, entry_row, entry_weight):
    """Run each tree's reservoir over ``num_rows`` rows and list the rows it admits.

    Parameters
    ----------
    rng : ndarray of uint64, shape (num_trees,)
        Generator states at the first row; not changed.
    sample_size : int
    num_rows : int
    sequence_start : int
        Global number of the first row (its weight's sequence number).
    time_decay : float
    starts : ndarray of int64, shape (num_trees + 1,)
        Tree ``t`` writes its admitted rows to ``starts[t]:starts[t + 1]``,
        as many as fit.
    counts : ndarray of int64, shape (num_trees,)
        Set to the number of rows each tree admits, including any that did
        not fit.
    entry_row : ndarray of int64
        Global numbers of the admitted rows.
    entry_weight : ndarray of float64
        Their weights.
    """
    for i in prange(rng.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        state = rng[t : t + 1].copy()
        weight = np.empty((1, sample_size))
        item = np.empty((1, sample_size), np.int64)
        size = np.zeros(1, np.int32)
        room = starts[t + 1] - starts[t]
        count = 0
        for row in range(num_rows):
            w = draw_weight(state, 0, sequence_start + row, time_decay)
            verdict = admits(weight, size, 0, w)
            if verdict == 0:
                continue
            if verdict == 1:
                heap_push(weight, item, size, 0, w, row)
            else:
                heap_replace_top(weight, item, size, 0, w, row)
            if count < room:
                entry_row[starts[t] + count] = sequence_start + row
                entry_weight[starts[t] + count] = w
            count += 1
        counts[t] = count


@njit(**JIT, parallel=True)
def _replay(starts, entry_weight, heap_weight, heap_entry, heap_size, admitted):
    """Feed each tree's entries, in order, through an empty reservoir.

    Parameters
    ----------
    starts : ndarray of int64, shape (num_trees + 1,)
    entry_weight : ndarray of float64, shape (num_entries,)
    heap_weight : ndarray of float64, shape (num_trees, sample_size)
    heap_entry : ndarray of int64, shape (num_trees, sample_size)
        Filled with the entry numbers each tree keeps, in heap order.
    heap_size : ndarray of int32, shape (num_trees,)
        Zero on entry.
    admitted : ndarray of bool, shape (num_entries,)
        Set for the entries the reservoir admitted when they arrived.
    """
    for i in prange(starts.shape[0] - 1):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        for e in range(starts[t], starts[t + 1]):
            w = entry_weight[e]
            verdict = admits(heap_weight, heap_size, t, w)
            if verdict == 1:
                heap_push(heap_weight, heap_entry, heap_size, t, w, e)
            elif verdict == 2:
                heap_replace_top(heap_weight, heap_entry, heap_size, t, w, e)
            admitted[e] = verdict != 0


def part_entries(values, row_start, seeds, sample_size, time_decay):
    """The reservoir entries of one part of the data.

    Parameters
    ----------
    values : ndarray of float64, shape (num_rows, dim)
        The part's rows (points: shingled already, if at all).
    row_start : int
        Number of rows before the part.
    seeds : ndarray of uint64, shape (num_trees,)
        The trees' generator states before the first row of the data.
    sample_size : int
    time_decay : float

    Returns
    -------
    Entries
    """
    num_trees = seeds.shape[0]
    num_rows = values.shape[0]
    rng = advance(seeds, row_start)
    counts = np.zeros(num_trees, np.int64)
    # Room for twice the expected count without decay, at most one per row; a decay can admit
    # more, and then a second run sizes each tree exactly.
    expected = sample_size * (1.0 + np.log(max(num_rows / sample_size, 1.0)))
    room = min(num_rows, int(2 * expected) + 16)
    starts = np.arange(num_trees + 1, dtype=np.int64) * room
    entry_row = np.empty(starts[-1], np.int64)
    entry_weight = np.empty(starts[-1])
    _admitted_rows(rng, sample_size, num_rows, row_start, time_decay, starts, counts, entry_row, entry_weight)
    if counts.max(initial=0) > room:  # the guess was short: size each tree exactly and run again
        starts = np.concatenate([[0], np.cumsum(counts)])
        entry_row = np.empty(starts[-1], np.int64)
        entry_weight = np.empty(starts[-1])
        _admitted_rows(rng, sample_size, num_rows, row_start, time_decay, starts, counts, entry_row, entry_weight)
    else:
        written = (np.arange(room)[None, :] < counts[:, None]).ravel()
        entry_row, entry_weight = entry_row[written], entry_weight[written]
        starts = np.concatenate([[0], np.cumsum(counts)])
    rows = np.unique(entry_row)
    return Entries(row_start, row_start + num_rows, rows, values[rows - row_start], starts, entry_row, entry_weight)


def _concatenate(first, second):
    """Tree by tree, ``first``'s entries followed by ``second``'s, as flat arrays."""
    num_trees = first.starts.shape[0] - 1
    order = np.concatenate(
        [
            part
            for t in range(num_trees)
            for part in (
                np.arange(first.starts[t], first.starts[t + 1]),
                first.starts[-1] + np.arange(second.starts[t], second.starts[t + 1]),
            )
        ]
        + [np.empty(0, np.int64)]
    )
    starts = first.starts + second.starts
    entry_row = np.concatenate([first.entry_row, second.entry_row])[order]
    entry_weight = np.concatenate([first.entry_weight, second.entry_weight])[order]
    return starts, entry_row, entry_weight


def merge(first, second, sample_size):
    """Merge the entries of two consecutive runs of rows.

    Parameters
    ----------
    first, second : Entries
        ``second`` must start where ``first`` stops.
    sample_size : int

    Returns
    -------
    Entries
        The entries a single part covering both would have.
    """
    if first.row_stop != second.row_start:
        raise ValueError(
            f"cannot merge rows {first.row_start}..{first.row_stop} with rows "
            f"{second.row_start}..{second.row_stop}: they are not consecutive"
        )
    starts, entry_row, entry_weight = _concatenate(first, second)
    num_trees = starts.shape[0] - 1
    admitted = np.zeros(entry_row.shape[0], np.bool_)
    _replay(
        starts,
        entry_weight,
        np.empty((num_trees, sample_size)),
        np.empty((num_trees, sample_size), np.int64),
        np.zeros(num_trees, np.int32),
        admitted,
    )
    new_starts = np.concatenate([[0], np.cumsum(admitted)]).astype(np.int64)[starts]
    entry_row, entry_weight = entry_row[admitted], entry_weight[admitted]
    rows = np.concatenate([first.rows, second.rows])
    values = np.concatenate([first.values, second.values])
    keep = np.isin(rows, entry_row)
    return Entries(first.row_start, second.row_stop, rows[keep], values[keep], new_starts, entry_row, entry_weight)


def build_trees(entries, seeds, sample_size):
    """Build the trees :meth:`Forest.fit` would build from all the rows.

    Parameters
    ----------
    entries : Entries
        Entries of all the rows (``row_start == 0``).
    seeds : ndarray of uint64, shape (num_trees,)
    sample_size : int

    Returns
    -------
    TreeArrays
    """
    if entries.row_start != 0:
        raise ValueError(f"the entries start at row {entries.row_start}; merge in the parts before it")
    num_trees = seeds.shape[0]
    trees = allocate_trees(num_trees, sample_size, entries.values.shape[1], advance(seeds, entries.row_stop))
    heap_entry = np.full((num_trees, sample_size), -1, np.int64)
    admitted = np.zeros(entries.entry_row.shape[0], np.bool_)
    _replay(entries.starts, entries.entry_weight, trees.heap_weight, heap_entry, trees.heap_size, admitted)
    heap_row = np.full((num_trees, sample_size), -1, np.int32)
    filled = heap_entry >= 0
    heap_row[filled] = np.searchsorted(entries.rows, entries.entry_row[heap_entry[filled]])
    return _kernels.build_from_rows(trees, entries.values, heap_row)
