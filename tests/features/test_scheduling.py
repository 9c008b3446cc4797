"""Scheduling a zoo across processes and machines: ``--shard i/n`` shares, ``--shard auto`` from the scheduler that
launched the process (issue 21), and size-balanced splits between the processes of one launch."""

from __future__ import annotations

import pytest

from hf_tsel.errors import UserError
from hf_tsel.features.scheduling import (balanced_order, detach_from_launch, parse_shard, shard_entries,
                                        shard_from_scheduler)


def _slurm(task: int, first: int, count: int, **extra: str) -> dict[str, str]:
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first),
            "SLURM_ARRAY_TASK_COUNT": str(count), **extra}


@pytest.mark.parametrize("first", [0, 1, 7])
def test_a_slurm_array_covers_the_zoo_once_whatever_its_first_id(first):
    zoo = [f"m{i}" for i in range(11)]
    shares = [shard_from_scheduler(_slurm(first + i, first, 4)) for i in range(4)]
    assert [s[:2] for s in shares] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sorted(m for s in shares for m in shard_entries(zoo, s.index, s.count)) == sorted(zoo)


def test_a_slurm_array_with_a_step_and_without_min_defaults():
    assert shard_from_scheduler(_slurm(14, 10, 3, SLURM_ARRAY_TASK_STEP="2", SLURM_ARRAY_TASK_MAX="14"))[:2] == (3, 3)
    # SLURM_ARRAY_TASK_MIN unset: ids are taken to start at 0
    assert shard_from_scheduler({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "5"})[:2] == (3, 5)


def test_torchrun_rank_and_world_size_give_the_share():
    shard = shard_from_scheduler({"RANK": "5", "WORLD_SIZE": "16", "LOCAL_RANK": "5"})
    assert shard == (6, 16, "torchrun")


def test_a_slurm_array_wins_over_a_torchrun_launch_inside_its_task():
    shard = shard_from_scheduler({**_slurm(3, 1, 4), "RANK": "6", "WORLD_SIZE": "8"})
    assert shard == (3, 4, "slurm-array")  # the task's GPUs share the task's share


@pytest.mark.parametrize("environ, message", [
    ({}, "found neither"),
    (_slurm(5, 1, 4), "do not describe task 5"),  # ids 1..4
    (_slurm(0, 1, 4), "do not describe task 0"),
    (_slurm(3, 1, 4, SLURM_ARRAY_TASK_MAX="9"), "do not describe"),  # --array=1,3,8,9: no fixed step
    (_slurm(4, 1, 3, SLURM_ARRAY_TASK_STEP="2"), "do not describe task 4"),  # ids 1, 3, 5
    ({"SLURM_ARRAY_TASK_ID": "2"}, "SLURM_ARRAY_TASK_COUNT is not set"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "not an integer"),
    ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK=4 is not a process of WORLD_SIZE=4"),
    ({"RANK": "-1", "WORLD_SIZE": "4"}, "RANK=-1"),
    ({"RANK": "0"}, "WORLD_SIZE is not set"),
    ({"WORLD_SIZE": "2"}, "RANK is not set"),
])
def test_inconsistent_variables_are_refused_with_the_fix(environ, message):
    with pytest.raises(UserError, match=message) as error:
        shard_from_scheduler(environ)
    assert "--shard I/N" in str(error.value)


def test_a_torchrun_share_leaves_the_process_group_but_keeps_its_gpu():
    environ = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500",
               "HOME": "/home/u"}
    assert detach_from_launch(environ) == 1
    assert environ == {"HOME": "/home/u"}


def test_the_cli_parses_auto_and_refuses_a_bad_environment(monkeypatch, capsys):
    from hf_tsel.cli import build_parser

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "10")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert build_parser().parse_args(["extract", "some/dataset", "--shard", "auto"]).shard[:2] == (3, 4)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["extract", "some/dataset", "--shard", "auto"])
    assert exit_info.value.code == 2 and "do not describe task 12" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1-2", "2", "-1/2"])
def test_bad_shards_are_refused(text):
    with pytest.raises(UserError, match="shard"):
        parse_shard(text)


def test_shards_cover_the_zoo_once_whatever_the_count():
    zoo = [f"m{i}" for i in range(7)]
    for count in range(1, 9):
        shares = [shard_entries(zoo, parse_shard(f"{i}/{count}")[0], count) for i in range(1, count + 1)]
        assert sorted(m for share in shares for m in share) == sorted(zoo)
    assert shard_entries(zoo, 2, 3) == ["m1", "m4"]  # 1-based: share 2 starts at the second model


def _accelerate_split(items: list, process: int, count: int) -> list:
    """What accelerate's own ``split_between_processes`` hands process ``process`` of ``count``."""
    from types import SimpleNamespace

    from accelerate import PartialState

    with PartialState.split_between_processes(SimpleNamespace(num_processes=count, process_index=process), items) as part:
        return part


def test_balanced_order_gives_each_process_a_fair_share_largest_first():
    sizes = dict(zip("abcdefg", [100, 90, 10, 10, 10, 10, 80]))
    order = balanced_order(list(sizes), list(sizes.values()), 2)
    parts = [_accelerate_split(order, p, 2) for p in range(2)]
    assert sorted(order) == sorted(sizes) and [len(p) for p in parts] == [4, 3]
    loads = [sum(sizes[m] for m in part) for part in parts]
    # zoo order would give 210 vs 100; 130 vs 180 is the best split with 4 and 3 models
    assert sorted(loads) == [130, 180], parts
    assert all([sizes[m] for m in part] == sorted((sizes[m] for m in part), reverse=True) for part in parts)
    assert balanced_order(list("abc"), [0, 0, 0], 2) == list("abc")  # unknown sizes keep the zoo order


def test_shard_is_checked_when_the_command_line_is_parsed(capsys):
    from hf_tsel.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "some/dataset", "--shard", "3/2"])
    assert exit_info.value.code == 2 and "shares are numbered 1 to n" in capsys.readouterr().err
