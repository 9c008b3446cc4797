"""A run's compute budget: wall-clock time for the whole command, or epochs for a fine-tuning race.

One spelling for every command that takes ``--budget``: a wall-clock duration (``90s``, ``30m``, ``2h``,
``1h30m``) bounds the whole run (candidate extraction and scoring, then any ``--confirm`` race); an epoch
count (``6ep``) bounds the race only and leaves the rest of the run unbounded.

Example:
    >>> Budget.parse("1h30m")
    Budget(seconds=5400.0, epochs=None)
    >>> str(Budget.parse("6ep"))
    '6ep'
    >>> Budget.parse("soon")
    Traceback (most recent call last):
    ValueError: a budget is a duration (90s, 30m, 2h, 1h30m) or an epoch count (6ep), got 'soon'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Budget"]

_SECONDS_PER_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_EPOCHS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:ep|epochs?)$")


@dataclass(frozen=True)
class Budget:
    """Exactly one of ``seconds`` (wall clock, whole run) and ``epochs`` (race only) is set."""

    seconds: float | None = None
    epochs: float | None = None

    def __post_init__(self) -> None:
        given = [value for value in (self.seconds, self.epochs) if value is not None]
        if len(given) != 1 or not (math.isfinite(given[0]) and given[0] > 0):
            raise ValueError(f"a budget needs exactly one positive value of seconds or epochs, got seconds="
                             f"{self.seconds}, epochs={self.epochs}")

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """``"30m"`` -> 1800 seconds; ``"6ep"`` -> 6 epochs; anything else raises ``ValueError`` saying the syntax."""
        spelled = text.strip().lower().replace(" ", "")
        epochs = _EPOCHS.match(spelled)
        if epochs:
            value = float(epochs.group(1))
            if value > 0:
                return cls(epochs=value)
        duration = _DURATION.match(spelled)
        if spelled and duration and any(duration.groups()):
            seconds = sum(float(part) * _SECONDS_PER_UNIT[unit]
                          for part, unit in zip(duration.groups(), "hms") if part is not None)
            if seconds > 0:
                return cls(seconds=seconds)
        raise ValueError(f"a budget is a duration (90s, 30m, 2h, 1h30m) or an epoch count (6ep), got {text!r}")

    @property
    def is_time(self) -> bool:
        return self.seconds is not None

    def __str__(self) -> str:
        if self.epochs is not None:
            return f"{self.epochs:g}ep"
        minutes, seconds = divmod(self.seconds, 60.0)
        hours, minutes = divmod(minutes, 60.0)
        parts = [f"{value:g}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if value]
        return "".join(parts)
