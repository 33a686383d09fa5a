"""``rcforest aws`` against the SageMaker SDK v3 (``sagemaker>=3``): ModelTrainer and sagemaker-core's resources.

SDK v3 cannot be installed beside SDK v2, which the rest of the suite
tests, so this module runs in a virtual environment of its own that
``.ci/run`` builds (``pip install -e ".[sdk3]"``) and runs it with
``RCFOREST_REQUIRE_SDK3=1``: there a missing SDK v3 is an error, never a
skip. In the main environment (SDK v2) the module is skipped, with that
reason.

The server runs as ``python -m rcforest aws`` in a child process, on
loopback; the tests export the environment it prints and run the README's
SDK v3 example as written.
"""

import gzip
import io
import json
import os
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

REQUIRED = os.environ.get("RCFOREST_REQUIRE_SDK3") == "1"
try:
    VERSION = metadata.version("sagemaker")
except metadata.PackageNotFoundError:
    VERSION = None
if VERSION is None or int(VERSION.split(".")[0]) < 3:
    reason = f"needs the SageMaker SDK v3 (found {VERSION}); .ci/run runs this module in its own environment"
    if REQUIRED:
        raise RuntimeError(f"RCFOREST_REQUIRE_SDK3=1 but {reason}")
    pytest.skip(reason, allow_module_level=True)

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.aws_server import REPO, Server, exported  # noqa: E402

pytestmark = pytest.mark.timeout(600)

README = Path(REPO) / "README.md"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/AmazonSageMaker-ExecutionRole-rcforest"


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_env):
    running = Server(tmp_path_factory.mktemp("aws-data"))
    with exported(running):
        yield running
    running.stop()


def _v3_example():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (block,) = [block for block in blocks if "from sagemaker.train" in block]
    return block


def test_the_readme_nyc_taxi_example_runs_with_sdk_v3(server, tmp_path, monkeypatch):
    """The README's SDK v3 example, as written, on the NYC taxi series copied where AWS's example reads it."""
    monkeypatch.chdir(tmp_path)
    with gzip.open(REPO / "rcforest" / "data" / "nyc_taxi.csv.gz") as file:
        data = file.read()
    public = "sagemaker-example-files-prod-us-east-1"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=public)
    s3.put_object(Bucket=public, Key="datasets/tabular/anomaly_benchmark_taxi/NAB_nyc_taxi.csv", Body=data)

    namespace = {}
    exec(compile(_v3_example(), "README SDK v3 example", "exec"), namespace)

    job, taxi_data, anomalous = namespace["job"], namespace["taxi_data"], namespace["anomalous"]
    assert namespace["execution_role"] == ROLE
    assert namespace["bucket"] == f"sagemaker-us-east-1-{ACCOUNT}"
    assert job.training_job_status == "Completed"
    image = namespace["image_uris"].retrieve("randomcutforest", "us-east-1")
    assert job.algorithm_specification.training_image == image
    assert job.hyper_parameters == {"feature_dim": "1", "num_samples_per_tree": "512", "num_trees": "50"}
    # The job's log is in CloudWatch Logs, where train(logs=True) reads it.
    logs = boto3.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    (stream,) = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job.training_job_name}/")[
        "logStreams"
    ]
    events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
    lines = [event["message"] for event in events]
    assert any("training 50 trees of 512 samples on 10320 records with 1 features" in line for line in lines)
    assert lines[-1] == "===== Job Complete ====="
    scores = taxi_data["score"].to_numpy()
    assert scores.shape == (10320,) and np.isfinite(scores).all()
    # The job draws its own seed: over 1,200 seeds of the built-in's layout the cut-off flagged 190 to 308 rows
    # (mean 235, standard deviation 16, a long upper tail: 3 runs from 300), just under 3% of the rows (309).
    assert 1 <= len(anomalous) <= 0.04 * len(taxi_data)
    # The example's cut-off flags points inside NAB's labelled anomaly windows.
    labels = json.loads((REPO / "rcforest" / "data" / "nyc_taxi_labels.json").read_text())
    flagged = np.array(anomalous["timestamp"], dtype="datetime64[s]")
    windows = np.array(labels["windows"], dtype="datetime64[s]")
    assert any(((flagged >= start) & (flagged <= end)).any() for start, end in windows)
    # The endpoint, its configuration and the model are gone.
    client = boto3.client("sagemaker")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        client.describe_endpoint(EndpointName=job.training_job_name)
    with pytest.raises(ClientError, match="Could not find model"):
        client.describe_model(ModelName=job.training_job_name)


