"""A real HTTP server on 127.0.0.1 for download tests: byte ranges, validators and faults on demand.

It serves the files of a directory with ``ETag`` (from size and mtime, strong),
``Last-Modified`` and ``Accept-Ranges``, answers ``Range: bytes=N-`` with 206
(honouring ``If-Range``) and can misbehave the way real servers and networks do:
ignore ranges, answer 503 a number of times, close the connection after some
bytes, or send slowly. Every request is recorded.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Faults:
    """What the server does wrong; tests change these between requests."""

    ignore_range: bool = False  # answer every GET with 200 and the whole file
    fail_next: int = 0  # answer the next N requests with 503 (then serve) ...
    fail_path_suffix: str = ""  # ... of those whose path (query string ignored) ends so
    drop_after: int | None = None  # close the connection after this many body bytes (next GET only) ...
    drop_path_suffix: str = ""  # ... of a path ending so
    delay_per_chunk_s: float = 0.0  # sleep between 64 KiB chunks (a slow link)
    no_validators: bool = False  # send neither ETag nor Last-Modified


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    if_range: str | None
    status: int
    body_bytes: int = 0


@dataclass
class RangeServer:
    root: Path
    base_url: str
    faults: Faults
    requests: list[Request] = field(default_factory=list)
    #: Paths (query string ignored) served from memory before ``root``: body and extra headers.
    routes: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)

    def gets(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path == path]


def _handler(state: RangeServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            faults = state.faults
            record = Request(self.command, self.path, self.headers.get("Range"), self.headers.get("If-Range"), 0)
            state.requests.append(record)
            route = self.path.split("?", 1)[0]
            if faults.fail_next > 0 and route.endswith(faults.fail_path_suffix):
                faults.fail_next -= 1
                record.status = 503
                self._empty(503, {"Retry-After": "0"})
                return
            path = state.root / route.lstrip("/")
            extra: dict[str, str] = {}
            if route in state.routes:
                data, extra = state.routes[route]
                etag = '"' + hashlib.sha256(data).hexdigest() + '"'
                modified = email.utils.formatdate(0, usegmt=True)
            elif path.is_file():
                data = path.read_bytes()
                stat = path.stat()
                etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
                modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
            else:
                record.status = 404
                self._empty(404, {})
                return
            validators = {} if faults.no_validators else {"ETag": etag, "Last-Modified": modified}
            validators.update(extra)
            start = 0
            wanted = self.headers.get("Range")
            condition = self.headers.get("If-Range")
            honour = wanted and not faults.ignore_range and condition in (None, etag, modified)
            if honour and wanted.startswith("bytes=") and wanted[6:].rstrip("-").isdigit():
                start = int(wanted[6:].rstrip("-"))
                if start >= len(data):
                    record.status = 416
                    self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            else:
                status, headers = 200, {}
            body = data[start:]
            record.status = status
            self.send_response(status)
            for key, value in {**validators, **headers, "Accept-Ranges": "bytes",
                               "Content-Length": str(len(body)),
                               "Content-Type": extra.get("Content-Type", "application/octet-stream")}.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            limit = None
            if faults.drop_after is not None and route.endswith(faults.drop_path_suffix):
                limit, faults.drop_after = faults.drop_after, None
            sent = 0
            for offset in range(0, len(body), 1 << 16):
                piece = body[offset: offset + (1 << 16)]
                if limit is not None and sent + len(piece) > limit:
                    piece = piece[: limit - sent]
                record.body_bytes = sent + len(piece)  # before the write: the client may finish reading first
                try:
                    self.wfile.write(piece)
                    self.wfile.flush()
                except OSError:  # the client went away (killed)
                    record.body_bytes = sent
                    break
                sent += len(piece)
                if limit is not None and sent >= limit:
                    break
                if faults.delay_per_chunk_s:
                    time.sleep(faults.delay_per_chunk_s)
            if sent < len(body):
                self.close_connection = True

        def _empty(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": "0"}.items():
                self.send_header(key, value)
            self.end_headers()

    return Handler


@contextmanager
def range_server(root: Path) -> Iterator[RangeServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a thread for the ``with`` block."""
    state = RangeServer(root, "", Faults())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def serve_hub_repo(server: RangeServer, repo_id: str, files: dict[str, bytes], commit: str = "c" * 40) -> None:
    """Make ``server`` answer like the Hugging Face hub (``HF_ENDPOINT``) for one model repo at ``commit``:
    the repo-info and file-tree API (what ``snapshot_download`` and ``list_repo_files`` ask) and
    ``/<repo>/resolve/<revision>/<file>`` with the hub's ``X-Repo-Commit`` header."""
    json_headers = {"Content-Type": "application/json"}
    info = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False, "disabled": False, "gated": False,
            "tags": [], "downloads": 0, "likes": 0, "siblings": [{"rfilename": name} for name in files]}
    tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for name, data in files.items()]
    for revision in ("main", commit):
        server.routes[f"/api/models/{repo_id}/revision/{revision}"] = (json.dumps(info).encode(), json_headers)
        server.routes[f"/api/models/{repo_id}/tree/{revision}"] = (json.dumps(tree).encode(), json_headers)
        for name, data in files.items():
            server.routes[f"/{repo_id}/resolve/{revision}/{name}"] = (data, {"X-Repo-Commit": commit})
