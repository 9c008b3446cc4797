"""``hf-tsel`` command line: one sub-command per module of :mod:`hf_tsel.commands`.

Each module there defines ``register(subparsers)`` which adds its sub-parser and sets
``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from typing import Any

from . import commands
from ._version import __version__
from .errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, HfTselError

__all__ = ["build_parser", "main"]


class _DefaultsFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless it already names one): one rule for all commands."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.option_strings and default not in (None, False, [], argparse.SUPPRESS) and "default" not in text
                and text != argparse.SUPPRESS):
            shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            text += f" (default {shown})".replace("%", "%%")
        return text


class _Parser(argparse.ArgumentParser):
    """The parser of every command and sub-command (sub-parsers inherit the class)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hf-tsel", description="Rank pre-trained vision backbones by transferability.")
    parser.add_argument("--version", action="version", version=f"hf-tsel {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def _save_traceback() -> str:
    """Write the current exception's traceback to a file and return its path (or why it could not)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    try:
        fd, path = tempfile.mkstemp(prefix=f"hf-tsel-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
        return path
    except OSError as exc:  # a crash report must never cause a second crash
        return f"(not saved: {exc})"


def _not_printed_yet(record: logging.LogRecord) -> bool:
    """False for a record that a library logger already printed through its own handler.

    huggingface_hub and datasets (and transformers when ``CI`` is set) give their top logger a stderr
    handler and still propagate to the root; without this check their warnings would print twice.
    """
    logger = logging.getLogger(record.name)
    while logger.parent is not None:  # stop below the root logger, whose handler this check guards
        if any(not isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            return False
        logger = logger.parent
    return True


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_not_printed_yet)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", handlers=[handler])


class _ClosedPipeGuard:
    """``sys.stdout`` that outlives its reader: ``hf-tsel rank ... | head -1`` closes the pipe early.

    A closed pipe is not a bug; as with Unix tools the rest of the output is dropped quietly (stdout
    is pointed at the null device), while the command still finishes its work (result files, cache).
    """

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop_output()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop_output()

    def _drop_output(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())  # what is still buffered, and the final flush, go nowhere
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    stdout = sys.stdout
    sys.stdout = _ClosedPipeGuard(stdout)
    try:
        return _main(argv)
    finally:
        sys.stdout = stdout


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted. Work finished so far is cached; run the same command again to resume.", file=sys.stderr)
        return 130
    except HfTselError as exc:
        if args.verbose:
            traceback.print_exc()
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # one line, even if a library's text is not
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 (last resort: a bug must still end in one readable line)
        if args.verbose:
            traceback.print_exc()
        where = _save_traceback()
        summary = str(exc).splitlines()[0] if str(exc) else ""
        print(f"internal error: {type(exc).__name__}: {summary}\n"
              f"This is a bug in hf-tsel; the traceback was saved to {where}. Re-run with -v to print it.",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
