"""``rcforest aws`` answers as AWS does where public programs rely on it, with the real boto3 and SageMaker SDK.

- the runtime wraps an endpoint's 4xx and 5xx in ``ModelError`` (424), as
  ``sagemaker-runtime`` does;
- AWS's managed IAM policies can be attached;
- ``rcforest aws env`` prints the exports of a running server, and
  ``--any-keys-are-role`` makes the user's own keys the execution role;
- a role SageMaker cannot assume and an image of another registry or region
  are refused with AWS's messages;
- a training job's status lines are AWS's, and a job of another image fails
  while Starting.

Each server runs as ``python -m rcforest aws`` in a child process, on loopback.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moto.server")
pytest.importorskip("a2wsgi")
boto3 = pytest.importorskip("boto3")
sagemaker = pytest.importorskip("sagemaker")
from botocore.exceptions import ClientError  # noqa: E402

from tests.aws_server import CLEARED, REPO, Server, exported  # noqa: E402

pytestmark = pytest.mark.timeout(600)

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AmazonSageMaker-ExecutionRole-rcforest"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_env):
    running = Server(tmp_path_factory.mktemp("aws-data"))
    with exported(running):
        yield running
    running.stop()


def _put(key, body, bucket="rcforest-compat"):
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError:
        pass
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _train_request(name, image=IMAGE, role=ROLE, features=2):
    rows = np.random.default_rng(0).normal(size=(300, features))
    uri = _put(f"train/{features}/data.csv", "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in rows))
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
                "ContentType": "text/csv",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://rcforest-compat/jobs"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"feature_dim": str(features), "num_samples_per_tree": "64", "num_trees": "50"},
    }


def _wait(name):
    client = boto3.client("sagemaker")
    deadline = time.monotonic() + 120
    while True:
        description = client.describe_training_job(TrainingJobName=name)
        if description["TrainingJobStatus"] not in ("InProgress", "Stopping") or time.monotonic() > deadline:
            return description
        time.sleep(0.2)


@pytest.fixture(scope="module")
def endpoint(server):
    """An endpoint of a forest of 2 features, made with boto3."""
    client = boto3.client("sagemaker")
    name = f"compat-{time.time_ns()}"
    client.create_training_job(**_train_request(name))
    description = _wait(name)
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    client.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": description["ModelArtifacts"]["S3ModelArtifacts"]},
        ExecutionRoleArn=ROLE,
    )
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name


# ------------------------------------------------------------------ item: ModelError


def test_a_container_error_is_a_model_error_caught_by_its_class(endpoint):
    runtime = boto3.client("sagemaker-runtime")
    row = ",".join(["1.0"] * 29).encode()  # 29 columns for a forest of 2 features
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=row, ContentType="text/csv")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 400
    assert "X has 29 features but the forest was built on 2" in response["OriginalMessage"]
    assert response["LogStreamArn"] == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{endpoint}"
    message = response["Error"]["Message"]
    assert message.startswith('Received client error (400) from primary with message "')
    assert message.endswith(
        f"See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:group="
        f"/aws/sagemaker/Endpoints/{endpoint} in account {ACCOUNT} for more information."
    )
    # Another of the container's codes (415) is wrapped too; the runtime's own 413 is not; the endpoint serves on.
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1,2\n", ContentType="image/png")
    assert caught.value.response["OriginalStatusCode"] == 415
    with pytest.raises(ClientError) as failure:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1,2\n" * (2 * 1024 * 1024), ContentType="text/csv")
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    with pytest.raises(runtime.exceptions.ValidationError, match="not found"):
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1,2\n", ContentType="text/csv")
    answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"0.1,0.2\n", ContentType="text/csv")
    assert len(json.loads(answer["Body"].read())["scores"]) == 1


def test_the_sdk_predictor_raises_the_model_error(endpoint):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer

    predictor = Predictor(endpoint, serializer=CSVSerializer(), deserializer=JSONDeserializer())
    assert len(predictor.predict(np.zeros((3, 2)))["scores"]) == 3
    runtime = predictor.sagemaker_session.sagemaker_runtime_client
    with pytest.raises(runtime.exceptions.ModelError, match=r"Received client error \(400\) from primary"):
        predictor.predict(np.zeros((1, 29)))


def test_rcforest_serve_keeps_the_container_codes(tmp_path):
    """The container itself (``rcforest serve``) answers its own 400, not the runtime's 424."""
    import urllib.error
    import urllib.request

    from rcforest import Forest
    from rcforest.sagemaker.server import BackgroundServer

    forest = Forest(num_trees=10, sample_size=32, random_state=0).fit(np.random.default_rng(0).normal(size=(100, 2)))
    served = BackgroundServer(forest).start()
    try:
        request = urllib.request.Request(
            f"{served.url}/invocations", data=",".join(["1"] * 29).encode(), headers={"Content-Type": "text/csv"}
        )
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(request, timeout=30)
        assert failure.value.code == 400
    finally:
        served.stop()


