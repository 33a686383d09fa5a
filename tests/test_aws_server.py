"""``rcforest aws`` against the real SageMaker SDK v2 and boto3, on loopback.

The server runs as ``python -m rcforest aws`` in a child process; the tests
export the environment it prints, exactly as a user would, and then run
unmodified SDK and boto3 code. Nothing of the clients is mocked. The SDK
sleeps between its polls (5 s before the first DescribeTrainingJob, 30 s
before the first DescribeEndpoint), so the module takes a few minutes.
"""

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("moto.server")
pytest.importorskip("a2wsgi")
boto3 = pytest.importorskip("boto3")
sagemaker = pytest.importorskip("sagemaker")
from botocore.exceptions import ClientError  # noqa: E402

from tests.aws_server import REPO, Server, exported  # noqa: E402
from tests.seeded_data import spaced_anomalies, taxi_like_series  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_env):
    """``rcforest aws`` on a free port, its environment exported for the module."""
    running = Server(tmp_path_factory.mktemp("aws-data"), "--header-timeout", "2", "--body-timeout", "5")
    with exported(running):
        yield running
    running.stop()


def _seed_public_bucket(region):
    """Copy the data into the local S3 once, where the example reads it."""
    timestamps, value, anomalies = taxi_like_series()
    text = "timestamp,value\n" + "".join(f"{str(t).replace('T', ' ')}:00,{v}\n" for t, v in zip(timestamps, value))
    s3 = boto3.client("s3")
    bucket = f"sagemaker-example-files-prod-{region}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="datasets/tabular/anomaly_benchmark_taxi/NAB_nyc_taxi.csv", Body=text)
    return anomalies


