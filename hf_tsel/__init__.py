"""hf-tsel: rank pre-trained vision backbones by transferability to your dataset."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "rank", "recommend"]


def rank(*args: Any, **kwargs: Any):
    """Score a zoo of backbones on a dataset; see :func:`hf_tsel.ranking.rank`."""
    from .ranking import rank as _rank

    return _rank(*args, **kwargs)


def recommend(*args: Any, **kwargs: Any):
    """Consensus ranking with P(best) and rank intervals; see :func:`hf_tsel.recommendation.recommend`."""
    from .recommendation import recommend as _recommend

    return _recommend(*args, **kwargs)
