"""Latency and throughput of InvokeEndpoint: ``rcforest aws`` next to ``rcforest serve``.

Both servers run as ``python -m rcforest`` child processes and serve the
same model (SageMaker's defaults: 100 trees of 256 points, one feature).
The clients are boto3 ``sagemaker-runtime`` clients, as a user's code would
be:

- the p50 and p99 latency of 1-row CSV requests, one client, in sequence;
- the requests per second of 8 clients in 8 threads, each sending 1-row
  requests as fast as answers come.

Run ``python benchmarks/endpoint_latency.py`` (``--requests``, ``--seconds``).
"""

import argparse
import io
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
CLIENT_KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command, ready, timeout=120):
    """Start a child process; return it and its output lines up to the line ``ready`` accepts."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    for name in ("AWS_ENDPOINT_URL", "HTTPS_PROXY", "https_proxy"):
        env.pop(name, None)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, seen = queue.Queue(), []
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise RuntimeError("server did not start:\n" + "".join(seen)) from None
        seen.append(line)
        if ready(line):
            return process, seen


def _client(url):
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1}, max_pool_connections=4, proxies={})
    return boto3.session.Session().client("sagemaker-runtime", endpoint_url=url, config=config, **CLIENT_KEYS)


def _invoke(client, name, body):
    answer = client.invoke_endpoint(EndpointName=name, Body=body, ContentType="text/csv", Accept="application/json")
    answer["Body"].read()


def measure(url, name, requests, seconds, clients=8):
    """Return (p50 ms, p99 ms, requests per second with ``clients`` threads)."""
    client = _client(url)
    rng = np.random.default_rng(0)
    bodies = [f"{v:.4f}\n".encode() for v in rng.normal(size=requests)]
    for body in bodies[:50]:
        _invoke(client, name, body)
    latencies = []
    for body in bodies:
        start = time.perf_counter()
        _invoke(client, name, body)
        latencies.append(time.perf_counter() - start)
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])

    counts = [0] * clients
    stop = threading.Event()

    def work(number):
        own = _client(url)
        while not stop.is_set():
            _invoke(own, name, bodies[counts[number] % len(bodies)])
            counts[number] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # clients connected and warm
    first, start = sum(counts), time.perf_counter()
    time.sleep(seconds)
    done, elapsed = sum(counts) - first, time.perf_counter() - start
    stop.set()
    for thread in threads:
        thread.join(30)
    return p50, p99, done / elapsed


def _model(directory):
    from rcforest import Forest
    from rcforest.sagemaker.model import MODEL_FILE, pack_model

    rng = np.random.default_rng(1)
    forest = Forest(num_trees=100, sample_size=256, random_state=0).fit(rng.normal(size=(5000, 1)))
    model_dir = os.path.join(directory, "model")
    os.makedirs(model_dir)
    forest.save(os.path.join(model_dir, MODEL_FILE))
    return model_dir, pack_model(model_dir)


def _stop(process):
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests for the latencies")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the 8-client run")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        model_dir, archive = _model(directory)

        port = _free_port()
        serve, _ = _start(
            [sys.executable, "-m", "rcforest", "serve", model_dir, "--port", str(port), "--log-level", "warning"],
            lambda line: line.startswith("serving"),
        )
        try:
            time.sleep(1.0)
            rows.append(("rcforest serve", *measure(f"http://127.0.0.1:{port}", "rcf", args.requests, args.seconds)))
        finally:
            _stop(serve)

        command = [sys.executable, "-m", "rcforest", "aws", "--port", "0", "--data-dir", os.path.join(directory, "aws")]
        aws, lines = _start(command, lambda line: line.strip() == "ready")
        try:
            url = next(line.split("=", 1)[1].strip() for line in lines if line.startswith("export AWS_ENDPOINT_URL="))
            rows.append(("rcforest aws", *measure(url, _deploy(url, archive), args.requests, args.seconds)))
        finally:
            _stop(aws)

    print(
        f"InvokeEndpoint, 1-row text/csv -> application/json, boto3 clients ({args.requests} sequential requests; "
        f"8 clients for {args.seconds:g} s)"
    )
    print(f"{'server':<16}{'p50 ms':>10}{'p99 ms':>10}{'req/s, 8 clients':>20}")
    for name, p50, p99, rate in rows:
        print(f"{name:<16}{p50:>10.2f}{p99:>10.2f}{rate:>20.0f}")


def _deploy(url, archive):
    """Upload the model and create model, config and endpoint on ``rcforest aws``; return the endpoint name."""
    import boto3

    session = boto3.session.Session(**CLIENT_KEYS)
    s3 = session.client("s3", endpoint_url=url)
    s3.create_bucket(Bucket="bench")
    s3.upload_fileobj(io.BytesIO(archive), "bench", "model/model.tar.gz")
    sagemaker = session.client("sagemaker", endpoint_url=url)
    role = "arn:aws:iam::123456789012:role/AmazonSageMaker-ExecutionRole-rcforest"
    container = {"Image": IMAGE, "ModelDataUrl": "s3://bench/model/model.tar.gz"}
    sagemaker.create_model(ModelName="bench", PrimaryContainer=container, ExecutionRoleArn=role)
    variant = {"VariantName": "AllTraffic", "ModelName": "bench", "InitialInstanceCount": 1}
    sagemaker.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    return "bench"


if __name__ == "__main__":
    main()
