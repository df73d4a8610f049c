"""A Supabase-Storage-compatible HTTP server for tests and the offline demo.

It implements the routes supabase-py's storage client (storage3) calls, with the real server's
auth check (``Authorization: Bearer <service key>`` and ``apikey``) and its error shape: a JSON
body ``{"statusCode": "404", "error": "Bucket not found", "message": "Bucket not found"}`` sent with
HTTP 400, which storage3 turns into ``StorageApiError(status="404")``. Objects live in memory.

CLI: ``python -m flowsync_dev.storage_server --port P --service-key K --bucket NAME``
prints ``FLOWSYNC_STORAGE_URL=http://127.0.0.1:P`` once it is listening.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from flowsync_dev.loopback import LoopbackServer

__all__ = ["StorageTestServer", "main"]

API_PREFIX = "/storage/v1"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Object:
    data: bytes
    content_type: str
    cache_control: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    def metadata(self) -> dict[str, Any]:
        return {
            "eTag": f'"{hashlib.md5(self.data, usedforsecurity=False).hexdigest()}"',
            "size": len(self.data),
            "mimetype": self.content_type,
            "cacheControl": f"max-age={self.cache_control}",
            "lastModified": self.updated_at,
            "contentLength": len(self.data),
            "httpStatusCode": 200,
        }


class _ApiError(Exception):
    """An error rendered the way Supabase Storage renders it (HTTP 400 unless a 5xx)."""

    def __init__(self, status: int, error: str, message: str, code: str, http_status: int | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.code = status, error, message, code
        self.http_status = http_status or (500 if status >= 500 else 400)

    def body(self) -> dict[str, str]:
        return {
            "statusCode": str(self.status), "code": self.code, "error": self.error, "message": self.message,
        }


def _bucket_not_found() -> _ApiError:
    return _ApiError(404, "Bucket not found", "Bucket not found", "NoSuchBucket")


def _object_not_found() -> _ApiError:
    return _ApiError(404, "not_found", "Object not found", "NoSuchKey")


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Parse multipart/form-data exactly (bytes untouched): field name -> (content, part content type)."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise _ApiError(400, "InvalidRequest", "Missing multipart boundary", "InvalidRequest")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for section in body.split(delimiter)[1:]:
        if section.startswith(b"--"):
            break
        section = section[2:] if section.startswith(b"\r\n") else section
        raw_headers, _, content = section.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        part = Message()
        for line in raw_headers.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                part[name.strip()] = value.strip()
        field_name = part.get_param("name", header="content-disposition")
        if isinstance(field_name, str):
            fields[field_name] = (content, part.get("content-type"))
    return fields


class _State:
    """Buckets, objects and logs, shared by the handler threads behind one lock."""

    def __init__(self, service_key: str, buckets: Iterable[str]) -> None:
        self.service_key = service_key
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], _Object] = {}
        self.requests: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self.faults: list[int] = []
        for name in buckets:
            self.add_bucket(name)

    def add_bucket(self, name: str, public: bool = False) -> bool:
        if name in self.buckets:
            return False
        stamp = _now()
        self.buckets[name] = {
            "id": name, "name": name, "owner": "", "public": public, "type": "STANDARD",
            "file_size_limit": None, "allowed_mime_types": None, "created_at": stamp, "updated_at": stamp,
        }
        return True

    def require_bucket(self, name: str) -> None:
        if name not in self.buckets:
            raise _bucket_not_found()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flowsync-storage-test/1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms ACK stalls
    state: _State  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return  # quiet: tests read the structured request log instead

    # -- plumbing -----------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorize(self) -> None:
        key = self.state.service_key
        auth = self.headers.get("authorization") or ""
        apikey = self.headers.get("apikey")
        if not auth:
            raise _ApiError(403, "Unauthorized", "headers must have required property 'authorization'",
                            "InvalidJWT")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        ok = hmac.compare_digest(token.encode(), key.encode())
        if apikey is not None:
            ok = ok and hmac.compare_digest(apikey.encode(), key.encode())
        if not ok:
            raise _ApiError(403, "Unauthorized", "invalid signature", "InvalidJWT")

    def _dispatch(self, method: str) -> None:
        body = self._body()  # always drain the body so keep-alive stays in sync
        parts = urlsplit(self.path)
        path = parts.path
        entry: dict[str, Any] = {
            "method": method, "path": path, "status": 200,
            # which credentials were presented (never their values)
            "apikey": self.headers.get("apikey") is not None,
            "bearer": (self.headers.get("authorization") or "").lower().startswith("bearer "),
        }
        try:
            with self.state.lock:
                fault = self.state.faults.pop(0) if self.state.faults else None
            if fault is not None:
                raise _ApiError(fault, "InternalError", "injected fault", "InternalError", http_status=fault)
            if not path.startswith(API_PREFIX + "/"):
                raise _ApiError(404, "Not Found", f"Route {method}:{path} not found", "NotFound", 404)
            self._authorize()
            segments = [unquote(s) for s in path[len(API_PREFIX) + 1:].split("/")]
            status, payload, ctype = self._route(method, segments, body, entry)
        except _ApiError as exc:
            status, payload, ctype = exc.http_status, exc.body(), "application/json"
            entry["error"] = exc.body()
        entry["status"] = status
        with self.state.lock:
            self.state.requests.append(entry)
        self._send(status, payload, ctype)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    # -- routes -------------------------------------------------------------------------------
    def _route(
        self, method: str, seg: list[str], body: bytes, entry: dict[str, Any]
    ) -> tuple[int, Any, str]:
        st = self.state
        json_type = "application/json"
        if seg[0] == "bucket":
            if method == "GET" and len(seg) == 1:
                with st.lock:
                    return 200, list(st.buckets.values()), json_type
            if method == "POST" and len(seg) == 1:
                spec = json.loads(body or b"{}")
                name = str(spec.get("id") or spec.get("name") or "")
                if not name:
                    raise _ApiError(400, "Invalid Input", "Bucket name invalid", "InvalidBucketName")
                with st.lock:
                    created = st.add_bucket(name, bool(spec.get("public", False)))
                if not created:
                    raise _ApiError(409, "Duplicate", "The resource already exists", "BucketAlreadyExists")
                return 200, {"name": name}, json_type
            if method == "GET" and len(seg) == 2:
                with st.lock:
                    st.require_bucket(seg[1])
                    return 200, st.buckets[seg[1]], json_type
        if seg[0] == "object" and len(seg) >= 2:
            if method == "POST" and seg[1] == "list" and len(seg) == 3:
                return 200, self._list(seg[2], json.loads(body or b"{}")), json_type
            if method == "GET" and seg[1] == "info":
                rest = seg[3:] if len(seg) > 2 and seg[2] in ("authenticated", "public") else seg[2:]
                return 200, self._info(rest[0], "/".join(rest[1:])), json_type
            if method in ("GET", "HEAD"):
                rest = seg[2:] if seg[1] in ("authenticated", "public") else seg[1:]
                if len(rest) >= 2:
                    entry.update(bucket=rest[0], key="/".join(rest[1:]))
                    obj = self._get(rest[0], "/".join(rest[1:]))
                    return 200, (b"" if method == "HEAD" else obj.data), obj.content_type
            if method in ("POST", "PUT") and len(seg) >= 3:
                bucket, key = seg[1], "/".join(seg[2:])
                entry.update(bucket=bucket, key=key)
                return 200, self._upload(method, bucket, key, body), json_type
            if method == "DELETE" and len(seg) == 2:
                return 200, self._remove(seg[1], json.loads(body or b"{}").get("prefixes") or []), json_type
        raise _ApiError(404, "Not Found", f"Route {method}:/{'/'.join(seg)} not found", "NotFound", 404)

    def _get(self, bucket: str, key: str) -> _Object:
        with self.state.lock:
            self.state.require_bucket(bucket)
            obj = self.state.objects.get((bucket, key))
        if obj is None:
            raise _object_not_found()
        return obj

    def _info(self, bucket: str, key: str) -> dict[str, Any]:
        obj = self._get(bucket, key)
        return {
            "id": obj.id, "name": key, "bucket_id": bucket, "version": obj.id, "size": len(obj.data),
            "content_type": obj.content_type, "cache_control": f"max-age={obj.cache_control}",
            "etag": obj.metadata()["eTag"], "metadata": {}, "last_modified": obj.updated_at,
            "created_at": obj.created_at,
        }

    def _upload(self, method: str, bucket: str, key: str, body: bytes) -> dict[str, str]:
        ctype = self.headers.get("content-type") or "application/octet-stream"
        cache_control = self.headers.get("cache-control") or "3600"
        if ctype.lower().startswith("multipart/form-data"):
            fields = _parse_multipart(ctype, body)
            if "file" not in fields:
                raise _ApiError(400, "InvalidRequest", "No content provided", "InvalidRequest")
            data, part_type = fields["file"]
            ctype = part_type or "application/octet-stream"
            if "cacheControl" in fields:
                cache_control = fields["cacheControl"][0].decode("utf-8", "replace")
        else:
            data = body
        upsert = method == "PUT" or (self.headers.get("x-upsert") or "").lower() == "true"
        record = {"method": method, "bucket": bucket, "key": key, "size": len(data), "content_type": ctype,
                  "upsert": upsert, "status": 200}
        with self.state.lock:
            try:
                self.state.require_bucket(bucket)
                previous = self.state.objects.get((bucket, key))
                if previous is not None and not upsert:
                    raise _ApiError(409, "Duplicate", "The resource already exists", "KeyAlreadyExists")
            except _ApiError as exc:
                record["status"] = exc.status
                self.state.uploads.append(record)
                raise
            obj = _Object(data=data, content_type=ctype, cache_control=cache_control)
            if previous is not None:
                obj.id, obj.created_at = previous.id, previous.created_at
            self.state.objects[(bucket, key)] = obj
            self.state.uploads.append(record)
        return {"Id": obj.id, "Key": f"{bucket}/{key}"}

    def _list(self, bucket: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        prefix = str(spec.get("prefix") or "").strip("/")
        prefix = f"{prefix}/" if prefix else ""
        search = str(spec.get("search") or "").lower()
        limit = int(spec.get("limit") or 100)
        offset = int(spec.get("offset") or 0)
        sort = spec.get("sortBy") or {}
        with self.state.lock:
            self.state.require_bucket(bucket)
            keys = [
                (k, o) for (b, k), o in self.state.objects.items() if b == bucket and k.startswith(prefix)
            ]
        entries: dict[str, dict[str, Any]] = {}
        for key, obj in keys:
            rest = key[len(prefix):]
            name, slash, _ = rest.partition("/")
            if not name.lower().startswith(search):
                continue
            if slash:
                entries.setdefault(name, {"name": name, "id": None, "updated_at": None, "created_at": None,
                                          "last_accessed_at": None, "metadata": None})
            else:
                entries[name] = {"name": name, "id": obj.id, "updated_at": obj.updated_at,
                                 "created_at": obj.created_at, "last_accessed_at": obj.updated_at,
                                 "metadata": obj.metadata()}
        column = sort.get("column", "name")
        ordered = sorted(entries.values(), key=lambda e: (e.get(column) or "", e["name"]),
                         reverse=sort.get("order") == "desc")
        return ordered[offset:offset + limit]

    def _remove(self, bucket: str, prefixes: list[str]) -> list[dict[str, Any]]:
        removed = []
        with self.state.lock:
            self.state.require_bucket(bucket)
            for key in prefixes:
                obj = self.state.objects.pop((bucket, str(key).lstrip("/")), None)
                if obj is not None:
                    removed.append({"name": key, "bucket_id": bucket, "id": obj.id})
        return removed


class StorageTestServer(LoopbackServer):
    """In-process Supabase Storage look-alike on 127.0.0.1 (``port=0`` picks a free port)."""

    def __init__(
        self, service_key: str, buckets: Iterable[str] = (), *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not service_key:
            raise ValueError("service_key must be non-empty")
        self._state = _State(service_key, buckets)
        self.host, self.port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"StorageTestServer(url={self.url if self._httpd else None!r})"

    @property
    def service_key(self) -> str:
        return self._state.service_key

    # url: the base URL to give supabase-py (it appends ``/storage/v1``).
    thread_name = "storage-test-server"

    def handler_class(self) -> type:
        return type("StorageHandler", (_Handler,), {"state": self._state})

    # -- test helpers -------------------------------------------------------------------------
    def create_bucket(self, name: str, public: bool = False) -> None:
        with self._state.lock:
            self._state.add_bucket(name, public)

    def buckets(self) -> list[str]:
        with self._state.lock:
            return sorted(self._state.buckets)

    def objects(self) -> dict[str, bytes]:
        """Every stored object as ``{"bucket/key": bytes}``."""
        with self._state.lock:
            return {f"{b}/{k}": o.data for (b, k), o in sorted(self._state.objects.items())}

    def content_types(self) -> dict[str, str]:
        with self._state.lock:
            return {f"{b}/{k}": o.content_type for (b, k), o in sorted(self._state.objects.items())}

    def put_object(self, bucket: str, key: str, data: bytes, content_type: str = "text/csv") -> None:
        """Seed an object directly (bypassing HTTP), e.g. to prepare a dashboard test."""
        with self._state.lock:
            self._state.add_bucket(bucket)
            self._state.objects[(bucket, key.lstrip("/"))] = _Object(data, content_type, "3600")

    def upload_log(self) -> list[dict[str, Any]]:
        """Every upload attempt: method, bucket, key, size, content_type, upsert, status."""
        with self._state.lock:
            return [dict(r) for r in self._state.uploads]

    def request_log(self) -> list[dict[str, Any]]:
        """Every request: method, path, status (and the error body when it failed)."""
        with self._state.lock:
            return [dict(r) for r in self._state.requests]

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status`` (to exercise client retries)."""
        with self._state.lock:
            self._state.faults.extend([status] * count)

    def reset(self) -> None:
        """Forget objects, logs and pending faults (buckets stay)."""
        with self._state.lock:
            self._state.objects.clear()
            self._state.requests.clear()
            self._state.uploads.clear()
            self._state.faults.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Supabase-Storage-compatible test server (in memory).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--service-key", default=os.environ.get("SUPABASE_SERVICE_ROLE_KEY"),
                        help="key clients must send (default: $SUPABASE_SERVICE_ROLE_KEY)")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    args = parser.parse_args(argv)
    if not args.service_key:
        parser.error("--service-key (or SUPABASE_SERVICE_ROLE_KEY) is required")
    server = StorageTestServer(args.service_key, args.bucket, host=args.host, port=args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"FLOWSYNC_STORAGE_URL={server.url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