def test_nyc_taxi_example_runs_unchanged(server, tmp_path, monkeypatch, capsys):
    """The cells of AWS's random_cut_forest.ipynb, as written, against rcforest aws."""
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    anomalies = _seed_public_bucket(os.environ["AWS_DEFAULT_REGION"])

    # ---- the notebook from here on
    import boto3
    import botocore
    import sagemaker

    bucket = sagemaker.Session().default_bucket()
    prefix = "sagemaker/rcf-benchmarks"
    execution_role = sagemaker.get_execution_role()
    region = boto3.Session().region_name
    downloaded_data_bucket = f"sagemaker-example-files-prod-{region}"
    downloaded_data_prefix = "datasets/tabular/anomaly_benchmark_taxi"

    def check_bucket_permission(bucket):
        permission = False
        try:
            boto3.Session().client("s3").head_bucket(Bucket=bucket)
        except botocore.exceptions.ParamValidationError as e:  # noqa: F841 (as the example writes it)
            print("Hey! You either forgot to specify your S3 bucket or you gave your bucket an invalid name!")
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "403":
                print(f"Hey! You don't have permission to access the bucket, {bucket}.")
            elif e.response["Error"]["Code"] == "404":
                print(f"Hey! Your bucket, {bucket}, doesn't exist!")
            else:
                raise
        else:
            permission = True
        return permission

    assert check_bucket_permission(bucket)
    assert check_bucket_permission(downloaded_data_bucket)

    data_filename = "NAB_nyc_taxi.csv"
    s3 = boto3.client("s3")
    s3.download_file(downloaded_data_bucket, f"{downloaded_data_prefix}/{data_filename}", data_filename)
    taxi_data = pd.read_csv(data_filename, delimiter=",")

    from sagemaker import RandomCutForest

    session = sagemaker.Session()
    rcf = RandomCutForest(
        role=execution_role,
        instance_count=1,
        instance_type="ml.m4.xlarge",
        data_location=f"s3://{bucket}/{prefix}/",
        output_path=f"s3://{bucket}/{prefix}/output",
        num_samples_per_tree=512,
        num_trees=50,
    )
    rcf.fit(rcf.record_set(taxi_data.value.to_numpy().reshape(-1, 1)))
    job_name = rcf.latest_training_job.job_name
    rcf_inference = rcf.deploy(initial_instance_count=1, instance_type="ml.m4.xlarge")
    endpoint = rcf_inference.endpoint

    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    rcf_inference.serializer = CSVSerializer()
    rcf_inference.deserializer = JSONDeserializer()
    taxi_data_numpy = taxi_data.value.to_numpy().reshape(-1, 1)
    results = rcf_inference.predict(
        taxi_data_numpy[:6], initial_args={"ContentType": "text/csv", "Accept": "application/json"}
    )
    first_six = [datum["score"] for datum in results["scores"]]
    results = rcf_inference.predict(taxi_data_numpy)
    scores = [datum["score"] for datum in results["scores"]]
    taxi_data["score"] = pd.Series(scores, index=taxi_data.index)
    score_mean = taxi_data["score"].mean()
    score_std = taxi_data["score"].std()
    score_cutoff = score_mean + 3 * score_std
    anomalous = taxi_data[taxi_data["score"] > score_cutoff]
    sagemaker.Session().delete_endpoint(rcf_inference.endpoint)

    def shingle(data, shingle_size):
        num_data = len(data)
        shingled_data = np.zeros((num_data - shingle_size, shingle_size))
        for n in range(num_data - shingle_size):
            shingled_data[n] = data[n : (n + shingle_size)]
        return shingled_data

    shingle_size = 48
    prepared_data = shingle(taxi_data.values[:, 1].astype(float), shingle_size)
    rcf = RandomCutForest(
        role=execution_role,
        instance_count=1,
        instance_type="ml.m4.xlarge",
        data_location=f"s3://{bucket}/{prefix}/",
        output_path=f"s3://{bucket}/{prefix}/output",
        num_samples_per_tree=512,
        num_trees=50,
    )
    rcf.fit(rcf.record_set(prepared_data))
    rcf_inference = rcf.deploy(initial_instance_count=1, instance_type="ml.m4.xlarge")
    rcf_inference.serializer = CSVSerializer()
    rcf_inference.deserializer = JSONDeserializer()
    results = rcf_inference.predict(prepared_data)
    shingled_scores = np.array([datum["score"] for datum in results["scores"]])
    sagemaker.Session().delete_endpoint(rcf_inference.endpoint)
    # ---- end of the notebook

    output = capsys.readouterr().out
    assert bucket == "sagemaker-us-east-1-123456789012"
    assert execution_role == "arn:aws:iam::123456789012:role/AmazonSageMaker-ExecutionRole-rcforest"
    assert session.sagemaker_client.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"] == "Completed"
    # fit(logs=True) printed the job's log from CloudWatch Logs.
    assert "training 50 trees of 512 samples on 1008 records with 1 features" in output
    assert output.count("===== Job Complete =====") == 2
    assert len(first_six) == 6 and first_six == pytest.approx(scores[:6])
    assert len(scores) == len(taxi_data) and np.isfinite(scores).all()
    # The injected anomalies are above the example's cut-off; few other points are.
    flagged = set(anomalous.index)
    assert {anomalies[0], anomalies[2]} <= flagged
    assert len(flagged) <= 20
    assert shingled_scores.shape == (len(taxi_data) - shingle_size,)
    cutoff = shingled_scores.mean() + 3 * shingled_scores.std()
    flagged = np.flatnonzero(shingled_scores > cutoff)
    # A shingle holds an anomaly when it starts in the 48 steps before it. With the built-in's layout, 960
    # shingles make trees of 19 consecutive ones, and which of the three anomalies pass the cut-off varies
    # with the job's seed: over 200 seeds every flagged shingle held one of them, and so did the five
    # highest-scoring shingles, but for 7 seeds none passed the cut-off at all.
    injected = [anomalies[0], *range(anomalies[1], anomalies[1] + 6), anomalies[2]]
    highest = np.argsort(shingled_scores)[-5:]
    assert all(any(n <= a < n + shingle_size for a in injected) for n in [*flagged, *highest])
    # Deleting the endpoint stopped it: the control plane and the runtime both say so.
    with pytest.raises(ClientError, match="Could not find endpoint"):
        session.sagemaker_client.describe_endpoint(EndpointName=endpoint)
    runtime = boto3.client("sagemaker-runtime")
    with pytest.raises(ClientError, match=f"Endpoint {endpoint} of account 123456789012 not found"):
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1\n", ContentType="text/csv")


# ------------------------------------------------------------ boto3, bad inputs

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
OTHER_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::123456789012:role/AmazonSageMaker-ExecutionRole-rcforest"


