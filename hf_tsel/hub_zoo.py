"""Zoos from a Hub search: ``hf-tsel zoo search ...`` and ``--zoo "hub:QUERY"``.

A query lists the Hub's models (``HfApi.list_models``, one paginated listing per library, every fact
fetched in the listing itself: no request per model), turns each into a pinned zoo entry
(:func:`hf_tsel.hub_facts.entry_or_reason`) and keeps the first ``limit`` that pass the filters. Repos
that cannot be entries are listed as skipped with the reason. The query's text form is the ``hub:`` zoo
name and the ``query:`` field of a written zoo file::

    library=timm&max-params=30M&license=apache-2.0,mit&sort=downloads&limit=50

Keys: ``search`` (text in the repo id; a part without ``=`` is the search text too), ``library``
(timm, transformers; comma list), ``pipeline-tag``, ``tags`` (all required), ``author``, ``license``
(allow-list), ``max-params`` (``30M``, ``1.5B``, ``800k``), ``min-downloads``, ``sort`` (downloads,
likes, last_modified, created_at, trending_score; descending) and ``limit`` (default 50).

Example:
    >>> query = HubQuery.parse("library=timm&max-params=30M&limit=50")
    >>> query.max_params, str(query)
    (30000000, 'library=timm&max-params=30M&sort=downloads&limit=50')
    >>> parse_count("1.5B")
    1500000000
"""

from __future__ import annotations

import functools
import heapq
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator

import yaml

from .defaults import HUB_SORTS
from .errors import UserError, ZooError
from .hub_access import require_hub
from .hub_facts import SUPPORTED_LIBRARIES, entry_or_reason, license_of
from .zoo import ZooEntry, load_zoo, zoo_metadata

__all__ = ["HUB_PREFIX", "HubQuery", "HubSearch", "SORTS", "load_zoo_or_search", "parse_count", "search_hub",
           "write_zoo", "zoo_query"]

HUB_PREFIX = "hub:"
SORTS = HUB_SORTS
_EXPAND = ["sha", "library_name", "pipeline_tag", "tags", "gated", "downloads", "likes", "safetensors", "cardData",
           "config", "siblings", "createdAt", "lastModified", "trendingScore"]
_COUNT = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmbg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_count(text: str) -> int:
    """``"30M"`` -> 30000000 (k, M, B suffixes); raises ``ValueError`` saying the syntax."""
    match = _COUNT.match(str(text).strip())
    if not match:
        raise ValueError(f"expected a count such as 800k, 30M or 1.5B, got {text!r}")
    return int(round(float(match.group(1)) * _UNITS[match.group(2).lower()]))


def _format_count(value: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


@dataclass(frozen=True)
class HubQuery:
    """What to search the Hub for, and the limits a model must meet to enter the zoo."""

    search: str | None = None
    library: tuple[str, ...] = ("timm",)
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()
    author: str | None = None
    license: tuple[str, ...] = ()
    max_params: int | None = None
    min_downloads: int | None = None
    sort: str = "downloads"
    limit: int = 50

    def __post_init__(self) -> None:
        bad = [name for name in self.library if name not in SUPPORTED_LIBRARIES]
        if bad or not self.library:
            raise UserError(f"library {', '.join(bad) or '(none)'} is not supported; use {', '.join(SUPPORTED_LIBRARIES)}")
        if self.sort not in SORTS:
            raise UserError(f"unknown sort {self.sort!r}; use one of {', '.join(SORTS)}")
        if self.limit < 1 or (self.max_params is not None and self.max_params < 1):
            raise UserError("limit and max-params must be at least 1")

    @classmethod
    def parse(cls, text: str) -> "HubQuery":
        """A query from its text form (``key=value`` parts joined by ``&``); raises :class:`ZooError` on a mistake."""
        values: dict[str, Any] = {}
        names = {f.name.replace("_", "-"): f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in text.removeprefix(HUB_PREFIX).split("&"))):
            key, has_value, value = part.partition("=")
            key = key.strip().lower().replace("_", "-") if has_value else "search"
            value = value.strip() if has_value else part
            if key not in names:
                raise ZooError(f"unknown Hub search key {key!r} in {text!r}; valid keys are {sorted(names)}",
                               fix="write the query as key=value parts joined by '&', e.g. "
                                   "hub:library=timm&max-params=30M&limit=50")
            values[names[key]] = value
        try:
            return cls.build(**values)
        except (ValueError, UserError) as exc:
            raise ZooError(f"Hub search {text!r}: {exc}") from None

    @classmethod
    def build(cls, **values: Any) -> "HubQuery":
        """A query from option values (strings or typed; comma lists for library, tags and license)."""
        typed: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name in ("library", "tags", "license"):
                value = tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else tuple(value)
            elif name in ("max_params", "min_downloads"):
                value = parse_count(value) if isinstance(value, str) else int(value)
            elif name == "limit":
                value = int(value)
            typed[name] = value
        return cls(**typed)

    def __str__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, ()) or (f.name == "search" and not value):
                continue
            if f.name in ("max_params", "min_downloads"):
                value = _format_count(value)
            elif isinstance(value, tuple):
                value = ",".join(value)
            parts.append(f"{f.name.replace('_', '-')}={value}")
        return "&".join(parts)


