"""Settings and fixtures shared by the whole test suite.

Two lanes (markers are declared in ``pyproject.toml``):

* ``python -m pytest`` runs the fast lane: unit, golden, property and CLI tests that load no real
  pretrained weights, plus the docstring examples in ``hf_tsel/``.
* ``python -m pytest -m "slow or browser"`` runs the rest: packaged pretrained models, end-to-end
  CLI runs in subprocesses, ITM over whole model zoos, and the Space in headless Chromium.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

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
