"""The estimator path: RandomCutForest / Estimator fit, test metrics, deploy, predict and delete_endpoint."""

import json
import os
import re
import urllib.error
import urllib.request

import boto3
import numpy as np
import pandas as pd
import pytest
from sagemaker.amazon.common import read_records as sdk_read_records
from sagemaker.amazon.randomcutforest import RandomCutForestPredictor as SdkRandomCutForestPredictor
from sagemaker.inputs import TrainingInput as SdkTrainingInput
from sagemaker.session import Session as SdkSession
from sklearn.metrics import f1_score

from rcforest import Forest
from rcforest.sagemaker import Estimator, Predictor, RandomCutForest, RecordSet, TrainingInput
from rcforest.sagemaker.deserializers import JSONDeserializer
from rcforest.sagemaker.predictor import endpoint_names
from rcforest.sagemaker.serializers import CSVSerializer
from tests.seeded_data import labelled_test, normal_rows

METRIC_LINE = re.compile(r"^\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d INFO \d+\] #test_score \(algo-1\) : \('(\w+)', (\S+)\)$")


@pytest.fixture
def rcf(tmp_path):
    return RandomCutForest(
        role=None,
        instance_count=1,
        instance_type="local",
        num_samples_per_tree=64,
        num_trees=50,
        data_location=str(tmp_path / "data"),
        output_path=f"file://{tmp_path / 'output'}",
    )


def _refused(url):
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/ping", timeout=5)
    except urllib.error.URLError:
        return True
    return False


def test_issue_example_end_to_end(rcf, capsys):
    train = normal_rows()
    records = rcf.record_set(train)
    assert isinstance(records, RecordSet) and (records.num_records, records.feature_dim) == (1500, 2)
    rcf.fit(records)
    assert rcf.hyperparameters() == {
        "num_samples_per_tree": "64",
        "num_trees": "50",
        "mini_batch_size": "1000",
        "feature_dim": "2",
    }
    assert "training 50 trees of 64 samples on 1500 records" in capsys.readouterr().out
    forest = Forest.load(rcf.model_data)
    assert (forest.num_trees, forest.sample_size, forest.n_features_) == (50, 64, 2)

    predictor = rcf.deploy(initial_instance_count=1, instance_type="local")
    try:
        test = np.r_[normal_rows(seed=5, rows=20), [[7.0, -7.0]]]
        result = predictor.predict(test)
        scores = np.array([record.label["score"].float32_tensor.values[0] for record in result])
        np.testing.assert_array_equal(scores, forest.score(test).astype(np.float32))
        assert scores[-1] > 2 * np.median(scores[:-1])

        predictor.serializer = CSVSerializer()
        predictor.deserializer = JSONDeserializer()
        answer = predictor.predict(test)
        assert list(answer) == ["scores"]
        np.testing.assert_array_equal([item["score"] for item in answer["scores"]], forest.score(test))
        url = predictor.endpoint_url
        assert url.startswith("http://127.0.0.1:")
    finally:
        predictor.delete_endpoint()
    assert predictor.endpoint_name not in endpoint_names()
    assert _refused(url)
    with pytest.raises(ValueError, match="no local endpoint"):
        predictor.predict(test)


def test_record_set_is_local_recordio_the_sdk_reads(rcf):
    train = normal_rows(rows=300, features=3).astype(np.float32)
    labels = (np.arange(300) % 50 == 0).astype(np.float32)
    records = rcf.record_set(train, labels=labels, channel="test")
    with open(records.s3_data, encoding="utf-8") as file:
        manifest = json.load(file)
    prefix = manifest[0]["prefix"][len("file://") :]
    read = []
    for key in manifest[1:]:
        with open(os.path.join(prefix, key), "rb") as file:
            read.extend(sdk_read_records(file))
    np.testing.assert_array_equal([list(r.features["values"].float32_tensor.values) for r in read], train)
    np.testing.assert_array_equal([r.label["values"].float32_tensor.values[0] for r in read], labels)
    assert records.channel == "test" and records.s3_data_type == "ManifestFile"


