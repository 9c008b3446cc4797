"""The leaderboard Space in headless Chromium: renders the expected rows, filters change them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hf_tsel.publish.leaderboard import RECOMMENDATION, leaderboard_view, load_leaderboard_results

from tests.hub.harness import REPO_ROOT
from .space_screenshot import CHROMIUM, MODELS_JS, ROW_SELECTOR, chromium_page, leaderboard_models, serve_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def need_chromium():
    if not CHROMIUM.exists():
        message = f"Chromium is missing at {CHROMIUM}; install it with `apt-get install -y chromium`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _wait_for_models(page, expected: list[str]) -> None:
    page.wait_for_function(f"expected => JSON.stringify(({MODELS_JS})()) === JSON.stringify(expected)",
                           arg=expected, timeout=60_000)


def test_leaderboard_renders_and_filters(results_folder, tmp_path):
    loaded = load_leaderboard_results(results_folder)
    target = loaded.targets[0]
    expected = leaderboard_view(loaded.table, target, RECOMMENDATION)["model"].tolist()
    families = sorted(set(loaded.table["family"]) - {"dino"})
    without_dino = leaderboard_view(loaded.table, target, RECOMMENDATION, families=families)["model"].tolist()
    searched = leaderboard_view(loaded.table, target, RECOMMENDATION, families=families, search="clip")["model"].tolist()
    assert 0 < len(searched) < len(without_dino) < len(expected)
    expected_status = (f"Ranking runs on {torch.cuda.get_device_name(0)}." if torch.cuda.is_available()
                       else "Ranking your own dataset is disabled here: this Space has no GPU")
    artifacts = Path(os.environ.get("HF_TSEL_TEST_ARTIFACTS", REPO_ROOT / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)

    with serve_app(results_folder, tmp_path / "app.log") as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_selector(ROW_SELECTOR, timeout=120_000)
        _wait_for_models(page, expected)
        assert leaderboard_models(page) == expected
        answer = page.locator("#recommendation")  # the default view is the answer, with confidence bars
        assert f"Fine-tune {expected[0]}: #1 of {len(expected)} by the fine-tuning answer, P(best)" in answer.inner_text()
        assert answer.locator(".confidence-bar").count() == len(expected)
        assert "skipped" in page.inner_text("#load-notes")  # the malformed records are reported, not fatal

        page.locator("#family-filter").get_by_label("dino").uncheck()
        _wait_for_models(page, without_dino)

        page.locator("#search textarea, #search input").first.fill("clip")
        _wait_for_models(page, searched)
        screenshot = artifacts / "space-leaderboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot: {screenshot}")

        page.get_by_role("tab", name="Predicted vs fine-tuned").click()
        page.get_by_text("Weighted Kendall tau", exact=False).first.wait_for(timeout=30_000)
        page.get_by_role("tab", name="Rank your dataset").click()
        status = page.locator("#rank-status")
        status.wait_for(timeout=30_000)
        # serve_app drops every HF_* variable (HF_TSEL_SPACE_ALLOW_RANK among them), so only a GPU enables ranking
        assert expected_status in status.inner_text()
        assert page.get_by_label("Hub dataset id").is_editable() == torch.cuda.is_available()
    assert screenshot.stat().st_size > 10_000
