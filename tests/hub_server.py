"""A loopback Hugging Face Hub for tests: the endpoints huggingface_hub 2.x calls to push and download.

Checked against huggingface_hub's hf_api.py (create_repo, create_branch, create_commit, repo_info,
list_repo_tree, _validate_yaml), _commit_api.py (preupload, NDJSON commit payload), lfs.py (LFS batch,
single-part PUT, verify) and file_download.py (HEAD/GET resolve headers). Commits are real: each has
a sha, a parent and a full file map; file contents live in a temporary directory. Xet is not served,
so clients must run with ``HF_HUB_DISABLE_XET=1``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml

REPO = r"(?P<repo>[^/]+/[^/]+)"
REV = r"(?P<rev>[^/]+)"
LFS_SUFFIXES = (".safetensors", ".bin", ".png", ".pt", ".gguf")
LFS_MIN_SIZE = 10 * 1024 * 1024


def git_blob_oid(data: bytes) -> str:
    """What git (and the Hub) calls a regular file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StoredFile:
    oid: str  # git blob sha1, or the content's sha256 for LFS files
    size: int
    lfs: bool
    blob: Path


@dataclass
class Commit:
    sha: str
    parent: str | None
    message: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


class HubState:
    """Everything the fake Hub knows; also what tests inspect and the failures they inject."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, Repo] = {}
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.auth_headers: list[str | None] = []
        self.lfs_puts: list[str] = []  # sha256 of every LFS object PUT
        self.validated_yaml: list[str] = []
        self.fail_commit_status: int | None = None  # answer every commit with this status
        self.fail_lfs_status: int | None = None  # answer every LFS object upload with this status
        # Kill tests: an LFS upload sets `lfs_started`, then waits for `lfs_hold` (when set) before it answers.
        self.lfs_started = threading.Event()
        self.lfs_hold: threading.Event | None = None

    def store_blob(self, data: bytes) -> tuple[str, Path]:
        oid = git_blob_oid(data)
        path = self.root / "blobs" / oid
        path.write_bytes(data)
        return oid, path

    def lfs_path(self, oid: str) -> Path:
        return self.root / "lfs" / oid

    def new_commit(self, repo: Repo, parent: str | None, message: str, files: dict[str, StoredFile]) -> Commit:
        tree = {path: f.oid for path, f in sorted(files.items())}
        sha = hashlib.sha1(json.dumps([parent, message, tree, time.time_ns()]).encode()).hexdigest()
        commit = Commit(sha, parent, message, files)
        repo.commits[sha] = commit
        return commit

    def commit_count(self, repo_id: str) -> int:
        return len(self.repos[repo_id].commits) if repo_id in self.repos else 0


class HubHandler(BaseHTTPRequestHandler):
    server: "LoopbackHub"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        return self.server.endpoint

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json", head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), headers, head=head)

    def _error(self, status: int, message: str, code: str | None = None, head: bool = False) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers, head=head)

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        with self.state.lock:
            self.state.requests.append((method, self.path))
            self.state.auth_headers.append(self.headers.get("Authorization"))
        for verb, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(self, query=query, **match.groupdict())
        self._error(404, f"no route for {method} {path}")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # -- repos ---------------------------------------------------------------------------------
    def _repo(self, repo: str, head: bool = False) -> Repo | None:
        found = self.state.repos.get(repo)
        if found is None:
            self._error(404, "Repository not found", "RepoNotFound", head=head)
        return found

    def _commit(self, repo: str, rev: str, head: bool = False) -> Commit | None:
        """The commit ``rev`` names in ``repo``; None after answering 404 when either is unknown."""
        found = self._repo(repo, head=head)
        if found is None:
            return None
        commit = found.resolve(rev)
        if commit is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound", head=head)
        return commit

    def create_repo(self, query: dict) -> None:
        payload = json.loads(self._body() or b"{}")
        if payload.get("type", "model") != "model":
            return self._error(400, "only model repositories are served here")
        repo_id = f"{payload['organization']}/{payload['name']}"
        with self.state.lock:
            if repo_id in self.state.repos:
                return self._json(409, {"error": "You already created this model repo", "url": f"{self.base}/{repo_id}"})
            repo = Repo(repo_id, private=payload.get("visibility") == "private")
            commit = self.state.new_commit(repo, None, "initial commit", {})
            repo.branches["main"] = commit.sha
            self.state.repos[repo_id] = repo
        self._json(200, {"url": f"{self.base}/{repo_id}", "name": repo_id, "id": hashlib.md5(repo_id.encode()).hexdigest()})

    def create_branch(self, query: dict, repo: str, rev: str) -> None:
        payload = json.loads(self._body() or b"{}")
        with self.state.lock:
            found = self._repo(repo)
            if found is None:
                return
            if rev in found.branches:
                return self._error(409, f"Branch {rev} already exists")
            start = found.resolve(payload.get("startingPoint") or "main")
            if start is None:
                return self._error(404, "starting point not found", "RevisionNotFound")
            found.branches[rev] = start.sha
        self._json(200, {})

    def validate_yaml(self, query: dict) -> None:
        content = json.loads(self._body())["content"]
        self.state.validated_yaml.append(content)
        match = re.match(r"^---\n(.*?)\n---", content, re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as err:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []})
        if match and not isinstance(metadata, dict):
            return self._json(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
        warnings = [] if match else [{"message": "empty or missing yaml metadata in repo card"}]
        self._json(200, {"errors": [], "warnings": warnings})

    def preupload(self, query: dict, repo: str, rev: str) -> None:
        payload = json.loads(self._body())
        with self.state.lock:
            found = self._repo(repo)
            if found is None:
                return
            commit = found.resolve(rev)
            existing = commit.files if commit else {}
        files = []
        for item in payload["files"]:
            path, size = item["path"], item["size"]
            lfs = path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
            stored = existing.get(path)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": stored.oid if stored else None})
        self._json(200, {"files": files, "commitOid": commit.sha if commit else None})

    def commit(self, query: dict, repo: str, rev: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if self.state.fail_commit_status is not None:
            return self._error(self.state.fail_commit_status, "Internal Error - injected by the test")
        with self.state.lock:
            found = self._repo(repo)
            if found is None:
                return
            if rev not in found.branches:
                return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent = found.commits[found.branches[rev]]
            files = dict(parent.files)
            header = next(line["value"] for line in lines if line["key"] == "header")
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    oid, blob = self.state.store_blob(data)
                    files[value["path"]] = StoredFile(oid, len(data), False, blob)
                elif key == "lfsFile":
                    blob = self.state.lfs_path(value["oid"])
                    if not blob.is_file():
                        return self._error(400, f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = StoredFile(value["oid"], blob.stat().st_size, True, blob)
                elif key == "deletedFile":
                    if files.pop(value["path"], None) is None:
                        return self._error(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(prefix)}
                elif key != "header":
                    return self._error(400, f"unsupported commit operation {key}")
            commit = self.state.new_commit(found, parent.sha, header["summary"], files)
            found.branches[rev] = commit.sha
        self._json(200, {"commitUrl": f"{self.base}/{repo}/commit/{commit.sha}", "commitOid": commit.sha,
                         "pullRequestUrl": None, "success": True})

    def repo_info(self, query: dict, repo: str, rev: str = "main") -> None:
        with self.state.lock:
            commit = self._commit(repo, rev)
            if commit is None:
                return
            self._json(200, {
                "_id": hashlib.md5(repo.encode()).hexdigest(), "id": repo, "modelId": repo,
                "author": repo.split("/")[0], "sha": commit.sha, "private": self.state.repos[repo].private,
                "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [], "library_name": "peft",
                "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            })

    def tree(self, query: dict, repo: str, rev: str, path: str = "") -> None:
        with self.state.lock:
            commit = self._commit(repo, rev)
            if commit is None:
                return
            path = (path or "").strip("/")
            prefix = path + "/" if path else ""
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            entries, folders = [], set()
            for file_path, stored in sorted(commit.files.items()):
                if not file_path.startswith(prefix):
                    continue
                rest = file_path[len(prefix):]
                parts = rest.split("/")
                for depth in range(1, len(parts)):
                    if recursive or depth == 1:
                        folders.add(prefix + "/".join(parts[:depth]))
                if recursive or len(parts) == 1:
                    entry = {"type": "file", "oid": stored.oid, "size": stored.size, "path": file_path}
                    if stored.lfs:
                        entry["lfs"] = {"oid": stored.oid, "size": stored.size, "pointerSize": 134}
                    entries.append(entry)
            if prefix and not entries and not folders:
                return self._error(404, f"{path} does not exist", "EntryNotFound")
        dirs = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(folders)]
        self._json(200, dirs + entries)

    def resolve(self, query: dict, repo: str, rev: str, path: str) -> None:
        head = self.command == "HEAD"
        with self.state.lock:
            commit = self._commit(repo, rev, head=head)
            if commit is None:
                return
            stored = commit.files.get(path)
            if stored is None:
                self.send_response(404)
                for key, value in {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                                   "X-Repo-Commit": commit.sha, "Content-Length": "0"}.items():
                    self.send_header(key, value)
                self.end_headers()
                return
        data = stored.blob.read_bytes()
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{stored.oid}"', "Accept-Ranges": "bytes"}
        if stored.lfs:
            headers.update({"X-Linked-Etag": f'"{stored.oid}"', "X-Linked-Size": str(stored.size)})
        status = 200
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if byte_range:
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start:end + 1], 206
        self._send(status, data, headers, content_type="application/octet-stream", head=head)

    # -- LFS -----------------------------------------------------------------------------------
    def lfs_batch(self, query: dict, repo: str) -> None:
        payload = json.loads(self._body())
        if payload.get("operation") != "upload":
            return self._error(400, "only uploads are served")
        with self.state.lock:
            if self._repo(repo) is None:
                return
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if not self.state.lfs_path(obj["oid"]).is_file():
                entry["actions"] = {
                    "upload": {"href": f"{self.base}/__lfs/{obj['oid']}"},
                    "verify": {"href": f"{self.base}/__lfs/verify"},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def lfs_put(self, query: dict, oid: str) -> None:
        data = self._body()
        self.state.lfs_started.set()
        hold = self.state.lfs_hold
        if hold is not None and not hold.wait(timeout=120):
            return self._error(504, "upload held too long by the test")
        if self.state.fail_lfs_status is not None:
            return self._error(self.state.fail_lfs_status, "Storage unavailable - injected by the test")
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "content does not match its sha256")
        # Two files with the same content upload the same oid from two threads at once: write to
        # a private name and rename, so a concurrent verify never sees a half-written object.
        target = self.state.lfs_path(oid)
        partial = target.with_name(f"{target.name}.{threading.get_ident()}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)
        with self.state.lock:
            self.state.lfs_puts.append(oid)
        self._send(200)

    def lfs_verify(self, query: dict) -> None:
        payload = json.loads(self._body())
        path = self.state.lfs_path(payload["oid"])
        if not path.is_file() or path.stat().st_size != payload["size"]:
            return self._error(404, "object not uploaded")
        self._json(200, {})


ROUTES = (
    ("POST", r"/api/repos/create", HubHandler.create_repo),
    ("POST", r"/api/validate-yaml", HubHandler.validate_yaml),
    ("POST", rf"/api/models/{REPO}/preupload/{REV}", HubHandler.preupload),
    ("POST", rf"/api/models/{REPO}/commit/{REV}", HubHandler.commit),
    ("POST", rf"/api/models/{REPO}/branch/{REV}", HubHandler.create_branch),
    ("GET", rf"/api/models/{REPO}", HubHandler.repo_info),
    ("GET", rf"/api/models/{REPO}/revision/{REV}", HubHandler.repo_info),
    ("GET", rf"/api/models/{REPO}/tree/{REV}(?:/(?P<path>.*))?", HubHandler.tree),
    ("HEAD", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", HubHandler.resolve),
    ("GET", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", HubHandler.resolve),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", HubHandler.lfs_batch),
    ("PUT", r"/__lfs/(?P<oid>[0-9a-f]{64})", HubHandler.lfs_put),
    ("POST", r"/__lfs/verify", HubHandler.lfs_verify),
)


class LoopbackHub(ThreadingHTTPServer):
    """``with LoopbackHub(tmp) as hub:`` serves on 127.0.0.1 at a free port; ``hub.endpoint`` is HF_ENDPOINT."""

    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.state = HubState(root)
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
