"""Fixtures of the reliability suite: the tiny offline models of ``tests/conftest.py`` with a dataset repo, and
``cli`` (the CLI in-process).

Every test here feeds one bad input or fault to the CLI (in-process, ``hf_tsel.cli.main``) and
checks the exit code, that the one-line message names the problem, that no traceback was
printed, and that nothing else was lost.

The fault-injection tests that need a real process stay with the end-to-end CLI runs and belong to this
suite too: ``tests/e2e/test_cli_runs.py::test_kill_then_resume_does_not_recompute_finished_models``
(kill -9 during extraction, re-run: finished models are not recomputed) and
``::test_ctrl_c_keeps_the_cache_and_exits_130``; in-process, ``tests/extraction/test_extract_models.py::
test_resume_after_interrupt_reuses_finished_chunks`` (stopped after a chunk, resumed: same scores)
and ``::test_full_disk_warns_and_loses_nothing``.
"""

from __future__ import annotations

import pytest

from tests.helpers.data import RELIABILITY_DATASET as DATASET
from tests.helpers.data import image_dataset, write_hub_dataset


@pytest.fixture
def hub(offline_hub, tmp_path, monkeypatch):
    """Offline Hub cache with a tiny dataset repo; caches inside the test folder."""
    import datasets

    if not (offline_hub.hub_dir / f"datasets--{DATASET.replace('/', '--')}").exists():
        write_hub_dataset(offline_hub.hub_dir, DATASET, {"train": image_dataset(per_class=4)})
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    monkeypatch.setenv("HF_TSEL_HOME", str(tmp_path / "home"))
    return offline_hub


@pytest.fixture
def cli(capsys):
    """``cli(args) -> (exit code, stdout, stderr)``; fails the test on any traceback."""
    from hf_tsel.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err + captured.out, captured.err
        return code, captured.out, captured.err

    return run