def test_a_container_5xx_is_a_server_model_error():
    """An endpoint application's 500 is wrapped as "Received server error (500)", parsed by botocore as ModelError."""
    import asyncio

    import botocore.session
    from botocore.parsers import create_parser

    from rcforest.aws.runtime import ModelErrors

    async def failing(scope, receive, send):  # an application that fails, as a crashed container does
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Internal ", "more_body": True})
        await send({"type": "http.response.body", "body": b"Server Error"})

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(failing({}, None, ModelErrors(send, "scorer", "eu-west-1", ACCOUNT).send))
    start, body = sent
    assert start["status"] == 424
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    response = {
        "status_code": start["status"],
        "headers": {name.decode(): value.decode() for name, value in start["headers"]},
        "body": body["body"],
    }
    parser = create_parser("rest-json")
    error = parser.parse(response, model.operation_model("InvokeEndpoint").output_shape)["Error"]
    assert error["Code"] == "ModelError"
    assert error["Message"].startswith('Received server error (500) from primary with message "Internal Server Error"')
    assert "logEventViewer:group=/aws/sagemaker/Endpoints/scorer in account 123456789012" in error["Message"]
    fields = parser.parse(response, model.shape_for("ModelError"))
    assert fields["OriginalStatusCode"] == 500 and fields["OriginalMessage"] == "Internal Server Error"
    assert fields["LogStreamArn"] == f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/scorer"
    assert json.loads(body["body"])["ErrorCode"] == "INTERNAL_FAILURE_FROM_MODEL"


# ------------------------------------------------------------------ item: managed policies


def test_aws_managed_policies_can_be_attached(server):
    iam = boto3.client("iam")
    name = f"compat-managed-{time.time_ns()}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    arn = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert attached == [{"PolicyName": "AmazonSageMakerFullAccess", "PolicyArn": arn}]
    assert iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")["Policy"]["IsAttachable"]
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/NoSuchManagedPolicy")


# ------------------------------------------------------------------ item: the user's own keys


