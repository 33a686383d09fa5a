"""What the Random Cut Forest image does in a training job, a transform job and an endpoint, given S3.

A training job copies its channels from S3 into a SageMaker training layout
(``input/config``, ``input/data/<channel>``), trains there with
:func:`rcforest.sagemaker.container.train` (the code behind
``rcforest train``), sends the log to CloudWatch Logs and the test metrics to
CloudWatch, and uploads ``model/`` as ``model.tar.gz``. Endpoints and
transform jobs load that artefact with :mod:`rcforest.sagemaker.model`.
"""

import datetime
import io
import json
import os
import re
import shutil
import tempfile
import time
import warnings

from rcforest.aws.resources import inside

__all__ = [
    "IMAGE_PATTERN",
    "METRIC_DEFINITIONS",
    "JobFailed",
    "check_image",
    "load_artefact",
    "local_name",
    "parse_s3_uri",
    "run_training",
    "run_transform",
    "train_layout",
]

# The Random Cut Forest image of any region, as image_uris.retrieve("randomcutforest", region) names it.
IMAGE_PATTERN = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/randomcutforest(:[\w.-]+)?$")
# The metrics the image logs for a labelled test channel, as DescribeTrainingJob lists them.
METRIC_DEFINITIONS = [
    {"Name": f"test:{name}", "Regex": rf"#test_score \(algo-1\) : \('{name}', (\S+)\)"}
    for name in ("accuracy", "precision", "recall", "f1", "precision_normal", "recall_normal", "f1_normal")
]
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
_HOST = "algo-1"
_CHUNK_BYTES = 1 << 20
"""Bytes copied at a time from an S3 object to a job's file."""
_LOG_BATCH_EVENTS = 10_000
_LOG_BATCH_BYTES = 1_048_576
"""CloudWatch Logs' limits on one PutLogEvents call: events, and bytes (26 more an event)."""
_S3_URI = re.compile(r"^s3://([^/]+)/?(.*)$")
# Characters of an S3 key kept in the name of its local copy.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class JobFailed(Exception):
    """A job ends Failed; the message is its ``FailureReason``."""


def check_image(image):
    """Raise :class:`JobFailed` unless ``image`` is the Random Cut Forest image."""
    if not isinstance(image, str) or not IMAGE_PATTERN.match(image):
        raise JobFailed(
            f"ClientError: image {image!r} is not served here; rcforest aws runs the Random Cut Forest image "
            "(<account>.dkr.ecr.<region>.amazonaws.com/randomcutforest:1, as "
            'sagemaker.image_uris.retrieve("randomcutforest", region) gives)'
        )


def parse_s3_uri(uri):
    """Split ``s3://bucket/key`` into (bucket, key); raise :class:`JobFailed` for anything else."""
    match = _S3_URI.match(uri or "")
    if not match:
        raise JobFailed(f"ClientError: {uri!r} is not an S3 URI (s3://bucket/key)")
    return match.group(1), match.group(2)


def _s3_error(error, uri):
    code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
    return JobFailed(f"ClientError: cannot read {uri}: {code}")


def _local_error(error, what):
    """The failure of a write to the server's own disk (no space, no permission): never a path."""
    reason = getattr(error, "strerror", None) or type(error).__name__
    return JobFailed(f"InternalServerError: cannot write {what} on the server's disk: {reason}")


def _transfer_error(error, uri, what):
    """An S3 download's failure: S3's (botocore's errors) or the local disk's (any other OSError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, OSError) and not isinstance(error, (BotoCoreError, ClientError)):
        return _local_error(error, what)
    return _s3_error(error, uri)


def _list_keys(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", ()) if not item["Key"].endswith("/"))
    return sorted(keys)


def _channel_objects(s3, channel):
    """Return [(bucket, key)] of a channel's S3DataSource (S3Prefix or ManifestFile)."""
    name = channel.get("ChannelName")
    source = channel.get("DataSource", {}).get("S3DataSource")
    if not source:
        raise JobFailed(f"ClientError: channel {name} needs an S3DataSource")
    uri = source.get("S3Uri")
    bucket, key = parse_s3_uri(uri)
    kind = source.get("S3DataType", "S3Prefix")
    try:
        if kind == "S3Prefix":
            objects = [(bucket, k) for k in _list_keys(s3, bucket, key)]
        elif kind == "ManifestFile":
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                manifest = json.loads(body)
                prefix_bucket, prefix = parse_s3_uri(manifest[0]["prefix"])
                objects = [(prefix_bucket, prefix + entry) for entry in manifest[1:]]
            except (ValueError, KeyError, IndexError, TypeError, JobFailed):
                raise JobFailed(
                    f'ClientError: channel {name}: {uri} is not a manifest ([{{"prefix": "s3://..."}}, key, ...])'
                ) from None
        else:
            raise JobFailed(f"ClientError: channel {name}: S3DataType {kind} is not supported (S3Prefix, ManifestFile)")
    except JobFailed:
        raise
    except Exception as error:  # botocore's ClientError and connection errors
        raise _s3_error(error, uri) from None
    if not objects:
        raise JobFailed(f"ClientError: channel {name}: no objects under {uri}")
    return objects


