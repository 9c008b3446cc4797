"""Which models an extraction covers: zoo entries from a zoo name, model names, Hub ids or entries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
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
    entries = _distinct_names([m if isinstance(m, ZooEntry) else find_model(m, zoo_entries, zoo=zoo, loader=loader)
                               for m in models])
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"model(s) {duplicates} were given twice; name each model once",
                        fix="give each model once; to compare two with the same name, list them in a zoo YAML "
                            "with a 'name' each.")
    return entries


def _distinct_names(entries: list[ZooEntry]) -> list[ZooEntry]:
    """Models that share a last path component (local ``runs/a/best`` and ``runs/b/best``, Hub ``a/vit`` and
    ``b/vit``) are named by as many parent parts as tell them apart (``a-best``, ``b-best``); the same model given
    twice, in any spelling, keeps its name (and is refused)."""
    renamed = list(entries)
    for name in {e.name for e in entries}:
        group = [i for i, e in enumerate(entries) if e.name == name]
        paths = [_location(entries[i].hub_id) for i in group]
        if len(group) < 2 or len(set(paths)) < len(paths):
            continue
        depth = next((d for d in range(2, 1 + max(len(p.parts) for p in paths))
                      if len({p.parts[-d:] for p in paths}) == len(paths)), None)
        if depth is not None:
            for i, path in zip(group, paths):
                renamed[i] = replace(entries[i], name="-".join(path.parts[-depth:]))
    return renamed


def _location(hub_id: str) -> PurePosixPath:
    local = Path(hub_id).expanduser()
    return PurePosixPath(local.resolve().as_posix()) if local.exists() else PurePosixPath(hub_id)