def test_test_channel_metrics_and_f1_log_line(rcf, capsys):
    test, labels = labelled_test()
    rcf.fit([rcf.record_set(normal_rows()), rcf.record_set(test, labels=labels, channel="test")])
    lines = [METRIC_LINE.match(line) for line in capsys.readouterr().out.splitlines()]
    logged = {match.group(1): float(match.group(2)) for match in lines if match}
    assert set(logged) == {"accuracy", "precision", "recall", "f1", "precision_normal", "recall_normal", "f1_normal"}
    assert logged == pytest.approx(rcf.test_metrics, abs=1e-12)
    # The reference: the model's own scores, mean + 3 std, scikit-learn's F1.
    scores = Forest.load(rcf.model_data).score(test)
    predicted = scores > scores.mean() + 3 * scores.std()
    assert rcf.test_metrics["f1"] == pytest.approx(f1_score(labels, predicted), abs=1e-12)
    assert rcf.test_metrics["f1"] >= 0.9  # eight far outliers among 400 points are all found
    assert rcf.test_metrics["accuracy"] >= 0.99


def test_eval_metrics_selects_what_is_reported(capsys):
    rcf = RandomCutForest(num_samples_per_tree=64, num_trees=50, eval_metrics=["accuracy"])
    test, labels = labelled_test()
    rcf.fit([rcf.record_set(normal_rows()), rcf.record_set(test, labels=labels, channel="test")])
    assert list(rcf.test_metrics) == ["accuracy"]
    assert "('accuracy'," in capsys.readouterr().out


def test_hyperparameter_validation_on_the_estimator(rcf):
    with pytest.raises(ValueError, match=r"num_trees must be an integer in \[50, 1000\], got 10"):
        RandomCutForest(role=None, instance_count=1, instance_type="local", num_trees=10)
    with pytest.raises(ValueError, match=r"num_samples_per_tree must be an integer in \[1, 2048\]"):
        rcf.num_samples_per_tree = 4096
    assert rcf.num_samples_per_tree == 64
    with pytest.raises(ValueError, match="eval_metrics"):
        rcf.eval_metrics = ["auc"]
    records = rcf.record_set(normal_rows(rows=200))
    with pytest.raises(ValueError, match="fixed mini_batch_size of 1000"):
        rcf.fit(records, mini_batch_size=500)
    rcf.fit(records, mini_batch_size=1000, logs=False)
    assert rcf.hyperparameters()["mini_batch_size"] == "1000"


def _csv_channel(tmp_path, array, name="train.csv"):
    folder = tmp_path / name.split(".")[0]
    folder.mkdir()
    np.savetxt(folder / name, array, delimiter=",")
    return folder


def test_generic_estimator_with_feature_size_tutorial(tmp_path):
    series = np.sin(np.arange(1200) / 10.0)[:, None]
    est = Estimator(image_uri="randomcutforest", role=None, instance_count=1, instance_type="local")
    with pytest.warns(FutureWarning, match="feature_size is a deprecated alias"):
        est.set_hyperparameters(num_samples_per_tree=200, num_trees=50, feature_size=1)
    assert est.hyperparameters() == {"num_samples_per_tree": "200", "num_trees": "50", "feature_dim": "1"}
    folder = _csv_channel(tmp_path, series)
    est.fit({"train": TrainingInput(f"file://{folder}", content_type="text/csv;label_size=0")}, logs=False)
    np.testing.assert_array_equal(est.forest.score(series[:50]), Forest.load(est.model_data).score(series[:50]))
    predictor = est.deploy(initial_instance_count=1, instance_type="local", serializer=CSVSerializer())
    try:
        assert type(predictor) is Predictor
        body = predictor.predict(np.array([[0.5], [40.0]]))  # default deserializer: raw bytes
        scores = [item["score"] for item in json.loads(body)["scores"]]
        np.testing.assert_array_equal(scores, est.forest.score(np.array([[0.5], [40.0]])))
    finally:
        est.delete_endpoint()


def test_estimator_accepts_the_sdks_training_input_and_csv_test_channel(tmp_path):
    train = normal_rows(rows=800)
    test, labels = labelled_test(rows=200, anomalies=4)
    est = Estimator(role=None, instance_count=1, instance_type="local", output_path=str(tmp_path / "out"))
    est.set_hyperparameters(num_samples_per_tree=64, num_trees=50, feature_dim=2)
    est.fit(
        {
            "train": SdkTrainingInput(f"file://{_csv_channel(tmp_path, train)}", content_type="text/csv;label_size=0"),
            "test": SdkTrainingInput(
                f"file://{_csv_channel(tmp_path, np.c_[labels, test], 'test.csv')}",
                content_type="text/csv;label_size=1",
            ),
        },
        logs=False,
    )
    assert est.model_data.startswith(str(tmp_path / "out"))
    assert est.test_metrics["f1"] >= 0.8