def test_sdk_training_scores_the_clickstream_as_the_built_in_did(server, tmp_path, capsys):
    """The SDK's RandomCutForest trains with the built-in's layout: its model scores as the stored notebook's."""
    from sagemaker import RandomCutForest

    from rcforest.sagemaker.model import load_model
    from tests.stored_outputs import STORED, clickstream

    stored = STORED["clickstream"]
    _, train, test = clickstream()
    session = sagemaker.Session()
    bucket = session.default_bucket()
    rcf = RandomCutForest(
        role=sagemaker.get_execution_role(),
        instance_count=1,
        instance_type="ml.m4.xlarge",
        data_location=f"s3://{bucket}/rcf-clickstream/",
        output_path=f"s3://{bucket}/rcf-clickstream/output",
        num_samples_per_tree=stored["num_samples_per_tree"],
        num_trees=stored["num_trees"],
    )
    rcf.fit(rcf.record_set(train, channel="train", encrypt=False))
    assert "ForestInfo{num_trees: 100, num_samples_in_forest: 1100, num_samples_per_tree: 11}" in (
        capsys.readouterr().out
    )
    archive = tmp_path / "model.tar.gz"
    model_bucket, _, key = rcf.model_data.removeprefix("s3://").partition("/")
    boto3.client("s3").download_file(model_bucket, key, str(archive))
    forest = load_model(archive)
    assert forest.sampling == "sagemaker"
    scores = forest.score(train)
    assert scores.mean() + 3 * scores.std() == pytest.approx(stored["train_cutoff_mean_plus_3_std"], rel=0.03)
    fault = forest.score(test[64:67])  # 10:40, 10:50 and 11:00 on 07-15
    np.testing.assert_allclose(fault, list(stored["flagged"].values()), rtol=0.03)


def _put(bucket, key, body):
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError:
        pass
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _training_job(name, train_uri, image=IMAGE, content_type="text/csv", **hyperparameters):
    client = boto3.client("sagemaker")
    try:
        boto3.client("s3").create_bucket(Bucket="rcforest-test-output")
    except ClientError:
        pass
    params = {"feature_dim": "1", "num_samples_per_tree": "64", "num_trees": "50", **hyperparameters}
    params = {key: value for key, value in params.items() if value is not None}
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train_uri}},
                "ContentType": content_type,
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://rcforest-test-output/jobs"},
        ResourceConfig={"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters=params,
    )
    deadline = time.monotonic() + 120
    while True:
        description = client.describe_training_job(TrainingJobName=name)
        if description["TrainingJobStatus"] not in ("InProgress", "Stopping") or time.monotonic() > deadline:
            return description
        time.sleep(0.2)


def _series_csv(rows=300, seed=0):
    values = np.random.default_rng(seed).normal(size=rows)
    return "".join(f"{v:.6f}\n" for v in values).encode()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("image", "is not served here; rcforest aws runs the Random Cut Forest image"),
        ("hyperparameter", "hyperparameter num_trees must be an integer in [50, 1000], got 5"),
        ("channel", "channel train, file part-00000-bad.csv: CSV line 2 is not all numbers"),
        ("missing", "no objects under s3://rcforest-test-data/nothing-here/"),
    ],
)
def test_bad_jobs_fail_with_their_reason(server, case, reason):
    uri = _put("rcforest-test-data", "good/train.csv", _series_csv())
    kwargs = {}
    if case == "image":
        kwargs["image"] = OTHER_IMAGE
    elif case == "hyperparameter":
        kwargs["num_trees"] = "5"
    elif case == "channel":
        uri = _put("rcforest-test-data", "bad/bad.csv", b"1.0\nnot a number\n")
    else:
        uri = "s3://rcforest-test-data/nothing-here/"
    description = _training_job(f"bad-{case}-{time.time_ns()}", uri, **kwargs)
    assert description["TrainingJobStatus"] == "Failed"
    assert reason in description["FailureReason"]
    assert description["FailureReason"].startswith("ClientError: ")


