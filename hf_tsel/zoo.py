"""Model zoos: named lists of backbones to rank, read from YAML.

A zoo file looks like::

    name: my-zoo
    description: what the zoo is for
    models:
      - name: resnet50-tv              # unique display name
        hub_id: timm/resnet50.tv_in1k  # Hub repo, local folder/file, or <scheme>:<name> (hf_tsel.sources) or $HF_TSEL_HOME/<path>
        loader: timm                   # timm | transformers | checkpoint | onnx
        family: supervised-cnn
        pretraining: supervised
        license: bsd-3-clause
        source_reference: my-org/imagenet-1k-val-sample  # optional: source images (hf_tsel.source_reference)

Bundled zoos live in ``model_zoos/`` at the repository root and are installed as the package data
``hf_tsel.model_zoos`` (:func:`hf_tsel.paths.package_data`). :func:`load_zoo` also accepts the path
of a user YAML file.

Example:
    >>> [e.loader for e in load_zoo("supervised-cnn")][:1]
    ['timm']
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ZooError
from .hub_access import looks_like_local_path
from .paths import package_data, tsel_home
from .preprocess import ImageTransform
from .source_reference import SourceReference
from .sources import is_source_id, source_for

LOADERS = ("timm", "transformers", "checkpoint", "onnx")
POOLINGS = ("default", "avg", "token", "mean-patch", "pooler", "map")
PREPROCESSING_KEYS = frozenset(
    {"input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std", "resize_size", "layout", "channel_order", "scale"}
)


@dataclass(frozen=True)
class ZooEntry:
    """One backbone of a zoo: where to get it, how to load, pool and preprocess it."""

    name: str
    hub_id: str
    loader: str
    revision: str = "main"
    family: str = "unknown"
    pretraining: str = "unknown"
    pooling: str = "default"
    preprocessing: dict = field(default_factory=dict)
    license: str = "unknown"
    architecture: str | None = None
    filename: str | None = None
    key_map: dict = field(default_factory=dict)
    output_node: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    notes: str = ""
    # Facts about the model, not about how to run it: params, imagenet_top1, feature_dim, pretraining_data
    # (see METADATA_KEYS); they feed the prior:* baseline metrics and never change the features.
    metadata: dict = field(default_factory=dict)
    # Images of the model's pre-training task (hf_tsel.source_reference.SourceReference fields) for the
    # source-mode persistence ratio; None: the model has no known source data.
    source_reference: dict | None = None

    def __hash__(self) -> int:  # dict fields make the generated hash fail
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view (used in run metadata and feature-cache keys)."""
        return asdict(self)


_ENTRY_FIELDS = {f.name for f in fields(ZooEntry)}
HOME_PLACEHOLDER = "$HF_TSEL_HOME"  # hub_id prefix for models built into the tool's home (the zoo benchmark)
METADATA_KEYS = {"params": int, "imagenet_top1": float, "feature_dim": int, "input_size": int, "pretraining_data": str,
                 "source": str}
_ZOO_FIELDS = {"name", "description", "models", "gaps", "query"}  # query: the Hub search that wrote the zoo (hub_zoo)


def list_zoos() -> list[str]:
    """Names of the bundled zoos (``model_zoos/*.yaml``)."""
    return sorted(p.stem for p in package_data("model_zoos").glob("*.yaml"))


