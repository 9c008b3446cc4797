"""Near-miss model names and one-class image folders get messages that say what is actually wrong."""

from __future__ import annotations

import pytest
from PIL import Image

from hf_tsel.errors import EXIT_USER_ERROR


def test_zoo_name_with_underscore_hints_at_the_zoo_entry(cli, monkeypatch, tmp_path):
    import hf_tsel.zoo

    monkeypatch.setattr(hf_tsel.zoo, "_timm_hub_id", lambda name: pytest.fail("resolved to a Hub timm id"))
    code, _, err = cli(["rank", tmp_path, "--zoo", "offline", "--model", "efficientnet_lite0"])
    assert code == EXIT_USER_ERROR and "did you mean 'efficientnet-lite0'" in err and "--model efficientnet-lite0" in err


def test_unknown_name_lists_the_closest_zoo_entries(cli, tmp_path):
    code, _, err = cli(["rank", tmp_path, "--zoo", "offline", "--model", "efficientnet-lite9"])
    assert code == EXIT_USER_ERROR and "'efficientnet-lite0'" in err


def test_one_class_image_folder(cli, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    (tmp_path / "imgs" / "train" / "cats").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "imgs" / "train" / "cats" / f"{i}.png")
    code, _, err = cli(["rank", tmp_path / "imgs", "--zoo", "offline", "--model", "efficientnet-lite0"])
    assert code == EXIT_USER_ERROR and "only one class" in err and "no label column" not in err


def test_space_serve_with_a_missing_results_file(cli, tmp_path):
    code, _, err = cli(["space", "serve", tmp_path / "results.json"])
    assert code == EXIT_USER_ERROR and "results.json" in err and "does not exist" in err
