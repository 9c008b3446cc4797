"""Zoos from a Hub search and the budgeted funnel, over HTTP against the Hub stand-in (issue 19).

The acceptance path: ``hf-tsel zoo search --library timm --max-params 30M --limit 50 -o z.yaml`` writes a
valid pinned zoo with the skipped repos and their reasons; ``hf-tsel rank DATASET --zoo z.yaml --budget 2m``
scores what fits, reports the rest and what finishing it costs, and a second run reuses the cache; the
token never appears in output or files.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from hf_tsel.errors import EXIT_PARTIAL_FAILURE
from hf_tsel.results import read_results
from hf_tsel.zoo import load_zoo, zoo_metadata

from .harness import assert_no_token_anywhere, client_env, run_cli
from .search_repos import DATASET, MINI_IMAGENET_WNIDS, seed_scale_hub, seed_search_hub
from .server import HubServer

LOADABLE = {"tiny-resnet.tv_in1k", "tiny-vit.dino", "tiny-effnet", "gated-vit"}  # timm, <= 30M params, with a token
HUGE = 3_000_000_000  # a hand-added candidate: loading 12 GB alone is estimated at 240 s, more than the budget


@pytest.fixture(scope="module")
def search_server():
    with HubServer() as hub:
        skipped = seed_search_hub(hub)
        yield hub, skipped


@pytest.fixture
def online(monkeypatch, search_server):
    """In-process clients talk to the stand-in, with no token and offline mode off."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", search_server[0].url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # no saved token either
    return search_server[0]


def test_zoo_search_writes_a_pinned_zoo_with_reasons(search_server, tmp_path):
    hub, skipped = search_server
    env = client_env(hub.url, tmp_path)
    zoo_file = tmp_path / "z.yaml"
    searched = run_cli(["zoo", "search", "--library", "timm", "--max-params", "30M", "--limit", "50",
                        "-o", str(zoo_file)], env)
    assert searched.returncode == 0, searched.stderr
    entries = {e.name: e for e in load_zoo(zoo_file)}  # valid: it loads through the zoo validator
    assert set(entries) == LOADABLE
    for e in entries.values():  # pinned to the commit the Hub reports, params from the safetensors headers
        repo = hub.repo(e.hub_id, "model")
        assert e.revision == repo.head.sha and e.loader == "timm"
        assert e.metadata["params"] == hub.model_fields(repo, repo.head)["safetensors"]["total"] > 0
    resnet = entries["tiny-resnet.tv_in1k"]
    assert resnet.metadata["imagenet_top1"] == pytest.approx(72.15) and resnet.license == "bsd-3-clause"
    assert resnet.source_reference["dataset"] == "timm/mini-imagenet" and resnet.source_reference["split"] == "test"
    assert (entries["tiny-vit.dino"].family, entries["tiny-vit.dino"].pretraining) == ("dino", "self-supervised")
    assert entries["tiny-effnet"].family == "unknown" and "imagenet_top1" not in entries["tiny-effnet"].metadata
    metadata = zoo_metadata(zoo_file)
    assert metadata["query"] == "library=timm&max-params=30M&sort=downloads&limit=50"
    gaps = {g["model"]: g["reason"] for g in metadata["gaps"]}  # the token holder may try the gated repo
    assert set(gaps) == set(skipped) - {"search-org/gated-vit"}
    for repo_id, kind in skipped.items():
        if repo_id in gaps:
            assert gaps[repo_id].startswith(kind) or kind in gaps[repo_id], gaps
            assert f"skipped {repo_id}: {gaps[repo_id]}" in " ".join(searched.stdout.split())
    assert "huge-vit" not in entries and "1 by max-params" in " ".join(searched.stdout.split())
    assert_no_token_anywhere(tmp_path, searched.stdout, searched.stderr)


def test_without_a_token_gated_repos_are_skipped_with_the_reason(online):
    from hf_tsel.hub_zoo import search_hub

    found = search_hub("library=timm,transformers&max-params=30M")
    reasons = {s["model"]: s["reason"] for s in found.skipped}
    assert reasons["search-org/gated-vit"].startswith("gated: accept its conditions")
    assert "tiny-hf-vit" in {e.name for e in found.entries}  # transformers is listed separately and merged
    downloads = [online.repo(e.hub_id, "model").downloads for e in found.entries]
    assert downloads == sorted(downloads, reverse=True)  # the merge keeps the sort order across libraries


def test_hub_zoo_in_rank_resolves_once_per_run(online):
    from hf_tsel.extraction import resolve_models

    start = len(online.requests)
    first = resolve_models("hub:library=timm&max-params=30M&limit=2")
    again = resolve_models("hub:library=timm&max-params=30M&limit=2")  # e.g. the metadata check, then extract
    assert [e.name for e in first] == [e.name for e in again] == ["tiny-resnet.tv_in1k", "tiny-vit.dino"]
    asked = [r.path for r in online.requests[start:] if r.path.startswith("/api/models")]
    assert asked == ["/api/models"]  # one page, no request per model, nothing asked the second time


