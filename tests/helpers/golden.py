"""The golden reference values in ``tests/data/golden`` (see its README for the protocol) and their comparison rule.

``HF_TSEL_GOLDEN_DIR`` points the tests at another copy of the same data; without it the copy in
the repository is used, so a bare clone tests itself.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR = Path(os.environ.get("HF_TSEL_GOLDEN_DIR") or Path(__file__).resolve().parents[1] / "data" / "golden")
CASES = ["separated", "overlapping", "rank_deficient", "imbalanced", "zoo_m0", "zoo_m1", "zoo_m2", "zoo_m3", "zoo_m4"]
ZOO_MODELS = ["zoo_m0", "zoo_m1", "zoo_m2", "zoo_m3", "zoo_m4"]


def assert_close(ours: float, entry: dict) -> None:
    """The README's comparison rule: ``|ours - value| <= rtol*|value| + atol``."""
    value, rtol, atol = entry["value"], entry["rtol"], entry.get("atol", 0.0)
    assert abs(ours - value) <= rtol * abs(value) + atol, f"ours={ours!r} reference={value!r} rtol={rtol} atol={atol}"
