"""The ``hf-tsel`` CLI end to end in subprocesses, offline, with tiny models in a real HF cache.

Covers: a full ``rank`` run with result files, a cached re-run that loads no model, kill -9 and
resume (of the extraction, and of a ``--confirm`` race mid-training), Ctrl-C (SIGINT) with exit code 130, ``cache`` commands, the offline ``demo`` and 2-process launches.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from hf_tsel.errors import EXIT_PARTIAL_FAILURE
from hf_tsel.metrics.consensus import ANSWERS
from hf_tsel.results import read_results

from tests.helpers.cli import launch_two_cpu_processes, run_cli
from tests.helpers.data import image_dataset, write_hub_dataset


def _manifests(env: dict) -> dict[str, dict]:
    root = Path(env["HF_TSEL_HOME"]) / "features"
    return {json.loads(p.read_text())["model"]: {"mtime": p.stat().st_mtime_ns, **json.loads(p.read_text())}
            for p in root.glob("*/manifest.json")}


@pytest.mark.slow
def test_rank_end_to_end_then_cached_rerank(cli_setup, tmp_path, capsys):
    env, zoo, dataset = cli_setup
    cache_dir = str(Path(env["HF_TSEL_HOME"]) / "features")
    first = run_cli(["rank", dataset, "--zoo", str(zoo), "--samples-per-class", "6", "--metrics", "logme,leep",
                     "-o", str(tmp_path / "r.json"), "-o", str(tmp_path / "r.csv")], env)
    assert first.returncode == 0, first.stderr
    assert "timm-cnn" in first.stdout and "logme" in first.stdout and "Traceback" not in first.stderr
    df, run = read_results(tmp_path / "r.json")
    assert set(df["model"]) == {"timm-cnn", "timm-vit", "transformers-vit"} and (df["num_samples"] == 18).all()
    assert run["dataset_revision"] == "d" * 40 and run["stage_seconds"]["extraction"] > 0
    leep = df[df.metric == "leep"].set_index("model")
    assert leep["score"].notna().tolist() == [True, False, False]  # only the CNN has a source head
    assert read_results(tmp_path / "r.csv")[0]["score"].notna().sum() == df["score"].notna().sum()
    before = _manifests(env)
    assert set(before) == {"timm-cnn", "timm-vit", "transformers-vit"}

    second = run_cli(["rank", dataset, "--zoo", str(zoo), "--samples-per-class", "6", "--metrics", "hscore,nce"], env)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("features cached, model not loaded") == 3 and "extracting" not in second.stderr
    assert _manifests(env) == before  # nothing rewritten

    listing = _main(["cache", "--cache-dir", cache_dir, "list", "--json"], capsys)
    assert sorted(e["model"] for e in json.loads(listing)) == ["timm-cnn", "timm-vit", "transformers-vit"]
    assert "removed 1 cache entry" in _main(["cache", "--cache-dir", cache_dir, "clear", "--model", "timm-vit"], capsys)
    assert set(_manifests(env)) == {"timm-cnn", "transformers-vit"}


def _main(args: list[str], capsys) -> str:
    """Run a light command in-process (no interpreter start-up); returns its stdout."""
    from hf_tsel.cli import main

    assert main(args) == 0
    return capsys.readouterr().out


@pytest.fixture
def slow_dataset(hub_cache):
    """A larger dataset repo, so that extracting one model takes long enough to interrupt the next."""
    repo_id = "hf-tsel-test/cli-images-large"
    if not (hub_cache.hub_dir / f"datasets--{repo_id.replace('/', '--')}").exists():
        write_hub_dataset(hub_cache.hub_dir, repo_id, {"train": image_dataset(per_class=40)})
    return repo_id


def _default_sigint() -> None:
    # A test run started in the background (`cmd &` in a script) inherits SIGINT as ignored, and Python then
    # installs no KeyboardInterrupt handler; a terminal's Ctrl-C always reaches a foreground run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_stop_after_first_model(env: dict, args: list[str], stop_signal: int,
                                     reached: Callable[[], bool] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI and send ``stop_signal`` once ``reached()`` (default: one model's features are cached)."""
    reached = reached or (lambda: bool(_manifests(env)))
    process = subprocess.Popen([sys.executable, "-m", "hf_tsel.cli", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    while not reached() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(stop_signal)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_kill_then_resume_does_not_recompute_finished_models(cli_setup, slow_dataset):
    env, zoo, _ = cli_setup
    args = ["rank", slow_dataset, "--zoo", str(zoo), "--metrics", "logme", "--batch-size", "8"]
    killed = _start_and_stop_after_first_model(env, args, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    finished = _manifests(env)
    assert set(finished) == {"timm-cnn"}
    resumed = run_cli(args, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "[timm-cnn] features cached, model not loaded" in resumed.stderr
    assert _manifests(env)["timm-cnn"] == finished["timm-cnn"]
    assert set(_manifests(env)) == {"timm-cnn", "timm-vit", "transformers-vit"}


@pytest.mark.slow
def test_a_race_killed_mid_epoch_resumes_to_the_uninterrupted_result(cli_setup, slow_dataset, tmp_path):
    env, zoo, _ = cli_setup
    args = ["rank", slow_dataset, "--zoo", str(zoo), "--metrics", "logme", "--confirm", "2", "--budget", "8ep"]
    whole = run_cli([*args, "-o", str(tmp_path / "whole.json")], {**env, "HF_TSEL_HOME": str(tmp_path / "home2")})
    assert whole.returncode == 0, whole.stderr
    race_dir = Path(env["HF_TSEL_HOME"]) / "race"
    killed = _start_and_stop_after_first_model(env, args, signal.SIGKILL,
                                               reached=lambda: any(race_dir.rglob("last.pt")))
    assert killed.returncode == -signal.SIGKILL
    kept = list(race_dir.rglob("last.pt"))
    assert kept and all(torch.load(p, weights_only=True)["history"] for p in kept)  # whole epochs survived the kill
    resumed = run_cli([*args, "-o", str(tmp_path / "resumed.json")], env)
    assert resumed.returncode == 0, resumed.stderr
    assert not any(p.exists() for p in kept)  # it was continued to the end, then dropped

    def race_rows(path: Path):
        df, run = read_results(path)
        rows = df[df.metric == "race"].sort_values("model")
        return rows[["model", "score", "race_round", "race_epochs"]].to_dict("records"), run["race"]["winner"]

    assert race_rows(tmp_path / "resumed.json") == race_rows(tmp_path / "whole.json")


@pytest.mark.slow
def test_ctrl_c_keeps_the_cache_and_exits_130(cli_setup, slow_dataset):
    env, zoo, _ = cli_setup
    args = ["rank", slow_dataset, "--zoo", str(zoo), "--metrics", "logme", "--batch-size", "8"]
    interrupted = _start_and_stop_after_first_model(env, args, signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "run the same command again to resume" in interrupted.stderr and "Traceback" not in interrupted.stderr
    assert "timm-cnn" in _manifests(env)


@pytest.mark.slow
def test_offline_demo_ranks_packaged_pretrained_models(offline_zoo_dir, tmp_path, hub_env):
    import yaml

    from hf_tsel.zoo import load_zoo

    zoo = tmp_path / "demo.yaml"  # the two models the session fixture converted, as the offline zoo defines them
    entries = [e.to_dict() for e in load_zoo("offline") if e.name in ("efficientnet-lite0", "open-nsfw")]
    zoo.write_text(yaml.safe_dump({"models": entries}))
    env = {**hub_env, "HF_TSEL_HOME": str(offline_zoo_dir), "HF_DATASETS_CACHE": str(tmp_path / "ds")}
    result = run_cli(["demo", "--samples-per-class", "4", "--zoo", str(zoo), "--cache-dir", str(tmp_path / "c"),
                      "-o", str(tmp_path / "demo.parquet")], env, timeout=400)
    assert result.returncode == 0, result.stderr
    df, run = read_results(tmp_path / "demo.parquet")
    assert run["dataset"] == "sklearn-digits" and run["num_samples"] == 40 and run["num_classes"] == 10
    assert set(df["model"]) == {"efficientnet-lite0", "open-nsfw"}
    logme = df[df.metric == "logme"]
    assert logme["score"].notna().all() and sorted(logme["rank"]) == [1, 2]
    consensus = df[df.metric == "consensus"].sort_values(["rank", "p_top1", "model"], ascending=[True, False, True])
    assert consensus["p_top1"].sum() == pytest.approx(1.0) and (consensus["rank_low"] <= consensus["rank_high"]).all()
    best = consensus["model"].iloc[0]
    members = ANSWERS["finetune"].members
    by = members[0] if len(members) == 1 else "the consensus (mean of"
    assert f"Fine-tune {best}: #1 of 2 by {by}" in result.stdout
    assert f"P(best) {consensus['p_top1'].iloc[0]:.2f}" in result.stdout.split("Fine-tune")[1]
    assert "P(best)" in result.stdout.split("Fine-tune")[0]  # the leaderboard column


# The CLI with one model that fails to load in the second process only (e.g. its download broke there).
_FLAKY_SECOND_PROCESS = """
import os, sys
from hf_tsel import backbones
from hf_tsel.backbones import BackboneLoadError
from hf_tsel.cli import main

load = backbones.load_backbone

def flaky(entry, **options):
    if entry.name == "timm-vit" and os.environ["RANK"] == "1":
        raise BackboneLoadError(entry.name, "network", "connection reset (second process only)")
    return load(entry, **options)

backbones.load_backbone = flaky
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_model_failing_in_one_process_fails_in_all_and_the_run_goes_on(cli_setup, tmp_path, free_port):
    """Image-parallel: every process must take the same branch, else the other one waits at a barrier forever."""
    env, zoo, dataset = cli_setup
    script = tmp_path / "flaky_cli.py"
    script.write_text(_FLAKY_SECOND_PROCESS)
    args = ["rank", dataset, "--zoo", str(zoo), "--metrics", "logme", "--batch-size", "5", "--no-cache", "-q"]
    double = subprocess.run([*launch_two_cpu_processes(free_port, (str(script),)), *args, "-o", str(tmp_path / "two.json")],
                            env=env, capture_output=True, text=True, timeout=150)  # ~25 s; a hang times out
    # the main process exits with EXIT_PARTIAL_FAILURE, which torchrun reports as its own failure
    assert f"exitcode  : {EXIT_PARTIAL_FAILURE}" in double.stderr, double.stderr[-3000:]
    assert "1 of 3 models failed (timm-vit)" in double.stderr
    table, run = read_results(tmp_path / "two.json")
    statuses = {m["name"]: m["status"] for m in run["models"]}
    assert statuses == {"timm-cnn": "extracted", "timm-vit": "failed", "transformers-vit": "extracted"}
    assert "second process only" in {m["name"]: m["error"] for m in run["models"]}["timm-vit"]
    assert table[table.model != "timm-vit"]["score"].notna().all()


@pytest.mark.slow
def test_two_processes_with_accelerate_launch_match_one(cli_setup, tmp_path, free_port):
    """Two launched CPU processes (image-parallel: --no-cache) shard each model's images; results equal one process.

    24 images in batches of 5 leave uneven last batches, so the padding duplicates must be dropped.
    """
    env, zoo, dataset = cli_setup
    args = ["rank", dataset, "--zoo", str(zoo), "--metrics", "logme,leep", "--batch-size", "5", "--no-cache", "-q"]
    single = run_cli([*args, "-o", str(tmp_path / "one.json")], env)
    assert single.returncode == 0, single.stderr
    double = subprocess.run([*launch_two_cpu_processes(free_port), *args, "-o", str(tmp_path / "two.json")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count("timm-cnn") == 1  # only the main process prints the table
    one, _ = read_results(tmp_path / "one.json")
    two, run = read_results(tmp_path / "two.json")
    assert run["hardware"].startswith("cpu") and run["num_processes"] == 2 and run["parallel"] == "images"
    assert (two["num_samples"] == 24).all()
    merged = one.merge(two, on=["model", "metric"], suffixes=("_one", "_two"))
    assert len(merged) == len(one) == len(two)
    import numpy as np

    np.testing.assert_allclose(merged["score_one"], merged["score_two"], rtol=1e-4)
