"""``mlops serve``: the embedded KServe model server for every deployed model.

``needs_store``: the CLI points ``MLOPS_S3_*`` at the store before the server starts.
The arguments are the model server's own (:func:`serving.server.add_server_arguments`).
"""

from __future__ import annotations

import argparse
from typing import Any

from serving.server import add_server_arguments


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``serve [--host 127.0.0.1] [--port 8080] [--public-key PEM] [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the deployed models (KServe V1/V2 REST, canary routing, /metrics)",
        description="Serves every model deployed in the object store with KServe's model server: "
        "V1 and V2 REST inference, explanations, canary traffic splitting, signature "
        "verification before any model is served, Prometheus metrics and inference "
        "logs. Follows deploy / promote / rollback without a restart. Nothing over HTTP "
        "changes what is served: the model repository's load/unload answer 403 unless "
        "MLOPS_ADMIN_API=true and MLOPS_ADMIN_TOKEN are set (then they need that bearer token). "
        "--tls-cert/--tls-key serve HTTPS; --tls-client-ca also requires and verifies client "
        "certificates (mutual TLS).",
    )
    add_server_arguments(parser)
    parser.set_defaults(func=cmd_serve, needs_store=True)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    """Runs the server until SIGINT/SIGTERM; returns the exit code."""
    from serving.server import TLSFiles, run_server

    # None lets run_server apply its default key ($MLOPS_HOME/keys/signing-key.pub.pem).
    return run_server(
        host=args.host, port=args.port, public_key=args.public_key, tls=TLSFiles.from_args(args)
    )
