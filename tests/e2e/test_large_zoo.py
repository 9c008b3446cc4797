"""A large zoo across processes and machines, end to end: ``extract --shard`` runs sharing one cache, then
``rank --from-cache``, and zoo-parallel launches (the unit tests of shares and splits are in
``tests/features/test_scheduling.py``).

The subprocess tests use the tiny random-weight models of the ``hub_cache`` fixture (offline HF cache
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

from hf_tsel.results import read_results

from tests.helpers.cli import launch_two_cpu_processes, run_cli


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
    assert one.keys() == union.keys() and len(one) == 15  # 3 models x (3 metrics + the answer's etran_lda + consensus)
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
    assert len(two) == 15  # 3 models x (3 metrics + the answer's etran_lda + consensus)


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
