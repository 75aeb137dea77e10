"""The `vton` command line.

Every handler imports what it needs lazily: `vton stack status` must answer in well under a
second, without importing torch or Ray. Errors a user can fix (bad config, taken port, missing
binary, unreachable S3 endpoint, bad sample) are printed as one clear line and exit with their kind's
status (``orchestrator.failures``: 2 usage, 3 rejected, 4 data, 5 storage, 6 cluster, 7 model);
nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from orchestrator.cli import config, doctor, evaluation, models, registry, shard, stack, training, tune
from orchestrator.cli.common import EXIT_USAGE, UserError
from orchestrator.failures import EXIT_CLOSED_PIPE, EXIT_INTERRUPTED, classify

#: One module per command group, in the order `vton --help` lists them.
COMMAND_GROUPS = (stack, config, shard, models, training, doctor, evaluation, registry, tune)


def _version() -> str:
    """``vton 0.1.0 (commit abc123)``: the installed distribution and the checkout it runs from."""
    from importlib.metadata import PackageNotFoundError, version

    from orchestrator.provenance import git_commit

    try:
        installed = version("vton-train")
    except PackageNotFoundError:
        installed = "not installed"
    return f"vton {installed} (commit {git_commit()[:12]})"


class _VersionAction(argparse.Action):
    """``--version``, asked only when given (it runs git; every other command must not)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vton", description="Train virtual try-on GANs at cluster scale.",
        epilog="exit status: 0 success, 1 failed (see its log), 2 bad usage or config, 3 promotion rejected, "
               "4 bad data (manifest, sample, image), 5 object storage (endpoint, credentials), "
               "6 cluster or local stack, 7 model, checkpoint or weights, 130 interrupted, 141 output pipe closed by its reader")
    parser.add_argument("--version", action=_VersionAction, help="print the version and the commit, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from orchestrator.config import ConfigError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `vton tune CONFIG --space S.yaml train.steps=8`: argparse binds the positional overrides
        # before the options, so key=value words after them arrive here; anything else is an error.
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's own flush at exit
        return code
    except BrokenPipeError:
        # The reader left (`vton stack status | head -1`): stop quietly, as `ls | head` does. stdout goes
        # to /dev/null so the interpreter's final flush of what is still buffered cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except (UserError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - known failures are one line and their kind's exit status
        failure = classify(exc)
        if failure is None:
            raise
        print(failure.line(), file=sys.stderr)
        return failure.exit_code


__all__ = ["EXIT_USAGE", "UserError", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
