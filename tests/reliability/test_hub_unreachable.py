"""Without network (and without HF_HUB_OFFLINE) a run fails, or falls back to the local cache, within seconds."""

from __future__ import annotations

import json
import socket
import time

import pytest

from hf_tsel.errors import EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR
from tests.helpers.data import image_dataset


@pytest.fixture
def no_network(offline_hub, monkeypatch, tmp_path):
    """Online mode, with HF_ENDPOINT at a local port nobody listens on (bound, then closed)."""
    import datasets
    from huggingface_hub import constants

    from hf_tsel import hub_access

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TSEL_HOME", str(tmp_path / "home"))
    hub_access._probe.cache_clear()
    yield offline_hub
    hub_access._probe.cache_clear()


def test_hub_dataset_without_network_fails_fast(no_network, cli):
    start = time.monotonic()
    code, _, err = cli(["rank", "some-org/some-dataset", "--model", no_network.ids["timm_cnn"], "--loader", "timm"])
    assert code == EXIT_USER_ERROR and "cannot reach the Hub" in err and "HF_HUB_OFFLINE=1" in err
    assert time.monotonic() - start < 15  # no 30 s of retries


def test_hub_models_without_network_use_the_local_cache(no_network, cli, tmp_path):
    image_dataset(per_class=4).save_to_disk(str(tmp_path / "ds"))
    start = time.monotonic()
    code, out, err = cli(["rank", tmp_path / "ds", "--model", no_network.ids["timm_cnn"], "--model",
                          no_network.ids["missing"], "--loader", "timm", "--metrics", "logme",
                          "-o", tmp_path / "r.json"])
    assert code == EXIT_PARTIAL_FAILURE, err
    models = {m["model_id"]: m for m in json.loads((tmp_path / "r.json").read_text())["run"]["models"]}
    assert models[no_network.ids["timm_cnn"]]["status"] == "extracted"  # from the local cache
    assert "cannot reach the Hub" in models[no_network.ids["missing"]]["error"]
    assert time.monotonic() - start < 30


PATH_TYPOS = ["./my-images", "~/no/such/folder", "data/train/images", "/no/such/images"]


@pytest.mark.parametrize("path", PATH_TYPOS)
def test_missing_local_folder_is_a_path_typo(no_network, cli, path, monkeypatch, tmp_path):
    monkeypatch.setattr("hf_tsel.data.require_hub", lambda what: pytest.fail("the Hub was asked"))
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["rank", path, "--model", no_network.ids["timm_cnn"], "--loader", "timm"])
    assert code == EXIT_USER_ERROR and f"the dataset folder {path!r} does not exist" in err and "typos" in err


@pytest.mark.parametrize("path", PATH_TYPOS)
def test_missing_local_model_is_a_path_typo(no_network, cli, path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["rank", tmp_path, "--model", path])
    assert code == EXIT_USER_ERROR and f"the local model path {path!r} does not exist" in err and "typos" in err


def test_missing_local_model_in_a_zoo_fails_alone(no_network, cli, tmp_path):
    image_dataset(per_class=4).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "zoo.yaml").write_text(f"models:\n  - name: gone\n    hub_id: {tmp_path}/no-such-model\n    loader: timm\n"
                                       f"  - name: good\n    hub_id: {no_network.ids['timm_cnn']}\n    loader: timm\n")
    code, out, err = cli(["rank", tmp_path / "ds", "--zoo", tmp_path / "zoo.yaml", "--metrics", "logme"])
    assert code == EXIT_PARTIAL_FAILURE and "does not exist; check it for typos" in out
