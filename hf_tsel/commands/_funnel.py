"""``--budget`` of ``rank`` and ``extract``: the funnel's report (models left out and what finishing them costs)."""

from __future__ import annotations


def print_funnel(funnel: dict | None) -> None:
    """The funnel's summary: what the budget covered, the candidates it left out, and the budget that finishes them."""
    if not funnel:
        return
    left = funnel["left_out"]
    print(f"  budget {funnel['budget']}: {len(funnel['admitted'])} candidate(s) started, {len(left)} left out "
          f"(order: {funnel['order']}; estimates corrected by {funnel['measured_models']} measured model(s))")
    for model in left:
        unknown = "" if model["params_known"] else " (size unknown: costed as a resnet18)"
        print(f"  left out: {model['model']} ({model['model_id']}), about {model['estimated_seconds']:.0f} s{unknown}")
    if left:
        print(f"  finishing them would take about {funnel['left_out_seconds']:.0f} s more: run again with "
              f"--budget {funnel['budget_to_finish']} (cached features are reused)")
