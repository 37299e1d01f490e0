"""mlops: train, gate, sign, publish, serve and monitor models (kfp-mlops).

Exit codes: 0 released / ok, 1 system failure, 2 bad input or usage,
3 rejected by a gate, 4 verification failed (see ``mlops.core.errors``).

One module per subcommand group; each ``register(subparsers)`` adds its commands
and sets ``func`` (the handler, returning an exit code) and ``needs_store``
(whether ``MLOPS_S3_*`` must point at a store before the handler runs). Turning
errors into exit codes happens here, once, and so does the ``--json`` error
object: with ``--json`` a failed command still prints exactly one JSON object,
``{"status": "error", "error": ..., "exit_code": N}``, and the message also goes
to stderr as without it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Any, NoReturn

from mlops.core.errors import EXIT_SYSTEM, EXIT_USAGE, MlopsError

#: Exit code of an interrupted command (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class CommandLineError(MlopsError):
    """argparse rejected the command line; its usage and message are already on stderr."""

    exit_code = EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that raises on a usage error instead of exiting, so ``--json`` can report it.

    Subparsers are made with the parent's class, so every level behaves alike.
    """

    def error(self, message: str) -> NoReturn:
        # Same stderr as argparse's own: usage, then "prog: error: message".
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise CommandLineError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The ``mlops`` argument parser with every subcommand registered."""
    from mlops.cli import (
        canary,
        deploy,
        drift,
        feedback,
        init,
        quality,
        run,
        schedule,
        serve,
        store,
        trust,
    )

    parser = _Parser(prog="mlops", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (
        store,
        init,
        run,
        deploy,
        canary,
        trust,
        serve,
        drift,
        schedule,
        feedback,
        quality,
    ):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one ``mlops`` command and returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CommandLineError as exc:
        # The parse failed, so args.json is unknown; the word on the line decides.
        return _failed(exc, exc.exit_code, as_json="--json" in argv, already_shown=True)
    except SystemExit as exc:  # --help (0), or argparse exiting by itself
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Calls the subcommand's handler; an error becomes its exit code (and, with --json, an object)."""
    from mlops.cli.common import ensure_store_env

    as_json = bool(getattr(args, "json", False))
    try:
        if getattr(args, "needs_store", False):
            ensure_store_env()
        return int(args.func(args))
    except MlopsError as exc:
        return _failed(exc, exc.exit_code, as_json)
    except KeyboardInterrupt as exc:
        # Quiet on stderr, as ever: the person pressing Ctrl-C knows why.
        return _failed(exc, EXIT_INTERRUPTED, as_json, message="interrupted", already_shown=True)
    except Exception as exc:
        if not as_json:
            raise  # the traceback, as before
        traceback.print_exc(file=sys.stderr)
        return _failed(exc, EXIT_SYSTEM, as_json, already_shown=True)


def _failed(
    exc: BaseException,
    exit_code: int,
    as_json: bool,
    *,
    message: str | None = None,
    already_shown: bool = False,
) -> int:
    """Reports a failed command: ``error: ...`` on stderr and, with ``--json``, the error object."""
    from mlops.cli.common import emit_json, error_payload

    text = message or str(exc) or type(exc).__name__
    if not already_shown:
        print(f"error: {text}", file=sys.stderr)
    if as_json:
        emit_json(error_payload(text, exit_code, **_details(exc)))
    return exit_code


def _details(exc: BaseException) -> dict[str, Any]:
    """Fields an error adds to the ``--json`` object (a failed task names itself and its log)."""
    from mlops.runs.local import TaskFailed

    if isinstance(exc, TaskFailed):
        return exc.details()
    if not isinstance(exc, MlopsError):
        return {"error_type": type(exc).__name__}
    return {}
