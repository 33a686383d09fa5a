"""SageMaker Random Cut Forest hyperparameters: names, ranges, defaults and checks.

=====================  ======================================  ==============
name                   allowed                                 default
=====================  ======================================  ==============
feature_dim            integer in [1, 10000]                   required
num_samples_per_tree   integer in [1, 2048]                    256
num_trees              integer in [50, 1000]                   100
eval_metrics           list of "accuracy",                     both
                       "precision_recall_fscore"
mini_batch_size        1000 (fixed for Random Cut Forest)      1000
=====================  ======================================  ==============

``feature_size`` is read as a deprecated alias of ``feature_dim``. Names
starting with ``_`` (such as SageMaker's ``_tuning_objective_metric``) are
reserved for the platform and ignored.
"""

import json
import numbers
import warnings

__all__ = [
    "DEFAULTS",
    "EVAL_METRICS",
    "MINI_BATCH_SIZE",
    "RANGES",
    "check_hyperparameters",
    "check_value",
    "resolve_aliases",
]

RANGES = {
    "feature_dim": (1, 10000),
    "num_samples_per_tree": (1, 2048),
    "num_trees": (50, 1000),
}
DEFAULTS = {"num_samples_per_tree": 256, "num_trees": 100, "eval_metrics": ["accuracy", "precision_recall_fscore"]}
EVAL_METRICS = ("accuracy", "precision_recall_fscore")
MINI_BATCH_SIZE = 1000
_NAMES = (*RANGES, "eval_metrics", "mini_batch_size")


def _integer(name, value):
    """Read an int from an int, an integral float or a string of digits (hyperparameters.json holds strings)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    elif isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    low, high = RANGES.get(name, (MINI_BATCH_SIZE, MINI_BATCH_SIZE))
    raise ValueError(f"hyperparameter {name} must be an integer in [{low}, {high}], got {value!r}")


def _metrics(value):
    """Read ``eval_metrics`` from a list, a JSON list or a comma-separated string."""
    names = value
    if isinstance(value, str):
        text = value.strip()
        try:
            names = json.loads(text) if text.startswith("[") else text.split(",")
        except ValueError:
            # The SDK sends str(list): "['accuracy', 'precision_recall_fscore']".
            names = text.strip("[]").split(",") if text.endswith("]") else None
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        names = [n.strip().strip("'\"") for n in names]
        if all(n in EVAL_METRICS for n in names):
            return names
    raise ValueError(
        f'hyperparameter eval_metrics must be a list of "accuracy" and/or "precision_recall_fscore", got {value!r}'
    )


def check_value(name, value):
    """Check one hyperparameter and return it with its proper type.

    Parameters
    ----------
    name : str
        A hyperparameter name (``feature_size`` is not accepted here; see
        :func:`check_hyperparameters`).
    value : object
        The value, or its string form as in ``hyperparameters.json``.

    Returns
    -------
    int or list of str

    Raises
    ------
    ValueError
        Naming the hyperparameter and its allowed range.
    """
    if name == "eval_metrics":
        return _metrics(value)
    if name == "mini_batch_size":
        number = _integer(name, value)
        if number != MINI_BATCH_SIZE:
            raise ValueError(f"Random Cut Forest uses a fixed mini_batch_size of {MINI_BATCH_SIZE}, got {number}")
        return number
    if name not in RANGES:
        raise ValueError(f"unknown hyperparameter {name!r}; Random Cut Forest takes {', '.join(_NAMES)}")
    low, high = RANGES[name]
    number = _integer(name, value)
    if not low <= number <= high:
        raise ValueError(f"hyperparameter {name} must be an integer in [{low}, {high}], got {number}")
    return number


def resolve_aliases(hyperparameters, stacklevel=2):
    """Return ``hyperparameters`` with the deprecated ``feature_size`` renamed ``feature_dim``.

    Parameters
    ----------
    hyperparameters : mapping of str to object
    stacklevel : int, default 2
        Of the warning, as for :func:`warnings.warn` called here.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If both names are given.

    Warns
    -----
    FutureWarning
        When ``feature_size`` is used.
    """
    renamed = dict(hyperparameters)
    if renamed.get("feature_size") is not None:
        if renamed.get("feature_dim") is not None:
            raise ValueError("give feature_dim only; feature_size is a deprecated alias of it")
        warnings.warn(
            "hyperparameter feature_size is a deprecated alias; Random Cut Forest calls it feature_dim",
            FutureWarning,
            stacklevel=stacklevel + 1,
        )
        renamed["feature_dim"] = renamed.pop("feature_size")
    return renamed


def check_hyperparameters(hyperparameters):
    """Validate a hyperparameter mapping and fill in SageMaker's defaults.

    Parameters
    ----------
    hyperparameters : mapping of str to object
        Values may be strings, as SageMaker writes them to
        ``hyperparameters.json``. ``None`` values are skipped.

    Returns
    -------
    dict
        ``feature_dim``, ``num_samples_per_tree``, ``num_trees``
        and ``eval_metrics``, with proper types.

    Raises
    ------
    ValueError
        For an unknown name, a value out of range, or a missing ``feature_dim``.

    Warns
    -----
    FutureWarning
        When ``feature_size`` is used for ``feature_dim``.
    """
    given = {k: v for k, v in hyperparameters.items() if v is not None and not str(k).startswith("_")}
    given = resolve_aliases(given, stacklevel=4)
    checked = dict(DEFAULTS)
    checked.update({name: check_value(name, value) for name, value in given.items()})
    checked.pop("mini_batch_size", None)
    if "feature_dim" not in checked:
        low, high = RANGES["feature_dim"]
        raise ValueError(f"hyperparameter feature_dim is required: an integer in [{low}, {high}]")
    return checked