@dataclass
class HubSearch:
    """What a search found: the entries (in the sort order), the repos skipped with why, and the filter counts."""

    query: HubQuery
    entries: list[ZooEntry] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"model": id, "reason": ...}
    filtered: dict[str, int] = field(default_factory=dict)  # filter -> repos it left out
    scanned: int = 0

    def summary(self) -> str:
        """One line: how many were scanned, kept, skipped and filtered out."""
        filtered = ", ".join(f"{count} by {name}" for name, count in self.filtered.items()) or "none"
        return (f"Hub search {self.query}: {self.scanned} repos scanned, {len(self.entries)} in the zoo, "
                f"{len(self.skipped)} skipped (reasons listed), filtered out: {filtered}")


def _filter_reason(query: HubQuery, info: Any, entry: ZooEntry) -> str | None:
    """Which filter (``max-params``, ``license``, ``min-downloads``) leaves the entry out; None if it passes."""
    params = entry.metadata.get("params")
    if query.max_params is not None and (params is None or params > query.max_params):
        return "max-params"
    if query.license and license_of(info) not in query.license:
        return "license"
    if query.min_downloads is not None and (info.downloads or 0) < query.min_downloads:
        return "min-downloads"
    return None


def _listing(query: HubQuery, library: str, token: bool | str | None) -> Iterator[Any]:
    from huggingface_hub import HfApi

    filters = [library, *query.tags]
    return iter(HfApi().list_models(filter=filters, search=query.search, author=query.author,
                                    pipeline_tag=query.pipeline_tag, sort=query.sort, expand=_EXPAND, token=token))


def _search_library(query: HubQuery, library: str, token: bool | str | None, has_token: bool,
                    found: HubSearch) -> list[tuple[Any, ZooEntry]]:
    """The first ``limit`` entries of one library's listing (a stream: pages are fetched only as needed)."""
    kept: list[tuple[Any, ZooEntry]] = []
    for info in _listing(query, library, token):
        found.scanned += 1
        if info.library_name != library:  # the tag filter also matches repos of another library tagged with it
            found.filtered["library"] = found.filtered.get("library", 0) + 1
            continue
        entry = entry_or_reason(info, has_token=has_token)
        if isinstance(entry, str):
            found.skipped.append({"model": info.id, "reason": entry})
            continue
        reason = _filter_reason(query, info, entry)
        if reason is not None:
            found.filtered[reason] = found.filtered.get(reason, 0) + 1
            continue
        kept.append((info, entry))
        if len(kept) == query.limit:
            break
    return kept


