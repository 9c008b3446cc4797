"""`hf-tsel rank` through the real Hub protocol: the real clients download from the stand-in into a fresh
``HF_HOME`` (no offline flag), then a re-run downloads no weights; bad repos are one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hf_tsel.errors import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR
from hf_tsel.publish.schema import same_records
from hf_tsel.results import read_results, validate_results

from . import repos
from .repos import DATASET
from .harness import REPO_ROOT, TEST_TOKEN, assert_no_token_anywhere, client_env, run_cli

GOOD = ["tiny-resnet", "tiny-vit", "tiny-hf-vit"]
NO_SHA = "0" * 40
ERRORS = {"gated-vit": "(gated)", "no-such-model": "(not_found)", "cut-resnet": "(network)",
          "vit-at-no-sha": f"revision '{NO_SHA}' does not exist"}


def write_zoo(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"name": "http-test", "models": entries}))
    return path


def new_requests(hub, since: int) -> list:
    return hub.requests[since:]


def model_statuses(run: dict) -> dict[str, str]:
    return {m["name"]: m["status"] for m in run["models"]}


def logme_scores(table) -> dict[str, float]:
    return table[table["metric"] == "logme"].set_index("model")["score"].to_dict()


def test_rank_downloads_then_reuses_and_skips_bad_repos(seeded_hub, tmp_path):
    hub = seeded_hub.server
    # bare Hub ids: the loader is guessed (transformers, which hands timm repos to the timm loader)
    zoo = write_zoo(tmp_path / "zoo.yaml", [
        {"hub_id": "test-org/tiny-resnet", "revision": seeded_hub.resnet_v1},
        {"hub_id": "test-org/tiny-vit"}, {"hub_id": "test-org/tiny-hf-vit"},
        {"hub_id": "test-org/gated-vit"}, {"hub_id": "test-org/no-such-model"}, {"hub_id": "test-org/cut-resnet"},
        {"name": "vit-at-no-sha", "hub_id": "test-org/tiny-vit", "revision": NO_SHA}])
    env = client_env(hub.url, tmp_path)
    args = ["rank", DATASET, "--revision", seeded_hub.dataset_v1, "--zoo", str(zoo), "--metrics", "logme,leep"]
    hub.cut_download("test-org/cut-resnet", "model.safetensors")

    start = len(hub.requests)
    first = run_cli([*args, "--output", str(tmp_path / "first.json")], env)
    assert first.returncode in (0, EXIT_PARTIAL_FAILURE), first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    for name, kind in ERRORS.items():  # one line per bad model, naming why, and the rest is ranked
        lines = [line for line in first.stdout.splitlines() if line.strip().startswith(f"{name}: cannot load")]
        assert len(lines) == 1 and kind in lines[0], first.stdout
    table, run = read_results(tmp_path / "first.json")
    assert model_statuses(run) == {**dict.fromkeys(GOOD, "extracted"), **dict.fromkeys(ERRORS, "failed")}
    assert all(math.isfinite(logme_scores(table)[name]) for name in GOOD)
    # the pinned revisions were asked for, used and recorded
    assert run["dataset_revision"] == seeded_hub.dataset_v1 and run["num_classes"] == 3
    assert set(table["dataset_revision"]) == {seeded_hub.dataset_v1}
    revisions = table.groupby("model")["model_revision"].first()
    assert revisions["tiny-resnet"] == seeded_hub.resnet_v1
    assert revisions["tiny-vit"] == hub.repo("test-org/tiny-vit", "model").head.sha
    resnet_paths = [r.path for r in new_requests(hub, start) if r.path.startswith("/test-org/tiny-resnet/")]
    assert resnet_paths and all(f"/resolve/{seeded_hub.resnet_v1}/" in p for p in resnet_paths)
    # each model's weights came once from the CDN, without the token; every repo request carried it
    weights = [r for r in new_requests(hub, start) if r.method == "GET" and r.path.endswith("/model.safetensors")]
    assert {r.server for r in weights} == {"cdn"} and not any(r.authorization for r in weights)
    for repo_id, revision in [("test-org/tiny-resnet", seeded_hub.resnet_v1), ("test-org/tiny-vit", "main"),
                              ("test-org/tiny-hf-vit", "main")]:
        blob = hub.repo(repo_id, "model").commit(revision).files["model.safetensors"].sha256
        assert len([r for r in weights if r.path.startswith(f"/{blob}/")]) == 1
    anonymous = [r for r in new_requests(hub, start) if r.server == "api" and r.path != "/"  # "/": a reachability probe
                 and r.authorization != f"Bearer {TEST_TOKEN}"]
    assert not anonymous
    # the cut download was tried (huggingface_hub 2.x retries it 5 times), and no partial file was kept
    cut = hub.repo("test-org/cut-resnet", "model").head.files["model.safetensors"]
    assert [r for r in new_requests(hub, start) if r.path.startswith(f"/{cut.sha256}/")]
    assert not list(Path(env["HF_HOME"]).rglob("*.incomplete"))
    hf_home = Path(env["HF_HOME"]) / "hub"
    assert list(hf_home.glob("models--test-org--tiny-vit/snapshots/*/model.safetensors"))
    assert list(hf_home.glob("datasets--test-org--tiny-images/snapshots/*/data/train-00000-of-00001.parquet"))

    hub.restore_downloads()
    start = len(hub.requests)
    second = run_cli([*args, "--output", str(tmp_path / "second.json")], env)
    assert second.returncode in (0, EXIT_PARTIAL_FAILURE), second.stderr
    again, run = read_results(tmp_path / "second.json")
    assert model_statuses(run) == {**dict.fromkeys(GOOD, "cached"), "cut-resnet": "extracted",
                                   **dict.fromkeys(set(ERRORS) - {"cut-resnet"}, "failed")}
    assert {name: logme_scores(again)[name] for name in GOOD} == {name: logme_scores(table)[name] for name in GOOD}
    # nothing was downloaded again but the file that was cut off
    blobs = [r.path for r in new_requests(hub, start) if r.server == "cdn"]
    assert blobs == [f"/{cut.sha256}/model.safetensors"]
    assert not [r for r in new_requests(hub, start) if r.method == "GET" and "/resolve/" in r.path]

    # main of tiny-vit moves on the Hub: its cached features are stale, the others are still current
    moved = hub.commit("test-org/tiny-vit", repos.timm_repo("test_vit", seed=5, num_classes=0, img_size=repos.IMAGE_SIZE))
    third = run_cli([*args, "--output", str(tmp_path / "third.json")], env)
    assert third.returncode in (0, EXIT_PARTIAL_FAILURE), third.stderr
    latest, run = read_results(tmp_path / "third.json")
    statuses = model_statuses(run)
    assert statuses["tiny-vit"] == "extracted" and statuses["tiny-resnet"] == statuses["tiny-hf-vit"] == "cached"
    assert latest.groupby("model")["model_revision"].first()["tiny-vit"] == moved
    assert logme_scores(latest)["tiny-vit"] != logme_scores(table)["tiny-vit"]

    assert_no_token_anywhere(tmp_path, first.stdout, first.stderr, second.stdout, second.stderr, third.stdout,
                             third.stderr)


# One interpreter runs the CLI's main() on several command lines (each dataset error stops its run early).
_EACH_COMMAND = """
import contextlib, io, json, sys
from hf_tsel.cli import main
answers = {}
for name, args in json.loads(sys.argv[1]).items():
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(args)
    answers[name] = [code, stderr.getvalue()]
