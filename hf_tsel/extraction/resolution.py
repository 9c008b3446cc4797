"""Which models an extraction covers: zoo entries from a zoo name, model names, Hub ids or entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..defaults import DEFAULT_ZOO
from ..errors import UserError
from ..hub_zoo import load_zoo_or_search
from ..zoo import ZooEntry, find_model

__all__ = ["resolve_models"]


def resolve_models(zoo: str | Path | None = None, models: Sequence[Any] | None = None, *,
                   loader: str | None = None) -> list[ZooEntry]:
    """Zoo entries to extract: the whole ``zoo``, or the ``models`` named (or given as :class:`hf_tsel.zoo.ZooEntry`).

    A model name is looked up in ``zoo`` (default: the default zoo) by entry name or hub id, so it
    keeps that entry's loader, pooling and preprocessing; other ids become ad-hoc entries. ``zoo`` may be a
    Hub search, ``hub:QUERY`` (:mod:`hf_tsel.hub_zoo`).
    """
    if not models:
        return load_zoo_or_search(zoo or DEFAULT_ZOO)
    zoo_entries = [] if all(isinstance(m, ZooEntry) for m in models) else load_zoo_or_search(zoo or DEFAULT_ZOO)
    entries = [m if isinstance(m, ZooEntry) else find_model(m, zoo_entries, zoo=zoo, loader=loader) for m in models]
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"model(s) {duplicates} were given twice; name each model once")
    return entries
