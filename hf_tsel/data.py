"""Target datasets: load one split, find its image and label columns, draw a stratified sample.

Sources: a Hub dataset id (``org/name``, with ``config``/``split``/``revision``), a local folder
(an imagefolder ``root/<split>/<class>/*.png``, a folder of parquet files, or a
``save_to_disk`` folder), or a :class:`datasets.Dataset` / :class:`datasets.DatasetDict` object.

Example:
    >>> data = load_image_dataset("uoft-cs/cifar10", split="test", samples_per_class=10)  # doctest: +SKIP
    >>> data.num_samples, data.num_classes  # doctest: +SKIP
    (100, 10)
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError, MissingSplitError
from .hub_access import is_hub_repo_id, looks_like_local_path, require_hub
from .sampling import shuffled_by_class

__all__ = ["DataError", "CorruptImageError", "ImageDataset", "load_image_dataset", "stratified_sample",
           "from_arrays"]

logger = logging.getLogger(__name__)

_LABEL_NAMES = ("label", "labels", "fine_label", "class", "target", "category", "y")
_SCRIPT_ERROR = "Dataset scripts are no longer supported"
PARQUET_REVISION = "refs/convert/parquet"


_EXIF_ORIENTATION = 0x0112  # EXIF tag: how the stored pixels must be turned to show the picture upright


class CorruptImageError(ValueError):
    """One image could not be decoded (counted and skipped by the extraction)."""


@dataclass
class ImageDataset:
    """A stratified sample of one split, ready for feature extraction.

    ``dataset`` holds only the sampled rows and only the image column (not decoded);
    ``labels[i]`` is the class index (into ``class_names``) of row ``i``; ``indices[i]`` is the
    row's index in the full split.
    """

    dataset: Any  # datasets.Dataset
    image_column: str
    label_column: str
    labels: np.ndarray
    class_names: list[str]
    indices: np.ndarray
    name: str
    split: str
    fingerprint: str
    config: str | None = None
    revision: str | None = None

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(np.unique(self.labels))

    @property
    def sample_key(self) -> str:
        """Hash of everything that decides which images, in which order, with which labels."""
        digest = hashlib.sha256()
        for part in (self.fingerprint, self.config or "", self.split, self.image_column, self.label_column):
            digest.update(part.encode() + b"\0")
        digest.update(np.ascontiguousarray(self.indices, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def describe(self, position: int) -> str:
        """Where sample ``position`` comes from, for a message: its row in the split and its file name if known."""
        value = self.dataset[int(position)][self.image_column]
        path = value.get("path") if isinstance(value, dict) else None
        return f"row {int(self.indices[position])}" + (f" ({path})" if path else "")

    def load_image(self, position: int) -> Image.Image:
        """Decode sample ``position`` as an RGB image; raises :class:`CorruptImageError` if unreadable."""
        value = self.dataset[int(position)][self.image_column]
        try:
            if isinstance(value, Image.Image):
                image = value
            elif value.get("bytes") is not None:
                image = Image.open(io.BytesIO(value["bytes"]))
            else:
                image = Image.open(value["path"])
            image.load()
            # cameras store the pixels as shot and the rotation in EXIF: the model must see the picture upright
            if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
        except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
            raise CorruptImageError(f"row {int(self.indices[position])}: {exc}") from None
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            # Composite on white: dropping alpha would reveal arbitrary colours under transparent pixels.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        return _to_8bit(image).convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float greyscale images to 8 bits (``convert`` would clip them to white).

    ``I;16*`` and ``I`` (Pillow's mode for 16-bit PNGs) are read as 16-bit data when their values
    fit in 0..65535; ``F`` as 0..1 when they fit. Other ranges are stretched from their minimum to
    their maximum.
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    array = np.asarray(image, dtype=np.float64)
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0 and high <= 1:
        array = array * 255
    elif low >= 0 and high <= 65535:
        array = array / 257
    else:
        array = (array - low) * (255 / (high - low)) if high > low else np.zeros_like(array)
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")


def _select_split(dataset_dict: Any, split: str, name: str) -> Any:
    if split not in dataset_dict:
        raise MissingSplitError(name, split, str(sorted(dataset_dict)))
    return dataset_dict[split]


def _unknown_split(exc: Exception, split: str, name: str) -> DataError | None:
    match = re.search(r"Unknown split \"[^\"]*\"\. Should be one of (\[.*\])", str(exc))
    if not match:
        return None
    return MissingSplitError(name, split, match.group(1))


def _load_local(path: Path, config: str | None, split: str) -> tuple[Any, str]:
    import datasets

    saved = (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
    if saved and config is not None:
        raise DataError(f"{path} was written by save_to_disk, which keeps no configurations; --config {config!r} "
                        "cannot be applied.", fix="drop --config.")
    if (path / "dataset_dict.json").is_file():
        return _select_split(datasets.load_from_disk(str(path)), split, str(path)), f"disk:{path}"
    if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
        dataset = datasets.load_from_disk(str(path))
        if split not in ("train", str(dataset.split)):
            raise DataError(f"{path} holds a single saved Dataset, which has no splits; --split {split!r} cannot be "
                            "applied.", fix="drop --split, or save a DatasetDict (dataset_dict.save_to_disk) to "
                            "choose among splits.")
        return dataset, f"disk:{path}"
    try:
        dataset = datasets.load_dataset(str(path), config, split=split)
    except ValueError as exc:
        error = _unknown_split(exc, split, str(path))
        if error:
            raise error from None
        raise DataError(f"could not read {path} as a dataset ({exc}). Use an imagefolder (<split>/<class>/*.jpg), "
                        "parquet files, or a folder written by Dataset.save_to_disk.") from None
    except FileNotFoundError as exc:
        raise DataError(f"no data files found in {path} ({exc}). Use an imagefolder (<split>/<class>/*.jpg), "
                        "parquet files, or a folder written by Dataset.save_to_disk.") from None
    if dataset.info.builder_name == "imagefolder" and "label" not in dataset.features:
        # imagefolder adds labels only when it finds two or more class folders
        raise DataError(f"the image folder {path} (split {split!r}) holds only one class (one class folder, or images "
                        "not sorted into class folders); transferability ranking needs at least 2 classes",
                        fix="put each class's images in its own folder: <split>/<class>/*.jpg.")
    return dataset, f"local:{path}"


def _load_hub(repo_id: str, config: str | None, split: str, revision: str | None) -> tuple[Any, str | None]:
    """Load a Hub split; returns the dataset and the resolved commit sha (None if unknown)."""
    import datasets
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE:
        # Offline, load_dataset(repo_id) only finds datasets prepared online before; a snapshot in
        # the Hub cache is loaded from its folder instead (README `configs` and split names honoured).
        try:
            folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, local_files_only=True))
        except LocalEntryNotFoundError:
            raise DataError(f"dataset {repo_id!r} is not in the local Hugging Face cache and offline mode is on "
                            "(HF_HUB_OFFLINE=1), and no local folder has that name. Run once online, or pass an "
                            "existing folder.") from None
        dataset, _ = _load_local(folder, config, split)
        return dataset, folder.name
    require_hub(f"dataset {repo_id!r}")
    try:
        dataset = _hub_load_dataset(repo_id, config, split, revision)
    except RuntimeError as exc:
        if _SCRIPT_ERROR not in str(exc):
            raise
        logger.warning("%s uses a loading script; reading its auto-converted parquet branch %s", repo_id, PARQUET_REVISION)
        revision = PARQUET_REVISION
        dataset = _hub_load_dataset(repo_id, config, split, revision)
    try:
        from huggingface_hub import HfApi

        sha = HfApi().dataset_info(repo_id, revision=revision).sha
    except Exception as exc:  # the data loaded; a failed metadata call only loses the pinned sha
        logger.warning("could not resolve the revision of %s (%s); the cache key uses its fingerprint", repo_id, exc)
        sha = None
    return dataset, sha


def _hub_load_dataset(repo_id: str, config: str | None, split: str, revision: str | None) -> Any:
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return datasets.load_dataset(repo_id, config, split=split, revision=revision)
    except DatasetNotFoundError as exc:  # datasets raises it for missing repos, missing revisions and gated repos
        if isinstance(exc.__cause__, RevisionNotFoundError):
            raise DataError(f"dataset {repo_id!r} has no revision {revision!r}.",
                            fix="pass a branch, tag or commit sha of the dataset with --revision.") from None
        if "gated dataset" in str(exc):  # datasets re-raises this one without its GatedRepoError cause
            raise DataError(f"dataset {repo_id!r} is gated and the Hub refused access to it.",
                            fix=f"accept its conditions on {constants.ENDPOINT}/datasets/{repo_id}, then log in with "
                                "`hf auth login` or set HF_TOKEN.") from None
        raise DataError(f"dataset {repo_id!r} was not found on the Hub ({exc}), and no local folder has that name. "
                        "Check the id or path (and your access for gated or private datasets: `hf auth login`).") from None
    except ValueError as exc:
        error = _unknown_split(exc, split, repo_id)
        if error:
            raise error from None
        if "BuilderConfig" in str(exc) or "Config name" in str(exc):
            raise DataError(f"dataset {repo_id!r}: {exc} Pass a valid --config.") from None
        raise


def _open_split(source: Any, config: str | None, split: str, revision: str | None) -> tuple[Any, str, str, str | None]:
    """Returns ``(dataset, display name, fingerprint, resolved revision)``."""
    import datasets

    if isinstance(source, datasets.DatasetDict):
        dataset = _select_split(source, split, "in-memory DatasetDict")
        return dataset, "in-memory", dataset._fingerprint, None
    if isinstance(source, datasets.Dataset):
        return source, source.info.dataset_name or "in-memory", source._fingerprint, None
    if not isinstance(source, (str, Path)):
        raise DataError(f"unsupported dataset {type(source).__name__}; pass a Hub id, a folder, or a datasets.Dataset")
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"{path} is a file; pass a dataset folder (imagefolder, parquet files or save_to_disk)")
        if revision is not None:
            raise DataError(f"--revision {revision!r} applies to Hub datasets, but {path} is a local folder",
                            fix="drop --revision (or pass the Hub dataset id).")
        dataset, _ = _load_local(path, config, split)
        return dataset, str(path), dataset._fingerprint, None
    if looks_like_local_path(text):
        raise DataError(f"the dataset folder {text!r} does not exist (looked for {path.resolve()})",
                        fix="check the path for typos (a Hub dataset id has the form 'org/name').")
    if not is_hub_repo_id(text, owner_optional=True):
        raise DataError(f"dataset {text!r} is neither an existing folder nor a Hub id like 'org/name'; "
                        "check the path or the id")
    dataset, sha = _load_hub(text, config, split, revision)
    fingerprint = f"hub:{text}@{sha}" if sha else dataset._fingerprint
    return dataset, text, fingerprint, sha


def _find_image_column(features: Any, requested: str | None) -> str:
    import datasets

    images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    if requested:
        if requested not in features:
            raise DataError(f"image column {requested!r} does not exist; columns: {list(features)}")
        if requested not in images:
            raise DataError(f"column {requested!r} is {features[requested]}, not an image column; "
                            f"image columns: {images or 'none'}")
        return requested
    if not images:
        raise DataError(f"no image column found (columns: {dict(features)}); the dataset needs a column of type "
                        "datasets.Image. If one holds image paths, cast it with dataset.cast_column(name, Image()).")
    return images[0]


def _label_kind(feature: Any) -> str:
    """'class', 'int', 'str', 'multi', 'float' or 'other'."""
    import datasets

    if isinstance(feature, datasets.ClassLabel):
        return "class"
    if isinstance(feature, (datasets.List, datasets.LargeList)):
        inner = feature.feature
        is_label = isinstance(inner, datasets.ClassLabel) or isinstance(inner, datasets.Value) and "int" in inner.dtype
        return "multi" if is_label else "other"
    if isinstance(feature, datasets.Value):
        if "int" in feature.dtype:
            return "int"
        if feature.dtype in ("string", "large_string"):
            return "str"
        if "float" in feature.dtype or "double" in feature.dtype:
            return "float"
    return "other"


_MULTI_LABEL = ("column {name!r} holds several labels per image (multi-label, e.g. VOC2007's 'classes'), which is "
                "not supported yet; pick a single-label column with --label-column, or reduce each image to one "
                "label first (e.g. its first class)")


def _find_label_column(features: Any, requested: str | None) -> str:
    if requested:
        if requested not in features:
            raise DataError(f"label column {requested!r} does not exist; columns: {list(features)}")
        kind = _label_kind(features[requested])
        if kind == "multi":
            raise DataError(_MULTI_LABEL.format(name=requested))
        if kind == "float":
            raise DataError(f"label column {requested!r} holds floats ({features[requested]}); transferability "
                            "ranking needs class labels (ClassLabel, integer or string), not regression targets")
        if kind == "other":
            raise DataError(f"label column {requested!r} has type {features[requested]}; it needs class labels "
                            "(ClassLabel, integer or string)")
        return requested
    kinds = {name: _label_kind(feature) for name, feature in features.items()}
    for name, kind in kinds.items():
        if kind == "class":
            return name
    for candidate in _LABEL_NAMES:
        if kinds.get(candidate) in ("int", "str"):
            return candidate
    for candidate in _LABEL_NAMES:
        if kinds.get(candidate) == "multi":
            raise DataError(_MULTI_LABEL.format(name=candidate))
        if kinds.get(candidate) == "float":
            raise DataError(f"column {candidate!r} holds floats; transferability ranking needs class labels. "
                            "Pass a class-label column with --label-column.")
    multi = [name for name, kind in kinds.items() if kind == "multi"]
    if multi:
        raise DataError(_MULTI_LABEL.format(name=multi[0]))
    raise DataError(f"no label column found (columns: {dict(features)}); name it with --label-column "
                    "(a ClassLabel, integer or string column)")


_NO_LABEL = -1  # the one "unlabelled" sentinel (datasets' ClassLabel, unlabelled test splits)


def _class_labels(dataset: Any, column: str) -> tuple[np.ndarray, list[str], np.ndarray, str]:
    """Returns ``(class index per labelled row, class names, row indices kept, what an unlabelled row holds)``.

    Only ``-1`` (integers, ClassLabel) and an empty or missing string mean "no label". Any other
    negative integer of a plain integer column is a class like the others; in a ClassLabel column it
    names no class, which is an error, not a row to drop silently.
    """
    import datasets

    feature = dataset.features[column]
    values = np.asarray(dataset.with_format("numpy")[column]) if len(dataset) else np.array([], dtype=np.int64)
    if isinstance(feature, datasets.ClassLabel):
        invalid = values[(values < 0) & (values != _NO_LABEL)]
        if len(invalid):
            raise DataError(f"the ClassLabel column {column!r} holds {int(invalid[0])} in {len(invalid)} row(s); only "
                            f"{_NO_LABEL} (no label) may be negative",
                            fix="fix those labels, or save the column as plain integers so every value is a class.")
        rows = np.flatnonzero(values != _NO_LABEL)
        return values[rows].astype(np.int64), list(feature.names), rows, f"labelled {_NO_LABEL} (no label)"
    if _label_kind(feature) == "str":
        values = np.array([str(v) if v is not None else "" for v in dataset[column]], dtype=object)
        rows = np.flatnonzero(values != "")
        sentinel = "with an empty or missing label"
    else:
        rows = np.flatnonzero(values != _NO_LABEL)
        sentinel = f"labelled {_NO_LABEL} (no label)"
    names, codes = np.unique(values[rows], return_inverse=True)
    return codes.astype(np.int64), [str(n) for n in names], rows, sentinel


def stratified_sample(labels: np.ndarray, *, samples_per_class: int | None = None, max_samples: int | None = None,
                      seed: int = 0) -> np.ndarray:
    """Sorted positions of a seeded, class-stratified sample of ``labels``.

    ``samples_per_class`` keeps up to K random samples of each class; ``max_samples`` then keeps N
    in total, allocated to classes in proportion to their size (largest remainder). Classes with
    fewer samples than asked keep all of theirs, with a warning.

    Example:
        >>> y = np.repeat([0, 1, 2], [10, 20, 30])
        >>> np.bincount(y[stratified_sample(y, max_samples=30)]).tolist()
        [5, 10, 15]
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    by_class = dict(zip(classes, shuffled_by_class(labels, classes, rng.permutation)))
    if samples_per_class is not None:
        if samples_per_class < 1:
            raise DataError(f"--samples-per-class must be at least 1, got {samples_per_class}")
        short = {c: len(rows) for c, rows in by_class.items() if len(rows) < samples_per_class}
        if short:
            listed = ", ".join(f"{c} ({n})" for c, n in list(short.items())[:8])
            warnings.warn(f"{len(short)} class(es) have fewer than the {samples_per_class} samples per class "
                          f"requested and keep all they have: {listed}", stacklevel=2)
        by_class = {c: rows[:samples_per_class] for c, rows in by_class.items()}
    total = sum(len(rows) for rows in by_class.values())
    if max_samples is not None:
        if max_samples < 1:
            raise DataError(f"--max-samples must be at least 1, got {max_samples}")
        if max_samples > total:
            warnings.warn(f"{max_samples} samples requested but only {total} are available; using all {total}",
                          stacklevel=2)
        else:
            sizes = np.array([len(rows) for rows in by_class.values()])
            quota = sizes * max_samples / total
            take = np.floor(quota).astype(int)
            order = np.argsort(-(quota - take), kind="stable")
            take[order[: max_samples - take.sum()]] += 1
            by_class = {c: rows[:k] for (c, rows), k in zip(by_class.items(), take)}
    chosen = [rows for rows in by_class.values() if len(rows)]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def _finish(dataset: Any, *, name: str, fingerprint: str, split: str, config: str | None, revision: str | None,
            image_column: str | None, label_column: str | None, samples_per_class: int | None,
            max_samples: int | None, seed: int) -> ImageDataset:
    import datasets

    image_column = _find_image_column(dataset.features, image_column)
    label_column = _find_label_column(dataset.features, label_column)
    codes, class_names, labelled_rows, sentinel = _class_labels(dataset, label_column)
    if len(labelled_rows) < len(dataset):
        warnings.warn(f"{len(dataset) - len(labelled_rows)} rows {sentinel} are skipped", stacklevel=3)
    positions = stratified_sample(codes, samples_per_class=samples_per_class, max_samples=max_samples, seed=seed)
    codes, rows = codes[positions], labelled_rows[positions]
    counts = np.bincount(codes, minlength=len(class_names))
    lonely = np.flatnonzero(counts == 1)
    if len(lonely):
        warnings.warn(f"{len(lonely)} class(es) have a single sample and are dropped (metrics need at least 2 per "
                      f"class): {[class_names[c] for c in lonely[:8]]}", stacklevel=3)
        keep = ~np.isin(codes, lonely)
        codes, rows = codes[keep], rows[keep]
    present = np.unique(codes)
    if len(present) < 2:
        if len(present):
            found = f"only class {class_names[present[0]]!r} with 2 or more samples"
        elif len(lonely):  # every class was drawn once (e.g. --samples-per-class 1): they are labelled, just alone
            found = f"a single sample in each of its {len(lonely)} class(es)"
        else:
            found = "no labelled samples"
        raise DataError(f"the sample of {name!r} (split {split!r}, column {label_column!r}) has {found}; "
                        "transferability ranking needs at least 2 classes with 2+ samples each. Use another split or "
                        "label column, or more samples.")
    sampled = dataset.select_columns([image_column]).select(rows)
    sampled = sampled.cast_column(image_column, datasets.Image(decode=False))
    return ImageDataset(dataset=sampled, image_column=image_column, label_column=label_column, labels=codes,
                        class_names=class_names, indices=rows.astype(np.int64), name=name, split=split,
                        fingerprint=fingerprint, config=config, revision=revision)


