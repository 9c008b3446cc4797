"""A large zoo across processes and machines: shares of a zoo, size-balanced splits, ``extract`` then ``rank --from-cache``.

The subprocess tests use the tiny random-weight models of ``conftest.hub_cache`` (offline HF cache
layout): two concurrent ``hf-tsel extract --shard i/2`` runs on one cache folder, and a 2-process
zoo-parallel launch of 2 CPU processes (torchrun), each compared with a single-process ranking.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hf_tsel
from hf_tsel.extraction import MissingFeaturesError, choose_parallel
from hf_tsel.errors import UserError
from hf_tsel.features.scheduling import balanced_order, parse_shard, shard_entries
from hf_tsel.results import read_results

from .data_fixtures import cli_setup, fake_models, launch_two_cpu_processes, run_cli, write_imagefolder  # noqa: F401


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


def test_auto_parallel_mode():
    assert choose_parallel("auto", 10, 2, True) == "zoo"
    assert choose_parallel("auto", 2, 2, True) == "images"  # no more models than processes
    assert choose_parallel("auto", 10, 1, True) == "images"
    assert choose_parallel("auto", 10, 2, False) == "images"  # zoo mode hands features over in the cache
    assert choose_parallel("images", 10, 2, True) == "images"
    with pytest.raises(UserError, match="--no-cache"):
        choose_parallel("zoo", 10, 2, False)


def test_from_cache_names_the_missing_models_and_how_to_extract_them(tmp_path, fake_models, capsys):
    from hf_tsel.cli import main

    zoo, loads = fake_models
    data = write_imagefolder(tmp_path / "images")
    hf_tsel.extract(str(data), zoo=str(zoo), models=["alpha"], cache_dir=tmp_path / "c", samples_per_class=4)
    with pytest.raises(MissingFeaturesError, match="2 model.*beta, headless") as error:
        hf_tsel.rank(str(data), zoo=str(zoo), cache_dir=tmp_path / "c", samples_per_class=4, from_cache=True)
    assert error.value.missing == ["beta", "headless"] and loads == ["alpha"]
    args = ["rank", str(data), "--zoo", str(zoo), "--samples-per-class", "4", "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--from-cache", "-q"]) == 2
    message = capsys.readouterr().err
    assert "beta, headless" in message and "Traceback" not in message
    command = re.search(r"extract them first with: (.*)$", message.strip()).group(1)
    assert command.startswith("hf-tsel extract ") and "--model beta --model headless" in command
    assert main(command.split()[1:] + ["-q"]) == 0  # the advice works as printed
    assert main([*args, "--from-cache", "-q"]) == 0 and sorted(loads) == ["alpha", "beta", "headless"]


def test_shard_is_checked_when_the_command_line_is_parsed(capsys):
    from hf_tsel.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "some/dataset", "--shard", "3/2"])
    assert exit_info.value.code == 2 and "shares are numbered 1 to n" in capsys.readouterr().err


def _scores(path: Path) -> dict[tuple[str, str], float]:
    df, _ = read_results(path)
    return {(r.model, r.metric): r.score for r in df.itertuples()}


def _manifests(cache: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["model"]: json.loads(p.read_text()) for p in cache.glob("*/manifest.json")}


@pytest.mark.slow
@pytest.mark.timeout(900)  # three CLI runs in subprocesses on a loaded 2-core machine
def test_two_concurrent_shards_fill_one_cache_that_ranks_like_one_run(cli_setup, tmp_path):
    env, zoo, dataset = cli_setup
    cache = tmp_path / "shared-cache"
    sample = ["--samples-per-class", "6", "--batch-size", "5"]
    shards = [subprocess.Popen([sys.executable, "-m", "hf_tsel.cli", "extract", dataset, "--zoo", str(zoo), *sample,
                                "--cache-dir", str(cache), "--shard", f"{i}/2"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    outputs = [shard.communicate(timeout=300) for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], [err[-2000:] for _, err in outputs]
    # round-robin shares of the 3-model zoo: 1/2 = models 1 and 3, 2/2 = model 2
    assert "timm-cnn: extracted" in outputs[0][0] and "transformers-vit: extracted" in outputs[0][0]
    assert "timm-vit: extracted" in outputs[1][0] and "timm-cnn" not in outputs[1][0]
    assert "--from-cache" in outputs[0][0]
    assert set(_manifests(cache)) == {"timm-cnn", "timm-vit", "transformers-vit"}
    assert not list(cache.rglob("*.tmp")) and not list(cache.glob("*/chunks"))

    metrics = ["--metrics", "logme,leep,hscore"]
    merged = run_cli(["rank", dataset, "--zoo", str(zoo), *sample, *metrics, "--cache-dir", str(cache), "--from-cache",
                      "-o", str(tmp_path / "merged.json")], env)
    assert merged.returncode == 0, merged.stderr
    assert merged.stderr.count("features cached, model not loaded") == 3 and "extracting" not in merged.stderr
    single = run_cli(["rank", dataset, "--zoo", str(zoo), *sample, *metrics, "--no-cache", "-q",
                      "-o", str(tmp_path / "single.json")], env)
    assert single.returncode == 0, single.stderr
    one, union = _scores(tmp_path / "single.json"), _scores(tmp_path / "merged.json")
    assert one.keys() == union.keys() and len(one) == 12  # 3 models x (3 metrics + consensus)
    np.testing.assert_allclose([union[k] for k in one], [one[k] for k in one], rtol=1e-5)


def _two_processes_match_one(env: dict, args: list[str], tmp_path: Path, port: int):
    """Run ``args`` as a 2-process launch (cached) and as one process (no cache); assert both give the same
    scores; return the launch's process and run metadata, and the scores."""
    double = subprocess.run([*launch_two_cpu_processes(port), *args, "--cache-dir", str(tmp_path / "c"),
                             "-o", str(tmp_path / "two.json")], env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    single = run_cli([*args, "--no-cache", "-q", "-o", str(tmp_path / "one.json")], env)
    assert single.returncode == 0, single.stderr
    one, two = _scores(tmp_path / "one.json"), _scores(tmp_path / "two.json")
    assert one.keys() == two.keys()
    np.testing.assert_allclose([two[k] for k in one], [one[k] for k in one], rtol=1e-5)
    return double, read_results(tmp_path / "two.json")[1], two


@pytest.mark.slow
@pytest.mark.timeout(900)  # a 2-process launch and a 1-process run in subprocesses
def test_zoo_parallel_two_processes_extract_each_model_once_and_match_one(cli_setup, tmp_path, free_port):
    env, zoo, dataset = cli_setup
    args = ["rank", dataset, "--zoo", str(zoo), "--samples-per-class", "6", "--batch-size", "5",
            "--metrics", "logme,leep,hscore"]
    double, run, two = _two_processes_match_one(env, args, tmp_path, free_port)
    assert run["parallel"] == "zoo" and run["num_processes"] == 2 and run["hardware"].startswith("cpu")
    extracted = re.findall(r"\[(?:process \d\] \[)?([\w-]+)\] extracting features", double.stderr)
    assert sorted(extracted) == ["timm-cnn", "timm-vit", "transformers-vit"], double.stderr[-3000:]
    assert "[process 1]" in double.stderr  # the second process really extracted a model
    assert {m["status"] for m in run["models"]} == {"extracted"}
    assert len(two) == 12  # 3 models x (3 metrics + consensus)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a 2-process launch and a 1-process run in subprocesses
def test_source_reference_extraction_in_a_zoo_parallel_launch_matches_one_process(cli_setup, tmp_path, free_port):
    """Only the main process holds every model's features, yet all processes must extract the reference set."""
    import yaml

    env, zoo, dataset = cli_setup
    document = yaml.safe_load(zoo.read_text())
    for entry in document["models"]:
        entry["source_reference"] = {"dataset": dataset, "split": "test"}  # any labelled image set will do here
    zoo.write_text(yaml.safe_dump(document))
    args = ["rank", dataset, "--zoo", str(zoo), "--samples-per-class", "6", "--batch-size", "5",
            "--metrics", "logme,persistence_ratio"]
    _, run, two = _two_processes_match_one(env, args, tmp_path, free_port)
    assert run["parallel"] == "zoo" and run["num_processes"] == 2
    assert all(m["source_reference"]["num_samples"] == 12 for m in run["models"])
    assert all(np.isfinite(two[k]) for k in two if k[1] == "persistence_ratio")
