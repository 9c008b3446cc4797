"""The package version, read once from the installed distribution's metadata (pyproject.toml is its one home)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hf-tsel")
except PackageNotFoundError:  # a source tree imported without being installed
    __version__ = "0+unknown"
