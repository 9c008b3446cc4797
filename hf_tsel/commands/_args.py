"""argparse ``type=`` checks for numeric options, so a bad number fails at parse time with a clear message.

Example:
    >>> positive_int("8")
    8
    >>> positive_int("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be a whole number of at least 1, got '0'
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..defaults import MAX_SEED

if TYPE_CHECKING:
    from ..budget import Budget

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float", "port_number", "seed_int",
           "comma_list", "add_renamed_option", "check_output_file", "budget"]


def _number(parse: Callable[[str], float], expected: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: ``parse(text)`` if it is finite and ``accept``-ed, else an error saying what was expected."""

    def check(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    return check


positive_int = _number(int, "a whole number of at least 1", lambda v: v >= 1)
non_negative_int = _number(int, "a whole number of at least 0", lambda v: v >= 0)
positive_float = _number(float, "a number greater than 0", lambda v: v > 0)
non_negative_float = _number(float, "a number of at least 0", lambda v: v >= 0)
port_number = _number(int, "a port number from 0 to 65535", lambda v: 0 <= v <= 65535)
seed_int = _number(int, f"a whole number from 0 to {MAX_SEED}", lambda v: 0 <= v <= MAX_SEED)


def comma_list(text: str | None) -> list[str] | None:
    """``--metrics a,b,c`` -> ``["a", "b", "c"]`` (the one list syntax of every command); None when not given."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


class _Renamed(argparse.Action):
    """An option's old spelling: hidden from --help, stores into the new option's destination and warns."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, append: bool = False, **kwargs):
        self.new, self.append = new, append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"warning: {option_string} is now spelled {self.new} (the old name still works, for now)",
              file=sys.stderr)
        if self.append:  # the old option was repeatable; the new one takes a comma-separated list
            values = ",".join(filter(None, [getattr(namespace, self.dest, None), str(values)]))
        setattr(namespace, self.dest, values)


def add_renamed_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str, *,
                       append: bool = False, **kwargs: object) -> None:
    """Keep ``old`` working as a hidden alias of ``new`` (same destination); ``append``: each use adds an item to
    ``new``'s comma-separated list."""
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=_Renamed, new=new, append=append, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kwargs)


def check_output_file(path: str, option: str, *, overwrite: bool = True) -> None:
    """Raise :class:`~hf_tsel.errors.UserError` before any work if ``path`` (given with ``option``) cannot be written."""
    from ..errors import UserError

    target = Path(path).expanduser()
    if target.is_dir():
        raise UserError(f"{option} {path!r} is a folder", fix=f"pass a file name inside it, e.g. {str(target / 'out')!r}.")
    if target.exists() and not overwrite:
        raise UserError(f"{option} {path!r} already exists", fix="pass --overwrite to replace it, or choose another name.")
    folder = target.resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".hf-tsel-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {option} {path!r} ({exc.strerror or exc})",
                        fix="pick a path in a folder you can write to.") from None


def check_epoch_budget(budget: "Budget | None", *, race: bool) -> None:
    """An epoch ``--budget`` bounds only a ``--confirm`` race: without one it would bound nothing, so it is refused."""
    from ..errors import UserError

    if budget is not None and not budget.is_time and not race:
        raise UserError(f"--budget {budget} counts fine-tuning epochs of a --confirm race, and this run has no race",
                        fix="give a wall-clock duration (e.g. --budget 30m) to bound the run, or add --confirm.")


def budget(text: str) -> "Budget":
    """``--budget``: a wall-clock duration for the whole run (``30m``) or epochs for the race only (``6ep``)."""
    from ..budget import Budget

    try:
        return Budget.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
