"""mlops: train, gate, sign, publish, serve and monitor models (kfp-mlops).

Exit codes: 0 released / ok, 1 system failure, 2 bad input or usage,
3 rejected by a gate, 4 verification failed (see ``mlops.core.errors``).

One module per subcommand group; each ``register(subparsers)`` adds its commands
and sets ``func`` (the handler, returning an exit code) and ``needs_store``
(whether ``MLOPS_S3_*`` must point at a store before the handler runs). Turning
errors into exit codes happens here, once.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mlops.core.errors import MlopsError


def build_parser() -> argparse.ArgumentParser:
    """The ``mlops`` argument parser with every subcommand registered."""
    from mlops.cli import deploy, drift, run, schedule, serve, store, trust

    parser = argparse.ArgumentParser(prog="mlops", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (store, run, deploy, trust, serve, drift, schedule):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one ``mlops`` command and returns its exit code."""
    from mlops.cli.common import ensure_store_env

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if getattr(args, "needs_store", False):
            ensure_store_env()
        return int(args.func(args))
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
