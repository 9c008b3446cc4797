"""On-disk feature cache: one folder per (model, preprocessing, dataset sample), written atomically.

Layout under the cache root (default ``$HF_TSEL_HOME/features``, ``~/.cache/hf-tsel/features``)::

    <key>/manifest.json            # written last: an entry is complete iff its manifest exists
    <key>/features.safetensors     # "features" [N, D] float32, "positions" [N] int64, "source_logits" [N, C_s]
    <key>/chunks/<i>.safetensors   # partial progress of an unfinished extraction (removed when complete)
    <key>/<file>.corrupt           # a file that could not be read, moved aside (the entry is then rebuilt)

Entries are content-addressed and every file is renamed into place whole, so several processes
or machines may fill one cache folder (e.g. on shared storage) at once without conflicts.

``<key>`` hashes the model's loading spec (hub id, requested revision, loader, pooling,
preprocessing overrides, ...), the precision of the forward pass, a local model's file digest
(:func:`entry_key`) and the dataset sample (fingerprint, split, sampled indices). The
resolved model revision and effective preprocessing are stored in the manifest; an entry whose
resolved revision differs from the one the local Hub cache now points at is treated as stale.

The cache heals itself: an unreadable manifest, features or chunk file is reported once (a
warning), renamed to ``*.corrupt`` and rebuilt by the next extraction. :meth:`FeatureCache.clear`
deletes only folders that are provably cache entries (a key-shaped name holding only cache files,
with a manifest this tool wrote),
so pointing ``--cache-dir`` at a folder with other content never deletes that content.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CacheError
from ..paths import tsel_home

__all__ = ["CacheError", "CachedFeatures", "FeatureCache", "default_cache_dir", "entry_key", "local_weights_digest",
           "model_spec", "cache_key"]

_FEATURES_FILE = "features.safetensors"
_MANIFEST_FILE = "manifest.json"
_CHUNKS_DIR = "chunks"
_CORRUPT_SUFFIX = ".corrupt"
_KEY_FORMAT = re.compile(r"^[0-9a-f]{32}$")  # cache_key(): 32 hex digits
# every file name the cache writes inside an entry (temporary files start with "." and end with ".tmp")
_OWN_FILE = re.compile(r"^(manifest\.json|features\.safetensors|\d{6}\.safetensors)(\.corrupt)?$|^\..+\.tmp$")
# ZooEntry fields that do not change a model's features (labels, facts, where its source images are).
_DISPLAY_FIELDS = {"name", "family", "pretraining", "license", "notes", "metadata", "source_reference"}


def default_cache_dir() -> Path:
    """``$HF_TSEL_HOME/features``; ``HF_TSEL_HOME`` defaults to ``~/.cache/hf-tsel``."""
    return tsel_home() / "features"


def model_spec(entry: Any, *, precision: str = "fp32", weights_digest: str | None = None) -> dict[str, Any]:
    """What decides a model's features: the zoo entry (display-only fields dropped), the precision of the
    forward pass and, for a local model, the digest of its files (:func:`local_weights_digest`).

    fp32 and "no digest" add nothing, so keys of fp32 Hub models are those of earlier versions.
    """
    values = entry.to_dict() if hasattr(entry, "to_dict") else dict(vars(entry))
    spec = {k: v for k, v in values.items() if k not in _DISPLAY_FIELDS}
    if precision != "fp32":
        spec["precision"] = precision
    if weights_digest is not None:
        spec["weights_sha256"] = weights_digest
    return spec


def local_weights_digest(hub_id: str) -> str | None:
    """SHA-256 of a local model's files (a folder: every file, by relative path; or a single file), else None.

    A local folder has no revision: rewriting its weights in place keeps the path, so only the
    content tells the cache that the features are stale.
    """
    path = Path(hub_id).expanduser()
    if ":" in hub_id and not path.exists():  # a <scheme>:<name> source, not a path
        return None
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".")
                                                                           for part in p.relative_to(path).parts))
    else:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update((file.relative_to(path).as_posix() if file != path else "").encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(spec: dict[str, Any], sample_key: str) -> str:
    """Stable hex key of a model spec and a dataset sample."""
    payload = json.dumps({"model": spec, "sample": sample_key}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def entry_key(entry: Any, sample_key: str, *, precision: str = "fp32",
              digests: dict[str, str | None] | None = None) -> str:
    """The key under which ``hf_tsel.extract`` caches ``entry``'s features on a sample: its spec, the precision
    and, for a local model, its files' digest. ``digests`` memoises the digests (hub id -> digest) across calls.

    Scripts that read the cache directly must use this, not :func:`cache_key` of :func:`model_spec` alone.
    """
    digests = {} if digests is None else digests
    if entry.hub_id not in digests:  # hashed once: a local model's weights may be large
        digests[entry.hub_id] = local_weights_digest(entry.hub_id)
    return cache_key(model_spec(entry, precision=precision, weights_digest=digests[entry.hub_id]), sample_key)


@dataclass
class CachedFeatures:
    """Features of one model on one dataset sample."""

    features: torch.Tensor  # [N, D] float32
    positions: np.ndarray  # [N] positions in the sample that decoded (corrupt images are absent)
    source_logits: torch.Tensor | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def _write_errno(exc: Exception) -> int | None:
    """The OS error number behind a failed write: an ``OSError``'s own, or the one safetensors (Rust) spells out
    in its message as ``IoError(Os { code: 28, ... })``: it raises ``SafetensorError``, not ``OSError``."""
    if isinstance(exc, OSError):
        return exc.errno
    found = re.search(r"\bcode: (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _cache_write_error(path: Path, exc: Exception) -> CacheError:
    number = _write_errno(exc)
    if number == errno.ENOSPC:
        problem = "the disk is full"
    elif number in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem = "permission denied"
    else:
        problem = getattr(exc, "strerror", None) or str(exc)
    return CacheError(f"cannot write the feature cache at {path} ({problem}). Free some space or pass a writable "
                      "folder with --cache-dir (or run with --no-cache); features already cached are kept.")


def _unreadable(exc: Exception) -> bool:
    """Whether ``exc`` means "this cache file is damaged" (rather than a bug)."""
    from safetensors import SafetensorError

    return isinstance(exc, (OSError, ValueError, KeyError, SafetensorError))


def _own_manifest(path: Path) -> bool:
    """Whether ``path`` is a manifest this tool wrote: a JSON object whose ``key`` names its folder (a foreign
    ``manifest.json`` that merely sits in a key-shaped folder is not)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("key") == path.parent.name


