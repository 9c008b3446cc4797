"""``hf-tsel evaluate`` on malformed inputs and existing output files: one line naming the file and the fix, never a
traceback, never a silently replaced file."""

from __future__ import annotations

import pandas as pd
import pytest

from hf_tsel.errors import EXIT_USER_ERROR


@pytest.fixture
def good(tmp_path):
    """A valid scores csv and ground-truth csv."""
    scores = pd.DataFrame([{"dataset": "d", "model": m, "metric": "logme", "score": s}
                           for m, s in zip("abcd", (3.0, 2.0, 1.0, 0.0))])
    truth = pd.DataFrame([{"dataset": "d", "model": m, "protocol": "full", "accuracy": a}
                          for m, a in zip("abcd", (0.9, 0.8, 0.85, 0.5))])
    scores.to_csv(tmp_path / "scores.csv", index=False)
    truth.to_csv(tmp_path / "gt.csv", index=False)
    return tmp_path / "scores.csv", tmp_path / "gt.csv"


def _write(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("name, content, message", [
    ("garbage.csv", b"\x00\xff\xfe\x89PNG\x1a\n\x00\x00" * 50, "cannot be read"),
    ("columns.csv", "a,b,c\n1,2,3\n", "lack"),
    ("broken.json", '{"records": [{"dataset": "d", ', "cannot be read"),
    ("broken.parquet", b"PAR1 this is not parquet at all", "cannot be read"),
    ("text.csv", "dataset,model,metric,score\nd,a,logme,high\nd,b,logme,1.0\n", "non-numeric"),
])
def test_malformed_scores_file(cli, good, tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    code, _, err = cli(["evaluate", path, "--ground-truth", good[1]])
    assert code == EXIT_USER_ERROR and message in err and name in err and "Fix:" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ("dataset,model,acc\nd,a,0.9\n", "lack"),
    ("dataset,model,protocol,accuracy\nd,a,full,ninety\n", "accuracy"),
    (b"\x00\xff\xfe garbage", "cannot be read"),
])
def test_malformed_ground_truth_file(cli, good, tmp_path, content, message):
    path = _write(tmp_path / "truth.csv", content)
    code, _, err = cli(["evaluate", good[0], "--ground-truth", path])
    assert code == EXIT_USER_ERROR and message in err and "truth.csv" in err


def test_unknown_metric(cli, good):
    code, _, err = cli(["evaluate", good[0], "--ground-truth", good[1], "--metric", "logmee"])
    assert code == EXIT_USER_ERROR and "'logmee'" in err and "logme" in err


def test_unwritable_plot_path(cli, good, tmp_path):
    (tmp_path / "a-file").write_text("x")
    code, out, err = cli(["evaluate", good[0], "--ground-truth", good[1], "--plot", tmp_path / "a-file" / "p.png"])
    assert code == EXIT_USER_ERROR and "p.png" in err and "--plot" in err
    assert out == ""  # refused before any work


def test_existing_output_and_plot_are_kept_without_overwrite(cli, good, tmp_path):
    for option in ("--output", "--plot"):
        kept = tmp_path / f"keep{option.lstrip('-')}"
        kept.write_text("mine")
        code, _, err = cli(["evaluate", good[0], "--ground-truth", good[1], option, kept])
        assert code == EXIT_USER_ERROR and "already exists" in err and "--overwrite" in err
        assert kept.read_text() == "mine"
    code, _, err = cli(["evaluate", good[0], "--ground-truth", good[1], "--output", tmp_path / "keepoutput",
                        "--overwrite"])
    assert code == 0, err
    assert pd.read_csv(tmp_path / "keepoutput")["metric"].tolist()
