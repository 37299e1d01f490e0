"""``mlops store start|stop|status``: the embedded object store."""

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
        settings = store.start()
        print(
            f"embedded store running on {settings.endpoint} (bucket {settings.bucket}); "
            f"data in {store.data_dir}"
        )
    elif args.action == "stop":
        print("embedded store stopped" if store.stop() else "embedded store was not running")
    else:
        status = store.status()
        if status.running:
            print(f"running on {status.endpoint} (pid {status.pid}); data in {status.data_dir}")
        else:
            print(f"not running; data in {status.data_dir}")
            return EXIT_SYSTEM if args.check else EXIT_OK
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Adds ``store``."""
    store = subparsers.add_parser("store", help="manage the embedded object store")
    store.add_argument("action", choices=("start", "stop", "status"))
    store.add_argument("--check", action="store_true", help="status: exit 1 when not running")
    store.set_defaults(func=cmd_store, needs_store=False)
