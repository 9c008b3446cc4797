"""The cost-aware funnel: with a time ``--budget``, extract and score candidates cheapest first until it is spent.

Which order, and why: the funnel should spend the budget where the expected value per second is highest.
The project's benchmarks measured the static priors as rankings (``benchmarks/results/zoo_summary.md``,
``offline_summary.md``, ``consensus_selection.md``): ``prior:params`` has a mean weighted tau of -0.02
(full fine-tuning) and 0.12 (linear probe) on the zoo benchmark, -0.29 and 0.22 on the offline one;
``prior:feature_dim`` is negative on the zoo benchmark (-0.26, CI excluding 0); ``prior:imagenet_top1``
was never measured (no benchmark model publishes one). No prior tells the candidates' value apart, so
every candidate has about the same expected value and value per second orders them by cost: **cheapest
first**. ``benchmarks/funnel_order.py`` replays the funnel on both benchmarks (cost proportional to the
parameters, the consensus picking among the admitted models, ``benchmarks/results/funnel_order.md``): at
10, 25 and 50 % of the zoo's cost, cheapest first admits the zoo's best model most often (zoo benchmark
0.44 / 0.62 / 0.75 of the tasks, random 0.18 / 0.32 / 0.58) and has the lowest regret but once (zoo
benchmark at 10 %: 0.086 against 0.083 for widest features first); largest first (``prior:params`` read
as "bigger is better") is worse than random. Candidates already in the feature cache cost only their
scoring and come first; ties keep the zoo order.

The budget: a duration bounds the whole ``rank`` run. Without ``--confirm`` the funnel may use all of it;
with ``--confirm`` at most :data:`FUNNEL_SHARE_WITH_RACE` (half), and the race gets whatever is left
(:func:`seconds_left`). An epoch budget bounds only the race. A candidate is started only if its
estimated extraction (scaled by what the run has measured so far) plus the scoring of every admitted
model fits in the time left; the others are reported with what finishing them would cost.

Example:
    >>> from hf_tsel.budget import Budget
    >>> funnel_seconds(Budget.parse("30m"), race=True), funnel_seconds(Budget.parse("6ep"), race=True)
    (900.0, None)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .budget import Budget
from .funnel_costs import BYTES_PER_PARAM, REFERENCE_PARAMS, ForwardRate, input_size_of

__all__ = ["FUNNEL_SHARE_WITH_RACE", "LEFT_OUT", "ORDER", "Candidate", "Funnel", "estimate_candidates", "funnel_seconds",
           "order_candidates", "seconds_left"]

FUNNEL_SHARE_WITH_RACE = 0.5
ORDER = "cached first, then cheapest first (no static prior ranks value on the project's benchmarks; docs/zoos.md)"
LEFT_OUT = "left_out"  # the outcome status of a candidate the budget did not reach


def funnel_seconds(budget: Budget | None, *, race: bool = False) -> float | None:
    """Seconds the funnel may spend: a time budget, or half of it when a race follows; None without a time bound."""
    if budget is None or not budget.is_time:
        return None
    return budget.seconds * (FUNNEL_SHARE_WITH_RACE if race else 1.0)


def seconds_left(budget: Budget | None, started: float, *, now: float | None = None) -> float | None:
    """Seconds of a time budget left for the rest of the run (the race calls this after the funnel); None if unbounded.

    ``started`` is the run's ``time.perf_counter()`` at its start.
    """
    if budget is None or not budget.is_time:
        return None
    return budget.seconds - ((time.perf_counter() if now is None else now) - started)


@dataclass(frozen=True)
class Candidate:
    """One zoo entry with its estimated extraction seconds on this machine (0 when its features are cached)."""

    entry: Any  # ZooEntry
    extract_seconds: float
    cached: bool = False
    params_known: bool = True

    @property
    def name(self) -> str:
        return self.entry.name


def estimate_candidates(entries: Sequence[Any], *, rate: ForwardRate, num_samples: int, cached: set[str],
                        weight_bytes: Callable[[Any], int] = lambda entry: 0) -> list[Candidate]:
    """Each entry's estimated extraction seconds (0 when cached). The parameter count is the entry's ``params``
    metadata, else its weight files' size over 4 bytes (``weight_bytes``: local files, the Hub cache or the Hub),
    else the reference model's (``params_known=False``)."""
    candidates = []
    for e in entries:
        if e.name in cached:
            candidates.append(Candidate(e, 0.0, cached=True))
            continue
        params = (e.metadata or {}).get("params") or weight_bytes(e) // BYTES_PER_PARAM
        seconds = rate.extract_seconds(params=params or REFERENCE_PARAMS, input_size=input_size_of(e),
                                       num_samples=num_samples)
        candidates.append(Candidate(e, seconds, params_known=bool(params)))
    return candidates