print(json.dumps(answers))
"""


def test_dataset_errors_are_one_line(seeded_hub, tmp_path):
    zoo = write_zoo(tmp_path / "zoo.yaml", [{"hub_id": "test-org/tiny-vit"}])
    cases = {  # dataset, extra options, what the one error line says
        "missing": ("test-org/no-such-dataset", [], "was not found on the Hub"),
        "gated": ("test-org/gated-images", [], "is gated"),
        "no revision": (DATASET, ["--revision", NO_SHA], f"has no revision '{NO_SHA}'"),
        "no images": ("test-org/text-only", [], "no image column"),
        "no labels": ("test-org/no-labels", [], "no label column"),
    }
    commands = {name: ["rank", dataset, *options, "--zoo", str(zoo), "-q"] for name, (dataset, options, _) in cases.items()}
    env = client_env(seeded_hub.server.url, tmp_path)
    result = subprocess.run([sys.executable, "-c", _EACH_COMMAND, json.dumps(commands)], env=env, capture_output=True,
                            text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    for name, (_, _, expected) in cases.items():
        code, stderr = answers[name]
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert code == EXIT_USER_ERROR and len(errors) == 1 and expected in errors[0], (name, stderr)
        assert "Traceback" not in stderr and TEST_TOKEN not in stderr
    assert "was not found" not in answers["gated"][1] + answers["no revision"][1]  # the repos exist


# The deployed Space runs app.py with HF_TSEL_RESULTS_REPO set; here the app reads the repo the same way.
_SPACE_READS = """
import runpy, sys
app = runpy.run_path(sys.argv[1], run_name="space")
loaded = app["load_leaderboard_results"]()
app["build_app"](loaded)
loaded.table.to_parquet(sys.argv[2])
print(loaded.notes, loaded.targets)
"""


@pytest.mark.slow  # end-to-end CLI runs in subprocesses, like tests/e2e/test_cli_runs.py
def test_rank_push_then_the_space_reads_the_results_repo(seeded_hub, tmp_path):
    hub = seeded_hub.server
    env = client_env(hub.url, tmp_path)
    output = tmp_path / "ranking.parquet"
    ranked = run_cli(["rank", DATASET, "--model", "test-org/tiny-vit", "--model", "test-org/tiny-hf-vit",
                      "--metrics", "logme", "--output", str(output), "--push-to", "test-org/rankings", "-q"], env)
    assert ranked.returncode == 0, ranked.stderr
    local, run = read_results(output)
    assert set(local.metric) == {"logme", "etran_lda", "consensus"} and set(local.model) == {"tiny-vit", "tiny-hf-vit"}
    assert f"{len(local)} added" in ranked.stdout  # every record written locally was pushed

    shown = tmp_path / "shown.parquet"
    space = subprocess.run([sys.executable, "-c", _SPACE_READS, str(REPO_ROOT / "spaces_app" / "app.py"), str(shown)],
                           env={**env, "HF_TSEL_RESULTS_REPO": "test-org/rankings"}, capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert space.returncode == 0, space.stderr
    assert space.stdout.strip() == f"[] ['{DATASET} / train']"
    assert same_records(validate_results(pd.read_parquet(shown)), local)
    assert run["dataset_revision"] == hub.repo(DATASET).head.sha
    assert_no_token_anywhere(tmp_path, ranked.stdout, ranked.stderr, space.stdout, space.stderr)
