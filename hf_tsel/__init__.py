"""hf-tsel: rank pre-trained vision backbones by transferability to your dataset.

The steps of the pipeline are public: :func:`extract` (sample a dataset, extract or reuse the
cached features of every model), :func:`rank` (extract, score with transferability metrics, build
the results table), :func:`recommend` (consensus ranking with P(best) and rank intervals) and
:func:`race` (fine-tune the top candidates by successive halving and name the winner). They
are imported on first use, so ``import hf_tsel`` stays light.

Example:
    >>> import hf_tsel
    >>> features = hf_tsel.extract("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
    >>> df = hf_tsel.rank("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["__version__", "extract", "rank", "recommend", "race"]

if TYPE_CHECKING:
    from .extraction import extract
    from .racing import race
    from .ranking import rank
    from .recommendation import recommend

_LAZY = {"extract": "extraction", "rank": "ranking", "recommend": "recommendation", "race": "racing"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
