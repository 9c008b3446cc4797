"""``hf-tsel push`` against a fake Hub on 127.0.0.1: create, merge, idempotency, concurrency, failures."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pandas as pd
import pytest

from hf_tsel.publish.card import RESULTS_PATH_IN_REPO, render_card
from hf_tsel.publish.schema import FIELD_DOCS, merge_results, same_records
from hf_tsel.results import RESULT_FIELDS, ResultsError, add_ranks, read_results, schema_markdown, write_results

from tests.helpers.results import make_results
from tests.hub.harness import REPO_ROOT, run_cli, start_cli
from tests.hub.harness import TEST_TOKEN as FAKE_TOKEN
from ..hub.server import HubServer

REPO = "hf-tsel-test/results"


def read_published(hub: HubServer, tmp_path, repo: str = REPO) -> pd.DataFrame:
    local = tmp_path / "published.parquet"
    local.write_bytes(hub.file(repo, RESULTS_PATH_IN_REPO))
    return read_results(local)[0]


# -- merge rule and card (no network) -----------------------------------------------------------------

def test_field_docs_cover_the_schema_and_match_the_readme():
    assert tuple(FIELD_DOCS) == RESULT_FIELDS
    readme = (REPO_ROOT / "docs" / "publish.md").read_text()
    assert schema_markdown() + "\n" in readme, "paste hf_tsel.results.schema_markdown() into docs/publish.md"
    rows = [line.strip("|").split(" | ") for line in readme.splitlines() if line.startswith("| `")]
    assert {name.strip("` "): (kind.strip(), text.strip()) for name, kind, text in rows} == FIELD_DOCS


def test_merge_adds_replaces_and_keeps_newer():
    old = make_results("run-1", ["a", "b"], timestamp="2026-01-01T00:00:00+00:00", seed=1)
    new = make_results("run-2", ["b", "c"], timestamp="2026-02-01T00:00:00+00:00", seed=2)
    outcome = merge_results(old, new)
    assert (outcome.added, outcome.replaced, outcome.unchanged) == (2, 2, 0)
    table = outcome.table.set_index(["model", "metric"])
    assert table.loc[("a", "logme"), "run_id"] == "run-1"
    assert table.loc[("b", "logme"), "run_id"] == "run-2"
    assert set(table.index.get_level_values("model")) == {"a", "b", "c"}
    # ranks are recomputed over the merged table: 1..3 within every metric
    assert sorted(outcome.table.query("metric == 'leep'")["rank"]) == [1, 2, 3]

    again = merge_results(outcome.table, new)
    assert not again.changed and again.unchanged == len(new)
    assert same_records(again.table, outcome.table)

    stale = make_results("run-0", ["a"], timestamp="2025-12-01T00:00:00+00:00", seed=3)
    kept = merge_results(outcome.table, stale)
    assert not kept.changed and len(kept.kept_newer) == 2
    assert kept.table.set_index(["model", "metric"]).loc[("a", "logme"), "run_id"] == "run-1"
    assert "not applied because the published record is newer" in kept.summary()


def test_merge_refuses_ambiguous_duplicates():
    first = make_results("run-1", ["a"], seed=1)
    clash = pd.concat([first, make_results("run-1", ["a"], seed=2)], ignore_index=True)
    with pytest.raises(ResultsError, match="two different records"):
        merge_results(None, clash)


def test_card_is_deterministic_and_loadable():
    table = merge_results(None, make_results("run-1", ["a", "b", "c"], accuracy=True)).table
    card = render_card(table, REPO)
    assert card == render_card(table.sample(frac=1, random_state=0), REPO)
    import yaml
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["configs"][0]["data_files"][0]["path"] == RESULTS_PATH_IN_REPO
    assert "### org/flowers, split `train`" in card and "fine-tuned accuracy" in card
    for name in RESULT_FIELDS:
        assert f"`{name}`" in card


# -- the CLI against the fake Hub ------------------------------------------------------------------

@pytest.mark.slow  # ~4-7 s of CLI runs against the fake Hub (fast-lane budget)
def test_push_then_push_again(fake_hub, hub_env, tmp_path):
    results = make_results("run-1", ["resnet50", "vit-b16", "dino-s16"], accuracy=True)
    path = write_results(results, tmp_path / "results.parquet", {"run_id": "run-1", "zoo": "test"})
    env = hub_env(fake_hub)

    first = run_cli(["-v", "push", str(path), "--repo", REPO], env)
    assert first.returncode == 0, first.stderr
    assert "6 added, 0 replaced, 0 unchanged" in first.stdout
    repo = fake_hub.repo(REPO)
    assert len(repo.commits) == 2  # the repo's initial commit + one push
    assert same_records(read_published(fake_hub, tmp_path), add_ranks(results))
    assert json.loads(fake_hub.file(REPO, "runs/run-1.json"))["zoo"] == "test"
    card = fake_hub.file(REPO, "README.md").decode()
    assert "configs:" in card and "resnet50" in card

    # the same records again, also from another file format: nothing new, no commit
    csv_path = write_results(results, tmp_path / "results.csv", {"run_id": "run-1", "zoo": "test"})
    for again_path in (path, csv_path):
        again = run_cli(["-v", "push", str(again_path), "--repo", REPO], env)
        assert again.returncode == 0, again.stderr
        assert "already up to date" in again.stdout and "0 added" in again.stdout
    assert len(repo.commits) == 2

    # the token was used but never printed, logged or stored
    assert f"Bearer {FAKE_TOKEN}" in fake_hub.authorizations
    for output in (first.stdout, first.stderr, again.stdout, again.stderr):
        assert FAKE_TOKEN not in output
    stored = [p for p in (tmp_path / "hf_home").rglob("*") if p.is_file() and FAKE_TOKEN.encode() in p.read_bytes()]
    assert not stored
    assert all(FAKE_TOKEN.encode() not in f.data for f in repo.head.files.values())

    # `load_dataset(repo)` finds the records through the card's `configs:`
    code = ("from datasets import load_dataset; ds = load_dataset(%r, split='train'); "
            "print(len(ds), sorted(set(ds['model'])))" % REPO)
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[0] == "6" and "vit-b16" in loaded.stdout


@pytest.mark.slow  # ~4-7 s of CLI runs against the fake Hub (fast-lane budget)
def test_newer_run_replaces_older_records(fake_hub, hub_env, tmp_path):
    env = hub_env(fake_hub)
    old = write_results(make_results("run-1", ["a", "b"], seed=1), tmp_path / "old.json", {})
    new = write_results(make_results("run-2", ["b", "c"], seed=2, timestamp="2026-03-01T00:00:00+00:00"),
                        tmp_path / "new.json", {})
    assert run_cli(["push", str(old), "--repo", REPO], env).returncode == 0
    second = run_cli(["push", str(new), "--repo", REPO], env)
    assert second.returncode == 0, second.stderr
    assert "2 added, 2 replaced, 0 unchanged" in second.stdout
    table = read_published(fake_hub, tmp_path)
    assert len(table) == 6
    assert dict(table.groupby("model")["run_id"].first()) == {"a": "run-1", "b": "run-2", "c": "run-2"}
    assert len(fake_hub.repo(REPO).commits) == 3


@pytest.mark.slow  # ~4-7 s of CLI runs against the fake Hub (fast-lane budget)
def test_concurrent_pushes_lose_nothing(hub_env, tmp_path):
    with HubServer(hold_commits=2) as hub:  # both pushers build their commit on the same head
        env = hub_env(hub)
        files = [write_results(make_results(f"run-{i}", [f"model-{i}-{j}" for j in range(3)], seed=i),
                               tmp_path / f"r{i}.parquet", {}) for i in (1, 2)]
        procs = [start_cli(["push", str(f), "--repo", REPO], env) for f in files]
        outputs = [p.communicate(timeout=240) for p in procs]
        for proc, (out, err) in zip(procs, outputs):
            assert proc.returncode == 0, err
        assert hub.conflicts >= 1  # one commit was refused with 412 and redone on the new head
        table = read_published(hub, tmp_path)
        assert set(table["model"]) == {f"model-{i}-{j}" for i in (1, 2) for j in range(3)}
        assert len(table) == 12
        commits = hub.repo(REPO).commits
        assert [c.parent for c in commits[1:]] == [c.sha for c in commits[:-1]]


def test_invalid_records_abort_before_upload(fake_hub, hub_env, tmp_path):
    good = make_results("run-1", ["a"])
    document = {"schema_version": "1.0", "run": {}, "records": json.loads(good.to_json(orient="records"))}
    document["records"][1]["num_samples"] = "many"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    result = run_cli(["push", str(path), "--repo", REPO], hub_env(fake_hub))
    assert result.returncode == 2
    assert "'num_samples' must hold int values" in result.stderr and "Nothing was pushed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not fake_hub.repos


def test_failed_upload_says_how_to_retry(hub_env, tmp_path):
    path = write_results(make_results("run-1", ["a"]), tmp_path / "results.csv", {})
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    class Closed:
        url = f"http://127.0.0.1:{port}"

    result = run_cli(["push", str(path), "--repo", REPO], hub_env(Closed))
    assert result.returncode == 2
    assert f"retry with: hf-tsel push {path} --repo {REPO}" in result.stderr
    assert "Traceback" not in result.stderr and FAKE_TOKEN not in result.stderr


def test_push_without_token_is_refused_clearly(fake_hub, hub_env, tmp_path):
    path = write_results(make_results("run-1", ["a"]), tmp_path / "results.json", {})
    env = hub_env(fake_hub)
    del env["HF_TOKEN"]
    result = run_cli(["push", str(path), "--repo", REPO], env)
    assert result.returncode == 2
    assert "HF_TOKEN" in result.stderr and "retry with" in result.stderr


def test_push_results_from_a_table_saves_locally_first(fake_hub, monkeypatch, tmp_path):
    """The library call behind `hf-tsel rank --push-to` (in-process, endpoint passed explicitly)."""
    import huggingface_hub.constants

    from hf_tsel.publish import push_results

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.chdir(tmp_path)
    results = make_results("run-7", ["a", "b"])
    report = push_results(results, REPO, endpoint=fake_hub.url, token=FAKE_TOKEN, run_metadata={"zoo": "x"})
    assert report.local_path.resolve() == (tmp_path / "hf-tsel-results-run-7.parquet").resolve()
    assert same_records(read_results(report.local_path)[0], add_ranks(results))
    assert report.commit_sha == fake_hub.repo(REPO).head.sha and report.outcome.added == 4
    again = push_results(report.local_path, REPO, endpoint=fake_hub.url, token=FAKE_TOKEN)
    assert again.commit_sha is None and "already up to date" in str(again)


@pytest.mark.slow
def test_rank_push_to_saves_then_pushes(fake_hub, hub_env, tmp_path, offline_zoo_dir):
    """`hf-tsel rank --push-to`: a real (tiny, offline) ranking is written locally, then merged into the repo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, brightness in (("cat", 0.5), ("dog", 1.0)):
        folder = tmp_path / "images" / "train" / label
        folder.mkdir(parents=True)
        for i in range(6):
            pixels = (rng.random((32, 32, 3)) * 255 * brightness).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    output = tmp_path / "ranking.json"
    env = hub_env(fake_hub, HF_TSEL_HOME=str(offline_zoo_dir))  # the session's converted offline models
    result = run_cli(["rank", str(tmp_path / "images"), "--zoo", "offline", "--model", "efficientnet-lite0",
                      "--metrics", "logme", "--cache-dir", str(tmp_path / "features"), "--output", str(output),
                      "--push-to", REPO, "-q"], env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "2 added" in result.stdout  # logme and the answer's etran_lda (one model: no consensus row)
    local, run = read_results(output)
    assert same_records(read_published(fake_hub, tmp_path), local)
    assert json.loads(fake_hub.file(REPO, f"runs/{run['run_id']}.json"))["run_id"] == run["run_id"]
