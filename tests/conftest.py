"""Settings and fixtures shared by the whole test suite.

Two lanes (markers are declared in ``pyproject.toml``):

* ``python -m pytest`` runs the fast lane: unit, golden, property and CLI tests that load no real
  pretrained weights, plus the docstring examples in ``hf_tsel/``.
* ``python -m pytest -m "slow or browser"`` runs the rest: packaged pretrained models, end-to-end
  CLI runs in subprocesses, ITM over whole model zoos, and the Space in headless Chromium.

Layout: ``tests/<package>/`` and ``tests/test_<module>.py`` test ``hf_tsel/<package>/`` and ``hf_tsel/<module>.py``;
``tests/e2e/`` runs the CLI end to end in subprocesses, ``tests/reliability/`` feeds bad inputs and faults,
``tests/hub/`` runs the Hub client against a local stand-in. Fixtures shared by several folders are here;
plain helper functions are in ``tests/helpers/`` (no test imports another test module).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.helpers.data import image_dataset, write_hub_dataset
from tests.helpers.hub_cache import HubCache, build_hub_cache
from tests.helpers.models import FakeBackbone, route_model_loading, write_tiny_zoo, write_zoo

# Test inputs are tiny: on a 2-core machine a second OpenMP/BLAS thread costs more in synchronisation
# than it saves (the ITM docstring example: 0.9 s with one thread, 9.7 s with two on a busy machine).
# Set before torch or numpy start their thread pools; CLI subprocesses inherit it.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="session", autouse=True)
def _one_compute_thread():
    """The same limit for libraries a plugin may have imported before this file ran."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"])):
        yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def offline_zoo_dir(tmp_path_factory) -> Path:
    """``HF_TSEL_HOME`` with the packaged EfficientNet-Lite0 and open-nsfw models converted once per test run.

    Converting real weights takes seconds; every test that needs these models shares this folder.
    """
    from hf_tsel.offline.models import prepare_offline_zoo

    home = tmp_path_factory.mktemp("hf_tsel_home")
    prepare_offline_zoo(home, names=["efficientnet-lite0", "open-nsfw"])
    return home


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (tests never use a fixed port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def three_model_zoo():
    """Features of three models whose class separation (hence every metric's ranking) is strong, weak and none:
    ``({model: [120, 12] array}, labels)``, 3 classes of 40 samples."""
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    signal = np.eye(12)[labels]
    features = {"strong": rng.normal(size=(len(labels), 12)) + 4 * signal,
                "weak": rng.normal(size=(len(labels), 12)) + 1 * signal,
                "none": rng.normal(size=(len(labels), 12))}
    return features, labels


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> HubCache:
    """Tiny random-init models in a real HF cache layout, built once per session (tests/helpers/hub_cache.py)."""
    return build_hub_cache(tmp_path_factory.mktemp("hf_home"))


@pytest.fixture
def offline_hub(hub_cache: HubCache, monkeypatch) -> HubCache:
    """Offline mode + the tiny cache for this test, in-process and for subprocesses."""
    from huggingface_hub import constants

    for key, value in hub_cache.env().items():
        if key.startswith("HF_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(hub_cache.hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache.hub_dir))
    return hub_cache


@pytest.fixture
def hub_env(hub_cache: HubCache) -> dict[str, str]:
    """Environment dict for ``subprocess.run(..., env=hub_env)`` CLI tests."""
    return hub_cache.env()


@pytest.fixture
def fake_models(monkeypatch, tmp_path):
    """Route model loading to :class:`FakeBackbone`; returns ``(zoo_path, loads)`` where loads lists loaded names.

    A model named ``missing*`` raises BackboneLoadError(not_found); ``headless*`` has no source head.
    """
    from hf_tsel.backbones import BackboneLoadError

    loads: list[str] = []

    def load(entry, *, device="cpu", **options):
        loads.append(entry.name)
        if entry.name.startswith("missing"):
            raise BackboneLoadError(entry.name, "not_found", "the repository does not exist; check the id")
        return FakeBackbone(entry, device, source_classes=None if entry.name.startswith("headless") else 5)

    route_model_loading(monkeypatch, load)
    return write_zoo(tmp_path / "zoo.yaml", ["alpha", "beta", "headless"]), loads


@pytest.fixture
def cli_setup(hub_cache, tmp_path):
    """``(env, zoo_path, dataset_id)`` for CLI subprocess runs: offline Hub cache, a tiny dataset repo, own caches."""
    repo_id = "hf-tsel-test/cli-images"
    if not (Path(hub_cache.hub_dir) / f"datasets--{repo_id.replace('/', '--')}").exists():
        write_hub_dataset(hub_cache.hub_dir, repo_id, {"train": image_dataset(per_class=8),
                                                       "test": image_dataset(per_class=4)})
    env = hub_cache.env()
    env.update(HF_TSEL_HOME=str(tmp_path / "hf_tsel_home"), HF_DATASETS_CACHE=str(tmp_path / "datasets_cache"),
               PYTHONUNBUFFERED="1", COLUMNS="200")
    zoo = write_tiny_zoo(tmp_path / "tiny.yaml", hub_cache, ["timm_cnn", "timm_vit", "transformers_vit"])
    return env, zoo, repo_id
