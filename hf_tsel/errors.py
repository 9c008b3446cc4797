"""The errors hf-tsel raises on purpose: one base class, one subclass per pipeline stage.

Every error says what was wrong and what to do. The CLI prints ``str(error)`` on one line
(``-v`` adds the traceback) and exits with :data:`EXIT_USER_ERROR`; library users can catch
:class:`HfTselError` to handle all of them at once.

Example:
    >>> from hf_tsel.errors import DataError, HfTselError
    >>> err = DataError("no label column found in 'imgs'.", fix="pass --label-column NAME.")
    >>> isinstance(err, HfTselError), str(err)
    (True, "no label column found in 'imgs'. Fix: pass --label-column NAME.")
"""

from __future__ import annotations

__all__ = ["EXIT_USER_ERROR", "EXIT_INTERNAL_ERROR", "EXIT_PARTIAL_FAILURE", "HfTselError", "UserError",
           "DataError", "MissingSplitError", "ZooError", "ModelLoadError", "CacheError", "MetricInputError",
           "ResultsError", "PublishError"]

EXIT_INTERNAL_ERROR = 1  # a bug: the CLI prints a one-line summary and where the traceback went
EXIT_USER_ERROR = 2  # bad input or environment; the message says what to do
EXIT_PARTIAL_FAILURE = 3  # the run finished and wrote its results, but some models failed


class HfTselError(Exception):
    """Base of every error hf-tsel raises on purpose; ``problem`` and ``fix`` are kept apart.

    Args:
        problem: what was wrong, naming the file, entry, model or parameter.
        fix: what the user should do; appended as ``". Fix: ..."`` when given (the problem's own full stop, if it
            has one, is kept).
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem, self.fix = str(problem), fix
        stop = "" if self.problem.endswith((".", "!", "?", ":")) else "."
        super().__init__(f"{self.problem}{stop} Fix: {fix}" if fix else self.problem)


UserError = HfTselError  # name used by the commands for "any error caused by the user's input"


class DataError(HfTselError, ValueError):
    """The dataset cannot be used as asked (missing column, split, class, unreadable images)."""


class MissingSplitError(DataError):
    """The dataset has no split of that name; ``available`` lists the ones it has."""

    def __init__(self, dataset: str, split: str, available: str, option: str = "--split"):
        self.dataset, self.split, self.available = dataset, split, available
        super().__init__(f"dataset {dataset!r} has no split {split!r}; available splits: {available}",
                         fix=f"pass one of them with {option}.")


class ZooError(HfTselError, ValueError):
    """A zoo file or model entry is invalid; the message names the entry."""


class ModelLoadError(HfTselError):
    """One backbone could not be resolved, downloaded or loaded (a zoo run skips it and goes on)."""


class CacheError(HfTselError, OSError):
    """The feature cache cannot be read or written (full disk, permissions, foreign folder)."""


class MetricInputError(HfTselError, ValueError):
    """The inputs or parameters of a metric are unusable; ``metric`` names it."""

    def __init__(self, metric: str, problem: str, fix: str):
        self.metric = metric
        super().__init__(problem, fix)
        self.args = (f"[{metric}] {problem} Fix: {fix}",)

    def __str__(self) -> str:
        return self.args[0]


class ResultsError(HfTselError, ValueError):
    """A results or ground-truth table does not follow its schema; the message names the file."""


class PublishError(HfTselError):
    """Publishing to the Hub failed; the message says why and what to run to retry."""
