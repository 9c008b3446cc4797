"""Hub file access with actionable errors, and revision bookkeeping."""

from __future__ import annotations

import hashlib
import importlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HFValidationError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..hub_access import NO_HUB_FIX, hub_reachable
from .base import BackboneLoadError

PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".pth.tar", ".ckpt")


def _transport_errors() -> tuple[type[Exception], ...]:
    """Broken connections as raised by huggingface_hub's HTTP client (httpx2 in 2.x, httpx in 1.x).

    requests (0.x) raises OSError subclasses, which ``ConnectionError`` below already covers.
    """
    errors = []
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


@contextmanager
def hub_errors(model: str, revision: str = "main") -> Iterator[None]:
    """Translate huggingface_hub exceptions into :class:`BackboneLoadError` with advice."""
    page = f"{constants.ENDPOINT}/{model}"
    try:
        yield
    except BackboneLoadError:
        raise
    except GatedRepoError:
        raise BackboneLoadError(
            model, "gated", f"the repo is gated: accept its conditions on {page}, then log in with `hf auth login` or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        # the Hub answers 401/404 alike for missing repos and for private ones without access
        raise BackboneLoadError(
            model, "not_found", "no such repo on the Hub, or it is private: check the id for typos, or log in with `hf auth login`"
        ) from None
    except RevisionNotFoundError:
        raise BackboneLoadError(model, "not_found", f"revision {revision!r} does not exist; use a branch, tag or commit sha of {page}") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        cause = exc.__cause__ or exc.__context__  # hf_hub_download wraps HTTP errors when nothing is cached
        if isinstance(cause, HfHubHTTPError) and getattr(cause.response, "status_code", None) == 403:
            raise BackboneLoadError(
                model, "private", f"access denied: use a token (HF_TOKEN / `hf auth login`) with read access to {page}"
            ) from None
        if constants.HF_HUB_OFFLINE:
            raise BackboneLoadError(
                model, "not_found",
                f"not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and offline mode is on (HF_HUB_OFFLINE=1); "
                "download it once with network access, or unset HF_HUB_OFFLINE",
            ) from None
        raise BackboneLoadError(model, "network", f"cannot reach the Hub and the model is not in the local cache; {NO_HUB_FIX}") from None
    except HFValidationError as exc:
        raise BackboneLoadError(model, "invalid", f"not a valid Hub repo id or revision ({exc}); use ORG/NAME or a local path") from None
    except EntryNotFoundError as exc:
        raise BackboneLoadError(model, "invalid", f"a file the loader needs is missing from the repo: {exc}") from None
    except HfHubHTTPError as exc:
        if getattr(getattr(exc, "response", None), "status_code", None) == 403:
            raise BackboneLoadError(
                model, "private", f"access denied: use a token (HF_TOKEN / `hf auth login`) with read access to {page}"
            ) from None
        raise BackboneLoadError(model, "network", f"the Hub answered with an error ({exc}); retry later") from None
    except (ConnectionError, *_TRANSPORT_ERRORS) as exc:  # e.g. the server went away in the middle of a download
        raise BackboneLoadError(
            model, "network", f"the connection to the Hub broke off ({exc}); check your network and retry (run the "
            "same command again)",
        ) from None


def hub_file(repo_id: str, filename: str, revision: str = "main", *, required: bool = True) -> Path | None:
    """Download (or find in the cache) one file of a model repo; ``None`` if absent and not required.

    When the Hub cannot be reached, the local cache is used without the client's ~30 s of retries.
    """
    cache_only = not hub_reachable()
    with hub_errors(repo_id, revision):
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=cache_only))
        except EntryNotFoundError:
            if required:
                raise
            return None
        except LocalEntryNotFoundError:
            if required or not cache_only:
                raise
            return None  # not cached; without the Hub we cannot tell whether the repo has it


def snapshot_revision(path: Path) -> str:
    """Commit sha of a file inside the HF cache (``.../snapshots/<sha>/file``)."""
    parts = path.parts
    if "snapshots" in parts:
        index = len(parts) - 1 - parts[::-1].index("snapshots")
        if index + 1 < len(parts):
            return parts[index + 1]
    return content_revision(path)


def content_revision(path: Path) -> str:
    """``local-<sha256 prefix>`` of a local file or folder (file names and bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path if path.is_dir() else path.parent)).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"local-{digest.hexdigest()[:16]}"


def is_pickle_file(filename: str) -> bool:
    return filename.endswith(PICKLE_SUFFIXES)
