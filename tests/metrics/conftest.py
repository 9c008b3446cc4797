"""Access to the golden reference values in ``tests/data/golden`` (see its README for the protocol).

``HF_TSEL_GOLDEN_DIR`` points the tests at another copy of the same data; without it the copy in
the repository is used, so a bare clone tests itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN_DIR = Path(os.environ.get("HF_TSEL_GOLDEN_DIR") or Path(__file__).resolve().parents[1] / "data" / "golden")
CASES = ["separated", "overlapping", "rank_deficient", "imbalanced", "zoo_m0", "zoo_m1", "zoo_m2", "zoo_m3", "zoo_m4"]
ZOO_MODELS = ["zoo_m0", "zoo_m1", "zoo_m2", "zoo_m3", "zoo_m4"]


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


def assert_close(ours: float, entry: dict) -> None:
    """The README's comparison rule: ``|ours - value| <= rtol*|value| + atol``."""
    value, rtol, atol = entry["value"], entry["rtol"], entry.get("atol", 0.0)
    assert abs(ours - value) <= rtol * abs(value) + atol, f"ours={ours!r} reference={value!r} rtol={rtol} atol={atol}"
