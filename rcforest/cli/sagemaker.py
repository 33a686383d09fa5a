"""The ``serve`` and ``train`` subcommands: the programs of a SageMaker algorithm container.

Their work is done by :func:`rcforest.sagemaker.server.serve` and
:func:`rcforest.sagemaker.container.run_training`; this module only reads
the command line.
"""

__all__ = ["add_commands", "add_limit_options", "limits_from"]


def add_commands(subparsers):
    """Add ``serve`` and ``train`` to the ``rcforest`` program.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    serve = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP with SageMaker's endpoint contract",
        description="Serve MODEL (a .rcf file or a directory holding model.rcf, such as /opt/ml/model): "
        "GET /ping, POST /invocations and POST /endpoints/<name>/invocations.",
    )
    serve.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        default="/opt/ml/model",
        help="model file or directory (default: /opt/ml/model)",
    )
    serve.add_argument("--port", type=_port, default=8080, help="port, 0 to 65535 (default: 8080)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: info)",
    )
    add_limit_options(serve)
    serve.set_defaults(func=_run_serve)

    train = subparsers.add_parser(
        "train",
        help="train as a SageMaker container does, from /opt/ml",
        description="Read hyperparameters, channel configuration and data from a SageMaker training layout, "
        "write the model to ML_ROOT/model/ and, on failure, the reason to ML_ROOT/output/failure.",
    )
    train.add_argument("--ml-root", default="/opt/ml", help="root of the layout (default: /opt/ml)")
    train.set_defaults(func=_run_train)


def add_limit_options(parser):
    """Add the options of :class:`rcforest.sagemaker.connections.ServerLimits` to a server's parser."""
    from rcforest.sagemaker.connections import ServerLimits

    defaults = ServerLimits()
    group = parser.add_argument_group("limits")
    options = [
        ("--header-timeout", float, "seconds for a request's headers to arrive", defaults.header_timeout),
        ("--body-timeout", float, "seconds for a request's body to arrive (then 408)", defaults.body_timeout),
        ("--keep-alive-timeout", float, "seconds an idle connection stays open", defaults.keep_alive_timeout),
        ("--max-connections", int, "connections open at once; more are closed", defaults.max_connections),
        ("--max-values", int, "numbers (rows x features) in one request (then 413)", defaults.max_values),
    ]
    for flag, kind, text, default in options:
        metavar = "SECONDS" if kind is float else "N"
        group.add_argument(
            flag, type=_positive(kind), default=default, metavar=metavar, help=f"{text} (default: {default})"
        )


def limits_from(args):
    """The :class:`~rcforest.sagemaker.connections.ServerLimits` of parsed options."""
    from rcforest.sagemaker.connections import ServerLimits

    return ServerLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_connections=args.max_connections,
        max_values=args.max_values,
    )


def _positive(kind):
    """An argparse type: a positive number of ``kind`` (int or float)."""
    import argparse

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: give a positive number")
        return value

    return parse


def _port(text):
    """A TCP port number from the command line."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a number from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: give a number from 0 to 65535")
    return port


def _run_serve(args):
    """``rcforest serve``: serve the model until stopped; return the exit code."""
    from rcforest.sagemaker.server import serve

    serve(args.model, host=args.host, port=args.port, log_level=args.log_level, limits=limits_from(args))
    return 0


def _run_train(args):
    """``rcforest train``: train from the layout, logging to stdout; return the exit code."""
    from rcforest.sagemaker.container import run_training

    run_training(args.ml_root)
    return 0
