"""A forest's files and pickles: :meth:`Forest.save`, :meth:`Forest.load` and the parts behind them.

:class:`ForestFiles` is a base of :class:`rcforest.Forest`. A forest's state
beyond its constructor arguments is read as :class:`rcforest._state.ForestParts`
(``_parts``) and a forest is made from parts (``_from_parts``); the model file
and pickles go through them.
"""

import os

from rcforest import _format, _state
from rcforest._core import names_are_given, saved_named
from rcforest._store import pack

__all__ = ["ForestFiles"]


class ForestFiles:
    """Saving, loading and pickling of :class:`rcforest.Forest`."""

    def __getstate__(self):
        """Pickle with the point store packed (:func:`rcforest._store.pack`): forests in the same state pickle alike."""
        if self._trees is not None:
            self._trees = pack(self._trees)
        return {name: value for name, value in self.__dict__.items() if name != "_reader"}

    def __setstate__(self, state):
        """Unpickle; a forest pickled before columns were matched by name gets the rule of :meth:`_from_parts`.

        A forest pickled before ``sampling`` existed used the reservoir.
        """
        self._reader = None
        self.__dict__.update(state)
        self.__dict__.setdefault("sampling", "reservoir")
        if "_named" not in state:
            self._named = names_are_given(self.feature_names_in_)

    def _parts(self):
        """The forest's state as :class:`rcforest._state.ForestParts`: see :meth:`_from_parts`.

        The point store is cut down to the points the trees hold first.
        """
        if self._trees is not None:
            self._trees = pack(self._trees)
        params = {name: getattr(self, name) for name in _state.PARAMS}
        return _state.ForestParts(
            params, self.feature_names_in_, self.points_seen_, self._trees, self._tail, self._named
        )

    @classmethod
    def _from_parts(cls, parts, n_jobs=None):
        """Build a forest from its parts, the one way to make a forest from a saved or merged state.

        Shared with the detector and the Dask fit, which read a forest's state
        with :meth:`_parts` and never set its fields themselves.

        Parameters
        ----------
        parts : rcforest._state.ForestParts
            The trees are used as they are, not copied.
        n_jobs : int or None
            As for the constructor.

        Returns
        -------
        Forest
        """
        forest = cls(**parts.params, n_jobs=n_jobs)
        if parts.trees is not None:
            forest._trees = parts.trees
            forest._tail = parts.tail
            forest.n_features_ = len(parts.columns)
            forest.feature_names_in_ = list(parts.columns)
            forest._named = saved_named(parts.named, parts.columns)
            forest.points_seen_ = parts.points_seen
        return forest

    def save(self, path):
        """Write the forest to ``path`` in rcforest's versioned model format.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; ``.rcf`` is the usual suffix.

        Notes
        -----
        The file is a zip of numpy arrays plus JSON metadata, read back with
        ``allow_pickle=False``: loading it runs no code. The trees are kept as
        their links, cuts and leaf masses and one table of their distinct
        points (:mod:`rcforest._stored`); loading rebuilds the boxes and
        checks every tree, and the loaded forest continues bit-identically.
        """
        _format.write(os.fspath(path), *_state.to_arrays(self._parts()), _state.VERSION)

    @classmethod
    def load(cls, path):
        """Read a forest written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        Forest

        Raises
        ------
        ValueError
            If the file is not an rcforest model, comes from an incompatible
            format version, or fails the structural checks.
        """
        path = os.fspath(path)
        params, arrays, version = _format.read(path, _state.READ_VERSIONS)
        try:
            return cls._from_parts(_state.from_arrays(params, arrays, version))
        except ValueError as error:
            raise ValueError(f"{path} is not a valid rcforest model: {error}") from None
