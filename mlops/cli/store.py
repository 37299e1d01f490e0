"""``mlops store start [--tls]|stop|status``: the embedded object store."""

from __future__ import annotations

import argparse
from typing import Any

from mlops.core.errors import EXIT_OK, EXIT_SYSTEM


def cmd_store(args: argparse.Namespace) -> int:
    """Starts, stops or reports the embedded SeaweedFS store under ``$MLOPS_HOME/store``."""
    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.settings import mlops_home

    store = EmbeddedStore(mlops_home())
    if args.action == "start":
        settings = store.start(tls=args.tls)
        scheme = "https" if settings.secure else "http"
        print(
            f"embedded store running on {scheme}://{settings.endpoint} "
            f"(bucket {settings.bucket}); data in {store.data_dir}"
        )
        if settings.secure:
            print(
                f"TLS with a certificate from the local CA {store.ca_bundle}; mlops commands "
                "trust it by themselves, other clients need it as their CA bundle"
            )
    elif args.action == "stop":
        print("embedded store stopped" if store.stop() else "embedded store was not running")
    else:
        status = store.status()
        if status.running:
            tls = f", TLS (CA {status.ca_bundle})" if status.tls else ""
            print(
                f"running on {status.endpoint} (pid {status.pid}{tls}); data in {status.data_dir}"
            )
        else:
            print(f"not running; data in {status.data_dir}")
            return EXIT_SYSTEM if args.check else EXIT_OK
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Adds ``store``."""
    store = subparsers.add_parser("store", help="manage the embedded object store")
    store.add_argument("action", choices=("start", "stop", "status"))
    store.add_argument("--check", action="store_true", help="status: exit 1 when not running")
    store.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start: serve S3 over HTTPS with a certificate from a local CA under "
        "$MLOPS_HOME/store/tls (default: the mode it was last started in)",
    )
    store.set_defaults(func=cmd_store, needs_store=False)
