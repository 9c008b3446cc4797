"""``hf-tsel`` command line: one sub-command per module of :mod:`hf_tsel.commands`.

Each module there defines ``register(subparsers)`` which adds its sub-parser and sets
``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-tsel", description="Rank pre-trained vision backbones by transferability.")
    parser.add_argument("--version", action="version", version=f"hf-tsel {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted. Work finished so far is cached; run the same command again to resume.", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # `python -m hf_tsel.cli`: run the package's module, whose UserError is the class the commands raise.
    from hf_tsel.cli import main as package_main

    sys.exit(package_main())
