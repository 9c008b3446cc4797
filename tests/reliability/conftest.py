"""Fixtures of the reliability suite: the pipeline suite's tiny offline models, plus helpers.

Every test here feeds one bad input or fault to the CLI (in-process, ``hf_tsel.cli.main``) and
checks the exit code, that the one-line message names the problem, that no traceback was
printed, and that nothing else was lost.

The fault-injection tests that need a real process stay with the CLI tests and belong to this
suite too: ``tests/pipeline/test_cli.py::test_kill_then_resume_does_not_recompute_finished_models``
(kill -9 during extraction, re-run: finished models are not recomputed) and
``::test_ctrl_c_keeps_the_cache_and_exits_130``; in-process, ``tests/pipeline/test_features_cache.py::
test_resume_after_interrupt_reuses_finished_chunks`` (stopped after a chunk, resumed: same scores)
and ``::test_full_disk_warns_and_loses_nothing``.
"""

from __future__ import annotations

import pytest

from tests.pipeline.conftest import hub_cache, hub_env, offline_hub  # noqa: F401 (fixtures)
from tests.pipeline.data_fixtures import fake_models  # noqa: F401 (fixture)
# ``hub``: the offline Hub cache with the tiny DATASET repo, every cache inside the test folder
from tests.pipeline.test_bad_inputs import DATASET, hub  # noqa: F401 (fixture)


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
