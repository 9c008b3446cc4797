"""Publishing results: a Hub dataset repo with a generated card, and a Gradio Space leaderboard.

:func:`push_results` merges a results table into a Hub dataset repo (see :mod:`hf_tsel.publish.hub`);
:mod:`hf_tsel.publish.leaderboard` shapes published results for the Space in ``spaces_app/``.
"""

from __future__ import annotations

from .hub import PushError, PushReport, push_results

__all__ = ["PushError", "PushReport", "push_results"]
