"""One option vocabulary across subcommands: same name, type and meaning; every default in --help; old spellings
still parse, with a warning."""

from __future__ import annotations

import pytest


# item 9: one option vocabulary across subcommands
def _options_by_command():
    import argparse

    from hf_tsel.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*path, name])
            elif action.option_strings:
                yield " ".join(path), parser, action

    return list(walk(build_parser(), []))


SHARED = ("--batch-size", "--num-workers", "--device", "--precision", "--seed", "--samples-per-class",
          "--test-samples-per-class", "--metrics", "--cache-dir", "--quiet", "--overwrite")


def test_shared_options_have_one_name_type_and_meaning():
    import argparse

    seen: dict[str, dict[str, tuple]] = {}
    for command, _, action in _options_by_command():
        if action.help == argparse.SUPPRESS:
            continue
        for option in set(action.option_strings) & set(SHARED):
            kind = getattr(action.type, "__name__", action.type)
            seen.setdefault(option, {})[command] = (kind, tuple(action.choices or ()), type(action).__name__)
    for option, by_command in seen.items():
        assert len(set(by_command.values())) == 1, (option, by_command)
    assert {"finetune", "rank", "extract", "demo", "benchmark paper"} <= set(seen["--device"])
    assert {"finetune", "rank"} <= set(seen["--precision"]) & set(seen["--num-workers"]) & set(seen["--quiet"])
    assert {"finetune", "rank", "demo"} <= set(seen["--overwrite"])
    assert {"rank", "evaluate", "benchmark offline"} <= set(seen["--metrics"])
    assert "benchmark offline" in seen["--samples-per-class"] and "benchmark offline" in seen["--test-samples-per-class"]


def test_every_default_is_in_the_help_and_every_command_is_described():
    import argparse

    for command, parser, action in _options_by_command():
        if action.help == argparse.SUPPRESS or action.default in (None, False, [], argparse.SUPPRESS):
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        assert "default" in parser.formatter_class("x")._get_help_string(action), (command, action.option_strings)
    described = {command.split()[0] for command, parser, _ in _options_by_command() if command and parser.description}
    assert {"zoo", "metrics", "cache", "rank", "evaluate", "finetune"} <= described


def test_old_spellings_still_work_and_warn(capsys):
    from hf_tsel.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["evaluate", "s.csv", "--metric", "logme", "--metric", "gbc"])
    assert args.metrics == "logme,gbc"
    args = parser.parse_args(["benchmark", "offline", "--train-per-class", "5", "--test-per-class", "3"])
    assert (args.samples_per_class, args.test_samples_per_class) == (5, 3)
    err = capsys.readouterr().err
    assert "--metric is now spelled --metrics" in err and "--train-per-class is now spelled --samples-per-class" in err


@pytest.fixture
def bars_back_on():
    """Progress bars are a process-wide setting of datasets and huggingface_hub: on again for the other tests."""
    yield
    import datasets
    from huggingface_hub.utils import enable_progress_bars

    datasets.enable_progress_bars()
    enable_progress_bars()


def test_quiet_also_silences_the_libraries_progress_bars(fake_models, tmp_path, capfd, bars_back_on):
    from hf_tsel.cli import main
    from tests.helpers.data import write_imagefolder

    zoo, _ = fake_models
    folder = write_imagefolder(tmp_path / "images", per_class=3)
    assert main(["extract", str(folder), "--zoo", str(zoo), "--cache-dir", str(tmp_path / "cache"), "-q"]) == 0
    assert "Generating train split" not in capfd.readouterr().err  # datasets' bar while it reads the folder