def _is_entry(folder: Path) -> bool:
    """Whether ``folder`` is provably a cache entry: a key-shaped name holding nothing but cache files, with a
    manifest (if any) that this tool wrote."""
    if not folder.is_dir() or folder.is_symlink() or not _KEY_FORMAT.match(folder.name):
        return False
    manifest = folder / _MANIFEST_FILE
    if (manifest.exists() or manifest.is_symlink()) and not _own_manifest(manifest):
        return False
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).parts
        if path.is_symlink():
            return False
        if path.is_dir():
            if relative != (_CHUNKS_DIR,):
                return False
        elif not (len(relative) <= 2 and relative[:-1] in ((), (_CHUNKS_DIR,)) and _OWN_FILE.match(path.name)):
            return False
    return True


class FeatureCache:
    """Feature cache rooted at ``root``; every write goes to a temporary file renamed into place."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    def check_writable(self) -> None:
        """Raise :class:`CacheError` now (before any extraction) if the root cannot be written."""
        probe = self.root / f".probe-{os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise _cache_write_error(self.root, exc) from None

    def _write_atomic(self, path: Path, write: Any) -> None:
        from safetensors import SafetensorError

        # host, pid and a random part: writers on several machines may share one cache folder
        tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, path)
        except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as SafetensorError
            tmp.unlink(missing_ok=True)
            raise _cache_write_error(self.root, exc) from None

    @staticmethod
    def _tensors(features: torch.Tensor, positions: np.ndarray, source_logits: torch.Tensor | None) -> dict:
        tensors = {"features": features.detach().to("cpu", torch.float32).contiguous(),
                   "positions": torch.as_tensor(np.asarray(positions, dtype=np.int64))}
        if source_logits is not None:
            tensors["source_logits"] = source_logits.detach().to("cpu", torch.float32).contiguous()
        return tensors

    @staticmethod
    def _read(path: Path) -> tuple[torch.Tensor, np.ndarray, torch.Tensor | None]:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        return tensors["features"], tensors["positions"].numpy(), tensors.get("source_logits")

    def has(self, key: str) -> bool:
        """Whether the entry ``key`` looks complete (its manifest, written last, exists); :meth:`load` checks it."""
        return (self.root / key / _MANIFEST_FILE).is_file()

    def load(self, key: str) -> CachedFeatures | None:
        """The complete entry ``key``, or None (missing or unfinished; a damaged file is moved aside)."""
        folder = self.root / key
        manifest_path, features_path = folder / _MANIFEST_FILE, folder / _FEATURES_FILE
        if not manifest_path.is_file():
            return None  # never written, or interrupted before the manifest (written last)
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            self._move_aside(key, [manifest_path], exc)
            return None
        try:
            features, positions, logits = self._read(features_path)
            if features.ndim != 2 or positions.shape != (len(features),) or len(features) != manifest.get("num_samples"):
                raise ValueError(f"{len(features)} feature rows for {manifest.get('num_samples')} samples")
        except Exception as exc:
            if not _unreadable(exc):
                raise
            self._move_aside(key, [features_path, manifest_path], exc, model=manifest.get("model"))
            return None
        # chunks beside a complete entry: a run killed between writing the manifest and removing them
        shutil.rmtree(folder / _CHUNKS_DIR, ignore_errors=True)
        return CachedFeatures(features=features, positions=positions, source_logits=logits, manifest=manifest)

    def _move_aside(self, key: str, paths: list[Path], reason: Exception, model: str | None = None) -> None:
        """Rename damaged files to ``*.corrupt`` (kept for inspection) and say so once."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):  # another process may have moved it first
                os.replace(path, path.with_name(path.name + _CORRUPT_SUFFIX))
        damaged = "/".join(paths[0].relative_to(self.root / key).parts)
        owner = f" of model {model!r}" if model else ""
        warnings.warn(f"the feature cache entry {key}{owner} has a corrupt {damaged} ({reason}); moved aside to "
                      f"{damaged}{_CORRUPT_SUFFIX} and the features are extracted again", stacklevel=3)

    def save(self, key: str, features: CachedFeatures) -> None:
        """Store a complete entry (tensors first, manifest last) and drop its partial chunks."""
        from safetensors.torch import save_file

        folder = self.root / key
        tensors = self._tensors(features.features, features.positions, features.source_logits)
        try:  # an old manifest must not vouch for features that are half replaced
            (folder / _MANIFEST_FILE).unlink(missing_ok=True)
        except OSError as exc:
            raise _cache_write_error(self.root, exc) from None
        manifest = {**features.manifest, "key": key, "num_samples": int(len(features.positions)),
                    "feature_dim": int(features.features.shape[1]), "has_source_logits": features.source_logits is not None,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._write_atomic(folder / _FEATURES_FILE, lambda tmp: save_file(tensors, str(tmp)))
        self._write_atomic(folder / _MANIFEST_FILE,
                           lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8"))
        shutil.rmtree(folder / _CHUNKS_DIR, ignore_errors=True)

    def save_chunk(self, key: str, index: int, features: torch.Tensor, positions: np.ndarray,
                   source_logits: torch.Tensor | None, *, revision: str) -> None:
        """Checkpoint one finished chunk of an extraction, so a kill loses at most one chunk."""
        from safetensors.torch import save_file

        tensors = self._tensors(features, positions, source_logits)
        self._write_atomic(self.root / key / _CHUNKS_DIR / f"{index:06d}.safetensors",
                           lambda tmp: save_file(tensors, str(tmp), metadata={"model_revision": revision}))

    def load_chunks(self, key: str, *, revision: str) -> dict[int, tuple[torch.Tensor, np.ndarray, torch.Tensor | None]]:
        """Finished chunks of an interrupted extraction of the same model revision, by chunk index."""
        from safetensors import safe_open

        folder = self.root / key / _CHUNKS_DIR
        chunks = {}
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                with safe_open(str(path), framework="pt") as handle:
                    if (handle.metadata() or {}).get("model_revision") != revision:
                        continue  # written for a revision the branch no longer points at
                chunks[int(path.stem)] = self._read(path)
            except Exception as exc:
                if not _unreadable(exc):
                    raise
                self._move_aside(key, [path], exc)  # recomputed by this extraction
        return chunks

    def entries(self) -> list[dict[str, Any]]:
        """Manifests of all complete entries, plus size on disk (``bytes``)."""
        result = []
        for manifest_path in sorted(self.root.glob(f"*/{_MANIFEST_FILE}")) if self.root.is_dir() else []:
            if not _is_entry(manifest_path.parent):
                continue
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            manifest["bytes"] = sum(p.stat().st_size for p in manifest_path.parent.rglob("*") if p.is_file())
            result.append(manifest)
        return result

    def partial_entries(self) -> list[str]:
        """Keys of unfinished extractions that have checkpointed chunks."""
        if not self.root.is_dir():
            return []
        return sorted({p.parent.parent.name for p in self.root.glob(f"*/{_CHUNKS_DIR}/*.safetensors")
                       if not (p.parent.parent / _MANIFEST_FILE).exists() and _is_entry(p.parent.parent)})

    def foreign_items(self) -> list[Path]:
        """Everything in the root that is not a cache entry (never touched by :meth:`clear`)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if not _is_entry(p) and not p.name.startswith(".probe-"))

    def clear(self, *, model: str | None = None, dataset: str | None = None) -> int:
        """Delete entries (all, or those whose manifest matches ``model``/``dataset``); returns how many.

        Only provable cache entries are deleted (see :meth:`foreign_items` for what is kept).
        """
        if not self.root.is_dir():
            return 0
        removed = 0
        for folder in sorted(p for p in self.root.iterdir() if _is_entry(p)):
            try:
                manifest = json.loads((folder / _MANIFEST_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                manifest = {}
            if model and model not in (manifest.get("model"), manifest.get("model_id")):
                continue
            if dataset and dataset != manifest.get("dataset"):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed
