"""The stand-in answers the real ``huggingface_hub`` client the way the Hub does (in-process, endpoint passed)."""

from __future__ import annotations

import pytest
from huggingface_hub import HfFileSystem, constants, hf_hub_download
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from .repos import DATASET
from .harness import TEST_TOKEN


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """These tests talk HTTP in-process, even when the test session runs with offline mode on."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.mark.parametrize("repo_id, filename, revision, token, error", [
    ("test-org/gated-vit", "config.json", "main", None, GatedRepoError),  # anonymous: 401
    ("test-org/gated-vit", "config.json", "main", TEST_TOKEN, GatedRepoError),  # conditions not accepted: 403
    ("test-org/no-such-model", "config.json", "main", None, RepositoryNotFoundError),
    ("test-org/tiny-vit", "missing.bin", "main", TEST_TOKEN, EntryNotFoundError),
    ("test-org/tiny-vit", "config.json", "0" * 40, TEST_TOKEN, RevisionNotFoundError),
])
def test_errors_reach_the_client_as_on_the_hub(seeded_hub, tmp_path, repo_id, filename, revision, token, error):
    with pytest.raises(error) as raised:
        hf_hub_download(repo_id, filename, revision=revision, token=token or False, cache_dir=tmp_path,
                        endpoint=seeded_hub.server.url)
    if error is GatedRepoError:
        assert raised.value.response.status_code == (403 if token else 401)


def test_downloads_revisions_and_byte_ranges(seeded_hub, tmp_path):
    hub = seeded_hub.server
    path = hf_hub_download("test-org/tiny-resnet", "model.safetensors", revision=seeded_hub.resnet_v1,
                           cache_dir=tmp_path, endpoint=hub.url, token=TEST_TOKEN)
    assert f"/snapshots/{seeded_hub.resnet_v1}/" in path
    stored = hub.repo("test-org/tiny-resnet", "model").commit(seeded_hub.resnet_v1).files["model.safetensors"]
    assert open(path, "rb").read() == stored.data != hub.repo("test-org/tiny-resnet", "model").head.files[
        "model.safetensors"].data

    # partial reads (as fsspec and resumed downloads do) follow the redirect and ask for a byte range
    parquet = "data/train-00000-of-00001.parquet"
    start = len(hub.requests)
    with HfFileSystem(endpoint=hub.url, token=TEST_TOKEN).open(f"datasets/{DATASET}/{parquet}", block_size=64) as f:
        f.seek(100)
        assert f.read(50) == hub.file(DATASET, parquet)[100:150]
    assert any(r.server == "cdn" and r.range and r.range.startswith("bytes=100-") for r in hub.requests[start:])
