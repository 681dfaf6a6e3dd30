"""The ``hmlc`` command: parser, dispatch, and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

import hmlc.plugins  # noqa: F401  the composition root: tells hmlc.config where preset names are looked up
from hmlc import __version__
from hmlc.errors import HmlcError, shorten

__all__ = ["main", "build_parser", "EXIT_USAGE"]

#: exit code of every error a user can cause
EXIT_USAGE = 2
#: Longest error line printed (a last resort: messages shorten the values they repeat).
MAX_ERROR_CHARS = 2000


def one_line(message: str) -> str:
    """An error message as one bounded line.

    An error raised in a DataLoader worker reaches the main process with the
    worker's traceback in its message; only its last line, the error itself,
    is kept.
    """
    if "Original Traceback" in message:
        last = [line for line in message.splitlines() if line.strip()][-1]
        message = last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last
    return shorten(" ".join(message.split()), MAX_ERROR_CHARS)


def _fail(message: str) -> int:
    print(f"hmlc: error: {one_line(message)}", file=sys.stderr)
    return EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line and exits with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"hmlc: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from hmlc.cli import benchmark, evaluate, explain, export, info, labels, predict, prepare, synth, train

    parser = _Parser(
        prog="hmlc",
        description="Hierarchical multi-label image classification: train, evaluate and inspect.",
    )
    parser.add_argument("--version", action="version", version=f"hmlc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (train, prepare, predict, evaluate, benchmark, export, explain, labels, info, synth):
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error, 130 Ctrl-C, 143 SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from hmlc.engine.interrupt import raise_on_sigterm

    previous_sigterm = raise_on_sigterm()  # SIGTERM ends like Ctrl-C: one line, no half-written file
    try:
        return int(args.func(args) or 0)
    except HmlcError as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        from hmlc.config import format_validation_error

        return _fail(format_validation_error(exc))
    except BrokenPipeError:
        # `hmlc ... | head`: the reader went away; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        # A path the user gave cannot be read or written (permissions, a full disk, ...).
        where = f" {_shown_path(exc.filename)}" if exc.filename else ""
        return _fail(f"cannot use{where}: {exc.strerror or exc}; check the path, its permissions and free space")
    except UnicodeError as exc:
        # A file name (or text) that is not valid UTF-8: names from another system, a binary file.
        return _fail(f"{_unicode_context(exc)} is not valid UTF-8 ({getattr(exc, 'reason', exc)}); "
                     "rename the file or save the text as UTF-8")
    except MemoryError:
        return _fail("out of memory; use smaller images (data.max_image_pixels), a smaller batch size or fewer workers")
    except KeyboardInterrupt as exc:
        # Ctrl-C (130) or SIGTERM (143); training says where it stopped and how to resume.
        if os.environ.get("RANK", "0") in ("", "0"):  # under torchrun every rank stops; rank 0 says so
            print(f"hmlc: {getattr(exc, 'message', 'interrupted')}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    finally:
        if previous_sigterm is not None:
            import signal

            signal.signal(signal.SIGTERM, previous_sigterm)


def _shown_path(name: object) -> str:
    """A file name as text that prints anywhere (undecodable bytes escaped)."""
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    text = str(name)
    try:
        text = os.fsencode(text).decode("utf-8", "backslashreplace")  # undecodable bytes as \\xff
    except UnicodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return shorten(text)


def _unicode_context(exc: UnicodeError) -> str:
    """The line of text around the character a UnicodeError is about, printable."""
    text, start = getattr(exc, "object", None), getattr(exc, "start", 0)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if not isinstance(text, str) or not text:
        return "a name or text"
    line = text[:start].rsplit("\n", 1)[-1] + text[start:].split("\n", 1)[0]
    return f"'{_shown_path(line)}'"


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