def _with_huge_candidate(zoo_file: Path, hub: HubServer) -> Path:
    document = yaml.safe_load(zoo_file.read_text())
    repo = hub.repo("search-org/huge-vit", "model")
    document["models"].append({"name": "huge-vit", "hub_id": "search-org/huge-vit", "loader": "timm",
                               "revision": repo.head.sha, "metadata": {"params": HUGE}})
    budgeted = zoo_file.with_name("budgeted.yaml")
    budgeted.write_text(yaml.safe_dump(document))
    return budgeted


def test_rank_with_a_budget_scores_what_fits_and_reports_the_rest(search_server, tmp_path):
    hub, _ = search_server
    env = client_env(hub.url, tmp_path)
    zoo_file = tmp_path / "z.yaml"
    assert run_cli(["zoo", "search", "--library", "timm", "--max-params", "30M", "-o", str(zoo_file)], env).returncode == 0
    zoo_file = _with_huge_candidate(zoo_file, hub)
    args = ["rank", DATASET, "--zoo", str(zoo_file), "--budget", "2m", "--device", "cpu",
            "--metrics", "logme,persistence_ratio"]
    tick = time.perf_counter()
    first = run_cli([*args, "--output", str(tmp_path / "first.json")], env)
    wall = time.perf_counter() - tick
    assert first.returncode in (0, EXIT_PARTIAL_FAILURE), first.stderr
    table, run = read_results(tmp_path / "first.json")
    funnel = run["funnel"]
    assert funnel["budget"] == "2m" and [m["model"] for m in funnel["left_out"]] == ["huge-vit"]
    assert funnel["left_out"][0]["estimated_seconds"] > 120 and funnel["budget_to_finish"]
    assert "left out: huge-vit (search-org/huge-vit)" in first.stdout and "--budget" in first.stdout
    statuses = {m["name"]: m["status"] for m in run["models"]}
    assert "huge-vit" not in statuses  # never loaded
    assert statuses["gated-vit"] == "failed"  # the token has no access: a one-line reason, the rest goes on
    scored = table[(table.metric == "logme") & table.score.notna()].model
    assert set(scored) == LOADABLE - {"gated-vit"}
    assert wall < 150  # the budget bounds the run (plus interpreter start-up and imports)
    assert run["zoo_query"] == "library=timm&max-params=30M&sort=downloads&limit=50"
    # the ImageNet-1k entry ranks in the persistence ratio's source mode on the mini-imagenet stand-in
    persistence = table[table.metric == "persistence_ratio"].set_index("model")
    assert math.isfinite(persistence.loc["tiny-resnet.tv_in1k", "score"])
    reference = next(m for m in run["models"] if m["name"] == "tiny-resnet.tv_in1k")["source_reference"]
    assert reference["dataset"] == "timm/mini-imagenet" and reference["num_classes"] == len(MINI_IMAGENET_WNIDS)
    assert reference["label_space"] == "imagenet-1k"

    second = run_cli([*args, "--output", str(tmp_path / "second.json")], env)  # a second run reuses the cache
    assert second.returncode in (0, EXIT_PARTIAL_FAILURE), second.stderr
    _, rerun = read_results(tmp_path / "second.json")
    assert {m["name"]: m["status"] for m in rerun["models"]} == {**dict.fromkeys(LOADABLE - {"gated-vit"}, "cached"),
                                                                "gated-vit": "failed"}
    assert_no_token_anywhere(tmp_path, first.stdout, first.stderr, second.stdout, second.stderr)


def test_search_of_1000_models_and_the_plan_are_fast_and_bounded(monkeypatch):
    from huggingface_hub import constants

    from hf_tsel.funnel import Funnel, estimate_candidates, order_candidates
    from hf_tsel.funnel_costs import calibrate_forward
    from hf_tsel.hub_zoo import search_hub

    with HubServer(page_size=100) as hub:
        seed_scale_hub(hub, count=1000)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        start = len(hub.requests)
        tick = time.perf_counter()
        found = search_hub("library=timm&limit=1000", token=False)
        candidates = order_candidates(estimate_candidates(found.entries, rate=calibrate_forward("cpu"),
                                                          num_samples=10_000, cached=set()))
        planned, left = Funnel(candidates, seconds=1800.0, started=time.perf_counter()).plan()
        seconds = time.perf_counter() - tick
        paths = [r.path for r in hub.requests[start:]]
        tracemalloc.start()  # memory in a second search (another query: not the cached answer), traced apart
        search_hub("library=timm&limit=999", token=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert found.scanned == len(found.entries) == 1000 and len(planned) + len(left) == 1000
        assert seconds <= 30, seconds
        assert peak < 200 * 2**20, peak  # the listing is streamed page by page (the server's own memory included)
        assert paths.count("/api/models") == 10 and not [p for p in paths if p.startswith("/api/models/")]
        estimates = [c.extract_seconds for c in candidates]
        assert estimates == sorted(estimates) and len(planned) > 0
