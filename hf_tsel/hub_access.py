"""Fail fast when the Hugging Face Hub cannot be reached, instead of retrying for half a minute per file.

huggingface_hub retries a refused or timed-out connection with exponential backoff (about 30 s per
file). One short probe per process tells "no network" apart from "no such repo", so a run without
network fails (or falls back to the local cache) within seconds.
"""

from __future__ import annotations

import functools
import os

from .errors import HfTselError

__all__ = ["NO_HUB_FIX", "hub_reachable", "looks_like_local_path", "require_hub"]

NO_HUB_FIX = "set HF_HUB_OFFLINE=1 to use the local cache, or check your network / proxy (HTTPS_PROXY) and retry."
PROBE_SECONDS = 5.0


def looks_like_local_path(source: str) -> bool:
    """A local path, never a Hub id: starts with ``/``, ``./``, ``../`` or ``~``, or has two or more separators.

    Example:
        >>> [looks_like_local_path(s) for s in ("./images", "data/train/x", "org/name", "resnet50")]
        [True, True, False, False]
    """
    separators = source.count("/") + (source.count(os.sep) if os.sep != "/" else 0)
    return source.startswith(("/", "./", "../", "~", ".\\", "..\\")) or separators >= 2


@functools.lru_cache(maxsize=None)
def _probe(endpoint: str) -> str | None:
    """None if ``endpoint`` answers over HTTP (any status), else why it could not be reached."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_SECONDS, follow_redirects=False)
    except Exception as exc:  # noqa: BLE001 (any transport failure means "unreachable"; the HTTP client's types vary)
        return f"{type(exc).__name__}: {exc}"
    return None


def hub_reachable() -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``) answers; always False in offline mode."""
    from huggingface_hub import constants

    return not constants.HF_HUB_OFFLINE and _probe(constants.ENDPOINT) is None


def require_hub(what: str) -> None:
    """Raise :class:`HfTselError` within seconds if ``what`` (e.g. "dataset 'org/name'") needs an unreachable Hub."""
    from huggingface_hub import constants

    reason = _probe(constants.ENDPOINT)
    if reason is not None:
        raise HfTselError(f"cannot reach the Hub at {constants.ENDPOINT} to get {what} ({reason})", fix=NO_HUB_FIX)
