"""Every numeric CLI option is checked at parse time, before any data or model loads."""

from __future__ import annotations

import pytest

from hf_tsel.cli import main

CASES = [
    (["rank", "ds"], "--batch-size", ["0", "-3", "two"]),
    (["rank", "ds"], "--num-workers", ["-1"]),
    (["rank", "ds"], "--seed", ["-1", "1.5"]),
    (["rank", "ds"], "--samples-per-class", ["0"]),
    (["rank", "ds"], "--max-samples", ["-5"]),
    (["demo"], "--batch-size", ["0"]),
    (["demo"], "--samples-per-class", ["0"]),
    (["finetune", "ds"], "--epochs", ["0"]),
    (["finetune", "ds"], "--seeds", ["-2"]),
    (["finetune", "ds"], "--lr", ["0", "nan"]),
    (["finetune", "ds"], "--weight-decay", ["-0.001"]),
    (["finetune", "ds"], "--batch-size", ["0"]),
    (["finetune", "ds"], "--max-steps-per-epoch", ["0"]),
    (["benchmark", "paper", "--zoo", "z", "--dataset", "d"], "--batch-size", ["0"]),
    (["benchmark", "offline"], "--train-per-class", ["0"]),
    (["benchmark", "offline"], "--finetune-epochs", ["-1"]),
    (["push", "results.json", "--repo", "org/name"], "--max-attempts", ["0"]),
    (["space", "serve", "results.json"], "--port", ["70000"]),
]


@pytest.mark.parametrize("command, option, value", [(c, o, v) for c, o, values in CASES for v in values])
def test_bad_number_fails_at_parse_time(command, option, value, capsys, monkeypatch):
    import hf_tsel.data
    import hf_tsel.ranking

    monkeypatch.setattr(hf_tsel.data, "load_image_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    monkeypatch.setattr(hf_tsel.ranking, "rank", lambda *a, **k: pytest.fail("the run started"))
    with pytest.raises(SystemExit) as exit_info:
        main([*command, option, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert f"argument {option}: must be a" in err and repr(value) in err
