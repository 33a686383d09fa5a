"""Many series in one process: a pool of :class:`~rcforest.detector.ThresholdedForest` detectors keyed by entity.

A live service watches thousands of series (hosts, sensors, customers),
each with its own detector. :class:`DetectorPool` makes an entity's
detector when the entity is first seen, feeds it that entity's readings,
and keeps at most ``max_in_memory`` detectors in memory: the one used
least recently is saved to a folder and loaded again, bit-identically,
when its entity sends its next reading.
"""

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from rcforest._core import check_int
from rcforest.detector.thresholded_forest import ThresholdedForest

__all__ = ["DetectorPool", "MAX_KEY_LENGTH", "file_name"]

MAX_KEY_LENGTH = 1024
"""Longest entity key, in characters."""

_SUFFIX = ".rcfd"


def _check_key(entity):
    """Raise ``TypeError`` or ``ValueError`` unless ``entity`` is a usable key: a string or an integer."""
    if isinstance(entity, bool) or not isinstance(entity, (str, int)):
        raise TypeError(f"an entity key must be a string or an integer, got {type(entity).__name__}")
    if isinstance(entity, str) and not 0 < len(entity) <= MAX_KEY_LENGTH:
        raise ValueError(f"an entity key must hold 1 to {MAX_KEY_LENGTH} characters, got {len(entity)}")


def file_name(entity):
    """The name of ``entity``'s saved detector: a SHA-256 of its type and value, never the key itself.

    Parameters
    ----------
    entity : str or int

    Returns
    -------
    str
        64 hexadecimal digits and a suffix, the same in every process, so
        that a pool started later finds the detector; ``"7"`` and ``7`` get
        different names.
    """
    _check_key(entity)
    text = f"{type(entity).__name__}:{entity}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest() + _SUFFIX


class DetectorPool:
    """Independent streaming detectors, one per entity, with the idle ones saved to a folder.

    Parameters
    ----------
    folder : str or os.PathLike
        Where detectors that leave memory are saved (made if missing). A
        folder belongs to one pool: a detector saved there is loaded for its
        entity whatever the pool's ``params``.
    max_in_memory : int, default 1000
        Detectors kept in memory. When a new or reloaded detector goes
        beyond it, the least recently used one is saved and dropped.
    **params
        Arguments of every new :class:`ThresholdedForest`; ``n_jobs``
        defaults to 1 (a pool serves many series on each core).

    Attributes
    ----------
    loads_, saves_ : int
        Detectors loaded from and saved to the folder so far.

    Notes
    -----
    An entity key is a string (1 to :data:`MAX_KEY_LENGTH` characters) or
    an integer. A key never becomes a path: a detector's file is named by
    :func:`file_name`, a hash of the key, and written to a temporary file
    first and then renamed, so that a crash leaves the last complete file.
    Each detector's output is the one a standalone detector with the same
    parameters would give for that entity's readings, however often it was
    saved and loaded in between (see :meth:`ThresholdedForest.save`).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> pool = DetectorPool(tempfile.mkdtemp(), max_in_memory=2, num_trees=20)
    >>> for host in ("a", "b", "c"):
    ...     for value in np.sin(np.arange(300) / 5):
    ...         out = pool.process(host, float(value))
    >>> len(pool), pool.in_memory, pool.saves_
    (3, 2, 1)
    >>> pool.process("a", 0.5)["score"] > 0  # "a" was saved, and is loaded again
    True
    """

    def __init__(self, folder, max_in_memory=1000, **params):
        self.folder = Path(folder)
        self.max_in_memory = check_int(max_in_memory, "max_in_memory", 1)
        params.setdefault("n_jobs", 1)
        ThresholdedForest(**params)  # refuse bad parameters now, not at the first entity
        self.params = params
        self.folder.mkdir(parents=True, exist_ok=True)
        self._detectors = OrderedDict()
        self._known = set()
        self.loads_ = 0
        self.saves_ = 0

    def __repr__(self):
        return f"DetectorPool({str(self.folder)!r}, max_in_memory={self.max_in_memory}, entities={len(self)})"

    def __len__(self):
        """Entities this pool has served, in memory or saved."""
        return len(self._known)

    def __contains__(self, entity):
        _check_key(entity)
        return entity in self._detectors or entity in self._known or self._path(entity).is_file()

    @property
    def in_memory(self):
        """Detectors held in memory now."""
        return len(self._detectors)

    def _path(self, entity):
        return self.folder / file_name(entity)

    def detector(self, entity):
        """The detector of ``entity``: in memory, loaded from the folder, or new.

        Parameters
        ----------
        entity : str or int

        Returns
        -------
        ThresholdedForest
            Kept in memory as the most recently used.
        """
        _check_key(entity)
        detector = self._detectors.get(entity)
        if detector is not None:
            self._detectors.move_to_end(entity)
            return detector
        path = self._path(entity)
        if path.is_file():
            detector = ThresholdedForest.load(path)
            detector.n_jobs = self.params["n_jobs"]
            self.loads_ += 1
        else:
            detector = ThresholdedForest(**self.params)
        self._detectors[entity] = detector
        self._known.add(entity)
        while len(self._detectors) > self.max_in_memory:
            self._save(*self._detectors.popitem(last=False))
        return detector

    def process(self, entity, row):
        """Process one reading of ``entity``: :meth:`ThresholdedForest.process` on its detector.

        Parameters
        ----------
        entity : str or int
        row : float, sequence of floats, dict or pandas.Series

        Returns
        -------
        dict
        """
        return self.detector(entity).process(row)

    def run(self, entity, data):
        """Process rows of ``entity``: :meth:`ThresholdedForest.run` on its detector.

        Parameters
        ----------
        entity : str or int
        data : array-like, pandas Series or DataFrame

        Returns
        -------
        pandas.DataFrame
        """
        return self.detector(entity).run(data)

    def evict(self, entity):
        """Save ``entity``'s detector to the folder and drop it from memory (nothing if it is not in memory)."""
        _check_key(entity)
        detector = self._detectors.pop(entity, None)
        if detector is not None:
            self._save(entity, detector)

    def save_all(self):
        """Save every detector in memory to the folder (they stay in memory): before the process ends."""
        for entity, detector in self._detectors.items():
            self._save(entity, detector)

    def _save(self, entity, detector):
        path = self._path(entity)
        partial = path.with_name(path.name + ".partial")
        detector.save(partial)
        os.replace(partial, path)
        self.saves_ += 1
