"""A local stand-in for the Hugging Face Hub HTTP API, for tests of both the download and the upload side.

It speaks the subset of the Hub API that the real clients (``huggingface_hub``, ``datasets``, ``timm``,
``transformers``) call, with the Hub's headers and error codes:

- download: repo info (``/api/{type}s/{repo}[/revision/{rev}]``), tree listing, paths-info, and
  ``/[datasets/]{repo}/resolve/{rev}/{file}`` (GET and HEAD) with ``ETag``, ``X-Repo-Commit``,
  ``Content-Length`` and ``Range``. Like the Hub, LFS files (binary ones) are answered with a 302 to a
  separate "CDN" origin (a second listener) carrying ``X-Linked-Etag``/``X-Linked-Size``, so the client
  drops the ``Authorization`` header for the blob download;
- search: ``GET /api/models`` with ``search``, ``author``, ``filter`` (tags, every one required),
  ``pipeline_tag``, ``sort`` (descending), ``limit``, ``expand``/``full``, paginated by a ``Link: rel="next"``
  header (:attr:`HubServer.page_size` models per page). Model info and listings derive ``tags``,
  ``library_name``, ``pipeline_tag`` and ``cardData`` (``model-index`` included) from the README's YAML
  header, ``config`` from ``config.json`` and ``safetensors`` (parameter count per dtype) from the headers
  of the ``.safetensors`` files, as the Hub does; ``downloads``/``likes`` are set per repo;
- errors: 404/401 ``RepoNotFound``, 404 ``RevisionNotFound`` and ``EntryNotFound`` (with
  ``X-Repo-Commit``), 401/403 ``GatedRepo`` for gated repos (metadata stays public, files do not);
- upload: create repo, preupload, NDJSON commit (HTTP 412 on a stale ``parentCommit``), LFS batch +
  PUT, ``validate-yaml``, Space variables. Clients must run with ``HF_HUB_DISABLE_XET=1``.

Tests seed repos with :meth:`HubServer.add_repo` / :meth:`HubServer.commit`, can make a blob's download
die half-way (:meth:`HubServer.cut_download`) and inspect :attr:`HubServer.requests`. Both listeners bind
127.0.0.1 on ephemeral ports and stop when the ``with`` block ends::

    with HubServer() as hub:
        sha = hub.add_repo("org/tiny", {"config.json": b"{}", "model.safetensors": weights})
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", ...}
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import yaml

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
_CDN_BLOB = re.compile(r"^/([0-9a-f]{64})/(.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_SORT_KEYS = {"downloads": "downloads", "likes": "likes", "lastModified": "lastModified", "createdAt": "createdAt",
              "trendingScore": "likes"}
_BASIC_FIELDS = ("id", "likes", "downloads", "tags", "pipeline_tag", "library_name", "createdAt", "private")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_binary(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return b"\0" in sample


@dataclass
class StoredFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def entry(self, path: str) -> dict:
        info = {"type": "file", "path": path, "size": len(self.data), "oid": git_blob_sha1(self.data)}
        if self.lfs:
            info["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": 130}
        return info


@dataclass
class Commit:
    sha: str
    parent: str | None
    title: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    sdk: str | None
    private: bool
    gated: bool = False
    commits: list[Commit] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    downloads: int = 0
    likes: int = 0
    created: int = 0  # creation order, the createdAt sort key

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def commit(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.sha == revision), None)


@dataclass(frozen=True)
class Request:
    """One request as the server saw it (``server`` is ``"api"`` or ``"cdn"``)."""

    server: str
    method: str
    path: str
    authorization: str | None
    range: str | None


class HubServer:
    """In-memory Hub served over HTTP on 127.0.0.1 (threads of the calling process).

    ``hold_commits=n`` makes the first ``n`` commit requests wait for each other (up to 30 s) before any is
    applied, so concurrent pushers are guaranteed to race on the same parent commit.
    """

    def __init__(self, *, hold_commits: int = 0, page_size: int = 100) -> None:
        self.page_size = page_size  # models per page of a search (the Hub: up to 1000)
        self._facts: dict[str, dict] = {}  # commit sha -> fields read from its files (README, config, safetensors)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.conflicts = 0
        self._cut: dict[str, bool] = {}  # sha256 -> whether its truncated download was already served
        self._lock = threading.Lock()
        self._hold = threading.Barrier(hold_commits, timeout=30) if hold_commits > 1 else None
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self, name)) for name in ("api", "cdn")]
        for server in self._servers:
            server.daemon_threads = True

    @property
    def url(self) -> str:
        """The Hub endpoint (``HF_ENDPOINT``)."""
        return _address(self._servers[0])

    @property
    def cdn_url(self) -> str:
        """Where LFS downloads are redirected to (another origin, as the Hub's CDN)."""
        return _address(self._servers[1])

    @property
    def authorizations(self) -> list[str]:
        return [r.authorization for r in self.requests if r.authorization]

    def __enter__(self) -> "HubServer":
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # -- seeding and inspection helpers for tests -------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "model", gated: bool = False,
                 message: str = "add files", downloads: int = 0, likes: int = 0) -> str:
        """Create a repo holding ``files`` (binary ones stored as LFS); returns the commit sha."""
        with self._lock:
            repo = self._create(repo_type, repo_id, None, private=False)
            repo.gated, repo.downloads, repo.likes = gated, downloads, likes
        return self.commit(repo_id, files, repo_type=repo_type, message=message)

    def commit(self, repo_id: str, files: dict[str, bytes], *, repo_type: str = "model",
               message: str = "update files") -> str:
        """Add or replace ``files`` on ``main``; returns the new commit sha."""
        operations = []
        for path, data in files.items():
            if _is_binary(data[:512]):
                oid = hashlib.sha256(data).hexdigest()
                self.lfs_objects[oid] = data
                operations.append({"key": "lfsFile", "value": {"path": path, "oid": oid}})
            else:
                operations.append({"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode()}})
        with self._lock:
            return self._apply(self.repo(repo_id, repo_type), {"summary": message}, operations).sha

    def cut_download(self, repo_id: str, path: str, *, repo_type: str = "model") -> None:
        """The next download of this file stops half-way, then the blob host dies: later requests get no answer."""
        self._cut[self.repo(repo_id, repo_type).head.files[path].sha256] = False

    def restore_downloads(self) -> None:
        """The blob host is back: cut files download normally again."""
        self._cut.clear()

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def file(self, repo_id: str, path: str, repo_type: str = "dataset") -> bytes:
        return self.repo(repo_id, repo_type).head.files[path].data

    # -- state changes (called with self._lock held) ----------------------------------------------
    def _create(self, repo_type: str, repo_id: str, sdk: str | None, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, sdk, private, created=len(self.repos))
        files = {".gitattributes": StoredFile(b"*.parquet filter=lfs diff=lfs merge=lfs -text\n", lfs=False)}
        repo.commits.append(Commit(hashlib.sha1(f"init {repo_type} {repo_id}".encode()).hexdigest(), None,
                                   "initial commit", files))
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def _apply(self, repo: Repo, header: dict, operations: list[dict]) -> Commit:
        files = dict(repo.head.files)
        for op in operations:
            key, value = op["key"], op["value"]
            path = value["path"]
            if key == "file":
                files[path] = StoredFile(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                if value["oid"] not in self.lfs_objects:
                    raise _HttpError(400, f"LFS object {value['oid']} for {path} was never uploaded")
                files[path] = StoredFile(self.lfs_objects[value["oid"]], lfs=True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise _HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: f for p, f in files.items() if not p.startswith(path.rstrip("/") + "/")}
            else:
                raise _HttpError(400, f"unsupported commit operation {key!r}")
        digest = hashlib.sha1(repo.head.sha.encode() + json.dumps(operations, sort_keys=True).encode()
                              + str(len(repo.commits)).encode())
        commit = Commit(digest.hexdigest(), repo.head.sha, header.get("summary", ""), files)
        repo.commits.append(commit)
        return commit


    def model_fields(self, repo: Repo, commit: Commit) -> dict:
        """Every field the Hub reports about a model repo at ``commit`` (``full=True``)."""
        facts = self._facts.get(commit.sha)
        if facts is None:
            facts = self._facts[commit.sha] = _file_facts(commit)
        card = facts["card"]
        tags = [str(t) for t in card.get("tags") or []]
        tags += [t for t in (card.get("library_name"), card.get("pipeline_tag")) if t]
        tags += [f"license:{card['license']}"] if card.get("license") else []
        tags += ["safetensors"] * bool(facts["safetensors"]) + ["custom_code"] * ("auto_map" in facts["config"])
        return {"id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.sha, "private": repo.private,
                "gated": "auto" if repo.gated else False, "disabled": False, "downloads": repo.downloads,
                "likes": repo.likes, "library_name": card.get("library_name"), "pipeline_tag": card.get("pipeline_tag"),
                "tags": list(dict.fromkeys(tags)), "cardData": card or None, "model-index": card.get("model-index"),
                "config": facts["config"] or None, "safetensors": facts["safetensors"],
                "createdAt": f"2026-01-01T00:00:{repo.created % 60:02d}.{repo.created // 60:03d}Z",
                "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(commit.files)]}


def _file_facts(commit: Commit) -> dict:
    """What the Hub reads from a commit's files: the README's YAML header, ``config.json``, safetensors headers."""
    readme = commit.files.get("README.md")
    card: dict = {}
    if readme is not None and readme.data.startswith(b"---"):
        card = yaml.safe_load(readme.data.split(b"---", 2)[1]) or {}
    config_file = commit.files.get("config.json")
    config = json.loads(config_file.data) if config_file is not None else {}
    counts: dict[str, int] = {}
    for path, stored in commit.files.items():
        if path.endswith(".safetensors"):
            for dtype, count in _safetensors_counts(stored.data).items():
                counts[dtype] = counts.get(dtype, 0) + count
    safetensors = {"parameters": counts, "total": sum(counts.values())} if counts else None
    return {"card": card, "config": config, "safetensors": safetensors}


def _safetensors_counts(data: bytes) -> dict[str, int]:
    """Parameters per dtype from a safetensors header (8-byte length, then JSON): the file's data is never read."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    counts: dict[str, int] = {}
    for name, tensor in header.items():
        if name != "__metadata__":
            size = 1
            for dim in tensor["shape"]:
                size *= dim
            counts[tensor["dtype"]] = counts.get(tensor["dtype"], 0) + size
    return counts


def safetensors_header_only(parameters: int, dtype: str = "F32") -> bytes:
    """A safetensors header declaring one tensor of ``parameters`` values, without the data: enough for the Hub's
    metadata (and so for a search) at any size, not for loading."""
    header = json.dumps({"weight": {"dtype": dtype, "shape": [parameters],
                                    "data_offsets": [0, parameters * _DTYPE_BYTES[dtype]]}}).encode()
    return len(header).to_bytes(8, "little") + header


def _address(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


class _HttpError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_code, self.headers = status, message, error_code, headers or {}


def _handler_for(hub: HubServer, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # -- plumbing -----------------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            hub.requests.append(Request(server_name, method, path, self.headers.get("Authorization"),
                                        self.headers.get("Range")))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                if server_name == "cdn":
                    return self._cdn(method, path)
                answer = self._route(method, path, query, body)
                if answer is None:  # the route sent file content itself
                    return
                status, payload, headers = answer
            except _HttpError as err:  # the Hub's error headers, read by huggingface_hub's hf_raise_for_status
                headers = {"X-Error-Message": err.message, **err.headers,
                           **({"X-Error-Code": err.error_code} if err.error_code else {})}
                status, payload = err.status, {"error": err.message}
            self._send(method, status, payload, headers)

        def _send(self, method: str, status: int, payload, headers: dict, body_limit: int | None = None) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            headers.setdefault("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data[:body_limit])

        def _send_content(self, method: str, data: bytes, headers: dict, body_limit: int | None = None) -> None:
            """File content, honouring a ``Range: bytes=a-[b]`` header like the Hub and its CDN."""
            headers.update({"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"})
            match = _RANGE.match(self.headers.get("Range", ""))
            if match is None:
                return self._send(method, 200, data, headers, body_limit)
            start, end = int(match.group(1)), int(match.group(2) or len(data) - 1)
            if start >= len(data):
                return self._send(method, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(method, 206, data[start:end + 1], headers, body_limit)

        def _require_token(self) -> None:
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                raise _HttpError(401, "Invalid credentials in Authorization header")

        # -- the CDN: LFS blobs by sha256, and downloads that die half-way ------------------------
        def _cdn(self, method: str, path: str) -> None:
            match = _CDN_BLOB.match(path)
            if method not in ("GET", "HEAD") or match is None or match.group(1) not in hub.lfs_objects:
                return self._send(method, 404, b"NoSuchKey", {"Content-Type": "text/plain"})
            oid, data = match.group(1), hub.lfs_objects[match.group(1)]
            if oid not in hub._cut:
                return self._send_content(method, data, {"ETag": f'"{oid}"'})
            self.close_connection = True
            if not hub._cut[oid]:  # first download: headers promise everything, half the body comes, then EOF
                hub._cut[oid] = True
                self._send_content(method, data, {"ETag": f'"{oid}"'}, body_limit=len(data) // 2)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            # afterwards the host is dead: the connection closes without an answer

        # -- routes -------------------------------------------------------------------------------
        def _route(self, method: str, path: str, query: dict, body: bytes):
            if method in ("GET", "HEAD") and path == "/":  # the home page, e.g. for reachability probes
                return 200, b"<html>Hub stand-in</html>", {"Content-Type": "text/html"}
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(json.loads(body))
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body))
            if method == "PUT" and path.startswith("/lfs-upload/"):
                return self._lfs_put(path.rsplit("/", 1)[1], body)
            if method == "POST" and (match := _LFS_BATCH.match(path)):
                return self._lfs_batch(json.loads(body))
            if method in ("GET", "HEAD") and (match := _RESOLVE.match(path)):
                repo_type = {"datasets": "dataset", "spaces": "space", None: "model"}[match.group(1)]
                return self._resolve(method, self._repo(repo_type, match.group(2)), match.group(3), match.group(4))
            if method == "GET" and path == "/api/models":
                return self._search_models(query)
            if match := _API_REPO.match(path):
                repo = self._repo(match.group(1)[:-1], match.group(2))
                return self._repo_api(method, repo, match.group(3) or "", query, body)
            raise _HttpError(404, f"no such endpoint {method} {path}")

        def _repo(self, repo_type: str, repo_id: str) -> Repo:
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None:  # the Hub answers 401 to anonymous callers, so private repos stay hidden
                status = 404 if self.headers.get("Authorization") else 401
                raise _HttpError(status, "Repository not found", "RepoNotFound")
            return repo

        def _create_repo(self, payload: dict):
            self._require_token()
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else \
                f"user/{payload['name']}"
            if repo_type == "space" and not payload.get("sdk"):
                raise _HttpError(400, "sdk is required for Spaces")
            url = f"{hub.url}/{_PREFIX[repo_type]}{repo_id}"
            with hub._lock:
                if (repo_type, repo_id) in hub.repos:  # the Hub answers 409 with the url of the existing repo
                    return 409, {"error": "You already created this repo", "url": url}, {}
                hub._create(repo_type, repo_id, payload.get("sdk"), payload.get("visibility") == "private")
            return 200, {"url": url, "name": repo_id}, {}

        def _validate_yaml(self, payload: dict):
            content = payload["content"]
            if content.startswith("---"):
                try:
                    yaml.safe_load(content.split("---", 2)[1])
                except yaml.YAMLError as err:
                    return 400, {"errors": [{"message": str(err)}]}, {}
            return 200, {"errors": [], "warnings": []}, {}

        def _repo_api(self, method: str, repo: Repo, rest: str, query: dict, body: bytes):
            action, _, tail = rest.partition("/")
            if method == "GET" and action in ("", "revision") and repo.repo_type == "model":
                fields = hub.model_fields(repo, self._commit(repo, tail or "main"))
                expand = query.get("expand", []) + query.get("expand[]", [])
                return 200, {k: v for k, v in fields.items() if not expand or k in ("id", *expand)}, {}
            if method == "GET" and action in ("", "revision"):
                commit = self._commit(repo, tail or "main")
                return 200, {"id": repo.repo_id, "sha": commit.sha, "private": repo.private, "sdk": repo.sdk,
                             "gated": "auto" if repo.gated else False, "disabled": False,
                             "lastModified": "2026-01-01T00:00:00.000Z",
                             "siblings": [{"rfilename": p} for p in sorted(commit.files)]}, {}
            if method == "GET" and action == "tree":
                revision, _, folder = tail.partition("/")
                return 200, self._tree(self._commit(repo, revision), folder, "true" in query.get("recursive", [])), {}
            if method == "POST" and action == "paths-info":
                paths = parse_qs(body.decode()).get("paths", [])
                commit = self._commit(repo, tail)
                return 200, [commit.files[p].entry(p) for p in paths if p in commit.files], {}
            if method == "POST" and action == "preupload":
                return self._preupload(repo, tail, json.loads(body))
            if method == "POST" and action == "commit":
                return self._commit_request(repo, tail, body)
            if method == "POST" and action == "variables" and repo.repo_type == "space":
                self._require_token()
                payload = json.loads(body)
                repo.variables[payload["key"]] = payload["value"]
                return 200, {k: {"value": v, "updatedAt": "2026-01-01T00:00:00.000Z"}
                             for k, v in repo.variables.items()}, {}
            raise _HttpError(404, f"no such endpoint {method} {rest}")

        def _search_models(self, query: dict):
            """``/api/models``: public model repos matching every filter, sorted, one page and a ``Link`` to the next."""
            def first(name: str) -> str | None:
                return (query.get(name) or [None])[0]

            search, author, pipeline = (first("search") or "").lower(), first("author"), first("pipeline_tag")
            wanted = query.get("filter", []) + query.get("filter[]", [])
            expand = query.get("expand", []) + query.get("expand[]", [])
            with hub._lock:
                repos = [r for r in hub.repos.values() if r.repo_type == "model" and not r.private]
            found = []
            for repo in repos:
                if search not in repo.repo_id.lower() or (author and repo.repo_id.split("/")[0] != author):
                    continue
                fields = hub.model_fields(repo, repo.head)
                if (pipeline and fields["pipeline_tag"] != pipeline) or not set(wanted) <= set(fields["tags"]):
                    continue
                found.append(fields)
            sort = first("sort")
            if sort is not None:
                if sort not in _SORT_KEYS:
                    raise _HttpError(400, f"invalid sort {sort!r}")
                found.sort(key=lambda f: f[_SORT_KEYS[sort]], reverse=True)
            start = int(first("cursor") or 0)
            size = min(int(first("limit") or hub.page_size), hub.page_size)
            keep = ("id", *expand) if expand else (None if first("full") else _BASIC_FIELDS)
            page = [{k: v for k, v in f.items() if keep is None or k in keep} for f in found[start:start + size]]
            headers = {}
            if start + size < len(found):
                rest = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
                rest.append(("cursor", str(start + size)))
                headers["Link"] = f'<{hub.url}/api/models?{urlencode(rest)}>; rel="next"'
            return 200, page, headers

        def _commit(self, repo: Repo, revision: str) -> Commit:
            commit = repo.commit(unquote(revision))
            if commit is None:
                raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return commit

        def _tree(self, commit: Commit, folder: str, recursive: bool) -> list[dict]:
            prefix = folder.strip("/") + "/" if folder.strip("/") else ""
            entries, folders = [], set()
            for path in sorted(commit.files):
                if not path.startswith(prefix):
                    continue
                parts = path[len(prefix):].split("/")
                for depth in range(1, len(parts)):
                    folders.add(prefix + "/".join(parts[:depth]))
                if recursive or len(parts) == 1:
                    entries.append(commit.files[path].entry(path))
            for name in sorted(folders):
                if recursive or "/" not in name[len(prefix):]:
                    entries.append({"type": "directory", "path": name, "oid": hashlib.sha1(name.encode()).hexdigest()})
            return entries

        def _preupload(self, repo: Repo, revision: str, payload: dict):
            commit = self._commit(repo, revision)
            files = []
            for item in payload["files"]:
                lfs, existing = _is_binary(base64.b64decode(item["sample"])), commit.files.get(item["path"])
                oid = existing and (existing.sha256 if lfs else git_blob_sha1(existing.data))
                files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                              "shouldIgnore": False, "oid": oid})
            return 200, {"files": files}, {}

        def _lfs_batch(self, payload: dict):
            self._require_token()
            objects = []
            for obj in payload["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs_objects:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            return 200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"}

        def _lfs_put(self, oid: str, body: bytes):
            if hashlib.sha256(body).hexdigest() != oid:
                raise _HttpError(400, "uploaded content does not match its sha256")
            hub.lfs_objects[oid] = body
            return 200, b"", {}

        def _commit_request(self, repo: Repo, revision: str, body: bytes):
            self._require_token()
            if unquote(revision) != "main":
                raise _HttpError(400, "the Hub stand-in only commits to main")
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            operations = [line for line in lines if line["key"] != "header"]
            if (hold := hub._hold) is not None:
                try:
                    hold.wait()
                except threading.BrokenBarrierError:
                    pass
                hub._hold = None  # only the first racing commits are held; retries go straight through
            with hub._lock:
                parent = header.get("parentCommit")
                if parent is not None and parent != repo.head.sha:
                    hub.conflicts += 1
                    raise _HttpError(412, "A commit has happened since. Please refresh and try again.")
                commit = hub._apply(repo, header, operations)
            url = f"{hub.url}/{_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
            return 200, {"commitUrl": url, "commitOid": commit.sha, "success": True}, {}

        def _resolve(self, method: str, repo: Repo, revision: str, path: str):
            commit = self._commit(repo, revision)
            if repo.gated:  # anonymous callers get 401, tokens without granted access 403
                status = 403 if self.headers.get("Authorization") else 401
                raise _HttpError(status, f"Access to {repo.repo_type} {repo.repo_id} is restricted and you are not "
                                 "in the authorized list.", "GatedRepo")
            stored = commit.files.get(path)
            if stored is None:
                raise _HttpError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
            headers = {"ETag": f'"{git_blob_sha1(stored.data)}"', "X-Repo-Commit": commit.sha}
            if not stored.lfs:
                return self._send_content(method, stored.data, headers)
            headers.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(stored.data)),
                            "Location": f"{hub.cdn_url}/{stored.sha256}/{quote(path.rsplit('/', 1)[-1])}"})
            return 302, b"", headers

    for method in ("GET", "HEAD", "POST", "PUT"):  # http.server calls do_<METHOD>
        setattr(Handler, f"do_{method}", lambda self, method=method: self._dispatch(method))
    return Handler
