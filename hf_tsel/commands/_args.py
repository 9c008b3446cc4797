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
from typing import Callable

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float", "port_number"]


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
