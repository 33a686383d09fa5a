"""Local stand-ins for the SageMaker SDK's ``RandomCutForest`` and ``Estimator``.

Training runs in this process through the same code as ``rcforest train``
(:func:`rcforest.sagemaker.container.train`): ``fit`` lays out a SageMaker
training directory (``input/config``, ``input/data/<channel>``) in a temporary
folder, trains, and reads the model back. Data live on local disk, where the
SDK would use S3: ``record_set`` writes RecordIO-protobuf shards and a
manifest to a local folder, and channels are local paths or ``file://`` URIs.
``deploy`` serves the model on 127.0.0.1 in a background thread.
"""

import contextlib
import datetime
import json
import os
import sys
import tempfile

import numpy as np

from rcforest.sagemaker import formats
from rcforest.sagemaker.container import train
from rcforest.sagemaker.hyperparameters import MINI_BATCH_SIZE, check_value, resolve_aliases
from rcforest.sagemaker.metrics import log_to
from rcforest.sagemaker.model import MODEL_FILE
from rcforest.sagemaker.predictor import Predictor, RandomCutForestPredictor, start_endpoint, stop_endpoint

__all__ = ["Estimator", "RandomCutForest", "RecordSet", "TrainingInput", "TrainingJob"]


def _local_path(uri):
    """Return the local path of ``uri`` (a path or ``file://`` URI); refuse S3 URIs."""
    uri = os.fspath(uri)
    if uri.startswith("s3://"):
        raise ValueError(
            f"rcforest trains locally and cannot read {uri}; download the data and pass a local path or file:// URI"
        )
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if not os.path.exists(uri):
        raise FileNotFoundError(f"no training data at {uri}")
    return uri


class TrainingInput:
    """A training channel: where its data are and how they are encoded, as ``sagemaker.inputs.TrainingInput``.

    Parameters
    ----------
    s3_data : str
        A local folder, file or ``file://`` URI (S3 URIs are refused at fit).
    distribution : str, optional
        Accepted for compatibility.
    content_type : str, optional
        ``"text/csv;label_size=0"``, ``"text/csv;label_size=1"`` or
        ``"application/x-recordio-protobuf"``; guessed from the data when None.
    s3_data_type : {"S3Prefix", "ManifestFile"}, default "S3Prefix"
        ``"ManifestFile"`` means ``s3_data`` is a manifest listing the files.
    **kwargs
        Other ``TrainingInput`` arguments, accepted and unused.
    """

    def __init__(self, s3_data, distribution=None, content_type=None, s3_data_type="S3Prefix", **kwargs):
        source = {"S3DataType": s3_data_type, "S3Uri": s3_data}
        if distribution:
            source["S3DataDistributionType"] = distribution
        self.config = {"DataSource": {"S3DataSource": source}}
        if content_type:
            self.config["ContentType"] = content_type


class RecordSet:
    """RecordIO-protobuf training data on local disk, as ``sagemaker.amazon.amazon_estimator.RecordSet``.

    Parameters
    ----------
    s3_data : str
        Local path of the manifest (or folder) holding the records.
    num_records : int
    feature_dim : int
    s3_data_type : {"ManifestFile", "S3Prefix"}, default "ManifestFile"
    channel : str, default "train"
    """

    def __init__(self, s3_data, num_records, feature_dim, s3_data_type="ManifestFile", channel="train"):
        self.s3_data = s3_data
        self.num_records = num_records
        self.feature_dim = feature_dim
        self.s3_data_type = s3_data_type
        self.channel = channel

    def __repr__(self):
        return f"RecordSet(s3_data={self.s3_data!r}, num_records={self.num_records}, channel={self.channel!r})"

    def records_s3_input(self):
        """Return the :class:`TrainingInput` of this record set."""
        return TrainingInput(
            self.s3_data, distribution="ShardedByS3Key", content_type=formats.RECORDIO, s3_data_type=self.s3_data_type
        )

    def data_channel(self):
        """Return ``{channel: TrainingInput}`` for ``fit``."""
        return {self.channel: self.records_s3_input()}