def zoo_path(name_or_path: str | Path) -> Path:
    """Path of a bundled zoo name or of an existing user YAML file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise ZooError(f"zoo file {candidate} does not exist; pass an existing YAML file or one of {list_zoos()}")
        return candidate
    path = package_data("model_zoos") / f"{name_or_path}.yaml"
    if path.is_file():
        return path
    raise ZooError(f"unknown zoo {str(name_or_path)!r}; bundled zoos are {list_zoos()}, or pass the path of a YAML file")


def load_zoo(name_or_path: str | Path) -> list[ZooEntry]:
    """Read and validate a bundled zoo (by name) or a user zoo YAML file (by path); ``hub:QUERY`` zoos are
    :func:`hf_tsel.hub_zoo.load_zoo_or_search`'s."""
    path, document = _read_document(name_or_path)
    raw_models = document["models"]
    if not raw_models:
        raise ZooError(f"{path}: the zoo lists no models; add at least one entry under 'models:'")
    entries = [parse_entry(raw, where=f"{path} entry {i + 1}", base_dir=path.parent) for i, raw in enumerate(raw_models)]
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ZooError(f"{path}: duplicate model name {entry.name!r}; names must be unique within a zoo")
        seen.add(entry.name)
    return entries


def zoo_metadata(name_or_path: str | Path) -> dict[str, Any]:
    """Zoo-level fields: ``name``, ``description``, ``gaps`` (models that could not be included, and why), ``path``
    and ``query`` (the Hub search that wrote the zoo, else None)."""
    path, document = _read_document(name_or_path)
    return {
        "name": document.get("name", path.stem),
        "description": " ".join(str(document.get("description", "")).split()),
        "gaps": document.get("gaps", []),
        "path": str(path),
        "query": document.get("query"),
    }


