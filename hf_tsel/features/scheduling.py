"""Which models a process or a machine extracts: shares of a zoo (``--shard i/n``) and size-balanced splits.

A shard is chosen from zoo positions alone (round-robin), so every machine computes the same
split without talking to the others. Within one machine, :func:`balanced_order` arranges a zoo so
that accelerate's ``split_between_processes`` (contiguous, near-equal counts) hands each process
about the same amount of weights, largest models first.

Example:
    >>> from hf_tsel.features.scheduling import balanced_order, parse_shard, shard_entries
    >>> shard_entries(["a", "b", "c", "d", "e"], *parse_shard("2/3"))
    ['b', 'e']
    >>> balanced_order(["small", "big", "mid", "tiny"], [1, 9, 5, 2], 2)  # 2 models each: sizes 10 and 7
    ['big', 'small', 'mid', 'tiny']
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError

__all__ = ["balanced_order", "parse_shard", "shard_entries", "weight_bytes"]

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".onnx", ".ckpt")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1-based: ``1/2`` and ``2/2`` split a zoo in two) -> ``(i, n)``; anything else raises."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UserError(f"shard {text!r} is not of the form i/n; use e.g. 1/4 for the first of four shares")
    index, count = int(parts[0]), int(parts[1])
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"shard {text!r} is out of range; shares are numbered 1 to n, e.g. 1/{max(count, 2)}")
    return index, count


def shard_entries(entries: Sequence[Any], index: int, count: int) -> list[Any]:
    """The ``index``-th (1-based) of ``count`` round-robin shares of ``entries``: positions index-1, index-1+count, ..."""
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"shard {index}/{count} is out of range; shares are numbered 1 to n")
    return list(entries[index - 1::count])


def _folder_weight_bytes(folder: Path) -> int:
    files = [p for p in folder.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file()]
    preferred = [p for p in files if p.suffix == ".safetensors"] or files  # a repo may hold one model twice
    return sum(p.stat().st_size for p in preferred)


def weight_bytes(entry: Any) -> int:
    """Size of an entry's weight files (bytes), from the local folder or Hub cache, else the Hub; 0 if unknown.

    Only used to order work, so any failure (offline, private repo, id scheme without files)
    just means "unknown".
    """
    local = Path(entry.hub_id).expanduser()
    if local.exists():
        return _folder_weight_bytes(local) if local.is_dir() else local.stat().st_size
    if entry.hub_id.count("/") != 1 or ":" in entry.hub_id:
        return 0
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{entry.hub_id.replace('/', '--')}"
    ref = repo / "refs" / entry.revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else entry.revision
    if (repo / "snapshots" / commit).is_dir():
        return _folder_weight_bytes(repo / "snapshots" / commit)
    if constants.HF_HUB_OFFLINE:
        return 0
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(entry.hub_id, revision=entry.revision, files_metadata=True)
    except Exception as exc:  # noqa: BLE001 (a size estimate must never stop a run)
        logger.debug("no size for %s: %s", entry.hub_id, exc)
        return 0
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or [] if s.rfilename.endswith(_WEIGHT_SUFFIXES)}
    preferred = {k: v for k, v in sizes.items() if k.endswith(".safetensors")} or sizes
    return sum(preferred.values())


def balanced_order(items: Sequence[Any], sizes: Sequence[int], num_processes: int) -> list[Any]:
    """``items`` re-ordered so that contiguous near-equal splits (``split_between_processes``) balance ``sizes``.

    Largest first, each item goes to the process with the least total size that still has room;
    process ``p`` gets ``len // n`` items, plus one for the first ``len % n`` processes (accelerate's
    split). Each process's items stay largest first. Ties keep the zoo order, so the result is
    deterministic.
    """
    per_process, extras = divmod(len(items), num_processes)
    room = [per_process + (1 if p < extras else 0) for p in range(num_processes)]
    loads = [0] * num_processes
    bins: list[list[Any]] = [[] for _ in range(num_processes)]
    for i in sorted(range(len(items)), key=lambda i: (-sizes[i], i)):
        target = min((p for p in range(num_processes) if len(bins[p]) < room[p]), key=lambda p: (loads[p], p))
        bins[target].append(items[i])
        loads[target] += sizes[i]
    return [item for b in bins for item in b]
