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
from typing import Any, Mapping, NamedTuple, Sequence

from ..errors import UserError
from ..hub_access import cached_commit, hub_cache_folder, is_hub_repo_id

__all__ = ["LAUNCH_GROUP_VARIABLES", "SchedulerShard", "balanced_order", "detach_from_launch", "parse_shard",
           "shard_entries", "shard_from_scheduler", "weight_bytes"]

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


class SchedulerShard(NamedTuple):
    """A share ``index/count`` (1-based) read from the scheduler's variables, and which scheduler gave it."""

    index: int
    count: int
    launcher: str  # "slurm-array" or "torchrun"


# Variables by which torchrun / accelerate launch make a process join one process group.
LAUNCH_GROUP_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                          "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_SHARD_FIX = "use an explicit --shard I/N instead"


def _integer(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = environ.get(name)
    if text is None or text.strip() == "":
        if default is None:
            raise UserError(f"--shard auto: {name} is not set; {_SHARD_FIX}")
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--shard auto: {name}={text!r} is not an integer; {_SHARD_FIX}") from None


def _slurm_array_shard(environ: Mapping[str, str]) -> SchedulerShard:
    """Share of a Slurm job array (``--array=MIN-MAX[:STEP]``): task ``ID`` is share ``(ID - MIN) / STEP + 1``.

    The array need not start at 0 (``--array=1-10``), hence ``SLURM_ARRAY_TASK_MIN``; a list of
    ids (``--array=1,4,9``) has no fixed step and is refused.
    """
    task, count = _integer(environ, "SLURM_ARRAY_TASK_ID"), _integer(environ, "SLURM_ARRAY_TASK_COUNT")
    first, step = _integer(environ, "SLURM_ARRAY_TASK_MIN", 0), _integer(environ, "SLURM_ARRAY_TASK_STEP", 1)
    last = _integer(environ, "SLURM_ARRAY_TASK_MAX", first + step * (count - 1))
    described = (f"SLURM_ARRAY_TASK_ID={task}, SLURM_ARRAY_TASK_MIN={first}, SLURM_ARRAY_TASK_MAX={last}, "
                 f"SLURM_ARRAY_TASK_STEP={step}, SLURM_ARRAY_TASK_COUNT={count}")
    offset, remainder = divmod(task - first, step) if step >= 1 else (-1, 0)
    if count < 1 or last != first + step * (count - 1) or remainder or not 0 <= offset < count:
        raise UserError(f"--shard auto: the Slurm array variables do not describe task {task} of an evenly spaced "
                        f"array ({described}); submit the array as a range such as --array=0-{max(count, 2) - 1} "
                        f"or {_SHARD_FIX}")
    return SchedulerShard(offset + 1, count, "slurm-array")


def _launch_shard(environ: Mapping[str, str]) -> SchedulerShard:
    """Share of a torchrun / accelerate launch: process ``RANK`` (0-based) of ``WORLD_SIZE``."""
    rank, world = _integer(environ, "RANK"), _integer(environ, "WORLD_SIZE")
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"--shard auto: RANK={rank} is not a process of WORLD_SIZE={world} (ranks are 0 to "
                        f"WORLD_SIZE-1); {_SHARD_FIX}")
    return SchedulerShard(rank + 1, world, "torchrun")


def shard_from_scheduler(environ: Mapping[str, str]) -> SchedulerShard:
    """``--shard auto``: the share this process was launched for, from its scheduler's environment variables.

    A Slurm job array (``SLURM_ARRAY_TASK_ID``) wins over a torchrun / accelerate launch
    (``RANK``, ``WORLD_SIZE``): an array task that itself runs torchrun over its GPUs extracts its
    array share with all of them. Missing, malformed or inconsistent variables raise UserError.

    Example:
        >>> shard_from_scheduler({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10",
        ...                       "SLURM_ARRAY_TASK_COUNT": "4"})[:2]
        (3, 4)
        >>> shard_from_scheduler({"RANK": "0", "WORLD_SIZE": "16"})
        SchedulerShard(index=1, count=16, launcher='torchrun')
    """
    if "SLURM_ARRAY_TASK_ID" in environ:
        return _slurm_array_shard(environ)
    if "RANK" in environ or "WORLD_SIZE" in environ:
        return _launch_shard(environ)
    raise UserError("--shard auto found neither a Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) nor "
                    f"a torchrun / accelerate launch (RANK, WORLD_SIZE) in the environment; {_SHARD_FIX}")


def detach_from_launch(environ: dict[str, str]) -> int | None:
    """Remove the launch's process-group variables from ``environ``; return its ``LOCAL_RANK`` (None if unset).

    With ``--shard auto`` under torchrun each process extracts its own share of the zoo: it must
    not join the launch's process group, whose zoo-parallel split and barriers assume that every
    process works on the same models. ``LOCAL_RANK`` still says which GPU of the node is its own.
    """
    local_rank = environ.get("LOCAL_RANK")
    for name in LAUNCH_GROUP_VARIABLES:
        environ.pop(name, None)
    return int(local_rank) if local_rank not in (None, "") else None


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
    if not is_hub_repo_id(entry.hub_id):
        return 0
    snapshot = hub_cache_folder(entry.hub_id) / "snapshots" / (cached_commit(entry.hub_id, entry.revision) or "-")
    if snapshot.is_dir():
        return _folder_weight_bytes(snapshot)
    from huggingface_hub import constants

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
