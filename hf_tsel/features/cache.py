"""On-disk feature cache: one folder per (model, preprocessing, dataset sample), written atomically.

Layout under the cache root (default ``$HF_TSEL_HOME/features``, ``~/.cache/hf-tsel/features``)::

    <key>/manifest.json            # written last: an entry is complete iff its manifest exists
    <key>/features.safetensors     # "features" [N, D] float32, "positions" [N] int64, "source_logits" [N, C_s]
    <key>/chunks/<i>.safetensors   # partial progress of an unfinished extraction (removed when complete)

``<key>`` hashes the model's loading spec (hub id, requested revision, loader, pooling,
preprocessing overrides, ...) and the dataset sample (fingerprint, split, sampled indices). The
resolved model revision and effective preprocessing are stored in the manifest; an entry whose
resolved revision differs from the one the local Hub cache now points at is treated as stale.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CacheError
from ..paths import tsel_home

__all__ = ["CacheError", "CachedFeatures", "FeatureCache", "default_cache_dir", "model_spec", "cache_key"]

_FEATURES_FILE = "features.safetensors"
_MANIFEST_FILE = "manifest.json"
_CHUNKS_DIR = "chunks"
# ZooEntry fields that only label a model; they do not change its features.
_DISPLAY_FIELDS = {"name", "family", "pretraining", "license", "notes"}


def default_cache_dir() -> Path:
    """``$HF_TSEL_HOME/features``; ``HF_TSEL_HOME`` defaults to ``~/.cache/hf-tsel``."""
    return tsel_home() / "features"


def model_spec(entry: Any) -> dict[str, Any]:
    """The part of a zoo entry that decides its features (display-only fields dropped)."""
    values = entry.to_dict() if hasattr(entry, "to_dict") else dict(vars(entry))
    return {k: v for k, v in values.items() if k not in _DISPLAY_FIELDS}


def cache_key(spec: dict[str, Any], sample_key: str) -> str:
    """Stable hex key of a model spec and a dataset sample."""
    payload = json.dumps({"model": spec, "sample": sample_key}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass
class CachedFeatures:
    """Features of one model on one dataset sample."""

    features: torch.Tensor  # [N, D] float32
    positions: np.ndarray  # [N] positions in the sample that decoded (corrupt images are absent)
    source_logits: torch.Tensor | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def _cache_write_error(path: Path, exc: OSError) -> CacheError:
    if exc.errno == errno.ENOSPC:
        problem = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        problem = "permission denied"
    else:
        problem = exc.strerror or str(exc)
    return CacheError(f"cannot write the feature cache at {path} ({problem}). Free some space or pass a writable "
                      "folder with --cache-dir (or run with --no-cache); features already cached are kept.")


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
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, path)
        except OSError as exc:
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

    def load(self, key: str) -> CachedFeatures | None:
        """The complete entry ``key``, or None (missing, unfinished or unreadable)."""
        folder = self.root / key
        try:
            manifest = json.loads((folder / _MANIFEST_FILE).read_text(encoding="utf-8"))
            features, positions, logits = self._read(folder / _FEATURES_FILE)
        except (OSError, ValueError, KeyError):
            return None
        return CachedFeatures(features=features, positions=positions, source_logits=logits, manifest=manifest)

    def save(self, key: str, features: CachedFeatures) -> None:
        """Store a complete entry (tensors first, manifest last) and drop its partial chunks."""
        from safetensors.torch import save_file

        folder = self.root / key
        tensors = self._tensors(features.features, features.positions, features.source_logits)
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
            except (OSError, ValueError, KeyError):
                continue  # a torn file cannot exist (atomic rename), but a foreign one is simply ignored
        return chunks

    def entries(self) -> list[dict[str, Any]]:
        """Manifests of all complete entries, plus size on disk (``bytes``)."""
        result = []
        for manifest_path in sorted(self.root.glob(f"*/{_MANIFEST_FILE}")) if self.root.is_dir() else []:
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
        return sorted(p.parent.parent.name for p in self.root.glob(f"*/{_CHUNKS_DIR}/*.safetensors")
                      if not (p.parent.parent / _MANIFEST_FILE).exists())

    def clear(self, *, model: str | None = None, dataset: str | None = None) -> int:
        """Delete entries (all, or those whose manifest matches ``model``/``dataset``); returns how many."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for folder in [p for p in self.root.iterdir() if p.is_dir()]:
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