def _run(*args, env=None):
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "rcforest", *args],
        cwd=REPO,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_aws_env_prints_the_exports_of_the_running_server(server, tmp_path):
    done = _run("aws", "env", "--data-dir", str(server.data_dir))
    assert done.returncode == 0, done.stderr
    exports = [line for line in done.stdout.splitlines() if line]
    assert all(line.startswith("export ") for line in exports)
    # The file holds the role's keys: this user's alone.
    assert (Path(server.data_dir) / "environment.json").stat().st_mode & 0o777 == 0o600
    # The shell reads them back as the server printed them at start.
    script = f'eval "$({sys.executable} -m rcforest aws env --data-dir {server.data_dir})"; env'
    environment = {k: v for k, v in os.environ.items() if k not in CLEARED}
    environment["PYTHONPATH"] = str(REPO)
    shell = subprocess.run(["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0, shell.stderr
    seen = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert {name: seen.get(name) for name in server.environment} == server.environment
    # A stopped server's file is gone, and so is a server's whose process is gone.
    stopped = Server(tmp_path / "stopped")
    stopped.stop()
    assert stopped.process.returncode == 0
    assert not (tmp_path / "stopped" / "environment.json").exists()
    done = _run("aws", "env", "--data-dir", str(tmp_path / "stopped"))
    assert done.returncode == 2 and "no rcforest aws is running" in done.stderr
    # No server on a folder: one line that says how to start one.
    missing = _run("aws", "env", "--data-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "no rcforest aws is running on the data folder" in missing.stderr
    assert f"rcforest aws --data-dir {tmp_path}" in missing.stderr


def _own_keys(running):
    """The server's environment with the user's own keys instead of the role's."""
    own = dict(running.environment)
    own.update(AWS_ACCESS_KEY_ID="AKIAUSERSOWNKEY00001", AWS_SECRET_ACCESS_KEY="my-own-secret")
    del own["AWS_SESSION_TOKEN"]
    return own


def test_any_keys_are_role_gives_the_execution_role_to_the_users_own_keys(tmp_path, aws_env):
    running = Server(tmp_path / "data", "--any-keys-are-role")
    try:
        assert any("Any access keys are a session of the execution role" in line for line in running.output)
        running.environment = _own_keys(running)
        with exported(running):
            import sagemaker

            assert sagemaker.get_execution_role() == ROLE
            identity = boto3.client("sts").get_caller_identity()
            role_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/AmazonSageMaker-ExecutionRole-rcforest/rcforest"
            assert identity["Arn"] == role_session
            assert identity["Account"] == ACCOUNT
            # The other STS actions are moto's, as without the option.
            session = boto3.client("sts").assume_role(RoleArn=ROLE, RoleSessionName="other")
            assert session["AssumedRoleUser"]["Arn"].endswith("/other")
            assert sagemaker.Session().default_bucket() == f"sagemaker-us-east-1-{ACCOUNT}"
    finally:
        running.stop()


def test_without_the_option_the_users_own_keys_are_not_the_role(server):
    own = dict(server.environment, AWS_ACCESS_KEY_ID="AKIAUSERSOWNKEY00001", AWS_SECRET_ACCESS_KEY="x")
    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=own["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=own["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=own["AWS_SECRET_ACCESS_KEY"],
    )
    assert ":assumed-role/" not in sts.get_caller_identity()["Arn"]


# ------------------------------------------------------------------ item: roles and images as AWS checks them


def _refusal(**changes):
    client = boto3.client("sagemaker")
    request = _train_request(f"refused-{time.time_ns()}")
    for key, value in changes.items():
        if key == "image":
            request["AlgorithmSpecification"]["TrainingImage"] = value
        else:
            request[key] = value
    with pytest.raises(ClientError) as failure:
        client.create_training_job(**request)
    assert failure.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError, match="Requested resource not found"):
        client.describe_training_job(TrainingJobName=request["TrainingJobName"])  # nothing was made
    return failure.value.response["Error"]["Message"]


def _assume_message(arn):
    return (
        f"Could not assume role {arn}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role."
    )


def test_a_role_sagemaker_cannot_assume_is_refused(server):
    iam = boto3.client("iam")
    untrusting = f"compat-ec2-{time.time_ns()}"
    ec2_trust = {**TRUST, "Statement": [{**TRUST["Statement"][0], "Principal": {"Service": "ec2.amazonaws.com"}}]}
    iam.create_role(RoleName=untrusting, AssumeRolePolicyDocument=json.dumps(ec2_trust))
    for arn in (
        "arn:aws:iam::210987654321:role/AmazonSageMaker-ExecutionRole-rcforest",  # another account
        f"arn:aws:iam::{ACCOUNT}:role/no-such-role",
        f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-rcforest",  # not its path
        f"arn:aws:iam::{ACCOUNT}:role/{untrusting}",  # SageMaker is not trusted
    ):
        assert _refusal(RoleArn=arn) == _assume_message(arn)
    # A role of the user's own, with a path, that trusts SageMaker: accepted.
    iam.create_role(RoleName="compat-own", Path="/service-role/", AssumeRolePolicyDocument=json.dumps(TRUST))
    request = _train_request(f"own-role-{time.time_ns()}", role=f"arn:aws:iam::{ACCOUNT}:role/service-role/compat-own")
    boto3.client("sagemaker").create_training_job(**request)
    assert _wait(request["TrainingJobName"])["TrainingJobStatus"] == "Completed"
    with pytest.raises(ClientError, match="Could not assume role"):
        boto3.client("sagemaker").create_model(
            ModelName="compat-bad-role",
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://rcforest-compat/model.tar.gz"},
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/no-such-role",
        )


def test_an_image_of_another_registry_or_region_is_refused(server):
    other_account = "664544806723.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"  # eu-central-1's registry
    assert _refusal(image=other_account) == (
        "Access denied for repository: randomcutforest in registry ID: 664544806723. Please check if your ECR "
        f"repository and image exist and role {ROLE} has proper pull permissions for SageMaker: "
        "ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer"
    )
    other_region = "664544806723.dkr.ecr.eu-central-1.amazonaws.com/randomcutforest:1"
    assert _refusal(image=other_region) == (
        "Invalid DNS suffix 'amazonaws.com' for region 'eu-central-1' in training image. "
        "Please provide the valid <region>.<dns-suffix>: 'us-east-1.amazonaws.com'"
    )
    assert _refusal(image="randomcutforest:latest").startswith("Invalid training image.")
    with pytest.raises(ClientError, match="Cross region ECR image pulls are not allowed"):
        boto3.client("sagemaker").create_model(
            ModelName="compat-other-region",
            PrimaryContainer={"Image": other_region, "ModelDataUrl": "s3://rcforest-compat/model.tar.gz"},
            ExecutionRoleArn=ROLE,
        )


def test_each_region_takes_the_image_the_sdk_names_for_it(server):
    """The registries table is the SDK's: a job in eu-west-1 takes image_uris' eu-west-1 image, not us-east-1's."""
    from sagemaker import image_uris

    from rcforest.aws.access import REGISTRIES, check_image_location
    from rcforest.aws.resources import ApiError

    for region, account in REGISTRIES.items():
        if region.startswith(("cn-", "us-gov-", "us-iso")):
            continue  # the SDK needs those partitions' endpoints data
        uri = image_uris.retrieve("randomcutforest", region)
        assert uri.split(".")[0] == account
        check_image_location(uri, region, ROLE)
        with pytest.raises(ApiError):
            check_image_location(uri, "us-east-1" if region != "us-east-1" else "us-east-2", ROLE)
    client = boto3.client("sagemaker", region_name="eu-west-1")
    request = _train_request(f"eu-{time.time_ns()}", image=image_uris.retrieve("randomcutforest", "eu-west-1"))
    client.create_training_job(**request)
    with pytest.raises(ClientError, match="Invalid DNS suffix"):
        client.create_training_job(
            **{**request, "TrainingJobName": f"eu-us-{time.time_ns()}"}
            | {"AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"}}
        )


# ------------------------------------------------------------------ item: status lines


def test_status_lines_are_awss_and_another_image_fails_while_starting(server):
    client = boto3.client("sagemaker")
    good = _train_request(f"status-{time.time_ns()}")
    client.create_training_job(**good)
    description = _wait(good["TrainingJobName"])
    steps = [(t["Status"], t["StatusMessage"]) for t in description["SecondaryStatusTransitions"]]
    assert steps == [
        ("Starting", "Starting the training job"),
        ("Downloading", "Downloading input data"),
        ("Training", "Training image download completed. Training in progress."),
        ("Uploading", "Uploading generated training model"),
        ("Completed", "Training job completed"),
    ]
    xgboost = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    other = _train_request(f"status-xgb-{time.time_ns()}", image=xgboost)
    client.create_training_job(**other)
    description = _wait(other["TrainingJobName"])
    assert description["TrainingJobStatus"] == "Failed"
    steps = [t["Status"] for t in description["SecondaryStatusTransitions"]]
    assert steps == ["Starting", "Failed"]
    assert "Random Cut Forest" not in description["SecondaryStatusTransitions"][0]["StatusMessage"]
    assert description["SecondaryStatusTransitions"][-1]["StatusMessage"] == description["FailureReason"]
    # The log names the image's folders, never the server's.
    logs = boto3.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{good['TrainingJobName']}/")
    (stream,) = streams["logStreams"]
    lines = [
        e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
    ]
    assert any(line.endswith("model written to /opt/ml/model/model.rcf") for line in lines)
    assert not any(str(server.data_dir) in line for line in lines)


# ------------------------------------------------------------------ item: SDK v1 names


def test_sdk_v1_names_are_renamed_with_a_warning_and_train(server, caplog):
    """SDK v2 takes ``train_instance_count``, ``train_instance_type`` and ``get_image_uri`` with a warning."""
    import logging

    from sagemaker.amazon.amazon_estimator import get_image_uri
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    caplog.set_level(logging.WARNING, logger="sagemaker.deprecations")
    uri = _train_request("unused")["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    estimator = Estimator(
        image_uri=get_image_uri("us-east-1", "randomcutforest"),
        role=sagemaker.get_execution_role(),
        train_instance_count=1,
        train_instance_type="ml.m5.large",
        output_path="s3://rcforest-compat/v1-names",
    )
    estimator.set_hyperparameters(feature_dim=2, num_samples_per_tree=64, num_trees=50)
    estimator.fit({"train": TrainingInput(uri, content_type="text/csv")}, logs=False)
    renamed = {"train_instance_count", "train_instance_type", "The method get_image_uri"}
    assert {name for name in renamed if f"{name} has been renamed" in caplog.text} == renamed
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed"
    assert description["ResourceConfig"]["InstanceCount"] == 1
    assert description["ResourceConfig"]["InstanceType"] == "ml.m5.large"
