"""hf_tsel.extraction.resolution: which models a run covers, and under which names."""

from __future__ import annotations

import pytest

from hf_tsel.errors import UserError
from hf_tsel.extraction import resolve_models


def test_models_that_share_a_folder_name_are_named_by_their_parents(tmp_path, monkeypatch):
    for run in ("a", "b"):
        (tmp_path / "runs" / run / "best").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    entries = resolve_models(models=["runs/a/best", str(tmp_path / "runs" / "b" / "best")], loader="timm")
    assert [e.name for e in entries] == ["a-best", "b-best"]
    assert [e.hub_id for e in entries] == ["runs/a/best", str(tmp_path / "runs" / "b" / "best")]
    hub = resolve_models(models=["org-one/vit-small", "org-two/vit-small"], loader="timm")
    assert [e.name for e in hub] == ["org-one-vit-small", "org-two-vit-small"]


def test_the_same_model_given_twice_in_two_spellings_is_refused(tmp_path, monkeypatch):
    (tmp_path / "best").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"\['best'\] were given twice"):
        resolve_models(models=["best", str(tmp_path / "best")], loader="timm")
