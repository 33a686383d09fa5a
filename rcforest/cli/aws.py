"""The ``aws`` subcommand: a local AWS-compatible endpoint for SageMaker's Random Cut Forest.

``rcforest aws`` serves (:func:`rcforest.aws.server.serve`); ``rcforest aws
env`` prints the ``export`` lines of the server running on a data folder
(:func:`rcforest.aws.environment.read_environment`), for
``eval "$(rcforest aws env)"``. This module only reads the command line.
"""

import shlex

from rcforest.aws.server import DEFAULT_MAX_BODY_MB, DEFAULT_PORT
from rcforest.cli.sagemaker import _positive, add_limit_options, limits_from

__all__ = ["add_commands"]


def add_commands(subparsers):
    """Add ``aws`` to the ``rcforest`` program.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    parser = subparsers.add_parser(
        "aws",
        help="serve an AWS-compatible endpoint: SageMaker's Random Cut Forest, S3, STS, IAM, CloudWatch",
        description="Start one local server that unmodified boto3 and SageMaker SDK code reach through "
        "AWS_ENDPOINT_URL: SageMaker training jobs, models, endpoints and InvokeEndpoint for the Random Cut "
        "Forest image, and moto's server mode for S3, STS, IAM and CloudWatch. It prints the environment "
        "variables to export.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--proxy-port",
        type=int,
        default=None,
        help="port of the HTTPS proxy for the SDK's fixed STS address (default: PORT+1; a free port when PORT is 0)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="jobs' folders and the proxy's certificate authority (default: ~/.cache/rcforest/aws)",
    )
    parser.add_argument("--region", default="us-east-1", help="region of requests that name none (default: us-east-1)")
    parser.add_argument("--s3-endpoint", default=None, metavar="URL", help="send S3 to this S3-compatible store")
    security = parser.add_argument_group("browsers and sizes")
    security.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host is NAME (by default only 127.0.0.1, localhost, [::1] and the bound "
        "address, against DNS rebinding); repeatable",
    )
    security.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="grant CORS access to the web application at ORIGIN (scheme://host[:port]); no origin is granted "
        "by default; repeatable",
    )
    security.add_argument(
        "--max-body-mb",
        type=_positive(int),
        default=DEFAULT_MAX_BODY_MB,
        metavar="MB",
        help=f"MiB of a request body to S3 and the other moto services (default: {DEFAULT_MAX_BODY_MB}); "
        "the SageMaker API takes 5 MiB, InvokeEndpoint 6 MB",
    )
    parser.add_argument(
        "--any-keys-are-role",
        action="store_true",
        help="answer STS GetCallerIdentity with the execution role for any access keys, your own among them, so "
        "that sagemaker.get_execution_role() works as in a SageMaker notebook (default: only the printed keys are "
        "the role's)",
    )
    add_limit_options(parser)
    parser.set_defaults(func=_run_aws)
    commands = parser.add_subparsers(dest="aws_command", metavar="{env}")
    env = commands.add_parser(
        "env",
        help='print the export lines of a running server: eval "$(rcforest aws env)"',
        description="Print the environment variables (AWS_ENDPOINT_URL, the region, the execution role's keys, "
        "the HTTPS proxy and its CA bundle) that send boto3 and the SageMaker SDK to the rcforest aws running on "
        'the data folder, as shell export lines: eval "$(rcforest aws env)".',
    )
    env.add_argument(
        "--data-dir",
        dest="env_data_dir",
        default=None,
        help="the running server's --data-dir (default: ~/.cache/rcforest/aws)",
    )
    env.set_defaults(func=_run_env)


def _run_aws(args):
    """``rcforest aws``: serve until interrupted; return the exit code."""
    from rcforest.aws.server import serve

    serve(
        args.host,
        args.port,
        args.proxy_port,
        args.data_dir,
        args.region,
        args.s3_endpoint,
        limits_from(args),
        allowed_hosts=args.allow_host,
        cors_origins=args.cors_origin,
        max_body_mb=args.max_body_mb,
        any_keys_are_role=args.any_keys_are_role,
    )
    return 0


def _run_env(args):
    """``rcforest aws env``: print the running server's export lines; return the exit code."""
    from rcforest.aws.environment import read_environment

    environment = read_environment(args.env_data_dir or args.data_dir)
    for name, value in environment.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0
