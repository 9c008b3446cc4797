"""A small in-memory Hugging Face Hub for offline tests of the publishing code.

It speaks the subset of the Hub HTTP API that ``huggingface_hub`` 2.x uses for ``create_repo``,
``create_commit``/``upload_folder`` (preupload, NDJSON commit, LFS batch + PUT), ``repo_info``,
``list_repo_tree``, ``get_paths_info``, ``hf_hub_download``, ``snapshot_download`` and
``add_space_variable``. Commits get real sha1 ids and a commit whose ``parentCommit`` is not the branch
head is refused with HTTP 412, like the Hub. Clients must run with ``HF_HUB_DISABLE_XET=1`` (binary files then go through the LFS batch API).

Usage::

    with FakeHub() as hub:          # serves on 127.0.0.1:<ephemeral port>
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", ...}
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_binary(sample: bytes) -> bool:
    if b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@dataclass
class StoredFile:
    data: bytes
    lfs: bool

    def entry(self, path: str) -> dict:
        info = {"type": "file", "path": path, "size": len(self.data), "oid": git_blob_sha1(self.data)}
        if self.lfs:
            info["lfs"] = {"oid": hashlib.sha256(self.data).hexdigest(), "size": len(self.data), "pointerSize": 130}
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
    commits: list[Commit] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def commit(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.sha == revision), None)


class FakeHub:
    """In-memory Hub served over HTTP on 127.0.0.1 (a thread of the calling process).

    ``hold_commits=n`` makes the first ``n`` commit requests wait for each other (up to 30 s) before any is
    applied, so concurrent pushers are guaranteed to race on the same parent commit.
    """

    def __init__(self, *, hold_commits: int = 0) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.authorizations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.conflicts = 0
        self._lock = threading.Lock()
        self._hold = threading.Barrier(hold_commits, timeout=30) if hold_commits > 1 else None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- inspection helpers for tests -------------------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def file(self, repo_id: str, path: str, repo_type: str = "dataset") -> bytes:
        return self.repo(repo_id, repo_type).head.files[path].data

    # -- state changes (called with self._lock held) ----------------------------------------------
    def _create(self, repo_type: str, repo_id: str, sdk: str | None, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, sdk, private)
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


class _HttpError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # -- plumbing -----------------------------------------------------------------------------
        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            hub.requests.append((method, path))
            if auth := self.headers.get("Authorization"):
                hub.authorizations.append(auth)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, payload, headers = self._route(method, path, query, body)
            except _HttpError as err:
                headers = {"X-Error-Message": err.message}
                if err.error_code:
                    headers["X-Error-Code"] = err.error_code
                status, payload = err.status, {"error": err.message}
            self._send(method, status, payload, headers)

        def _send(self, method: str, status: int, payload, headers: dict) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            headers.setdefault("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def _require_token(self) -> None:
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                raise _HttpError(401, "Invalid credentials in Authorization header")

        # -- routes -------------------------------------------------------------------------------
        def _route(self, method: str, path: str, query: dict, body: bytes):
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
                return self._resolve(self._repo(repo_type, match.group(2)), match.group(3), match.group(4))
            if match := _API_REPO.match(path):
                repo = self._repo(match.group(1)[:-1], match.group(2))
                return self._repo_api(method, repo, match.group(3) or "", query, body)
            raise _HttpError(404, f"no such endpoint {method} {path}")

        def _repo(self, repo_type: str, repo_id: str) -> Repo:
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None:
                raise _HttpError(404, "Repository not found", "RepoNotFound")
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
            if method == "GET" and action in ("", "revision"):
                commit = self._commit(repo, tail or "main")
                return 200, {"id": repo.repo_id, "sha": commit.sha, "private": repo.private, "sdk": repo.sdk,
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
                lfs = _is_binary(base64.b64decode(item["sample"]))
                existing = commit.files.get(item["path"])
                oid = None
                if existing is not None:
                    oid = hashlib.sha256(existing.data).hexdigest() if lfs else git_blob_sha1(existing.data)
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
                raise _HttpError(400, "the fake Hub only commits to main")
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

        def _resolve(self, repo: Repo, revision: str, path: str):
            commit = self._commit(repo, revision)
            stored = commit.files.get(path)
            if stored is None:
                raise _HttpError(404, "Entry not found", "EntryNotFound")
            etag = hashlib.sha256(stored.data).hexdigest() if stored.lfs else git_blob_sha1(stored.data)
            headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit.sha, "Content-Type": "application/octet-stream"}
            return 200, stored.data, headers

    return Handler