def local_name(number, key):
    """The file name of a channel's ``number``-th object: numbered, with the key's last part made safe.

    Only letters, digits, ``.``, ``_`` and ``-`` of the key's last 64
    characters after its last ``/`` are kept, behind ``part-<number>-``: the
    name never holds a separator and never starts with a dot.
    """
    tail = _UNSAFE.sub("_", key.rsplit("/", 1)[-1][-64:])
    return f"part-{number:05d}-{tail or 'object'}"


def _download_channel(s3, channel, directory):
    """Copy a channel's objects into ``directory``, numbered in key order."""
    name = channel.get("ChannelName")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise _local_error(error, f"channel {name}") from None
    for number, (bucket, key) in enumerate(_channel_objects(s3, channel)):
        target = inside(directory, local_name(number, key))
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            with open(target, "wb") as file:
                shutil.copyfileobj(body, file, _CHUNK_BYTES)
        except Exception as error:
            raise _transfer_error(error, f"s3://{bucket}/{key}", f"channel {name}") from None


class _CloudWatchStream:
    """A text stream whose lines become events of one CloudWatch Logs stream, sent when it is flushed.

    A job's log is short and the job ends soon: one ``PutLogEvents`` call
    at the end (in batches within CloudWatch's limits), and the log group
    made only when it is missing, keep few the requests a job sends the
    server, which answers them in the endpoints' process.
    """

    def __init__(self, logs, group, stream):
        self.logs, self.group, self.stream = logs, group, stream
        self._partial = ""
        self._lines = []
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceNotFoundException:
            logs.create_log_group(logGroupName=group)
            logs.create_log_stream(logGroupName=group, logStreamName=stream)

    def write(self, text):
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        self._lines.extend(line for line in lines if line)
        return len(text)

    def flush(self):
        if self._partial:
            self._lines.append(self._partial)
            self._partial = ""
        now = int(time.time() * 1000)
        lines, self._lines = self._lines, []
        batch, size = [], 0
        for line in lines:
            cost = len(line.encode("utf-8")) + 26  # CloudWatch counts 26 bytes an event
            if batch and (len(batch) == _LOG_BATCH_EVENTS or size + cost > _LOG_BATCH_BYTES):
                self._put(batch)
                batch, size = [], 0
            batch.append({"timestamp": now, "message": line})
            size += cost
        if batch:
            self._put(batch)

    def _put(self, events):
        self.logs.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)


def _publish_metrics(cloudwatch, job_name, metrics):
    """Send the test metrics where ``TrainingJobAnalytics`` reads them: by TrainingJobName."""
    if not metrics:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    data = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": "TrainingJobName", "Value": job_name}],
            "Timestamp": now,
            "Value": float(value),
        }
        for name, value in metrics.items()
    ]
    cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data)


def train_layout(work_dir):
    """Train in a training layout, as the image's entry point does; catch the log and the warnings.

    Runs in the training process (:class:`rcforest.aws.workers.TrainingProcesses`).

    Parameters
    ----------
    work_dir : str
        The job's training layout.

    Returns
    -------
    error : str or None
        Why training failed (bad data or hyperparameters), or None.
    metrics : dict of str to float
        Test-channel metrics as :func:`rcforest.sagemaker.container.train` returns them.
    log : str
        The algorithm's log.
    warnings : list of str
        The warnings raised while training (such as the ``feature_size`` alias).
    """
    from rcforest.sagemaker import container
    from rcforest.sagemaker.metrics import log_to

    log = io.StringIO()
    error, metrics = None, {}
    with log_to(log), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            metrics = container.train(work_dir)
        except (ValueError, TypeError, OSError) as failure:
            error = str(failure).replace(os.path.join(work_dir, ""), "/opt/ml/")
    return error, metrics, log.getvalue(), [str(warning.message) for warning in caught]


def _no_status(secondary, message):
    """Where :func:`run_training` reports its steps when the caller follows none."""


