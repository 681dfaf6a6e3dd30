"""The ``hmlc`` command: parser, dispatch, and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from hmlc import __version__
from hmlc.errors import HmlcError

__all__ = ["main", "build_parser", "EXIT_USAGE"]

#: exit code of every error a user can cause
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"hmlc: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from hmlc.cli import evaluate, explain, export, info, labels, predict, prepare, synth, train

    parser = _Parser(
        prog="hmlc",
        description="Hierarchical multi-label image classification: train, evaluate and inspect.",
    )
    parser.add_argument("--version", action="version", version=f"hmlc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (train, prepare, predict, evaluate, export, explain, labels, info, synth):
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except HmlcError as exc:
        print(f"hmlc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        from hmlc.config import format_validation_error

        print(f"hmlc: error: {format_validation_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `hmlc ... | head`: the reader went away; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        # A path the user gave cannot be read or written (permissions, a full disk, ...).
        where = f" {exc.filename}" if exc.filename else ""
        print(f"hmlc: error: cannot use{where}: {exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hmlc: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