def _unique_names(entries: list[ZooEntry]) -> list[ZooEntry]:
    """Entry names are the repo names; two repos of one name (different authors) are told apart by ``author--``."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.name] = counts.get(e.name, 0) + 1
    return [replace(e, name=e.hub_id.replace("/", "--")) if counts[e.name] > 1 else e for e in entries]


def search_hub(query: HubQuery | str, *, token: bool | str | None = None) -> HubSearch:
    """Search the Hub (``HF_ENDPOINT``) and build a zoo from the result; one call per query and token per process.

    Each library is listed separately (the Hub's ``filter`` ANDs its terms); with several libraries the
    entries are merged by the sort key and cut to ``limit``. ``token``: as in ``huggingface_hub``
    (None: the saved token or ``HF_TOKEN``); it only decides whether gated repos are kept, and is never
    recorded.
    """
    if isinstance(query, str):
        query = HubQuery.parse(query)
    from huggingface_hub import constants, get_token

    has_token = bool(token) if token is not None else get_token() is not None
    return _cached_search(query, token, has_token, constants.ENDPOINT)


@functools.lru_cache(maxsize=8)
def _cached_search(query: HubQuery, token: bool | str | None, has_token: bool, endpoint: str) -> HubSearch:
    """The search of one query against one endpoint; a run that resolves its zoo twice asks the Hub once."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise UserError(f"a Hub search ({query}) needs the Hub, but offline mode is on (HF_HUB_OFFLINE=1)",
                        fix="unset HF_HUB_OFFLINE, or write the search result once with `hf-tsel zoo search -o ZOO.yaml` "
                            "and pass that file as --zoo.")
    require_hub(f"the model search {query}")
    from huggingface_hub.errors import HfHubHTTPError

    found = HubSearch(query)
    try:
        per_library = [_search_library(query, library, token, has_token, found) for library in query.library]
    except HfHubHTTPError as exc:  # a refused query or a Hub outage: say which search, not a client traceback
        raise UserError(f"the Hub refused the model search {query} ({' '.join(str(exc).split())})",
                        fix="check the filters (tags, author, pipeline tag) and retry later if the Hub is down.") from None
    merged = heapq.merge(*per_library, key=lambda pair: _sort_value(getattr(pair[0], query.sort, None)), reverse=True)
    found.entries = _unique_names([entry for _, entry in list(merged)[:query.limit]])
    return found


def _sort_value(value: Any) -> float:
    if value is None:
        return float("-inf")
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def _entry_yaml(entry: ZooEntry) -> dict[str, Any]:
    """The entry's fields that differ from the defaults (a short, readable zoo file)."""
    defaults = ZooEntry(name="", hub_id="", loader="")
    kept = {k: v for k, v in entry.to_dict().items() if k in ("name", "hub_id", "loader") or v != getattr(defaults, k)}
    if kept.get("source_reference"):
        kept["source_reference"] = {k: v for k, v in kept["source_reference"].items() if v is not None}
    return kept


def write_zoo(search: HubSearch, path: str | Path, *, name: str | None = None) -> Path:
    """Write the search result as a zoo YAML (entries pinned to their commit; skipped repos under ``gaps``)."""
    path = Path(path).expanduser()
    document = {
        "name": name or path.stem,
        "description": f"{len(search.entries)} models from a Hub search ({search.summary()}).",
        "query": str(search.query),
        "models": [_entry_yaml(e) for e in search.entries],
        "gaps": search.skipped,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    return path


def _usable_search(zoo: str) -> HubSearch:
    """The (per-process cached) search behind a ``hub:QUERY`` zoo; one with no usable model is an error."""
    search = search_hub(zoo)
    if not search.entries:
        skipped = "; ".join(f"{s['model']}: {s['reason']}" for s in search.skipped[:5])
        raise ZooError(f"{search.summary()}; no model can enter the zoo" + (f" (skipped: {skipped})" if skipped else ""),
                       fix="widen the search (another library, a larger max-params, fewer tags or licences).")
    return search


def load_zoo_or_search(zoo: str | Path) -> list[ZooEntry]:
    """:func:`hf_tsel.zoo.load_zoo`, or the entries of a Hub search for ``hub:QUERY`` (what ``--zoo`` accepts)."""
    return _usable_search(str(zoo)).entries if str(zoo).startswith(HUB_PREFIX) else load_zoo(zoo)


def zoo_query(zoo: str | Path) -> str | None:
    """The Hub search behind ``zoo``: the query of a ``hub:QUERY`` zoo, or the one a ``hf-tsel zoo search`` file
    records (None for a zoo written by hand). Nothing is searched: the query is read, not run."""
    if str(zoo).startswith(HUB_PREFIX):
        return str(HubQuery.parse(str(zoo)))
    return zoo_metadata(zoo)["query"]
