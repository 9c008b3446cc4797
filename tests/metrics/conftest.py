"""Fixtures that load the golden reference values (``tests/helpers/golden.py`` says where they are)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.golden import GOLDEN_DIR


def _require_golden() -> None:
    if not (GOLDEN_DIR / "expected.json").exists():
        pytest.fail(f"golden reference data not found at {GOLDEN_DIR} (HF_TSEL_GOLDEN_DIR, else tests/data/golden)")


@pytest.fixture(scope="session")
def golden_expected() -> dict:
    """``expected.json``: ``{case: {metric: entry}}`` plus the ``zoo`` entry."""
    _require_golden()
    return json.loads((GOLDEN_DIR / "expected.json").read_text())


@pytest.fixture(scope="session")
def golden_case():
    """Loader ``golden_case(name) -> dict of arrays`` (features, labels, source_probs, norm_mean, norm_std)."""
    _require_golden()
    cache: dict[str, dict[str, np.ndarray]] = {}

    def load(name: str) -> dict[str, np.ndarray]:
        if name not in cache:
            with np.load(GOLDEN_DIR / "inputs" / f"{name}.npz") as data:
                cache[name] = {key: data[key] for key in data.files}
        return cache[name]

    return load