def run_training(job, clients, work_dir, train=train_layout, status=_no_status):
    """Run one training job of the Random Cut Forest image.

    Parameters
    ----------
    job : dict
        The CreateTrainingJob request.
    clients : object
        With ``s3``, ``logs`` and ``cloudwatch`` boto3 clients.
    work_dir : str
        The job's local folder (the training layout), made by the caller;
        a folder the server named, never from the request.
    train : callable, default train_layout
        ``train(work_dir)`` answers as :func:`train_layout` does (the API
        runs it in a training process).
    status : callable, optional
        ``status(secondary_status, message)`` at each step, with AWS's
        messages: ``Downloading`` (after the image is checked: a job of
        another image fails while ``Starting``), ``Training`` and ``Uploading``.

    Returns
    -------
    model_uri : str
        Where ``model.tar.gz`` was written.
    metrics : dict of str to float
        Test-channel metrics, named as in CloudWatch (``test:f1``, ...).

    Raises
    ------
    JobFailed
        With the job's ``FailureReason``.
    """
    from rcforest.sagemaker import container
    from rcforest.sagemaker.model import MODEL_ARCHIVE, pack_model

    name = job["TrainingJobName"]
    check_image(job.get("AlgorithmSpecification", {}).get("TrainingImage"))
    output = job.get("OutputDataConfig", {}).get("S3OutputPath")
    out_bucket, out_prefix = parse_s3_uri(output)
    config_dir = os.path.join(work_dir, "input", "config")
    channels = job.get("InputDataConfig") or []
    data_config = {}
    status("Downloading", "Downloading input data")
    for channel in channels:
        channel_name = channel.get("ChannelName")
        if channel_name not in container.CHANNELS:
            raise JobFailed(f"ClientError: Random Cut Forest takes channels train and test, got {channel_name!r}")
        mode = channel.get("InputMode") or job.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
        if mode != "File":
            raise JobFailed(f"ClientError: channel {channel_name}: Random Cut Forest reads File input mode, got {mode}")
        settings = {"TrainingInputMode": "File"}
        distribution = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3DataDistributionType")
        settings["S3DistributionType"] = distribution or "FullyReplicated"
        if channel.get("ContentType"):
            settings["ContentType"] = channel["ContentType"]
        data_config[channel_name] = settings
        _download_channel(clients.s3, channel, os.path.join(work_dir, "input", "data", channel_name))
    try:
        os.makedirs(config_dir, exist_ok=True)
        with open(os.path.join(config_dir, "hyperparameters.json"), "w", encoding="utf-8") as file:
            json.dump(job.get("HyperParameters") or {}, file)
        with open(os.path.join(config_dir, "inputdataconfig.json"), "w", encoding="utf-8") as file:
            json.dump(data_config, file)
    except OSError as error:
        raise _local_error(error, "the job's configuration") from None

    stream = _CloudWatchStream(clients.logs, LOG_GROUP, f"{name}/{_HOST}-{int(time.time())}")
    status("Training", "Training image download completed. Training in progress.")
    try:
        error, metrics, log, caught = train(work_dir)
        stream.write(log.replace(os.path.join(work_dir, ""), "/opt/ml/"))  # the image's paths, not the server's
        for warning in caught:
            stream.write(f"WARNING: {warning}\n")
        if error is not None:
            stream.write(f"ClientError: {error}\n")
            raise JobFailed(f"ClientError: {error}")
        stream.write("===== Job Complete =====\n")
    finally:
        stream.flush()
    metrics = {f"test:{key}": value for key, value in metrics.items()}
    _publish_metrics(clients.cloudwatch, name, metrics)
    status("Uploading", "Uploading generated training model")
    key = "/".join(part for part in (out_prefix.rstrip("/"), name, "output", MODEL_ARCHIVE) if part)
    try:
        body = pack_model(os.path.join(work_dir, "model"))
    except OSError as error:
        raise _local_error(error, "the model archive") from None
    try:
        clients.s3.put_object(Bucket=out_bucket, Key=key, Body=body)
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        raise JobFailed(f"ClientError: cannot write the model to s3://{out_bucket}/{key}: {code}") from None
    return f"s3://{out_bucket}/{key}", metrics