def _log_of(job_name):
    logs = boto3.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job_name}/")
    (stream,) = streams["logStreams"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"])
    return [event["message"] for event in events["events"]]


def test_feature_size_is_read_with_a_warning_in_the_log(server):
    name = f"alias-{time.time_ns()}"
    uri = _put("rcforest-test-data", "good/train.csv", _series_csv())
    description = _training_job(name, uri, feature_dim=None, feature_size="1")
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert "WARNING: hyperparameter feature_size is a deprecated alias; Random Cut Forest calls it feature_dim" in (
        _log_of(name)
    )


def test_training_job_lifecycle_and_errors(server):
    client = boto3.client("sagemaker")
    name = f"lifecycle-{time.time_ns()}"
    uri = _put("rcforest-test-data", "good/train.csv", _series_csv())
    description = _training_job(name, uri)
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert description["SecondaryStatus"] == "Completed"
    artefact = description["ModelArtifacts"]["S3ModelArtifacts"]
    assert artefact == f"s3://rcforest-test-output/jobs/{name}/output/model.tar.gz"
    bucket, key = artefact[len("s3://") :].split("/", 1)
    import tarfile

    archive = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames() == ["model.rcf"]
    summaries = client.list_training_jobs(NameContains="lifecycle")["TrainingJobSummaries"]
    names = [job["TrainingJobName"] for job in summaries]
    assert name in names
    assert _log_of(name)[-1] == "===== Job Complete ====="
    with pytest.raises(ClientError, match="Cannot create already existing training job"):
        _training_job(name, uri)
    with pytest.raises(ClientError, match="Requested resource not found"):
        client.describe_training_job(TrainingJobName="no-such-job")
    with pytest.raises(ClientError) as failure:
        client.list_notebook_instances()
    assert failure.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "rcforest aws does not serve SageMaker.ListNotebookInstances" in str(failure.value)
    with pytest.raises(ClientError, match="not served here"):
        client.create_model(
            ModelName="other-image",
            PrimaryContainer={"Image": OTHER_IMAGE, "ModelDataUrl": artefact},
            ExecutionRoleArn=ROLE,
        )


def test_invoke_endpoint_with_boto3_and_errors(server):
    client = boto3.client("sagemaker")
    runtime = boto3.client("sagemaker-runtime")
    name = f"invoke-{time.time_ns()}"
    description = _training_job(name, _put("rcforest-test-data", "good/train.csv", _series_csv()))
    client.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": description["ModelArtifacts"]["S3ModelArtifacts"]},
        ExecutionRoleArn=ROLE,
    )
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        ],
    )
    client.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=[{"Key": "team", "Value": "fraud"}])
    endpoint = client.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    assert client.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"] == [{"Key": "team", "Value": "fraud"}]
    answer = runtime.invoke_endpoint(
        EndpointName=name, Body=b"0.1\n5.0\n", ContentType="text/csv", Accept="application/json"
    )
    scores = json.loads(answer["Body"].read())["scores"]
    assert len(scores) == 2 and scores[1]["score"] > scores[0]["score"]
    assert answer["ContentType"] == "application/json"
    # Bad requests get the container's errors wrapped in the runtime's ModelError, and the endpoint keeps serving.
    with pytest.raises(runtime.exceptions.ModelError) as failure:
        runtime.invoke_endpoint(EndpointName=name, Body=b"1,2\n", ContentType="text/csv")
    assert failure.value.response["OriginalStatusCode"] == 400
    with pytest.raises(runtime.exceptions.ModelError) as failure:
        runtime.invoke_endpoint(EndpointName=name, Body=b"1\n", ContentType="image/png")
    assert failure.value.response["OriginalStatusCode"] == 415
    with pytest.raises(ClientError) as failure:
        runtime.invoke_endpoint(EndpointName=name, Body=b"1\n" * (3 * 1024 * 1024 + 1), ContentType="text/csv")
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    # The endpoint reads requests as rcforest serve does: shapes checked before allocating, plain numbers.
    sparse = b'{"instances": [{"data": {"features": {"keys": [0], "values": [1], "shape": [1000000000000]}}}]}'
    for body, content_type, text in [
        (sparse, "application/json", "shape \\[1000000000000\\] but the model takes 1 features"),
        (b"1_000\n", "text/csv", "column 1 is '1_000'"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
        (b'{"instances": [[NaN]]}', "application/json", "NaN is not a JSON number"),
    ]:
        with pytest.raises(runtime.exceptions.ModelError, match=text) as failure:
            runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type)
        assert failure.value.response["OriginalStatusCode"] == 400
    # Half a header is cut off after --header-timeout 2 while others are answered.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        started = time.monotonic()
        slow.sendall(f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: ".encode())
        runtime.invoke_endpoint(EndpointName=name, Body=b"0.1\n", ContentType="text/csv")
        assert slow.recv(1024) == b""
        assert time.monotonic() - started < 2 + 3
    with pytest.raises(ClientError, match="Endpoint no-such-endpoint of account 123456789012 not found"):
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1\n", ContentType="text/csv")
    again = runtime.invoke_endpoint(EndpointName=name, Body=b"0.1\n", ContentType="text/csv", Accept="application/json")
    assert json.loads(again["Body"].read())["scores"][0]["score"] == pytest.approx(scores[0]["score"])
    assert name in [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]]
    client.delete_endpoint(EndpointName=name)
    client.delete_endpoint_config(EndpointConfigName=name)
    client.delete_model(ModelName=name)
    with pytest.raises(ClientError, match="Could not find model"):
        client.describe_model(ModelName=name)