def load_image_dataset(source: Any, *, split: str = "train", config: str | None = None, revision: str | None = None,
                       image_column: str | None = None, label_column: str | None = None,
                       samples_per_class: int | None = None, max_samples: int | None = None,
                       seed: int = 0) -> ImageDataset:
    """Load one split of an image-classification dataset and draw a stratified sample.

    Args:
        source: Hub id (``"uoft-cs/cifar10"``), local folder, or ``datasets.Dataset``/``DatasetDict``.
        split, config, revision: which split, configuration and Hub revision to read. Script-based
            Hub datasets are read from their ``refs/convert/parquet`` branch.
        image_column, label_column: override the auto-detected columns (first ``Image`` column;
            first ``ClassLabel`` column, else an integer/string column named like ``label``).
        samples_per_class, max_samples, seed: stratified, seeded sampling (see :func:`stratified_sample`).

    An :class:`ImageDataset` (a sample already drawn) is returned as it is, whatever the other arguments.
    """
    if isinstance(source, ImageDataset):
        return source
    dataset, name, fingerprint, resolved = _open_split(source, config, split, revision)
    return _finish(dataset, name=name, fingerprint=fingerprint, split=split, config=config, revision=resolved,
                   image_column=image_column, label_column=label_column, samples_per_class=samples_per_class,
                   max_samples=max_samples, seed=seed)


def from_arrays(images: np.ndarray, labels: np.ndarray, class_names: list[str], *, name: str) -> Any:
    """A ``datasets.Dataset`` with ``Image`` + ``ClassLabel`` columns from uint8 ``[N, H, W(, C)]`` arrays."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names))})
    encoded = []
    for array in images:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    info = datasets.DatasetInfo(dataset_name=name, features=features)
    return datasets.Dataset.from_dict({"image": encoded, "label": np.asarray(labels).tolist()}, features=features,
                                      info=info)
