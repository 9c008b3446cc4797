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