def test_slow_bodies_get_a_408_on_every_route(server):
    """The body timeout covers moto's S3 and the SageMaker API, not only the endpoints."""
    host, port = server.url.removeprefix("http://").split(":")
    for head in [
        b"PUT /rcforest-slow/key HTTP/1.1\r\n",
        b"POST / HTTP/1.1\r\nX-Amz-Target: SageMaker.ListEndpoints\r\n",
    ]:
        with socket.create_connection((host, int(port)), timeout=20) as slow:
            started = time.monotonic()
            slow.sendall(head + f"Host: {host}:{port}\r\nContent-Length: 100\r\n\r\n{{".encode())
            answer = b""
            while chunk := slow.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408") and b"RequestTimeout" in answer
            assert time.monotonic() - started < 5 + 5


# ------------------------------------------------- the SDK's other entry points


def _labelled_sets(tmp_path, seed=3):
    """Two-feature train (unlabelled) and test (label first, 1 = anomaly) CSV files."""
    train, test, labels = spaced_anomalies(seed, 400, 200, 40, 8.0)
    train_file, test_file = tmp_path / "train.csv", tmp_path / "test.csv"
    np.savetxt(train_file, train, delimiter=",", fmt="%.6f")
    np.savetxt(test_file, np.column_stack([labels, test]), delimiter=",", fmt="%.6f")
    return train_file, test_file, test, labels


def test_generic_estimator_attach_analytics_model_deploy(server, tmp_path, capsys):
    from sagemaker import RandomCutForestModel, image_uris
    from sagemaker.analytics import TrainingJobAnalytics
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    session = sagemaker.Session()
    bucket = session.default_bucket()
    role = sagemaker.get_execution_role()
    train_file, test_file, test, labels = _labelled_sets(tmp_path)
    train_uri = session.upload_data(path=str(train_file), bucket=bucket, key_prefix="generic/train")
    test_uri = session.upload_data(path=str(test_file), bucket=bucket, key_prefix="generic/test")
    container = image_uris.retrieve("randomcutforest", session.boto_region_name)
    estimator = Estimator(
        container,
        role,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/generic/output",
        sagemaker_session=session,
    )
    estimator.set_hyperparameters(
        feature_dim=2, num_samples_per_tree=128, num_trees=50, eval_metrics=["accuracy", "precision_recall_fscore"]
    )
    estimator.fit(
        {
            "train": TrainingInput(train_uri, content_type="text/csv;label_size=0", distribution="ShardedByS3Key"),
            "test": TrainingInput(test_uri, content_type="text/csv;label_size=1", distribution="FullyReplicated"),
        }
    )
    output = capsys.readouterr().out
    assert "#test_score (algo-1) : ('f1', " in output and "===== Job Complete =====" in output
    job_name = estimator.latest_training_job.job_name
    estimator.latest_training_job.wait(logs="None")
    description = estimator.latest_training_job.describe()
    final = {m["MetricName"]: m["Value"] for m in description["FinalMetricDataList"]}
    assert final["test:f1"] > 0.8  # the shifted test points are found

    attached = Estimator.attach(job_name, sagemaker_session=session)
    assert attached.model_data == estimator.model_data
    assert attached.hyperparameters()["num_trees"] == "50"

    frame = TrainingJobAnalytics(job_name, metric_names=["test:f1", "test:accuracy"]).dataframe()
    assert dict(zip(frame["metric_name"], frame["value"])) == pytest.approx(
        {"test:f1": final["test:f1"], "test:accuracy": final["test:accuracy"]}
    )

    model = RandomCutForestModel(estimator.model_data, role, sagemaker_session=session)
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large")
    records = predictor.predict(test.astype(np.float32))
    scores = np.array([record.label["score"].float32_tensor.values[0] for record in records])
    assert scores.shape == (200,) and scores[labels == 1].min() > np.median(scores)
    predictor.delete_endpoint()
    with pytest.raises(ClientError, match="Could not find endpoint"):
        session.sagemaker_client.describe_endpoint(EndpointName=predictor.endpoint_name)


