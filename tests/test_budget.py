import argparse

import pytest

from hf_tsel.budget import Budget
from hf_tsel.commands._args import budget


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400),
                                           ("1.5m", 90), (" 2H ", 7200)])
def test_durations(text, seconds):
    assert Budget.parse(text) == Budget(seconds=seconds)


@pytest.mark.parametrize("text", ["6ep", "6 epochs", "1epoch", "0.5ep"])
def test_epochs(text):
    parsed = Budget.parse(text)
    assert parsed.epochs is not None and not parsed.is_time


@pytest.mark.parametrize("text", ["", "0m", "0ep", "-3m", "soon", "30", "m", "3x", "1m1h"])
def test_bad_spellings_say_the_syntax(text):
    with pytest.raises(ValueError, match="duration"):
        Budget.parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match="epoch count"):
        budget(text)


@pytest.mark.parametrize("text", ["90s", "30m", "2h", "1h30m", "6ep", "1h0m5s"])
def test_round_trip(text):
    assert Budget.parse(str(Budget.parse(text))) == Budget.parse(text)


def test_exactly_one_value():
    with pytest.raises(ValueError):
        Budget(seconds=1, epochs=1)
    with pytest.raises(ValueError):
        Budget()