def _channel_source(value):
    """Return (files, content type) for a channel given as a path, TrainingInput, SDK TrainingInput or RecordSet."""
    if isinstance(value, RecordSet):
        value = value.records_s3_input()
    config = getattr(value, "config", None)
    if config is None:
        config = {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": value}}}
    source = config["DataSource"]["S3DataSource"]
    path = _local_path(source["S3Uri"])
    if source.get("S3DataType") == "ManifestFile":
        files = _manifest_files(path)
    elif os.path.isdir(path):
        files = [
            os.path.join(root, name)
            for root, _, names in sorted(os.walk(path))
            for name in sorted(names)
            if not name.startswith(".")
        ]
    else:
        files = [path]
    return files, config.get("ContentType")


def _manifest_files(path):
    """Read a SageMaker manifest: ``[{"prefix": ...}, "relative/key", ...]``."""
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
        prefix = _local_path(manifest[0]["prefix"])
        return [os.path.join(prefix, key) for key in manifest[1:]]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ValueError(f"{path} is not a manifest file ([{{'prefix': ...}}, key, ...]): {error}") from None


class TrainingJob:
    """The finished local training job, as the SDK's ``estimator.latest_training_job``.

    Parameters
    ----------
    job_name : str
    ml_root : str
        The SageMaker training layout the job ran in.

    Attributes
    ----------
    job_name, name : str
    ml_root : str
    """

    def __init__(self, job_name, ml_root):
        self.job_name = job_name
        self.name = job_name
        self.ml_root = ml_root

    def __str__(self):
        return self.job_name

    def __repr__(self):
        return f"TrainingJob(job_name={self.job_name!r}, ml_root={self.ml_root!r})"


def _job_name(base):
    """Return ``base`` with a timestamp, as SageMaker names jobs."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    return f"{base}-{stamp}"


class Estimator:
    """Train Random Cut Forest locally through the generic estimator interface of the SageMaker SDK.

    Parameters
    ----------
    image_uri : str, optional
        Accepted for compatibility; the algorithm is always Random Cut Forest.
    role, instance_type : optional
        Accepted for compatibility and unused.
    instance_count : int, optional
        The number of shards :meth:`RandomCutForest.record_set` writes; training runs in this process.
    hyperparameters : dict, optional
        As for :meth:`set_hyperparameters`.
    output_path : str, optional
        A local folder for the models (``<output_path>/<job_name>/model/``);
        S3 URIs and None mean a temporary folder.
    base_job_name : str, optional
        Prefix of job and endpoint names.
    **kwargs
        Other SDK estimator arguments (``sagemaker_session``, ``tags``,
        SDK v1's ``train_instance_count``, ...), accepted and unused.

    Attributes
    ----------
    model_data : str
        Path of the trained model file, after :meth:`fit`.
    test_metrics : dict of str to float
        Metrics on the test channel after :meth:`fit` (empty without one).
    latest_training_job : TrainingJob
        The last job run by :meth:`fit` (``.job_name``, ``.ml_root``).
    forest : rcforest.Forest
        The trained forest, for scores, attributions or streaming updates.

    Notes
    -----
    Training layouts, models and record sets stay in their folders (the
    temporary ones included) after the estimator is gone, as S3 objects would.

    Examples
    --------
    >>> est = Estimator(image_uri=None, role=None, instance_count=1, instance_type="local")  # doctest: +SKIP
    >>> est.set_hyperparameters(num_samples_per_tree=200, num_trees=50, feature_dim=1)  # doctest: +SKIP
    >>> est.fit({"train": TrainingInput("data/train.csv", content_type="text/csv;label_size=0")})  # doctest: +SKIP
    """

    _predictor_cls = Predictor
    _default_job_name = "randomcutforest"

    def __init__(
        self,
        image_uri=None,
        role=None,
        instance_count=None,
        instance_type=None,
        *,
        hyperparameters=None,
        output_path=None,
        base_job_name=None,
        **kwargs,
    ):
        self.image_uri = image_uri if image_uri is not None else kwargs.get("image_name")
        self.role = role
        # SDK v1 spelled these train_instance_count and train_instance_type.
        self.instance_count = instance_count if instance_count is not None else kwargs.get("train_instance_count")
        self.instance_type = instance_type if instance_type is not None else kwargs.get("train_instance_type")
        self.output_path = output_path
        self.base_job_name = base_job_name
        self._hyperparameters = {}
        self.model_data = None
        self.test_metrics = None
        self.latest_training_job = None
        self._forest = None
        self._endpoint_name = None
        if hyperparameters:
            self.set_hyperparameters(**hyperparameters)

    # ------------------------------------------------------------ hyperparameters

    def set_hyperparameters(self, **kwargs):
        """Check and set hyperparameters by their SageMaker names.

        Parameters
        ----------
        **kwargs
            ``feature_dim``, ``num_samples_per_tree``, ``num_trees``,
            ``eval_metrics`` or ``mini_batch_size`` (1000 only); strings are
            read as numbers. ``feature_size`` is a deprecated alias of
            ``feature_dim``.

        Raises
        ------
        ValueError
            Naming the hyperparameter and its allowed range.
        """
        kwargs = resolve_aliases(kwargs, stacklevel=3)
        checked = {name: check_value(name, value) for name, value in kwargs.items() if value is not None}
        self._hyperparameters.update(checked)

    def hyperparameters(self):
        """Return the hyperparameters as SageMaker sends them: a dict of strings.

        Returns
        -------
        dict of str to str
        """
        return {
            name: json.dumps(value) if isinstance(value, list) else str(value)
            for name, value in self._hyperparameters.items()
        }

    # ------------------------------------------------------------------- training

    def _channels(self, inputs):
        if isinstance(inputs, RecordSet):
            inputs = [inputs]
        if isinstance(inputs, list):
            return {record_set.channel: record_set for record_set in inputs}
        if isinstance(inputs, dict):
            return dict(inputs)
        if inputs is None:
            raise ValueError('fit needs training data: fit({"train": path_or_training_input})')
        return {"train": inputs}

    def fit(self, inputs=None, wait=True, logs=True, job_name=None, **kwargs):
        """Train on local data, as a SageMaker training job would.

        Parameters
        ----------
        inputs : str, TrainingInput, RecordSet, list of RecordSet or dict
            ``{"train": ..., "test": ...}``; each channel a local folder or
            file, a ``file://`` URI, a :class:`TrainingInput` (or the SDK's)
            or a :class:`RecordSet`. A single value is the train channel.
        wait : bool, default True
            Accepted for compatibility; training always finishes before fit returns.
        logs : bool or str, default True
            Print the training log (with the ``#test_score`` metric lines) to stdout.
        job_name : str, optional
        **kwargs
            Other SDK ``fit`` arguments, accepted and unused.

        Returns
        -------
        None

        Raises
        ------
        ValueError
            With the reason the training job would have failed.
        """
        channels = self._channels(inputs)
        self._prepare(channels)
        job_name = job_name or _job_name(self.base_job_name or self._default_job_name)
        root = self._job_root(job_name)
        self._lay_out(root, channels)
        with log_to(sys.stdout) if logs else contextlib.nullcontext():
            metrics = train(root, links_out=True)  # the layout links the caller's files in
        from rcforest.forest import Forest

        self.model_data = os.path.join(root, "model", MODEL_FILE)
        self._forest = Forest.load(self.model_data)
        self.test_metrics = metrics
        self.latest_training_job = TrainingJob(job_name, root)

    def _prepare(self, channels):
        """Hook for subclasses to derive hyperparameters from the channels."""

    def _job_root(self, job_name):
        if self.output_path and not str(self.output_path).startswith("s3://"):
            root = os.path.join(_strip_file(self.output_path), job_name)
            os.makedirs(root, exist_ok=False)
            return root
        return tempfile.mkdtemp(prefix=f"{job_name}-")

    def _lay_out(self, root, channels):
        """Write the SageMaker training layout for ``channels`` under ``root``."""
        config_dir = os.path.join(root, "input", "config")
        os.makedirs(config_dir, exist_ok=True)
        data_config = {}
        for name, value in channels.items():
            files, content_type = _channel_source(value)
            directory = os.path.join(root, "input", "data", name)
            os.makedirs(directory, exist_ok=True)
            for number, path in enumerate(files):
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"channel {name}: no file at {path}")
                os.symlink(
                    os.path.abspath(path), os.path.join(directory, f"part-{number:05d}-{os.path.basename(path)}")
                )
            data_config[name] = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
            if content_type:
                data_config[name]["ContentType"] = content_type
        with open(os.path.join(config_dir, "hyperparameters.json"), "w", encoding="utf-8") as file:
            json.dump(self.hyperparameters(), file)
        with open(os.path.join(config_dir, "inputdataconfig.json"), "w", encoding="utf-8") as file:
            json.dump(data_config, file)

    @property
    def forest(self):
        """rcforest.Forest: the trained forest (after :meth:`fit`)."""
        self._require_fit()
        return self._forest

    def _require_fit(self):
        if self._forest is None:
            raise ValueError("the estimator is not trained yet; call fit first")

    # ------------------------------------------------------------------- hosting

    def deploy(
        self,
        initial_instance_count=None,
        instance_type=None,
        serializer=None,
        deserializer=None,
        endpoint_name=None,
        **kwargs,
    ):
        """Serve the trained model on 127.0.0.1 (a free port) in a background thread.

        Parameters
        ----------
        initial_instance_count, instance_type : optional
            Accepted for compatibility and unused.
        serializer, deserializer : optional
            Passed to the predictor; its defaults otherwise.
        endpoint_name : str, optional
            Defaults to the job name.
        **kwargs
            Other SDK ``deploy`` arguments, accepted and unused.

        Returns
        -------
        Predictor
            :class:`RandomCutForestPredictor` for :class:`RandomCutForest`.
        """
        self._require_fit()
        endpoint_name = endpoint_name or self.latest_training_job.job_name
        start_endpoint(self._forest, endpoint_name)
        self._endpoint_name = endpoint_name
        return self._predictor_cls(endpoint_name, serializer=serializer, deserializer=deserializer)

    def delete_endpoint(self):
        """Stop the endpoint started by :meth:`deploy` (the SDK v1 call)."""
        if self._endpoint_name is not None:
            stop_endpoint(self._endpoint_name)
            self._endpoint_name = None


def _strip_file(path):
    """Drop a ``file://`` prefix."""
    path = os.fspath(path)
    return path[len("file://") :] if path.startswith("file://") else path


def _hyperparameter(name):
    """A property reading and checking hyperparameter ``name``, as the SDK's ``Hyperparameter`` descriptor."""

    def get(self):
        return self._hyperparameters.get(name)

    def set(self, value):
        if value is None:
            self._hyperparameters.pop(name, None)
        else:
            self.set_hyperparameters(**{name: value})

    return property(get, set, doc=f"The {name} hyperparameter (None when unset).")


class RandomCutForest(Estimator):
    """Local stand-in for ``sagemaker.RandomCutForest`` (the built-in algorithm's estimator).

    Parameters
    ----------
    role, instance_type : optional
        Accepted for compatibility and unused.
    instance_count : int, optional
        The number of shards :meth:`RandomCutForest.record_set` writes; training runs in this process.
    num_samples_per_tree : int, optional
        Points per tree, in [1, 2048]; SageMaker's default is 256.
    num_trees : int, optional
        Trees, in [50, 1000]; SageMaker's default is 100.
    eval_metrics : list of str, optional
        ``"accuracy"`` and/or ``"precision_recall_fscore"`` for the test channel.
    data_location : str, optional
        Local folder for :meth:`record_set` data; S3 URIs and None mean a
        temporary folder.
    **kwargs
        As for :class:`Estimator`.

    Examples
    --------
    >>> rcf = RandomCutForest(role=None, instance_count=1, instance_type="local",
    ...                       num_samples_per_tree=512, num_trees=50)  # doctest: +SKIP
    >>> rcf.fit(rcf.record_set(train_array))  # doctest: +SKIP
    >>> predictor = rcf.deploy(initial_instance_count=1, instance_type="local")  # doctest: +SKIP
    >>> records = predictor.predict(test_array)  # doctest: +SKIP
    >>> records[0].label["score"].float32_tensor.values[0]  # doctest: +SKIP
    """

    _predictor_cls = RandomCutForestPredictor
    MINI_BATCH_SIZE = MINI_BATCH_SIZE

    def __init__(
        self,
        role=None,
        instance_count=None,
        instance_type=None,
        num_samples_per_tree=None,
        num_trees=None,
        eval_metrics=None,
        *,
        data_location=None,
        **kwargs,
    ):
        super().__init__(kwargs.pop("image_uri", None), role, instance_count, instance_type, **kwargs)
        self.data_location = data_location
        self.set_hyperparameters(
            num_samples_per_tree=num_samples_per_tree, num_trees=num_trees, eval_metrics=eval_metrics
        )

    num_samples_per_tree = _hyperparameter("num_samples_per_tree")
    num_trees = _hyperparameter("num_trees")
    eval_metrics = _hyperparameter("eval_metrics")
    feature_dim = _hyperparameter("feature_dim")

    def record_set(self, train, labels=None, channel="train", encrypt=False, distribution="ShardedByS3Key"):
        """Write an array to local RecordIO-protobuf shards and return their :class:`RecordSet`.

        Parameters
        ----------
        train : ndarray of shape (n_records, n_features)
            float32, float64 or integer values.
        labels : ndarray of shape (n_records,), optional
            1 for an anomaly, 0 otherwise (for the test channel).
        channel : str, default "train"
        encrypt, distribution : optional
            Accepted for compatibility and unused.

        Returns
        -------
        RecordSet
            Points to a manifest listing one shard per instance.
        """
        train = np.asarray(train)
        if train.ndim != 2:
            raise ValueError(f"train must be a 2-D array (records, features), got shape {train.shape}")
        if self.data_location and not str(self.data_location).startswith("s3://"):
            folder = os.path.join(_strip_file(self.data_location), _job_name(f"{type(self).__name__}-{channel}"))
            os.makedirs(folder)
        else:
            folder = tempfile.mkdtemp(prefix=f"rcforest-{channel}-")
        shards = max(1, min(int(self.instance_count or 1), train.shape[0]))
        keys = []
        for number, rows in enumerate(np.array_split(np.arange(train.shape[0]), shards)):
            keys.append(f"matrix_{number}.pbr")
            with open(os.path.join(folder, keys[-1]), "wb") as file:
                formats.write_dense_records(file, train[rows], None if labels is None else np.asarray(labels)[rows])
        manifest = os.path.join(folder, ".amazon.manifest")
        with open(manifest, "w", encoding="utf-8") as file:
            json.dump([{"prefix": f"file://{folder}/"}, *keys], file)
        return RecordSet(manifest, num_records=train.shape[0], feature_dim=train.shape[1], channel=channel)

    def fit(self, records=None, mini_batch_size=None, wait=True, logs=True, job_name=None, **kwargs):
        """Train on record sets (or any channels), as ``RandomCutForest.fit`` does.

        Parameters
        ----------
        records : RecordSet, list of RecordSet or dict
            From :meth:`record_set`; the train set's ``feature_dim`` sets the
            hyperparameter.
        mini_batch_size : int, optional
            Only 1000, Random Cut Forest's fixed value, is accepted.
        wait, logs, job_name, **kwargs
            As for :meth:`Estimator.fit`.

        Raises
        ------
        ValueError
            For a ``mini_batch_size`` other than 1000, or a failed training.
        """
        if mini_batch_size is not None and mini_batch_size != MINI_BATCH_SIZE:
            raise ValueError(f"Random Cut Forest uses a fixed mini_batch_size of {MINI_BATCH_SIZE}")
        self._hyperparameters["mini_batch_size"] = MINI_BATCH_SIZE
        super().fit(records, wait=wait, logs=logs, job_name=job_name, **kwargs)

    def _prepare(self, channels):
        train_set = channels.get("train")
        if isinstance(train_set, RecordSet):
            self.feature_dim = train_set.feature_dim
        elif "feature_dim" not in self._hyperparameters:
            raise ValueError("feature_dim is not set: train with record_set(...) or set rcf.feature_dim")
