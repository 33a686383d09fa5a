"""InvokeEndpoint latency of ``rcforest aws`` idle and while a flood of jobs arrives.

One ``python -m rcforest aws`` child process serves an endpoint (SageMaker's
defaults: 100 trees of 256 points, one feature). A boto3 client sends 1-row
CSV requests in sequence: first on the idle server, then while other clients
send ``--jobs`` CreateTrainingJob calls and ``--tuning``
CreateHyperParameterTuningJob calls (500 training jobs each, 10 in parallel),
10 calls at a time, as the issue's flood does. The table gives the p50, p99
and slowest 1-row latency of each phase, the requests that failed (a timeout
of ``--timeout`` seconds counts as a failure), and how long the Create calls
took.

Run ``python benchmarks/endpoint_under_jobs.py`` (``--requests``, ``--seconds``,
``--jobs``, ``--tuning``).
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from endpoint_latency import CLIENT_KEYS, IMAGE, _deploy, _model, _start, _stop  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/AmazonSageMaker-ExecutionRole-rcforest"


def _clients(url, timeout):
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, proxies={}, read_timeout=timeout, max_pool_connections=16)
    session = boto3.session.Session(**CLIENT_KEYS)
    return session.client("sagemaker-runtime", endpoint_url=url, config=config), session.client(
        "sagemaker", endpoint_url=url, config=config
    )


def _latencies(runtime, name, count=None, until=None):
    """1-row request latencies (s) and failures, for ``count`` requests or until ``until()`` is true."""
    times, failures = [], 0
    while (count is None or len(times) + failures < count) and not (until and until()):
        started = time.perf_counter()
        try:
            runtime.invoke_endpoint(EndpointName=name, Body=b"0.5\n", ContentType="text/csv")["Body"].read()
            times.append(time.perf_counter() - started)
        except Exception:  # timeouts and refused connections count as failures
            failures += 1
    return np.array(times), failures


def _data(url):
    import boto3

    s3 = boto3.session.Session(**CLIENT_KEYS).client("s3", endpoint_url=url)
    rng = np.random.default_rng(2)
    s3.put_object(Bucket="bench", Key="flood/train.csv", Body="".join(f"{v:.5f}\n" for v in rng.normal(size=300)))
    labels = np.zeros(100)
    labels[::25] = 1
    test = rng.normal(size=100) + 8 * labels
    s3.put_object(
        Bucket="bench", Key="flood/test.csv", Body="".join(f"{int(a)},{b:.5f}\n" for a, b in zip(labels, test))
    )
    return "s3://bench/flood/train.csv", "s3://bench/flood/test.csv"


def _definition(train, test):
    channels = [("train", train, "text/csv"), ("test", test, "text/csv;label_size=1")]
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
                "ContentType": content_type,
            }
            for channel, uri, content_type in channels
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bench/flood/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }


def flood(sagemaker, train, test, jobs, tuning, answers):
    """Send the Create calls, 10 at a time; append (seconds, outcome) of each to ``answers``."""
    definition = _definition(train, test)
    hyperparameters = {"feature_dim": "1", "num_samples_per_tree": "64", "num_trees": "50"}

    def training(number):
        sagemaker.create_training_job(TrainingJobName=f"flood-{number}", HyperParameters=hyperparameters, **definition)

    def tune(number):
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=f"tune-{number}",
            HyperParameterTuningJobConfig={
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "test:f1"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 500, "MaxParallelTrainingJobs": 10},
                "ParameterRanges": {
                    "IntegerParameterRanges": [{"Name": "num_trees", "MinValue": "50", "MaxValue": "60"}]
                },
            },
            TrainingJobDefinition={"StaticHyperParameters": hyperparameters, **definition},
        )

    def timed(call, number):
        started = time.perf_counter()
        try:
            call(number)
            outcome = "ok"
        except Exception as error:  # the refusal's code, or the client's timeout
            outcome = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        answers.append((time.perf_counter() - started, outcome))

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        for number in range(jobs):
            pool.submit(timed, training, number)
        for number in range(tuning):
            pool.submit(timed, tune, number)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="sequential 1-row requests on the idle server")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long requests are sent during the flood")
    parser.add_argument("--jobs", type=int, default=50, help="CreateTrainingJob calls of the flood")
    parser.add_argument("--tuning", type=int, default=50, help="CreateHyperParameterTuningJob calls of the flood")
    parser.add_argument("--timeout", type=float, default=15.0, help="client read timeout, seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        _, archive = _model(directory)
        command = [
            *(sys.executable, "-m", "rcforest", "aws", "--port", "0", "--proxy-port", "0"),
            *("--data-dir", os.path.join(directory, "aws")),
        ]
        aws, lines = _start(command, lambda line: line.strip() == "ready")
        try:
            url = next(line.split("=", 1)[1].strip() for line in lines if line.startswith("export AWS_ENDPOINT_URL="))
            name = _deploy(url, archive)
            runtime, sagemaker = _clients(url, args.timeout)
            train, test = _data(url)
            _latencies(runtime, name, 50)
            idle, idle_failures = _latencies(runtime, name, args.requests)
            answers = []
            sender = threading.Thread(target=flood, args=(sagemaker, train, test, args.jobs, args.tuning, answers))
            sender.start()
            deadline = time.monotonic() + args.seconds
            busy, busy_failures = _latencies(runtime, name, until=lambda: time.monotonic() > deadline)
            sender.join(args.timeout * (args.jobs + args.tuning) / 10 + 60)
            try:
                listed = sagemaker.list_training_jobs(MaxResults=100, StatusEquals="Completed")
                completed = str(len(listed["TrainingJobSummaries"]))
            except Exception as error:  # a starved API does not answer
                completed = f"unknown (ListTrainingJobs: {type(error).__name__})"
        finally:
            _stop(aws)
    print(
        f"InvokeEndpoint, 1-row text/csv, one boto3 client in sequence: idle ({args.requests} requests), then for "
        f"{args.seconds:g} s while {args.jobs} training and {args.tuning} tuning jobs (500 jobs each) are created"
    )
    print(f"{'phase':<14}{'requests':>10}{'failed':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for phase, times, failures in (("idle", idle, idle_failures), ("job flood", busy, busy_failures)):
        p50, p99 = np.percentile(times * 1000, [50, 99]) if times.size else (float("nan"),) * 2
        top = times.max() * 1000 if times.size else float("nan")
        print(f"{phase:<14}{times.size:>10}{failures:>8}{p50:>10.2f}{p99:>10.2f}{top:>10.1f}")
    seconds = np.array([s for s, _ in answers])
    outcomes = sorted({o for _, o in answers})
    counts = ", ".join(f"{o}: {sum(1 for _, x in answers if x == o)}" for o in outcomes)
    unanswered = args.jobs + args.tuning - len(answers)
    print(
        f"Create calls: {len(answers)} answered ({counts}), {unanswered} unanswered at the end; "
        f"p50 {np.median(seconds) * 1000:.0f} ms, "
        f"slowest {seconds.max() * 1000:.0f} ms; training jobs completed by the end: {completed}"
    )


if __name__ == "__main__":
    main()
