"""``hf-tsel zoo``: list the bundled zoos, show one as JSON, name an unknown one (in-process)."""

from __future__ import annotations

import json

from hf_tsel.cli import main


def _main(args: list[str], capsys) -> str:
    """Run a light command in-process; returns its stdout."""
    assert main(args) == 0
    return capsys.readouterr().out


def test_zoo_commands(cli_setup, capsys):
    _, zoo, _ = cli_setup
    assert [e["name"] for e in json.loads(_main(["zoo", "show", str(zoo), "--json"], capsys))][0] == "timm-cnn"
    assert "default" in json.loads(_main(["zoo", "list", "--json"], capsys))
    from hf_tsel.cli import main

    assert main(["zoo", "show", "no-such-zoo"]) == 2
    assert "unknown zoo 'no-such-zoo'" in capsys.readouterr().err