def test_batch_transform_writes_out_objects(server, tmp_path):
    from sagemaker import RandomCutForest

    session = sagemaker.Session()
    bucket = session.default_bucket()
    rng = np.random.default_rng(5)
    train = rng.normal(size=(300, 1))
    rcf = RandomCutForest(
        role=sagemaker.get_execution_role(),
        instance_count=1,
        instance_type="ml.m5.large",
        data_location=f"s3://{bucket}/transform/",
        output_path=f"s3://{bucket}/transform/output",
        num_samples_per_tree=64,
        num_trees=50,
    )
    rcf.fit(rcf.record_set(train), logs=False)
    batch = np.vstack([rng.normal(size=(20, 1)), [[9.0]]])
    (tmp_path / "part-a.csv").write_text("".join(f"{v:.6f}\n" for v in batch[:, 0]))
    (tmp_path / "part-b.csv").write_text("0.0\n9.0\n")
    data = session.upload_data(path=str(tmp_path), bucket=bucket, key_prefix="transform/input")
    transformer = rcf.transformer(
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=f"s3://{bucket}/transform/results",
        accept="application/jsonlines",
    )
    transformer.transform(data, content_type="text/csv", split_type="Line")
    transformer.wait(logs=False)
    s3 = boto3.client("s3")
    result = s3.get_object(Bucket=bucket, Key="transform/results/part-a.csv.out")["Body"].read().decode()
    scores = [json.loads(line)["score"] for line in result.splitlines()]
    assert len(scores) == 21 and np.argmax(scores) == 20
    result = s3.get_object(Bucket=bucket, Key="transform/results/part-b.csv.out")["Body"].read().decode()
    assert len(result.splitlines()) == 2
    described = session.sagemaker_client.describe_transform_job(TransformJobName=transformer.latest_transform_job.name)
    assert described["TransformJobStatus"] == "Completed"


def test_tuner_runs_three_jobs_and_picks_the_best(server, tmp_path):
    from sagemaker import RandomCutForest
    from sagemaker.tuner import HyperparameterTuner, IntegerParameter

    session = sagemaker.Session()
    bucket = session.default_bucket()
    train, test, labels = spaced_anomalies(9, 300, 100, 25, 6.0)
    rcf = RandomCutForest(
        role=sagemaker.get_execution_role(),
        instance_count=1,
        instance_type="ml.m5.large",
        data_location=f"s3://{bucket}/tuning/",
        output_path=f"s3://{bucket}/tuning/output",
        num_samples_per_tree=64,
        num_trees=50,
    )
    tuner = HyperparameterTuner(
        rcf,
        objective_metric_name="test:f1",
        hyperparameter_ranges={
            "num_samples_per_tree": IntegerParameter(32, 128),
            "num_trees": IntegerParameter(50, 80),
        },
        max_jobs=3,
        max_parallel_jobs=1,
    )
    tuner.fit([rcf.record_set(train), rcf.record_set(test, labels=labels, channel="test")], include_cls_metadata=False)
    tuner.wait()
    description = tuner.describe()
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    assert description["TrainingJobStatusCounters"]["Completed"] == 3
    jobs = session.sagemaker_client.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuner.latest_tuning_job.name
    )["TrainingJobSummaries"]
    values = {j["TrainingJobName"]: j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in jobs}
    assert len(values) == 3
    assert tuner.best_training_job() == max(values, key=values.get)
    for summary in jobs:
        tuned = summary["TunedHyperParameters"]
        assert 32 <= int(tuned["num_samples_per_tree"]) <= 128 and 50 <= int(tuned["num_trees"]) <= 80


