"""The budget funnel with ``--parallel zoo`` in a 2-process launch and with ``extract --shard i/n``, then a budgeted
``rank`` that finds everything in the cache (issue 19)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from hf_tsel.results import read_results

from tests.helpers.cli import launch_two_cpu_processes, run_cli

HUGE = {"name": "huge", "hub_id": "hf-tsel-test/no-such-huge-model", "loader": "timm",
        "metadata": {"params": 30_000_000_000}}  # downloading 120 GB alone is estimated at 40 min: never started


def _with_huge(zoo):
    document = yaml.safe_load(zoo.read_text())
    document["models"].append(HUGE)
    zoo.write_text(yaml.safe_dump(document))
    return zoo


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_zoo_parallel_launch_funnels_the_candidates(cli_setup, tmp_path, free_port):
    env, zoo, dataset = cli_setup
    args = ["rank", dataset, "--zoo", str(_with_huge(zoo)), "--samples-per-class", "6", "--batch-size", "5",
            "--metrics", "logme", "--budget", "10m", "--parallel", "zoo", "--cache-dir", str(tmp_path / "c"),
            "-o", str(tmp_path / "two.json")]
    launched = subprocess.run([*launch_two_cpu_processes(free_port), *args], env=env, capture_output=True, text=True,
                              timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    _, run = read_results(tmp_path / "two.json")
    assert run["parallel"] == "zoo" and run["num_processes"] == 2
    assert {m["name"]: m["status"] for m in run["models"]} == dict.fromkeys(["timm-cnn", "timm-vit",
                                                                             "transformers-vit"], "extracted")
    assert [m["model"] for m in run["funnel"]["left_out"]] == ["huge"]
    assert "left out: huge" in launched.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_shards_funnel_their_share_and_a_budgeted_rank_reuses_the_cache(cli_setup, tmp_path):
    env, zoo, dataset = cli_setup
    common = ["--zoo", str(_with_huge(zoo)), "--samples-per-class", "6", "--budget", "10m",
              "--cache-dir", str(tmp_path / "c")]
    shares = [run_cli(["extract", dataset, *common, "--shard", f"{i}/2"], env) for i in (1, 2)]
    assert [s.returncode for s in shares] == [0, 0], [s.stderr[-2000:] for s in shares]
    assert "left out: huge" in shares[1].stdout and "huge" not in shares[0].stdout  # share 2/2: positions 2 and 4
    ranked = run_cli(["rank", dataset, *common, "--metrics", "logme", "-o", str(tmp_path / "r.json")], env)
    assert ranked.returncode == 0, ranked.stderr[-2000:]
    _, run = read_results(tmp_path / "r.json")
    assert {m["status"] for m in run["models"]} == {"cached"} and len(run["models"]) == 3
    assert [m["model"] for m in run["funnel"]["left_out"]] == ["huge"]
