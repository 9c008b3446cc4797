"""The Space's data layer, app construction and `hf-tsel space deploy` against the fake Hub."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from importlib.metadata import requires

import numpy as np
import pytest
import yaml
from scipy.stats import weightedtau

from hf_tsel.publish.leaderboard import (MEAN_RANK, leaderboard_view, load_leaderboard_results, metrics_markdown,
                                         model_view, prediction_vs_truth)
from hf_tsel.results import write_results

from tests.helpers.results import MODELS, make_results
from tests.hub.harness import REPO_ROOT, run_cli


def test_loading_skips_bad_records_with_notes(results_folder):
    loaded = load_leaderboard_results(results_folder)
    assert loaded.targets == ["org/flowers / train", "org/pets / train"]
    assert len(loaded.table) == 24 + 5  # the malformed pets record is skipped, its neighbours kept
    notes = "\n".join(loaded.notes)
    assert "pets.json, record 0: skipped" in notes and "num_samples" in notes
    assert "foreign.csv: skipped" in notes and "broken.json: skipped" in notes


def test_loading_from_env_and_nothing_configured(monkeypatch, results_folder):
    monkeypatch.delenv("HF_TSEL_RESULTS_REPO", raising=False)
    monkeypatch.delenv("HF_TSEL_RESULTS_PATH", raising=False)
    empty = load_leaderboard_results()
    assert not len(empty.table) and "HF_TSEL_RESULTS_REPO" in empty.notes[0]
    monkeypatch.setenv("HF_TSEL_RESULTS_PATH", str(results_folder / "flowers.parquet"))
    assert len(load_leaderboard_results().table) == 24


def test_views(results_folder):
    table = load_leaderboard_results(results_folder).table
    target = "org/flowers / train"
    logme = leaderboard_view(table, target, "logme")
    expected = table.query("dataset == 'org/flowers' and metric == 'logme'").sort_values("score", ascending=False)
    assert logme["model"].tolist() == expected["model"].tolist()
    assert logme["rank"].tolist() == list(range(1, 7))

    families = ["dino", "mae"]
    filtered = leaderboard_view(table, target, "logme", families=families)
    assert set(filtered["family"]) == set(families) and 0 < len(filtered) < 6
    assert leaderboard_view(table, target, "logme", search="RESNET")["model"].tolist() == ["resnet50"]

    mean = leaderboard_view(table, target, MEAN_RANK)
    ranks = table.query("dataset == 'org/flowers'").groupby("model")["rank"].mean()
    assert np.allclose(mean.set_index("model")["mean rank"], ranks.round(2).loc[mean["model"]])
    assert mean["mean rank"].is_monotonic_increasing

    per_model = model_view(table, "vit-b16")
    assert len(per_model) == 4 + 2 and set(per_model["of"]) == {6, 3, 2}  # pets logme lost its bad record


def test_prediction_vs_truth_uses_weighted_tau(results_folder):
    table = load_leaderboard_results(results_folder).table
    points, caption = prediction_vs_truth(table, "org/flowers / train", "leep")
    assert len(points) == 6
    expected = weightedtau(points["score"], points["fine-tuned accuracy"]).statistic
    assert f"**{expected:.3f}**" in caption
    empty, message = prediction_vs_truth(table, "org/pets / train", "leep")
    assert not len(empty) and "No fine-tuned accuracies" in message


def test_about_page_lists_every_metric():
    from hf_tsel.metrics import list_metrics

    text = metrics_markdown()
    for spec in list_metrics(include_transforms=False):
        assert f"`{spec.name}`" in text


def test_app_builds_and_rank_tab_needs_gpu_or_opt_in(monkeypatch, results_folder):
    import gradio as gr
    import torch

    app = runpy.run_path(str(REPO_ROOT / "spaces_app" / "app.py"), run_name="space_app")
    demo = app["build_app"](load_leaderboard_results(results_folder))
    assert isinstance(demo, gr.Blocks)
    monkeypatch.delenv("HF_TSEL_SPACE_ALLOW_RANK", raising=False)
    allowed, reason = app["rank_allowed"]()
    assert allowed == torch.cuda.is_available()
    if not allowed:
        assert "disabled" in reason and "HF_TSEL_SPACE_ALLOW_RANK" in reason
    monkeypatch.setenv("HF_TSEL_SPACE_ALLOW_RANK", "1")
    assert app["rank_allowed"]()[0]


def test_space_front_matter_and_requirements():
    readme = (REPO_ROOT / "spaces_app" / "README.md").read_text()
    front = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", readme, flags=re.S).group(1))
    import gradio

    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0] == "6"
    name = re.compile(r"^[A-Za-z0-9_.-]+")
    wanted = {name.match(d).group(0).lower().replace("_", "-") for d in requires("hf-tsel") if "extra ==" not in d}
    lines = (REPO_ROOT / "spaces_app" / "requirements.txt").read_text().splitlines()
    listed = {name.match(line).group(0).lower().replace("_", "-") for line in lines
              if line and not line.startswith("#")}
    assert wanted <= listed


@pytest.mark.slow
def test_space_deploy_to_fake_hub(fake_hub, hub_env, tmp_path):
    env = hub_env(fake_hub)
    results = write_results(make_results("run-1", MODELS, accuracy=True), tmp_path / "results.parquet", {})
    assert run_cli(["push", str(results), "--repo", "org/results"], env).returncode == 0
    deployed = run_cli(["space", "deploy", "--repo", "org/board", "--results-repo", "org/results"], env)
    assert deployed.returncode == 0, deployed.stderr
    space = fake_hub.repo("org/board", "space")
    assert space.sdk == "gradio" and space.variables == {"HF_TSEL_RESULTS_REPO": "org/results"}
    files = space.head.files
    assert {"app.py", "README.md", "requirements.txt", "hf_tsel/__init__.py",
            "hf_tsel/publish/leaderboard.py"} <= set(files)
    assert not [p for p in files if "__pycache__" in p or p.endswith(".pyc")]
    front = yaml.safe_load(files["README.md"].data.decode().split("---")[1])
    assert front["sdk"] == "gradio" and front["datasets"] == ["org/results"]

    commits = len(space.commits)
    again = run_cli(["space", "deploy", "--repo", "org/board", "--results-repo", "org/results"], env)
    assert again.returncode == 0, again.stderr
    assert len(space.commits) == commits  # nothing changed, so the second deploy commits nothing

    # the deployed Space, downloaded from the Hub, reads the results repo with its bundled hf_tsel
    code = (
        "import runpy, sys\n"
        "from huggingface_hub import snapshot_download\n"
        "root = snapshot_download('org/board', repo_type='space', local_dir=sys.argv[1])\n"
        "app = runpy.run_path(root + '/app.py', run_name='space')\n"
        "import hf_tsel; assert hf_tsel.__file__.startswith(root), hf_tsel.__file__\n"
        "loaded = app['load_leaderboard_results']()\n"
        "print(len(loaded.table), loaded.notes, loaded.targets)\n")
    check = subprocess.run([sys.executable, "-c", code, str(tmp_path / "space")], capture_output=True, text=True,
                           timeout=300, env={**env, "HF_TSEL_RESULTS_REPO": "org/results", "PYTHONPATH": ""},
                           cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"{len(MODELS) * 2} [] ['org/flowers / train']")


def test_loading_reports_superseded_records(tmp_path):
    write_results(make_results("run-1", MODELS[:2]), tmp_path / "a_old.json", {})
    write_results(make_results("run-2", MODELS[:2], seed=9, timestamp="2026-05-01T00:00:00+00:00"),
                  tmp_path / "b_new.json", {})
    loaded = load_leaderboard_results(tmp_path)
    assert set(loaded.table["run_id"]) == {"run-2"} and len(loaded.table) == 4
    assert loaded.notes == ["b_new.json: 4 record(s) superseded by a newer run of the same model and metric"]


def test_app_starts_without_results(monkeypatch):
    monkeypatch.delenv("HF_TSEL_RESULTS_REPO", raising=False)
    monkeypatch.delenv("HF_TSEL_RESULTS_PATH", raising=False)
    app = runpy.run_path(str(REPO_ROOT / "spaces_app" / "app.py"), run_name="space_app")
    loaded = app["load_leaderboard_results"]()
    assert app["build_app"](loaded) is not None
    assert leaderboard_view(loaded.table, None, None).empty and model_view(loaded.table, None).empty
    assert "No fine-tuned accuracies" in prediction_vs_truth(loaded.table, None, None)[1]


@pytest.mark.slow  # ~5 s: a client retrying an unreachable endpoint
def test_unreachable_results_repo_is_a_note_not_a_crash(fake_hub, hub_env, tmp_path):
    code = ("from hf_tsel.publish.leaderboard import load_leaderboard_results as load; "
            "r = load('org/missing'); print(len(r.table), r.notes)")
    result = subprocess.run([sys.executable, "-c", code], env=hub_env(fake_hub), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 ['Could not download the results repo org/missing")


def test_the_answer_line_follows_the_goal_the_rows_record(results_folder):
    from hf_tsel.publish.leaderboard import recommendation_html

    table = load_leaderboard_results(results_folder).table
    target = "org/flowers / train"
    assert "Fine-tune " in recommendation_html(table, target) and "by the fine-tuning answer, P(best)" in \
        recommendation_html(table, target)
    probe = table.assign(goal=table["goal"].where(table["goal"].isna(), "linear-probe"))
    assert "Train a linear probe on " in recommendation_html(probe, target)
    assert "by the linear-probe answer" in recommendation_html(probe, target)
    old = table.assign(goal=None)  # files before schema 1.3 do not say which goal the consensus answered
    assert "by the consensus, P(best)" in recommendation_html(old, target)