def _read_document(name_or_path: str | Path) -> tuple[Path, dict[str, Any]]:
    path = zoo_path(name_or_path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ZooError(f"{path} is not a UTF-8 text file (is it a zoo YAML at all?)",
                       fix="pass a zoo YAML file saved as UTF-8, or a bundled zoo name (`hf-tsel zoo list`).") from None
    except OSError as exc:
        raise ZooError(f"cannot read the zoo file {path} ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ZooError(f"{path} is not valid YAML ({problem}{where})", fix="correct the YAML syntax there.") from None
    if isinstance(document, list):
        document = {"models": document}
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise ZooError(f"{path}: expected a mapping with a 'models:' list (or a bare list of model entries)")
    unknown = sorted(set(document) - _ZOO_FIELDS)
    if unknown:
        raise ZooError(f"{path}: unknown top-level field(s) {unknown}; valid fields are {sorted(_ZOO_FIELDS)}")
    gaps = document.get("gaps", [])
    if not isinstance(gaps, list) or not all(isinstance(g, dict) and {"model", "reason"} <= set(g) for g in gaps):
        raise ZooError(f"{path}: 'gaps' must be a list of {{model: ..., reason: ...}} mappings")
    return path, document


def parse_entry(raw: Any, *, where: str = "model entry", base_dir: Path | None = None) -> ZooEntry:
    """Validate one YAML mapping and turn it into a :class:`ZooEntry`.

    ``./`` and ``../`` paths in ``hub_id`` are relative to ``base_dir`` (the zoo file's folder);
    ``$HF_TSEL_HOME/...`` paths are relative to the tool's home (``$HF_TSEL_HOME`` or ``~/.cache/hf-tsel``).
    """
    if isinstance(raw, str):  # a bare "ORG/NAME" (or path) line in a zoo file
        try:
            return entry_for_model(resolve_location(raw, base_dir))
        except ZooError as exc:
            raise ZooError(f"{where} ({raw}): {exc.problem}", fix=exc.fix) from None
    if not isinstance(raw, dict):
        raise ZooError(f"{where}: expected a mapping with at least 'hub_id', got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    if unknown:
        raise ZooError(f"{where}: unknown field(s) {unknown}; valid fields are {sorted(_ENTRY_FIELDS)}")
    hub_id = raw.get("hub_id")
    if not isinstance(hub_id, str) or not hub_id.strip():
        raise ZooError(f"{where}: missing 'hub_id' (a Hub repo such as 'timm/resnet50.tv_in1k' or a local path)")
    values = dict(raw)
    values["hub_id"] = hub_id = resolve_location(hub_id, base_dir)
    if "loader" not in values:
        values["loader"] = guess_loader(hub_id)
    values.setdefault("name", default_name(hub_id))
    where = f"{where} ({values['name']})"
    for key in ("name", "loader", "revision", "family", "pretraining", "pooling", "license", "notes"):
        if key in values and not isinstance(values[key], str):
            raise ZooError(f"{where}: {key!r} must be a string, got {values[key]!r}")
    _check_metadata(values.get("metadata", {}), where)
    if values.get("source_reference") is not None:
        reference = SourceReference.parse(values["source_reference"], where=where)
        values["source_reference"] = {**reference.to_dict(), "dataset": resolve_location(reference.dataset, base_dir)}
    for key in ("preprocessing", "key_map", "model_kwargs"):
        if not isinstance(values.get(key, {}), dict):
            raise ZooError(f"{where}: {key!r} must be a mapping, got {values[key]!r}")
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in values.get("key_map", {}).items()):
        raise ZooError(f"{where}: key_map maps key prefixes to new prefixes (strings, '' strips) or null (drops)")
    if values["loader"] not in LOADERS:
        raise ZooError(f"{where}: unknown loader {values['loader']!r}; use one of {list(LOADERS)}")
    if values.get("pooling", "default") not in POOLINGS:
        raise ZooError(f"{where}: unknown pooling {values['pooling']!r}; use one of {list(POOLINGS)}")
    bad_pre = sorted(set(values.get("preprocessing", {})) - PREPROCESSING_KEYS)
    if bad_pre:
        raise ZooError(f"{where}: unknown preprocessing key(s) {bad_pre}; valid keys are {sorted(PREPROCESSING_KEYS)}")
    _check_preprocessing(values.get("preprocessing", {}), where)
    if values["loader"] == "checkpoint" and not (values.get("architecture") and values.get("filename")):
        raise ZooError(f"{where}: the checkpoint loader needs 'architecture' (a timm model name) and 'filename' (file in the repo)")
    if values["loader"] == "onnx" and not values.get("filename") and not _is_local_file(hub_id) and not is_source_id(hub_id):
        raise ZooError(f"{where}: the onnx loader needs 'filename' (the .onnx file inside the repo) unless hub_id is a local .onnx file")
    if values.get("filename") is not None and not isinstance(values["filename"], str):
        raise ZooError(f"{where}: 'filename' must be a string")
    return ZooEntry(**values)


def resolve_location(location: str, base_dir: Path | None) -> str:
    """``$HF_TSEL_HOME/...`` (the tool's home) and, given the zoo file's folder, ``./`` / ``../`` paths made
    absolute; Hub ids and other paths are returned unchanged."""
    if location.startswith(HOME_PLACEHOLDER + "/"):
        return str(tsel_home() / location[len(HOME_PLACEHOLDER) + 1:])
    if base_dir is not None and location.startswith(("./", "../")):
        return str((base_dir / location).resolve())
    return location


def _check_metadata(metadata: Any, where: str) -> None:
    if not isinstance(metadata, dict):
        raise ZooError(f"{where}: 'metadata' must be a mapping, got {metadata!r}")
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise ZooError(f"{where}: unknown metadata key(s) {unknown}; valid keys are {sorted(METADATA_KEYS)}")
    for key, value in metadata.items():
        kind = METADATA_KEYS[key]
        ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
                               else isinstance(value, kind) and not isinstance(value, bool))
        if not ok:
            raise ZooError(f"{where}: metadata {key!r} must be {kind.__name__} or null, got {value!r}")


def _check_preprocessing(preprocessing: dict[str, Any], where: str) -> None:
    """Build the preprocessing overrides once, so a bad value is reported before any model downloads."""
    try:
        ImageTransform(**preprocessing)
    except (ValueError, TypeError) as exc:
        raise ZooError(f"{where}: invalid preprocessing {preprocessing}: {exc}",
                       fix="correct the 'preprocessing' mapping of this entry in the zoo file.") from None


def guess_loader(model_id: str) -> str:
    """Loader for an ad-hoc model id: timm for ``timm/...`` repos and timm names, else transformers."""
    source = source_for(model_id)
    if source is not None:
        return source.loader(model_id)
    if model_id.startswith(("timm/", "hf-hub:")):
        return "timm"
    if model_id.endswith(".onnx"):
        return "onnx"
    local = Path(model_id).expanduser()
    if local.is_dir():
        config = local / "config.json"
        if config.is_file() and "architecture" in json.loads(config.read_text(encoding="utf-8")):
            return "timm"
        return "transformers"
    if "/" not in model_id:
        return "timm"  # a bare timm name such as "resnet50.tv_in1k"
    return "transformers"


def default_name(model_id: str) -> str:
    """Short display name derived from a model id (its last path component)."""
    return model_id.rstrip("/").split(":")[-1].split("/")[-1] or model_id


def find_model(name: str, entries: list[ZooEntry], *, zoo: str | Path | None, loader: str | None = None) -> ZooEntry:
    """The entry of ``entries`` named ``name`` (or with that hub id), else an ad-hoc entry for ``name``.

    With an explicit ``zoo``, a bare name that differs from an entry only in ``-``/``_``/``.``/case
    (``efficientnet_lite0`` for ``efficientnet-lite0``) is refused with a hint rather than resolved to
    a Hub model the user did not mean; a name that matches nothing gets the closest zoo names.
    """
    known = {e.name: e for e in entries}
    known.update({e.hub_id: e for e in entries})
    if name in known:
        return known[name]
    bare = "/" not in name and ":" not in name and not Path(name).expanduser().exists()
    if zoo is not None and bare:
        same = [e.name for e in entries if _plain(e.name) == _plain(name)]
        if same:
            raise ZooError(f"model {name!r} is not in zoo {str(zoo)!r}; did you mean {same[0]!r}?",
                           fix=f"pass --model {same[0]} (or a full Hub id to rank a model outside the zoo).")
    try:
        return entry_for_model(name, loader=loader)
    except ZooError as exc:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6) if bare else []
        if not close:
            raise
        raise ZooError(f"{exc.problem} Closest names in the zoo: {close}.", fix=exc.fix) from None


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def entry_for_model(model_id: str, *, loader: str | None = None) -> ZooEntry:
    """Zoo entry for an ad-hoc ``--model ORG/NAME`` (loader guessed unless given)."""
    if not model_id or not model_id.strip():
        raise ZooError("empty model id; pass a Hub id such as 'timm/resnet50.tv_in1k' or 'facebook/dino-vitb16'")
    model_id = model_id.strip()
    if model_id.startswith("hf-hub:"):
        model_id = model_id[len("hf-hub:"):]
    local = Path(model_id).expanduser()
    if looks_like_local_path(model_id) and not local.exists():
        raise ZooError(f"the local model path {model_id!r} does not exist (looked for {local.resolve()})",
                       fix="check the path for typos (a Hub model id has the form 'org/name').")
    source = source_for(model_id)
    if source is None and "/" not in model_id and not local.exists():
        model_id = _timm_hub_id(model_id)
    if source is not None and loader is None:
        known = source.zoo_entry(model_id)  # e.g. the preprocessing an ONNX graph needs
        if known is not None:
            return known
    raw: dict[str, Any] = {"name": default_name(model_id), "hub_id": model_id}
    if loader is not None:
        raw["loader"] = loader
    return parse_entry(raw, where=f"--model {model_id}")


def _timm_hub_id(name: str) -> str:
    """Hub repo of a bare timm name (an untagged name gets timm's default pretrained tag)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise ZooError(f"{name!r} is not a timm model with pretrained Hub weights; see timm.list_pretrained()")
    return cfg.hf_hub_id


def _is_local_file(hub_id: str) -> bool:
    return Path(hub_id).expanduser().is_file()