def order_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Cached first, then by estimated seconds (cheapest first); ties keep the given order.

    Example:
        >>> from types import SimpleNamespace as E
        >>> c = [Candidate(E(name="big"), 9.0), Candidate(E(name="small"), 1.0), Candidate(E(name="done"), 0.0, True)]
        >>> [x.name for x in order_candidates(c)]
        ['done', 'small', 'big']
    """
    return sorted(candidates, key=lambda c: (not c.cached, c.extract_seconds))


@dataclass
class Funnel:
    """Admission of candidates against the clock, and what it measured; one per run (and per process).

    ``seconds``: what the funnel may spend, counted from ``started`` (``time.perf_counter()``);
    ``score_seconds``: estimated scoring seconds per model; ``processes``: zoo-parallel processes sharing
    the extraction.
    """

    candidates: list[Candidate]
    seconds: float
    started: float
    score_seconds: float = 0.0
    processes: int = 1
    clock: Callable[[], float] = time.perf_counter
    admitted: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    _started_at: dict[str, float] = field(default_factory=dict)
    _measured: list[tuple[float, float]] = field(default_factory=list)  # (estimated, actual) per extracted model

    def __post_init__(self) -> None:
        self._by_name = {c.name: c for c in self.candidates}

    def corrected(self, estimate: float) -> float:
        """An extraction estimate corrected by what the run measured: ``actual = offset + slope * estimate`` fitted by
        least squares once three extracted models span a factor of two in their estimates (the slope kept within
        0.25 to 4), else shifted by the mean difference (a per-model overhead the calibration does not see)."""
        if not self._measured:
            return estimate
        estimates = [e for e, _ in self._measured]
        mean_e = sum(estimates) / len(estimates)
        mean_a = sum(a for _, a in self._measured) / len(self._measured)
        slope = 1.0
        if len(estimates) >= 3 and max(estimates) >= 2 * min(estimates):
            spread = sum((e - mean_e) ** 2 for e in estimates)
            slope = sum((e - mean_e) * (a - mean_a) for e, a in self._measured) / spread
            slope = min(4.0, max(0.25, slope))
        return max(0.0, mean_a + slope * (estimate - mean_e))

    def _fits(self, candidate: Candidate, elapsed: float, admitted: int) -> bool:
        scoring = self.score_seconds * (admitted + 1) * self.processes
        extraction = 0.0 if candidate.cached else self.corrected(candidate.extract_seconds)
        return elapsed + extraction + scoring <= self.seconds

    def plan(self) -> tuple[list[Candidate], list[Candidate]]:
        """``(planned, left_out)`` if every estimate held, from now: the extraction of the planned ones shared by the
        processes."""
        planned, left, spent = [], [], self.clock() - self.started
        for c in self.candidates:
            if self._fits(c, spent, len(planned)):
                planned.append(c)
                spent += (0.0 if c.cached else self.corrected(c.extract_seconds)) / self.processes
            else:
                left.append(c)
        return planned, left

    def admit(self, entry: Any) -> bool:
        """Whether ``entry`` may start now (called by :func:`hf_tsel.extract` before each model)."""
        candidate = self._by_name[entry.name]
        if not self._fits(candidate, self.clock() - self.started, len(self.admitted)):
            self.left_out.append(entry.name)
            return False
        self.admitted.append(entry.name)
        self._started_at[entry.name] = self.clock()
        return True

    def watch(self, on_event: Callable[[Any], None] | None) -> Callable[[Any], None]:
        """An ``on_event`` for :func:`hf_tsel.extract` that also records each extracted model's seconds."""
        def observe(event: Any) -> None:
            start = self._started_at.pop(event.model, None) if event.kind in ("extracted", "failed") else None
            candidate = self._by_name.get(event.model)
            if start is not None and candidate is not None and not candidate.cached and event.kind == "extracted":
                self._measured.append((candidate.extract_seconds, self.clock() - start))
            if on_event is not None:
                on_event(event)

        return observe

    def report(self, budget: Budget, *, race: bool = False) -> dict[str, Any]:
        """What the funnel did, for the run metadata: order, estimates, scored and left-out models, and the budget
        that would have finished them."""
        left = [self._by_name[name] for name in self.left_out]
        left_seconds = sum(self.corrected(c.extract_seconds) / self.processes + self.score_seconds for c in left)
        elapsed = self.clock() - self.started
        needed = (elapsed + left_seconds) / (FUNNEL_SHARE_WITH_RACE if race else 1.0)
        return {
            "budget": str(budget), "funnel_seconds": round(self.seconds, 1), "race_share": race,
            "order": ORDER, "measured_models": len(self._measured),
            "score_seconds_per_model": round(self.score_seconds, 3),
            "admitted": list(self.admitted),
            "left_out": [{"model": c.name, "model_id": c.entry.hub_id,
                          "estimated_seconds": round(self.corrected(c.extract_seconds) + self.score_seconds, 1),
                          "params_known": c.params_known} for c in left],
            "left_out_seconds": round(left_seconds, 1),
            "budget_to_finish": str(Budget(seconds=60.0 * math.ceil(needed / 60.0))) if left else None,
        }