def load_artefact(s3, model_data_url, scratch):
    """Download and load a ``model.tar.gz`` (or a ``.rcf`` object) from S3.

    The model is unpacked in a folder of its own under ``scratch``, removed
    once the forest is in memory: no copy stays on disk.

    Parameters
    ----------
    s3 : boto3 S3 client
    model_data_url : str
    scratch : str
        The server's folder for unpacking models.

    Returns
    -------
    rcforest.Forest

    Raises
    ------
    JobFailed
        If the artefact cannot be read or is not an rcforest model.
    """
    from rcforest.sagemaker.model import load_model, unpack_model

    bucket, key = parse_s3_uri(model_data_url)
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        raise _s3_error(error, model_data_url) from None
    try:
        os.makedirs(scratch, exist_ok=True)
        directory = tempfile.TemporaryDirectory(dir=scratch, prefix="model-")
    except OSError as error:
        raise _local_error(error, "the model") from None
    with directory as folder:
        try:
            if key.endswith(".rcf"):
                path = os.path.join(folder, "model.rcf")
                with open(path, "wb") as file:
                    file.write(data)
            else:
                path = unpack_model(data, folder)
        except OSError as error:
            raise _local_error(error, "the model") from None
        except ValueError as error:
            raise JobFailed(f"ClientError: the model at {model_data_url} cannot be loaded: {error}") from None
        try:
            return load_model(path)
        except (ValueError, OSError) as error:
            reason = str(error).replace(os.path.join(folder, ""), "")
            raise JobFailed(f"ClientError: the model at {model_data_url} cannot be loaded: {reason}") from None


TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"


def _records(body, split_type):
    """Split an object's bytes into records: lines for ``Line``, the whole object otherwise."""
    if split_type == "Line":
        return [line for line in body.split(b"\n") if line.strip()]
    return [body]


def _batches(records, strategy, max_bytes):
    """Group records into requests: one each for SingleRecord, up to ``max_bytes`` for MultiRecord."""
    if strategy != "MultiRecord":
        return [[record] for record in records]
    batches, current, size = [], [], 0
    for record in records:
        if current and size + len(record) + 1 > max_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record) + 1
    return batches + ([current] if current else [])


def run_transform(job, forest, clients, lock):
    """Run one batch transform job: score every input object and write ``<key>.out``.

    Parameters
    ----------
    job : dict
        The CreateTransformJob request.
    forest : rcforest.Forest
        The model's forest.
    clients : object
        With ``s3`` and ``logs`` boto3 clients.
    lock : rcforest.sagemaker.server.FairLock
        Held while scoring, in turns of rows as the endpoints do.

    Returns
    -------
    int
        The number of records scored.

    Raises
    ------
    JobFailed
        With the job's ``FailureReason``.
    """
    from rcforest.sagemaker import formats
    from rcforest.sagemaker.server import ServerLimits, score_in_turns

    max_values = ServerLimits().max_values
    name = job["TransformJobName"]
    source = job["TransformInput"]["DataSource"]
    channel = {"ChannelName": "transform input", "DataSource": source}
    content_type = job["TransformInput"].get("ContentType") or formats.CSV
    split_type = job["TransformInput"].get("SplitType", "None")
    output = job["TransformOutput"]
    try:
        accept = formats.choose_response_type(output.get("Accept"))
    except ValueError as error:
        raise JobFailed(f"ClientError: {error}") from None
    text = accept != formats.RECORDIO
    joiner = b"\n" if text and (output.get("AssembleWith") == "Line" or split_type == "Line") else b""
    max_bytes = int(job.get("MaxPayloadInMB") or 6) * 1024 * 1024
    strategy = job.get("BatchStrategy") or "MultiRecord"
    out_bucket, out_prefix = parse_s3_uri(output["S3OutputPath"])
    in_prefix = parse_s3_uri(source["S3DataSource"]["S3Uri"])[1]
    if source["S3DataSource"].get("S3DataType") == "ManifestFile":
        in_prefix = ""
    stream = _CloudWatchStream(clients.logs, TRANSFORM_LOG_GROUP, f"{name}/{_HOST}-{int(time.time())}")
    count = 0
    try:
        for bucket, key in _channel_objects(clients.s3, channel):
            try:
                body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except Exception as error:
                raise _s3_error(error, f"s3://{bucket}/{key}") from None
            answers = []
            for batch in _batches(_records(body, split_type), strategy, max_bytes):
                try:
                    features = formats.decode_request(b"\n".join(batch), content_type, forest.n_features_, max_values)
                    scores = score_in_turns(forest, features, lock)
                    encoded = formats.encode_scores(scores, accept)
                except ValueError as error:
                    stream.write(f"ClientError: s3://{bucket}/{key}: {error}\n")
                    raise JobFailed(f"ClientError: s3://{bucket}/{key}: {error}") from None
                answers.append(encoded.rstrip(b"\n") if text else encoded)
                count += len(scores)
            relative = key[len(in_prefix) :].lstrip("/") if key.startswith(in_prefix) else os.path.basename(key)
            target = "/".join(part for part in (out_prefix.rstrip("/"), f"{relative}.out") if part)
            clients.s3.put_object(Bucket=out_bucket, Key=target, Body=joiner.join(answers) + joiner)
            stream.write(f"scored {count} records; wrote s3://{out_bucket}/{target}\n")
    finally:
        stream.flush()
    return count
