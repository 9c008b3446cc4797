"""The hf-tsel home folder: feature cache, converted packaged models, benchmark work folders."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tsel_home"]


def tsel_home() -> Path:
    """``$HF_TSEL_HOME``, or ``~/.cache/hf-tsel`` when it is unset or empty."""
    return Path(os.environ.get("HF_TSEL_HOME") or "~/.cache/hf-tsel").expanduser()
