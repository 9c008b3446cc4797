"""What hf-tsel asks of the Hugging Face Hub and its local cache, and failing fast when the Hub cannot be reached.

huggingface_hub retries a refused or timed-out connection with exponential backoff (about 30 s per
file). One short probe per process tells "no network" apart from "no such repo", so a run without
network fails (or falls back to the local cache) within seconds. The shape of a repo id, the local
Hub cache's layout and which commit a revision names live here too, once.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

from .errors import HfTselError

__all__ = ["NO_HUB_FIX", "cached_commit", "current_commit", "hub_cache_folder", "hub_reachable", "is_hub_repo_id",
           "looks_like_local_path", "require_hub"]

logger = logging.getLogger(__name__)

NO_HUB_FIX = "set HF_HUB_OFFLINE=1 to use the local cache, or check your network / proxy (HTTPS_PROXY) and retry."
PROBE_SECONDS = 5.0
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # owner/name, or a bare name (legacy datasets)


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


def is_hub_repo_id(name: str, *, owner_optional: bool = False) -> bool:
    """Whether ``name`` is shaped like a Hub repo id: ``owner/name`` (or a bare ``name`` with ``owner_optional``).

    Only the shape: whether a local folder of that name exists is the caller's question.

    Example:
        >>> [is_hub_repo_id(s) for s in ("timm/resnet18.a1_in1k", "resnet18", "offline:mobilenet", "a/b/c", "org/")]
        [True, False, False, False, False]
        >>> is_hub_repo_id("mnist", owner_optional=True)
        True
    """
    return bool(_REPO_ID.match(name)) and (owner_optional or "/" in name)


def hub_cache_folder(repo_id: str, repo_type: str = "model") -> Path:
    """The local Hub cache's folder of a repo (``<HF_HUB_CACHE>/models--owner--name``); it may not exist."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)


def cached_commit(repo_id: str, revision: str, repo_type: str = "model") -> str | None:
    """The commit that ``revision`` names in the local Hub cache (a commit hash names itself), or None."""
    if _COMMIT.match(revision):
        return revision
    try:
        return (hub_cache_folder(repo_id, repo_type) / "refs" / revision).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def current_commit(repo_id: str, revision: str) -> str | None:
    """The commit that ``revision`` of model repo ``repo_id`` names now: the Hub's answer, else the local cache's.

    None when ``repo_id`` is no Hub repo (a local path, a ``<scheme>:<name>`` id) or neither knows.
    """
    if _COMMIT.match(revision):
        return revision
    if not is_hub_repo_id(repo_id) or Path(repo_id).expanduser().exists():
        return None
    if hub_reachable():
        from huggingface_hub import HfApi

        try:
            return HfApi().model_info(repo_id, revision=revision, timeout=PROBE_SECONDS).sha
        except Exception as exc:  # noqa: BLE001 (gated, missing, network: the loader reports it if it must load)
            logger.debug("could not ask the Hub for the revision of %s: %s", repo_id, exc)
    return cached_commit(repo_id, revision)