@pytest.mark.parametrize(
    ("inputs", "hyperparameters", "message"),
    [
        ({"train": "s3://bucket/prefix/train"}, {"feature_dim": 2}, "trains locally"),
        (None, {"feature_dim": 2}, "needs training data"),
        ("CSV", {"feature_dim": 3}, "feature_dim is 3 but the train data has 2 features"),
        ("CSV", {"num_trees": 50}, "feature_dim is required"),
        ({"validation": "CSV"}, {"feature_dim": 2}, "channels train and test, got validation"),
    ],
)
def test_training_failures_say_why(tmp_path, inputs, hyperparameters, message):
    folder = str(_csv_channel(tmp_path, normal_rows(rows=100)))
    if inputs == "CSV":
        inputs = {"train": folder}
    elif isinstance(inputs, dict):
        inputs = {name: folder if value == "CSV" else value for name, value in inputs.items()}
    est = Estimator(role=None, instance_count=1, instance_type="local", hyperparameters=hyperparameters)
    with pytest.raises(ValueError, match=message):
        est.fit(inputs, logs=False)
    with pytest.raises(ValueError, match="not trained yet"):
        est.deploy()


def test_test_channel_without_labels_fails(rcf):
    with pytest.raises(ValueError, match="test channel needs labels"):
        rcf.fit(
            [rcf.record_set(normal_rows(rows=200)), rcf.record_set(normal_rows(rows=50), channel="test")], logs=False
        )


def test_deployed_endpoint_serves_boto3_and_sdk_clients(rcf, aws_env):
    rcf.fit(rcf.record_set(normal_rows()), logs=False)
    ours = rcf.deploy(initial_instance_count=1, instance_type="local", endpoint_name="taxi-rcf")
    url = ours.endpoint_url
    try:
        boto_session = boto3.session.Session()
        runtime = boto_session.client("sagemaker-runtime", endpoint_url=url)
        session = SdkSession(
            boto_session=boto_session,
            sagemaker_client=boto_session.client("sagemaker", endpoint_url=url),
            sagemaker_runtime_client=runtime,
        )
        test = normal_rows(seed=9, rows=10)
        theirs = SdkRandomCutForestPredictor("taxi-rcf", sagemaker_session=session).predict(test)
        mine = ours.predict(test)
        assert [r.SerializeToString() for r in theirs] == [r.SerializeToString() for r in mine]
        assert [r.label["score"].float32_tensor.values[0] for r in mine] == rcf.forest.score(test).astype(
            np.float32
        ).tolist()
    finally:
        ours.delete_predictor()
    assert _refused(url)


def test_nyc_taxi_notebook_calls_run_with_only_the_import_changed():
    """The SageMaker RCF example notebook's calls, verbatim but for the import and a synthetic series."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    from rcforest.sagemaker import RandomCutForest  # was: from sagemaker import RandomCutForest

    bucket, prefix = "my-bucket", "sagemaker/rcf-benchmarks"
    execution_role = "arn:aws:iam::111122223333:role/service-role/SageMakerRole"
    t = np.arange(2400)
    rng = np.random.default_rng(11)
    taxi_data = pd.DataFrame({"value": 15000 + 8000 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 300, t.size)})
    taxi_data.loc[2000, "value"] = 60000.0

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
    print(f"Training job name: {rcf.latest_training_job.job_name}")
    rcf_inference = rcf.deploy(initial_instance_count=1, instance_type="ml.m4.xlarge")
    try:
        print(f"Endpoint name: {rcf_inference.endpoint}")
        rcf_inference.serializer = CSVSerializer()
        rcf_inference.deserializer = JSONDeserializer()
        taxi_data_numpy = taxi_data.value.to_numpy().reshape(-1, 1)
        results = rcf_inference.predict(taxi_data_numpy[:6])
        assert len(results["scores"]) == 6
        results = rcf_inference.predict(taxi_data_numpy)
        scores = [datum["score"] for datum in results["scores"]]
        taxi_data["score"] = pd.Series(scores, index=taxi_data.index)
        score_cutoff = taxi_data["score"].mean() + 3 * taxi_data["score"].std()
        anomalies = taxi_data[taxi_data["score"] > score_cutoff]
    finally:
        rcf_inference.delete_endpoint()
    np.testing.assert_array_equal(scores, rcf.forest.score(taxi_data_numpy))
    # The training job draws its own seed, as SageMaker's does: the spike scores highest in every draw, and over
    # 30 seeds of the built-in's layout 32-65 of the 2,400 rows pass mean + 3 std (the sine's peaks and troughs).
    assert 2000 in anomalies.index and taxi_data["score"].idxmax() == 2000
    assert len(anomalies) < 100
