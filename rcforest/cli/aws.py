"""The ``aws`` subcommand: a local AWS-compatible endpoint for SageMaker's Random Cut Forest.

Its work is done by :func:`rcforest.aws.server.serve`; this module only
reads the command line.
"""

from rcforest.aws.server import DEFAULT_PORT
from rcforest.cli.sagemaker import add_limit_options, limits_from

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
        help="port of the HTTPS proxy for the SDK's fixed STS address (default: PORT+1)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="jobs' folders and the proxy's certificate authority (default: ~/.cache/rcforest/aws)",
    )
    parser.add_argument("--region", default="us-east-1", help="region of requests that name none (default: us-east-1)")
    parser.add_argument("--s3-endpoint", default=None, metavar="URL", help="send S3 to this S3-compatible store")
    add_limit_options(parser)
    parser.set_defaults(func=_run_aws)


def _run_aws(args):
    """``rcforest aws``: serve until interrupted; return the exit code."""
    from rcforest.aws.server import serve

    serve(args.host, args.port, args.proxy_port, args.data_dir, args.region, args.s3_endpoint, limits_from(args))
    return 0
