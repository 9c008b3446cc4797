"""Where hf-tsel keeps things: its home folder, and the data folders it ships (zoos, the Space app)."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

__all__ = ["tsel_home", "package_data"]


def tsel_home() -> Path:
    """``$HF_TSEL_HOME``, or ``~/.cache/hf-tsel`` when it is unset or empty."""
    return Path(os.environ.get("HF_TSEL_HOME") or "~/.cache/hf-tsel").expanduser()


def package_data(name: str) -> Path:
    """Folder of a data package shipped with hf-tsel: ``model_zoos`` or ``spaces_app``.

    They live at the top of the source tree and are installed (wheel or editable install) as the
    packages ``hf_tsel.model_zoos`` and ``hf_tsel.spaces_app`` (``package-dir`` in pyproject.toml),
    found here through :mod:`importlib.resources`. Only a source tree used without installing it
    (``PYTHONPATH=<checkout>``) has no such package; then the folder is read from the tree.
    """
    try:
        return Path(str(importlib.resources.files(f"hf_tsel.{name}")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / name