def test_update_endpoint_keeps_answering_requests_in_flight(server):
    client = boto3.client("sagemaker")
    runtime = boto3.client("sagemaker-runtime")
    name = f"update-{time.time_ns()}"
    models = []
    for number, rows in enumerate((_series_csv(seed=1), (_series_csv(seed=2).decode() + "40.0\n" * 50).encode())):
        job = _training_job(f"{name}-{number}", _put("rcforest-test-data", f"{name}/{number}/train.csv", rows))
        client.create_model(
            ModelName=f"{name}-{number}",
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]},
            ExecutionRoleArn=ROLE,
        )
        client.create_endpoint_config(
            EndpointConfigName=f"{name}-{number}",
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": f"{name}-{number}", "InitialInstanceCount": 1}
            ],
        )
        models.append(f"{name}-{number}")
    client.create_endpoint(EndpointName=name, EndpointConfigName=models[0])

    def score():
        answer = runtime.invoke_endpoint(
            EndpointName=name, Body=b"40.0\n", ContentType="text/csv", Accept="application/json"
        )
        return json.loads(answer["Body"].read())["scores"][0]["score"]

    before = score()
    failures, answers, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                answers.append(score())
            except Exception as error:  # any dropped request fails the test
                failures.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    client.update_endpoint(EndpointName=name, EndpointConfigName=models[1])
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not failures and len(answers) > 10
    described = client.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == models[1]
    # The second model saw 40.0 often: the point is no longer as anomalous.
    assert score() < before
    client.delete_endpoint(EndpointName=name)


def test_s3_endpoint_sends_s3_to_another_store(aws_env, tmp_path):
    """--s3-endpoint: jobs read data and write models in another S3-compatible store (here a second moto server)."""
    from moto.server import ThreadedMotoServer

    store = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    store.start()
    host, port = store.get_host_and_port()
    store_url = f"http://{host}:{port}"
    running = None
    try:
        running = Server(tmp_path / "aws-data", "--s3-endpoint", store_url)
        assert running.environment["AWS_ENDPOINT_URL_S3"] == store_url
        with exported(running):
            uri = _put("rcforest-test-data", "store/train.csv", _series_csv())
            description = _training_job(f"store-{time.time_ns()}", uri)
            assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
            bucket, key = description["ModelArtifacts"]["S3ModelArtifacts"][len("s3://") :].split("/", 1)
            direct = boto3.client("s3", endpoint_url=store_url)
            assert direct.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
            embedded = boto3.client("s3", endpoint_url=running.url)
            assert embedded.list_buckets()["Buckets"] == []  # nothing went to the embedded store
    finally:
        if running is not None:
            running.stop()
        store.stop()


def test_a_taken_proxy_port_is_named(tmp_path):
    """The proxy's default port is PORT+1: when it is taken, the error names it and --proxy-port."""
    for _ in range(20):
        taken = socket.create_server(("127.0.0.1", 0))
        port = taken.getsockname()[1] - 1
        try:
            socket.create_server(("127.0.0.1", port)).close()
            break
        except OSError:
            taken.close()
    with taken:
        command = [sys.executable, "-m", "rcforest", "aws", "--port", str(port), "--data-dir", str(tmp_path)]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"127.0.0.1:{port + 1}" in done.stderr and "--proxy-port" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_long_job_log_reaches_cloudwatch_whole_in_batches_within_its_limits(server):
    """Lines past PutLogEvents' 10,000 events and 1 MiB a call arrive whole and in order, in a group made once."""
    from rcforest.aws.jobs import _CloudWatchStream

    logs = boto3.client("logs")
    calls = []
    logs.meta.events.register(
        "provide-client-params.cloudwatch-logs.*", lambda params, model, **_: calls.append((model.name, params))
    )
    group = f"/rcforest/test-{time.time_ns()}"
    lines = [f"line {number} " + "x" * (number % 300) for number in range(25_001)]
    for name in ("first", "second"):
        stream = _CloudWatchStream(logs, group, name)
        stream.write("\n".join(lines[:-1]) + "\n" + lines[-1])
        stream.flush()
    for name in ("first", "second"):
        received, token = [], None
        while True:
            page = logs.get_log_events(
                logGroupName=group, logStreamName=name, startFromHead=True, **({"nextToken": token} if token else {})
            )
            if not page["events"]:
                break
            received.extend(event["message"] for event in page["events"])
            token = page["nextForwardToken"]
        assert received == lines
    puts = [params["logEvents"] for name, params in calls if name == "PutLogEvents"]
    assert sum(map(len, puts)) == 2 * len(lines) and all(len(events) <= 10_000 for events in puts)
    assert all(sum(len(event["message"].encode()) + 26 for event in events) <= 1_048_576 for events in puts)
    assert [name for name, _ in calls].count("CreateLogGroup") == 1
