"""Scoring's stage inputs: the outcomes it receives are never changed; a changed model comes back as a new outcome."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hf_tsel.extraction import ModelOutcome
from hf_tsel.features import CachedFeatures
from hf_tsel.scoring import drop_non_finite_models, drop_thin_classes
from hf_tsel.zoo import ZooEntry


def _outcome(name: str, labels: np.ndarray, features: torch.Tensor) -> ModelOutcome:
    positions = np.arange(len(labels))
    return ModelOutcome(ZooEntry(name=name, hub_id=f"fake/{name}", loader="timm"), "extracted",
                        features=CachedFeatures(features, positions, None, {}), labels=labels)


def test_model_outcome_is_frozen():
    outcome = _outcome("a", np.array([0, 1]), torch.zeros(2, 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.status = "failed"


def test_drop_thin_classes_returns_new_outcomes_and_leaves_its_input_alone():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    data = SimpleNamespace(labels=labels, class_names=["a", "b", "c"])
    whole = _outcome("whole", labels, torch.randn(8, 3))
    # "thin" lost one image of class 2 (undecodable), so class 2 has 1 sample left: it must be left out
    thin = ModelOutcome(whole.entry, "extracted", features=CachedFeatures(torch.randn(7, 3), np.arange(7), None, {}),
                        labels=labels[:7])
    with pytest.warns(UserWarning, match="class 'c' has 1 readable image"):
        kept = drop_thin_classes([whole, thin], data)
    assert kept[0] is whole  # unchanged models are passed on as they are
    assert kept[1] is not thin and len(thin.features.positions) == 7  # the input is untouched
    assert kept[1].labels.tolist() == [0, 0, 0, 1, 1, 1] and kept[1].features.features.shape == (6, 3)


def test_drop_non_finite_models_fails_a_new_outcome():
    labels = np.array([0, 0, 1, 1])
    broken = _outcome("broken", labels, torch.tensor([[0.0], [float("nan")], [1.0], [2.0]]))
    fine = _outcome("fine", labels, torch.ones(4, 1))
    kept = drop_non_finite_models([broken, fine])
    assert kept[1] is fine and broken.status == "extracted" and broken.features is not None
    assert kept[0].status == "failed" and kept[0].features is None and "NaN or infinite values in 1 of 4" in kept[0].error
