"""Training the way a SageMaker algorithm container does: ``rcforest train``.

The layout under the root (``/opt/ml`` in a container)::

    input/config/hyperparameters.json   every value a string
    input/config/inputdataconfig.json   {"train": {"ContentType": "text/csv;label_size=0"}, ...}
    input/data/train/                   CSV or RecordIO-protobuf files
    input/data/test/                    optional, labelled (1 = anomaly)
    model/model.rcf                     written on success
    output/failure                      the reason, written on failure

Serving the result is ``rcforest serve /opt/ml/model``.
"""

import json
import os
import sys

import numpy as np

from rcforest._core import memory_bytes
from rcforest._files import atomic_write, read_regular, real_folder
from rcforest.sagemaker.hyperparameters import check_hyperparameters
from rcforest.sagemaker.metrics import evaluate, log_metrics, log_to, logger
from rcforest.sagemaker.model import MODEL_FILE

__all__ = ["CHANNELS", "MODEL_FILE", "run_training", "train"]

CHANNELS = ("train", "test")

MAX_CONFIG_BYTES = 1 << 20
"""Largest configuration file read (1 MiB). SageMaker allows 100 hyperparameters of
256-character names and 2,500-character values: about 280 kB."""


def _read_json(path, what):
    """Read a JSON object from ``path``, a regular file of at most :data:`MAX_CONFIG_BYTES`.

    A pipe, a device or a folder is refused before it is opened (so
    training never blocks on it), with a ``ValueError`` naming ``what``.
    """
    if not os.path.exists(path):
        raise ValueError(f"{what} not found at {path}")
    data = read_regular(path, MAX_CONFIG_BYTES, what)
    try:
        document = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{what} at {path} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{what} at {path} must be a JSON object")
    return document


def _channel_files(directory, limit, links_out=False):
    """Every data file under ``directory``, in a stable order, hidden files skipped.

    Symbolic links are followed only while they stay inside the channel
    (anywhere with ``links_out``), each folder is visited once (so link
    loops end), and anything but a regular file is refused, as are more
    than ``limit`` bytes in all. The messages name the offending path,
    never its content.
    """
    top = os.path.realpath(directory)
    found, visited, total = [], set(), 0
    pending = [directory]
    while pending:
        folder = pending.pop()
        real = os.path.realpath(folder)
        if real in visited:
            continue
        visited.add(real)
        entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)
        folders = []
        for entry in entries:
            target = os.path.realpath(entry.path)
            if not links_out and os.path.commonpath([top, target]) != top:
                raise ValueError(f"{entry.path} links outside the channel folder {directory}; copy the file in")
            if entry.is_dir():
                folders.append(entry.path)
                continue
            if not entry.is_file():
                raise ValueError(f"{entry.path} is not a regular file (a pipe, a device or a broken link)")
            total += entry.stat().st_size
            if total > limit:
                raise ValueError(
                    f"the files of channel folder {directory} exceed {limit} bytes, half this machine's memory"
                )
            found.append(entry.path)
        pending.extend(reversed(folders))
    return found


