"""``--confirm K`` of ``rank`` and ``demo``: the fine-tuning race after the ranking, its progress bars and answer line."""

from __future__ import annotations

import argparse
from typing import Any

from ._args import check_epoch_budget, positive_int
from ._progress import ConsoleProgress


def add_race_options(parser: argparse.ArgumentParser) -> None:
    """``--confirm [K]`` and ``--budget``."""
    from ..defaults import DEFAULT_RACE_K
    from ._options import add_budget_option

    parser.add_argument("--confirm", type=positive_int, nargs="?", const=DEFAULT_RACE_K, metavar="K",
                        help=f"after ranking, fine-tune the top K models on the ranked split (a stratified 20 %% of "
                             f"it held out for validation) by successive halving and name the winner (K default "
                             f"{DEFAULT_RACE_K}; default: no race)")
    add_budget_option(parser)


def check_race_request(args: argparse.Namespace, split: str) -> None:
    """Before any work: ``--confirm`` on a test split is refused (the race trains on the ranked split), and so are
    ``--confirm`` with ``--goal linear-probe`` (the race fine-tunes) and an epoch ``--budget`` without ``--confirm``."""
    from ..errors import UserError
    from ..racing import check_training_split

    check_epoch_budget(getattr(args, "budget", None), race=args.confirm is not None)
    if args.confirm is None:
        return
    if getattr(args, "goal", None) == "linear-probe":
        raise UserError("--confirm races the top models by fine-tuning them, but --goal linear-probe asks which "
                        "frozen features suit a linear head",
                        fix="drop --confirm (the linear-probe answer, linear_probe_cv, already trains and "
                            "cross-validates a linear probe on your images), or use --goal finetune.")
    check_training_split(split)


def run_race(args: argparse.Namespace, ranked: Any, dataset: Any, started: float, **data_options: Any) -> Any:
    """The ranking with the race's records appended (``attrs["run"]["race"]``: outcome and answer line);
    ``ranked`` itself when ``--confirm`` was not given."""
    import pandas as pd

    from ..funnel import seconds_left
    from ..racing import race

    if args.confirm is None:
        return ranked
    budget = getattr(args, "budget", None)
    raced = race(dataset, ranked, k=args.confirm, epochs=None if budget is None or budget.is_time else budget.epochs,
                 seconds=seconds_left(budget, started), zoo=args.zoo, models=getattr(args, "models", None),
                 seed=args.seed, device=args.device, precision=args.precision, num_workers=args.num_workers,
                 allow_pickle=getattr(args, "allow_pickle", False),
                 trust_remote_code=getattr(args, "trust_remote_code", False),
                 on_progress=None if args.quiet else RaceProgress(), **data_options)
    merged = pd.concat([ranked, raced], ignore_index=True) if len(raced) else ranked.copy()
    merged.attrs = {**ranked.attrs, "run": {**ranked.attrs["run"], "race": raced.attrs["race"]}}
    return merged


def print_race(run: dict) -> None:
    """The race's answer line, and why candidates did not race."""
    outcome = run.get("race")
    if not outcome:
        return
    for model, why in outcome.get("skipped", {}).items():
        print(f"  race / {model}: {why}")
    print(outcome["line"])


class RaceProgress(ConsoleProgress):
    """One stderr line per round and a progress bar over the round's training epochs (rich)."""

    def __call__(self, event: dict) -> None:
        if event["kind"] in ("epoch", "resumed"):
            if self.progress is not None:
                self.progress.advance(self.task, event.get("epochs", 1))
            return
        self._stop_bar()
        if event["kind"] == "round":
            models = event["models"]
            each = event["epochs_each"]
            self.console.print(f"race round {event['round']}/{event['rounds']}: {len(models)} models "
                               f"({', '.join(models)}), {each} more epoch{'s' * (each != 1)} each",
                               highlight=False, markup=False)
            if self.console.is_terminal:  # on a log file each redraw would leave a line
                self._start_bar(f"round {event['round']}", event["epochs"])
        elif event["kind"] == "failed":
            self.console.print(f"race: {event['model']} {event['why']}", highlight=False, markup=False)
