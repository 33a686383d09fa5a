"""The bring-your-own-container contract: ``rcforest train`` on an /opt/ml layout, then ``rcforest serve``."""

import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.config import Config
from sagemaker.amazon.common import write_numpy_to_dense_tensor

from rcforest import Forest
from rcforest.cli import main
from rcforest.sagemaker import model as sagemaker_model
from rcforest.sagemaker.formats import read_recordio
from rcforest.sagemaker.record import Record
from tests import processes
from tests.test_sagemaker_formats import sparse_records

REPO = Path(__file__).resolve().parents[1]
LOOPBACK_ONLY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _layout(root, hyperparameters, channels, data_config=None):
    """Write an /opt/ml tree: hyperparameters (as strings), inputdataconfig and channel files."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    if data_config is not None:
        (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    for name, files in channels.items():
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True)
        for file_name, content in files.items():
            (folder / file_name).write_bytes(content)
    return root


def _csv(array):
    buffer = io.StringIO()
    np.savetxt(buffer, array, delimiter=",")
    return buffer.getvalue().encode()


def _recordio(array, labels=None):
    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def _train_and_test(seed=0):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(1200, 2))
    test = rng.normal(size=(300, 2))
    labels = np.zeros(300)
    test[:6] += 9.0
    labels[:6] = 1
    return train, test, labels


HYPERPARAMETERS = {"feature_dim": 2, "num_samples_per_tree": 64, "num_trees": 50, "mini_batch_size": 1000}


def test_train_csv_with_test_channel(tmp_path, capsys):
    train, test, labels = _train_and_test()
    root = _layout(
        tmp_path / "ml",
        HYPERPARAMETERS,
        {"train": {"train.csv": _csv(train)}, "test": {"test.csv": _csv(np.c_[labels, test])}},
        {
            "train": {"ContentType": "text/csv;label_size=0", "TrainingInputMode": "File"},
            "test": {"ContentType": "text/csv;label_size=1", "TrainingInputMode": "File"},
        },
    )
    assert main(["train", "--ml-root", str(root)]) == 0
    out = capsys.readouterr().out
    f1 = re.search(r"INFO \d+\] #test_score \(algo-1\) : \('f1', (\S+)\)$", out, re.MULTILINE)
    assert f1 is not None, out
    forest = Forest.load(root / "model" / "model.rcf")
    assert (forest.num_trees, forest.sample_size, forest.n_features_, forest.points_seen_) == (50, 64, 2, 1200)
    scores = forest.score(test)
    predicted = scores > scores.mean() + 3 * scores.std()
    true_positive = np.sum(predicted & (labels == 1))
    expected_f1 = 2 * true_positive / (predicted.sum() + labels.sum())
    assert float(f1.group(1)) == pytest.approx(expected_f1, abs=1e-12)
    assert expected_f1 >= 0.9
    assert not (root / "output" / "failure").exists()


def test_train_recordio_shards_without_content_type(tmp_path):
    rng = np.random.default_rng(3)
    shards = [rng.normal(size=(n, 3)) for n in (300, 250, 5)]
    root = _layout(
        tmp_path / "ml",
        {"feature_dim": "3", "num_trees": "50", "num_samples_per_tree": "32"},
        {"train": {f"matrix_{i}.pbr": _recordio(shard) for i, shard in enumerate(shards)}},
    )
    assert main(["train", "--ml-root", str(root)]) == 0
    forest = Forest.load(root / "model" / "model.rcf")
    assert forest.points_seen_ == 555 and forest.n_features_ == 3


@pytest.mark.parametrize(
    ("hyperparameters", "channels", "data_config", "reason"),
    [
        ({**HYPERPARAMETERS, "num_trees": "10"}, None, None, r"num_trees must be an integer in [50, 1000], got 10"),
        ({**HYPERPARAMETERS, "mini_batch_size": "10"}, None, None, "fixed mini_batch_size of 1000"),
        ({**HYPERPARAMETERS, "feature_dim": "5"}, None, None, "feature_dim is 5 but the train data has 2 features"),
        (HYPERPARAMETERS, {"train": {"a.csv": b"x,y\n1,2\n"}}, None, "not all numbers"),
        (HYPERPARAMETERS, {"train": {"a.csv": b"1,2\n1_000,2\n"}}, None, "line 2 is not all numbers: column 1"),
        (
            HYPERPARAMETERS,
            {"train": {"a.rec": sparse_records([2, 10**12])}},
            None,
            'record 1 features["values"] has shape [1000000000000] but the model takes 2 features',
        ),
        (HYPERPARAMETERS, {"test": {"t.csv": b"1,2,3\n"}}, None, "the train channel is required"),
        (HYPERPARAMETERS, {"train": {}}, None, "has no data files"),
        (HYPERPARAMETERS, {"train": {"a.csv": b"1,2\n3,4\n" * 49}}, None, "pass at least 100 records"),
        (
            HYPERPARAMETERS,
            None,
            {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}},
            "only TrainingInputMode File",
        ),
        (HYPERPARAMETERS, None, {"train": {"ContentType": "application/x-parquet"}}, "not supported"),
        (
            HYPERPARAMETERS,
            {"train": {"a.csv": b"1,2\n3,4\n" * 50}, "test": {"t.csv": b"1,2\n"}},
            {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv;label_size=0"}},
            "test channel needs labels",
        ),
    ],
)
def test_bad_input_writes_failure_and_exits_nonzero(tmp_path, capsys, hyperparameters, channels, data_config, reason):
    channels = channels or {"train": {"train.csv": _csv(_train_and_test()[0])}}
    root = _layout(tmp_path / "ml", hyperparameters, channels, data_config)
    assert main(["train", "--ml-root", str(root)]) == 2
    failure = (root / "output" / "failure").read_text()
    assert reason in failure
    err = capsys.readouterr().err
    assert err.startswith("rcforest train: error: ") and reason in err and err.count("\n") == 1
    assert not (root / "model" / "model.rcf").exists()


def test_feature_size_in_hyperparameters_json_is_read_as_feature_dim(tmp_path):
    hyperparameters = {"feature_size": "2", "num_samples_per_tree": "200", "num_trees": "50"}
    root = _layout(tmp_path / "ml", hyperparameters, {"train": {"train.csv": _csv(_train_and_test()[0])}})
    with pytest.warns(FutureWarning, match="feature_size is a deprecated alias"):
        assert main(["train", "--ml-root", str(root)]) == 0
    assert Forest.load(root / "model" / "model.rcf").n_features_ == 2


def test_missing_hyperparameters_file(tmp_path, capsys):
    assert main(["train", "--ml-root", str(tmp_path)]) == 2
    assert "hyperparameters.json not found" in (tmp_path / "output" / "failure").read_text()
    assert "Traceback" not in capsys.readouterr().err


def test_serve_reports_a_missing_model_in_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model" in err


def test_serve_reports_a_busy_port_in_one_line(tmp_path, capsys):
    Forest(num_trees=5, sample_size=8, random_state=0).fit(np.arange(20.0)).save(tmp_path / "m.rcf")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", str(tmp_path / "m.rcf"), "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1:" in err


@pytest.fixture
def served_model(tmp_path):
    """Train through the CLI, then run ``python -m rcforest.cli serve ML/model`` as its own process.

    The server is given port 0 and its first line names the port it took: no other process can take
    the port between a probe and the server's bind.
    """
    train, _, _ = _train_and_test()
    root = _layout(tmp_path / "ml", HYPERPARAMETERS, {"train": {"train.csv": _csv(train)}})
    assert main(["train", "--ml-root", str(root)]) == 0
    command = [sys.executable, "-m", "rcforest.cli", "serve", str(root / "model"), "--port", "0"]
    process = subprocess.Popen(
        command + ["--log-level", "warning"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()  # "serving ... on http://127.0.0.1:PORT", or "" when it exited
        if not line:
            process.wait(timeout=60)
            pytest.fail(f"rcforest serve exited with {process.returncode}: {process.stderr.read()}")
        url = line.split(" on ")[-1].strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0"), line
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"rcforest serve exited with {process.returncode}: {process.stderr.read()}")
            try:
                with LOOPBACK_ONLY.open(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("rcforest serve did not answer /ping within 60 s")
            time.sleep(0.1)
        yield url, Forest.load(root / "model" / "model.rcf")
    finally:
        processes.stop(process)


def test_served_model_answers_boto3_like_forest_score(served_model, aws_env):
    url, forest = served_model
    runtime = boto3.session.Session().client(
        "sagemaker-runtime", endpoint_url=url, config=Config(retries={"max_attempts": 1})
    )
    rows = np.r_[np.random.default_rng(4).normal(size=(30, 2)), [[8.0, 8.0]]]
    body = "\n".join(",".join(repr(v) for v in row) for row in rows.tolist())
    response = runtime.invoke_endpoint(
        EndpointName="byoc", Body=body, ContentType="text/csv", Accept="application/json"
    )
    scores = [item["score"] for item in json.loads(response["Body"].read())["scores"]]
    np.testing.assert_array_equal(scores, forest.score(rows))

    response = runtime.invoke_endpoint(
        EndpointName="byoc",
        Body=_recordio(rows),
        ContentType="application/x-recordio-protobuf",
        Accept="application/x-recordio-protobuf",
    )
    records = []
    for payload in read_recordio(response["Body"].read()):
        records.append(Record())
        records[-1].ParseFromString(payload)
    np.testing.assert_array_equal(
        [r.label["score"].float32_tensor.values[0] for r in records], forest.score(rows).astype(np.float32)
    )

    # The container path, /invocations, with a wrong feature count: a 400 JSON error, then service goes on.
    request = urllib.request.Request(
        f"{url}/invocations", data=b"1,2,3", headers={"Content-Type": "text/csv"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        LOOPBACK_ONLY.open(request, timeout=10)
    assert caught.value.code == 400
    assert "forest was built on 2" in json.loads(caught.value.read())["message"]
    request = urllib.request.Request(
        f"{url}/invocations", data=body.encode(), headers={"Content-Type": "text/csv"}, method="POST"
    )
    with LOOPBACK_ONLY.open(request, timeout=10) as answer:
        assert [item["score"] for item in json.loads(answer.read())["scores"]] == forest.score(rows).tolist()


def test_dockerfile_runs_the_train_and_serve_commands():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "rcforest.cli train" in dockerfile and "rcforest.cli serve" in dockerfile
    assert "serve /opt/ml/model --host 0.0.0.0 --port 8080" in dockerfile and "EXPOSE 8080" in dockerfile


# ---------------------------------------- special files and symbolic links


def _train_program(root):
    """Run ``rcforest train`` as a program (a hang fails the test, after a bound)."""
    return subprocess.run(
        [sys.executable, "-m", "rcforest", "train", "--ml-root", str(root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["hyperparameters.json", "inputdataconfig.json"])
def test_a_pipe_for_a_config_file_is_refused_without_blocking(tmp_path, name):
    root = _layout(
        tmp_path / "ml",
        HYPERPARAMETERS,
        {"train": {"train.csv": _csv(_train_and_test()[0])}},
        {"train": {"ContentType": "text/csv"}},
    )
    config = root / "input" / "config" / name
    config.unlink()
    os.mkfifo(config)
    done = _train_program(root)
    assert done.returncode == 2
    reason = f"{name} {config} is a pipe, not a regular file"
    assert reason in done.stderr and "Traceback" not in done.stderr
    assert reason in (root / "output" / "failure").read_text()
    assert not (root / "model").exists()


def test_a_linked_model_folder_is_refused(tmp_path, capsys):
    root = _layout(tmp_path / "ml", HYPERPARAMETERS, {"train": {"train.csv": _csv(_train_and_test()[0])}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "model").symlink_to(elsewhere)
    assert main(["train", "--ml-root", str(root)]) == 2
    assert list(elsewhere.iterdir()) == []
    assert "model is a symbolic link, not a folder" in (root / "output" / "failure").read_text()
    assert "reason written to" in capsys.readouterr().err


def test_a_linked_model_file_is_replaced_not_followed(tmp_path):
    root = _layout(tmp_path / "ml", HYPERPARAMETERS, {"train": {"train.csv": _csv(_train_and_test()[0])}})
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (root / "model").mkdir()
    (root / "model" / "model.rcf").symlink_to(victim)
    assert main(["train", "--ml-root", str(root)]) == 0
    assert victim.read_text() == "keep me\n"
    assert not (root / "model" / "model.rcf").is_symlink()
    assert Forest.load(root / "model" / "model.rcf").n_features_ == 2


def test_a_linked_failure_file_is_replaced_not_followed(tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "ml" / "output").mkdir(parents=True)
    (tmp_path / "ml" / "output" / "failure").symlink_to(victim)
    assert main(["train", "--ml-root", str(tmp_path / "ml")]) == 2
    assert victim.read_text() == "keep me\n"
    failure = tmp_path / "ml" / "output" / "failure"
    assert not failure.is_symlink() and "hyperparameters.json not found" in failure.read_text()
    assert f"reason written to {failure}" in capsys.readouterr().err


def test_a_linked_output_folder_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "output").symlink_to(elsewhere)
    assert main(["train", "--ml-root", str(tmp_path / "ml")]) == 2
    assert list(elsewhere.iterdir()) == []
    err = capsys.readouterr().err
    assert "hyperparameters.json not found" in err and "could not be written to output/failure" in err


def test_archive_paths_that_are_not_regular_files_are_refused(tmp_path):
    fifo = tmp_path / "model.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file|pipe"):
        sagemaker_model.load_model(fifo)


def test_an_archive_member_larger_than_a_loadable_model_is_refused(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("model.rcf")
        info.size = 4096
        archive.addfile(info, io.BytesIO(b"\0" * 4096))
    monkeypatch.setattr(sagemaker_model, "_max_model_bytes", lambda: 1024)
    with pytest.raises(ValueError, match="more than the 1024"):
        sagemaker_model.unpack_model(buffer.getvalue(), tmp_path)
    assert not (tmp_path / "model.rcf").exists()