def test_sagemaker_core_resources_and_the_model_error(server):
    """TrainingJob.get, Endpoint.invoke, a container error as ModelError, and the role check's simulation."""
    from sagemaker.core import image_uris
    from sagemaker.core.helper.session_helper import Session, get_execution_role
    from sagemaker.core.resources import Endpoint, EndpointConfig, Model, TrainingJob
    from sagemaker.core.shapes import ContainerDefinition, ProductionVariant
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
    from sagemaker.train import ModelTrainer

    session = Session()
    role = get_execution_role(session)
    bucket = session.default_bucket()
    rows = np.random.default_rng(0).normal(size=(400, 2))
    buffer = io.StringIO()
    np.savetxt(buffer, rows, delimiter=",", fmt="%.5f")
    boto3.client("s3").put_object(Bucket=bucket, Key="v3/train/rows.csv", Body=buffer.getvalue())
    image = image_uris.retrieve("randomcutforest", "us-east-1")
    trainer = ModelTrainer(
        training_image=image,
        role=role,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        hyperparameters={"feature_dim": 2, "num_samples_per_tree": 128, "num_trees": 50},
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{bucket}/v3/output"),
        base_job_name="rcf-core",
    )
    trainer.train(
        input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/v3/train/")], logs=False
    )
    job = TrainingJob.get(trainer._latest_training_job.training_job_name)
    assert job.training_job_status == "Completed" and job.secondary_status == "Completed"
    name = job.training_job_name
    container = ContainerDefinition(image=image, model_data_url=job.model_artifacts.s3_model_artifacts)
    model = Model.create(model_name=name, primary_container=container, execution_role_arn=role)
    variant = ProductionVariant(
        variant_name="AllTraffic", model_name=name, initial_instance_count=1, instance_type="ml.m5.large"
    )
    config = EndpointConfig.create(endpoint_config_name=name, production_variants=[variant])
    endpoint = Endpoint.create(endpoint_name=name, endpoint_config_name=name)
    endpoint.wait_for_status("InService")
    answer = endpoint.invoke(body="0.1,0.2\n9,9\n", content_type="text/csv", accept="application/json")
    scores = [datum["score"] for datum in json.loads(answer.body.read())["scores"]]
    assert len(scores) == 2 and scores[1] > scores[0]
    runtime = boto3.client("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        endpoint.invoke(body=",".join(["1"] * 29), content_type="text/csv")
    assert caught.value.response["OriginalStatusCode"] == 400
    endpoint.delete()
    config.delete()
    model.delete()

    # What ModelTrainer asked IAM: the role's policies allow the SageMaker actions, on SageMaker's buckets only.
    iam = boto3.client("iam")
    results = iam.simulate_principal_policy(
        PolicySourceArn=role,
        ActionNames=["ecr:GetAuthorizationToken", "s3:PutObject", "iam:CreateUser"],
        ResourceArns=[f"arn:aws:s3:::{bucket}/*"],
    )["EvaluationResults"]
    decisions = {result["EvalActionName"]: result["EvalDecision"] for result in results}
    assert decisions == {
        "ecr:GetAuthorizationToken": "allowed",
        "s3:PutObject": "allowed",
        "iam:CreateUser": "implicitDeny",
    }
    other = iam.simulate_principal_policy(
        PolicySourceArn=role, ActionNames=["s3:PutObject"], ResourceArns=["arn:aws:s3:::someone-elses-bucket/*"]
    )["EvaluationResults"]
    assert other[0]["EvalDecision"] == "implicitDeny"
    # A role that trusts SageMaker but has no policy: ModelTrainer's check refuses it, from the simulation.
    bare = iam.create_role(
        RoleName="rcf-v3-bare",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    with pytest.raises(Exception, match="ecr:GetAuthorizationToken") as refused:
        ModelTrainer(training_image=image, role=bare, compute=Compute(instance_type="ml.m5.large", instance_count=1))
    assert type(refused.value).__name__ == "RoleValidationError"