def _read_channel(directory, name, content_type, links_out, n_features):
    """Read every file of one channel; return (features, labels or None).

    Sparse records must declare ``n_features`` (``feature_dim``) as their
    shape, and the channel's rows may hold at most half this machine's
    memory in float64 values, checked as they are read.
    """
    from rcforest.sagemaker import formats

    files = _channel_files(directory, memory_bytes() // 2, links_out)
    if not files:
        raise ValueError(f"channel {name} has no data files in {directory}")
    parts, labels = [], []
    budget = memory_bytes() // 2 // 8
    for path in files:
        data = read_regular(path, memory_bytes() // 2, f"channel {name} file")
        try:
            features, label = formats.read_channel_file(data, name, content_type, n_features, budget)
        except formats.PayloadTooLarge:
            raise ValueError(
                f"channel {name}: the data hold more than {budget} values, half this machine's memory as float64"
            ) from None
        except ValueError as error:
            raise ValueError(f"channel {name}, file {os.path.basename(path)}: {error}") from None
        budget -= features.size
        parts.append(features)
        labels.append(label)
    widths = {part.shape[1] for part in parts}
    if len(widths) > 1:
        raise ValueError(f"channel {name} files have different feature counts {sorted(widths)}")
    if any(label is None for label in labels):
        return np.vstack(parts), None
    return np.vstack(parts), np.concatenate(labels)


def _channels(root):
    """Return {channel: (directory, content type)} from inputdataconfig.json and input/data."""
    data_root = os.path.join(root, "input", "data")
    config_path = os.path.join(root, "input", "config", "inputdataconfig.json")
    config = _read_json(config_path, "inputdataconfig.json") if os.path.exists(config_path) else None
    if config is None:
        names = sorted(n for n in os.listdir(data_root) if not n.startswith(".")) if os.path.isdir(data_root) else []
        config = {name: {} for name in names}
    unknown = sorted(set(config) - set(CHANNELS))
    if unknown:
        raise ValueError(f"Random Cut Forest takes channels train and test, got {', '.join(unknown)}")
    if "train" not in config:
        raise ValueError(f"the train channel is required: put its data in {os.path.join(data_root, 'train')}")
    channels = {}
    for name, settings in config.items():
        if not isinstance(settings, dict):
            raise ValueError(f"inputdataconfig.json: channel {name} must be an object")
        if settings.get("TrainingInputMode", "File") != "File":
            mode = settings["TrainingInputMode"]
            raise ValueError(f"channel {name}: only TrainingInputMode File is supported, got {mode}")
        directory = os.path.join(data_root, name)
        if not os.path.isdir(directory):
            raise ValueError(f"channel {name} is configured but {directory} does not exist")
        content_type = settings.get("ContentType")
        if content_type is not None and not isinstance(content_type, str):
            raise ValueError(
                f"inputdataconfig.json: channel {name}'s ContentType must be a string, got {content_type!r}"
            )
        channels[name] = (directory, content_type)
    return channels


def train(ml_root="/opt/ml", *, links_out=False):
    """Train a forest from a SageMaker training layout and write it to ``model/``.

    Parameters
    ----------
    ml_root : str or os.PathLike, default "/opt/ml"
    links_out : bool, default False
        Follow symbolic links that leave a channel folder, as the local
        estimator's layout (which links the caller's files in) needs;
        ``rcforest train`` refuses them.

    Returns
    -------
    dict of str to float
        The test-channel metrics (empty without a test channel).

    Raises
    ------
    ValueError
        For bad hyperparameters, configuration or data; the message is also
        written to ``output/failure``.

    Notes
    -----
    Configuration and data files are read only when they are regular
    files (a pipe would block training). ``model/`` and ``output/`` must be
    real folders, not symbolic links; ``model/model.rcf`` and
    ``output/failure`` are written to a temporary file renamed into place,
    which replaces a symbolic link there instead of writing where it
    points.
    """
    root = os.fspath(ml_root)
    try:
        return _train(root, links_out)
    except Exception as error:
        _write_failure(root, error)
        raise


def _write_failure(root, error):
    """Write ``error`` to ``output/failure``; return the file's path, or None (logged) if it cannot be written."""
    try:
        output = real_folder(os.path.join(root, "output"), "the output folder")
        path = os.path.join(output, "failure")
        with atomic_write(path) as file:
            file.write(f"{error}\n".encode())
    except (OSError, ValueError) as unwritable:
        logger.error("could not write the failure reason to output/failure: %s", unwritable)
        return None
    return path


def _train(root, links_out):
    raw = _read_json(os.path.join(root, "input", "config", "hyperparameters.json"), "hyperparameters.json")
    params = check_hyperparameters(raw)
    channels = _channels(root)
    features, _ = _read_channel(channels["train"][0], "train", channels["train"][1], links_out, params["feature_dim"])
    if features.shape[1] != params["feature_dim"]:
        raise ValueError(
            f"hyperparameter feature_dim is {params['feature_dim']} but the train data has {features.shape[1]} features"
        )
    logger.info(
        "training %d trees of %d samples on %d records with %d features",
        params["num_trees"],
        params["num_samples_per_tree"],
        features.shape[0],
        features.shape[1],
    )
    forest = _fit(features, params["num_trees"], params["num_samples_per_tree"])
    sizes = forest._trees.heap_size
    logger.info(
        "ForestInfo{num_trees: %d, num_samples_in_forest: %d, num_samples_per_tree: %d}",
        sizes.shape[0],
        sizes.sum(),
        sizes[0],
    )
    metrics = {}
    if "test" in channels:
        test, labels = _read_channel(channels["test"][0], "test", channels["test"][1], links_out, params["feature_dim"])
        if labels is None:
            raise ValueError("the test channel needs labels: text/csv;label_size=1, or label['values'] in RecordIO")
        if test.shape[1] != params["feature_dim"]:
            raise ValueError(f"the test data has {test.shape[1]} features but feature_dim is {params['feature_dim']}")
        metrics = evaluate(forest.score(test), labels, params["eval_metrics"])
        log_metrics(metrics, logger)
    model_dir = real_folder(os.path.join(root, "model"), "the model folder")
    forest.save(os.path.join(model_dir, MODEL_FILE))
    logger.info("model written to %s", os.path.join(model_dir, MODEL_FILE))
    return metrics


def _fit(features, num_trees, num_samples_per_tree):
    """The forest the built-in algorithm trains on ``features``: its layout and score scale (``sampling="sagemaker"``).

    With few records each tree holds a block of consecutive records, at
    least 2 (see :mod:`rcforest._layout`).
    """
    from rcforest.forest import Forest

    if features.shape[0] < 2 * num_trees:
        raise ValueError(
            f"the train channel has {features.shape[0]} records; Random Cut Forest gives each of its {num_trees} "
            f"trees {features.shape[0]} // {num_trees} of them and needs at least 2 per tree: pass at least "
            f"{2 * num_trees} records, or lower num_trees (50 at least)"
        )
    return Forest(num_trees=num_trees, sample_size=num_samples_per_tree, sampling="sagemaker").fit(features)


def run_training(ml_root="/opt/ml"):
    """Train as ``rcforest train`` does: log to stdout, name the failure file in errors.

    Parameters
    ----------
    ml_root : str or os.PathLike, default "/opt/ml"

    Raises
    ------
    ValueError
        For any failure, with the path of ``output/failure`` (or saying
        that it could not be written); the command line reports it in one
        line with exit code 2.
    """
    root = os.fspath(ml_root)
    with log_to(sys.stdout):
        try:
            _train(root, links_out=False)
        except Exception as error:
            failure = _write_failure(root, error)
            if not isinstance(error, (ValueError, TypeError, OSError)):
                raise
            where = f"reason written to {failure}" if failure else "the reason could not be written to output/failure"
            raise ValueError(f"{error} ({where})") from None
