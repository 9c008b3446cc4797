"""How the CLI reports errors: one line and exit 2 for HfTselError, a saved traceback and exit 1 for a bug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hf_tsel.errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, DataError


def _crash(monkeypatch, exc: Exception) -> None:
    import hf_tsel.commands.zoo as zoo_command

    def boom(args):
        raise exc

    monkeypatch.setattr(zoo_command, "run", boom)  # main() builds its parser afresh, so `zoo` now calls boom


def test_user_error_is_one_line_with_the_fix(cli, monkeypatch):
    _crash(monkeypatch, DataError("no label column found in 'imgs'.", fix="pass --label-column NAME."))
    code, _, err = cli(["zoo", "list"])
    assert code == EXIT_USER_ERROR
    assert err == "error: no label column found in 'imgs'. Fix: pass --label-column NAME.\n"


def test_a_bug_prints_one_line_and_saves_the_traceback(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    _crash(monkeypatch, ZeroDivisionError("division by zero"))
    code, _, err = cli(["zoo", "list"])
    assert code == EXIT_INTERNAL_ERROR and err.startswith("internal error: ZeroDivisionError: division by zero\n")
    saved = Path(re.search(r"saved to (\S+\.txt)", err).group(1))
    assert saved.parent == tmp_path and "Traceback" in saved.read_text() and "ZeroDivisionError" in saved.read_text()


def test_verbose_prints_the_traceback(monkeypatch, capsys):
    from hf_tsel.cli import main

    _crash(monkeypatch, DataError("bad data."))
    assert main(["-v", "zoo", "list"]) == EXIT_USER_ERROR
    assert "Traceback" in capsys.readouterr().err


_LIBRARY_WARNINGS = """
import logging
from hf_tsel.cli import main
main([])  # no command: sets up logging, prints the help
import datasets, huggingface_hub.utils.logging, transformers
huggingface_hub.utils.logging.get_logger("huggingface_hub.file_download").warning("hub warning")
datasets.utils.logging.get_logger("datasets.load").warning("datasets warning")
transformers.utils.logging.get_logger("transformers.modeling_utils").warning("transformers warning")
logging.getLogger("hf_tsel.data").warning("own warning")
"""


@pytest.mark.slow  # a subprocess: under pytest the root logger already has handlers, so the CLI adds none
def test_library_warnings_print_once():
    import os
    import subprocess
    import sys

    # huggingface_hub and datasets print through their own handler and propagate; transformers too when CI is set.
    env = {**os.environ, "CI": "1"}
    done = subprocess.run([sys.executable, "-c", _LIBRARY_WARNINGS], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for message in ("hub warning", "datasets warning", "transformers warning"):
        assert done.stderr.count(message) == 1, done.stderr
    assert done.stderr.count("WARNING hf_tsel.data: own warning") == 1, done.stderr


def test_the_log_filter_passes_only_records_no_library_handler_printed(monkeypatch):
    import logging

    from hf_tsel.cli import _not_printed_yet

    monkeypatch.setattr(logging.getLogger("printing_library"), "handlers", [logging.StreamHandler()])
    monkeypatch.setattr(logging.getLogger("quiet_library"), "handlers", [logging.NullHandler()])

    def passes(logger_name: str) -> bool:
        return _not_printed_yet(logging.LogRecord(logger_name, logging.WARNING, __file__, 1, "message", None, None))

    assert not passes("printing_library.module")
    assert passes("quiet_library.module") and passes("hf_tsel.data") and passes("root")


def test_the_library_never_imports_the_cli():
    root = Path(__file__).resolve().parents[2] / "hf_tsel"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "commands" not in p.parts
                 and re.search(r"from \.+cli import|import hf_tsel\.cli|from hf_tsel\.cli import", p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("error_kind", ["DataError", "ZooError", "ModelLoadError", "CacheError", "MetricInputError",
                                        "ResultsError", "PublishError"])
def test_every_error_kind_is_an_hftsel_error(error_kind):
    import hf_tsel.errors as errors

    assert issubclass(getattr(errors, error_kind), errors.HfTselError)
