"""A local DANDI archive on 127.0.0.1 for the publishing tests: the API the dandi client's create,
upload and read paths call, and an S3-like blob store on the same server.

Implemented (as dandi-archive answers them; bodies trimmed to what the client reads):

* ``GET /api/info/`` and ``/server-info``; ``GET /api/auth/token`` (401 without the key)
* ``POST /api/dandisets/`` (create a draft), ``GET /api/dandisets/{id}/``,
  ``GET|PUT /api/dandisets/{id}/versions/draft/`` (metadata), ``.../draft/info/``
* ``GET|POST /api/dandisets/{id}/versions/draft/assets/`` (list by ``path`` prefix; create),
  ``GET|PUT .../assets/{asset_id}/`` (metadata; replace), ``GET /api/assets/{asset_id}/`` and
  ``/api/assets/{asset_id}/download/`` (302 to the blob)
* ``POST /api/uploads/initialize/``: parts sized as the archive sizes them (dandischema's
  ``PartGenerator``), each with a presigned-style URL on this server; ``PUT /s3/uploads/{id}/{n}``
  answers the part's MD5 as its ETag (as S3 does); ``POST /api/uploads/{id}/complete/`` and the
  ``complete_url`` answer S3's CompleteMultipartUploadResult with the multipart ETag computed from
  the received bytes; ``POST /api/uploads/{id}/validate/`` checks it against the announced
  ``dandi-etag`` and the size, and makes the blob; a blob with a known ETag answers 409 + Location
* ``POST /api/blobs/digest/`` (blob lookup by digest)
* ``GET /s3/blobs/{blob_id}`` with ``Range`` (streamed reads), ``HEAD``

Every request is logged (method, path, request body bytes, response body bytes) so tests can
count what was sent. Nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

API_KEY = "local-test-key"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class ArchiveState:
    def __init__(self, root: Path):
        self.root = root  # blobs are files here
        self.dandisets: dict[str, dict] = {}
        self.uploads: dict[str, dict] = {}
        self.blobs: dict[str, dict] = {}  # blob_id -> {"path", "etag", "size", "sha256"}
        self.log: list[tuple[str, str, int, int]] = []
        self.lock = threading.Lock()
        self.next_id = 1


class Handler(BaseHTTPRequestHandler):
    server_version = "local-dandi-archive/0"

    def log_message(self, *args):
        pass

    @property
    def st(self) -> ArchiveState:
        return self.server.state

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    # -- plumbing ------------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        self._in = self.rfile.read(n) if n else b""
        return self._in

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json", headers=None):
        self.st.log.append((self.command, self.path, len(getattr(self, "_in", b"")), len(body)))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers=None):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"token {API_KEY}":
            return True
        self._json({"detail": "Authentication credentials were not provided."}, 401)
        return False

    # -- resources -----------------------------------------------------------------------------
    def _version(self, d: dict) -> dict:
        return {"version": "draft", "name": d["metadata"].get("name", ""), "asset_count": len(d["assets"]),
                "size": sum(a["size"] for a in d["assets"].values()), "created": d["created"],
                "modified": d["modified"], "status": "Valid"}

    def _dandiset(self, did: str) -> dict:
        d = self.st.dandisets[did]
        return {"identifier": did, "created": d["created"], "modified": d["modified"],
                "contact_person": d["contact"], "embargo_status": "OPEN",
                "most_recent_published_version": None, "draft_version": self._version(d)}

    def _asset(self, did: str, a: dict, with_metadata: bool = False) -> dict:
        out = {"asset_id": a["asset_id"], "path": a["path"], "size": a["size"], "created": a["created"],
               "modified": a["modified"], "blob": a["blob"], "zarr": None}
        if with_metadata:
            out["metadata"] = a["metadata"]
        return out

    def _asset_metadata(self, did: str, asset_id: str, meta: dict, blob: dict) -> dict:
        """What the archive stores: the client's metadata plus identity, size, digests, URLs."""
        return {**meta, "identifier": asset_id, "id": f"dandiasset:{asset_id}",
                "contentSize": blob["size"],
                "digest": {**meta.get("digest", {}), "dandi:dandi-etag": blob["etag"],
                           "dandi:sha2-256": blob["sha256"]},
                "contentUrl": [f"{self.base}/api/assets/{asset_id}/download/",
                               f"{self.base}/s3/blobs/{blob['blob_id']}"]}

    def _find_asset(self, asset_id: str):
        for did, d in self.st.dandisets.items():
            if asset_id in d["assets"]:
                return did, d["assets"][asset_id]
        return None, None

    # -- routes --------------------------------------------------------------------------------
    def do_GET(self):
        u = urlparse(self.path)
        parts = [p for p in u.path.split("/") if p]
        q = parse_qs(u.query)
        if u.path in ("/server-info", "/api/info/"):
            return self._json({"version": "0.0.0", "schema_version": _schema_version(),
                               "cli-minimal-version": "0.0.0", "cli-bad-versions": [],
                               "services": {"api": {"url": f"{self.base}/api"}}})
        if u.path in ("/api/auth/token", "/api/auth/token/"):
            return self._json(API_KEY) if self._authorized() else None
        if parts[:2] == ["s3", "blobs"]:
            return self._blob(parts[2])
        if parts[:2] == ["api", "assets"] and len(parts) >= 3:
            _, a = self._find_asset(parts[2])
            if a is None:
                return self._json({"detail": "Not found."}, 404)
            if len(parts) == 4 and parts[3] == "download":
                return self._send(302, headers={"Location": f"{self.base}/s3/blobs/{a['blob']}"})
            return self._json(a["metadata"])
        if parts[:2] == ["api", "dandisets"] and len(parts) >= 3:
            d = self.st.dandisets.get(parts[2])
            if d is None:
                return self._json({"detail": "Not found."}, 404)
            if len(parts) == 3:
                return self._json(self._dandiset(parts[2]))
            if parts[3:5] == ["versions", "draft"]:
                rest = parts[5:]
                if not rest:
                    return self._json(d["metadata"])
                if rest == ["info"]:
                    return self._json({**self._version(d), "metadata": d["metadata"]})
                if rest == ["assets"]:
                    prefix = q.get("path", [""])[0]
                    rows = [self._asset(parts[2], a) for a in d["assets"].values() if a["path"].startswith(prefix)]
                    rows.sort(key=lambda r: r["path"])
                    return self._json({"count": len(rows), "next": None, "results": rows})
                if len(rest) >= 2 and rest[0] == "assets" and rest[1] in d["assets"]:
                    a = d["assets"][rest[1]]
                    if rest[2:] == ["info"]:
                        return self._json(self._asset(parts[2], a, True))
                    return self._json(a["metadata"])
        return self._json({"detail": "Not found."}, 404)

    def do_HEAD(self):
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        if parts[:2] == ["s3", "blobs"] and parts[2] in self.st.blobs:
            self.st.log.append(("HEAD", self.path, 0, 0))
            self.send_response(200)
            self.send_header("Content-Length", str(self.st.blobs[parts[2]]["size"]))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return None
        return self.do_GET()

    def _blob(self, blob_id: str):
        blob = self.st.blobs.get(blob_id)
        if blob is None:
            return self._send(404, b"NoSuchKey", "text/plain")
        path, size = blob["path"], blob["size"]
        rng = self.headers.get("Range")
        if not rng:
            return self._send(200, path.read_bytes(), "application/octet-stream", {"Accept-Ranges": "bytes"})
        first, last = rng.split("=", 1)[1].split(",")[0].split("-", 1)
        a, b = (size - int(last), size - 1) if first == "" else (int(first), min(int(last or size - 1), size - 1))
        with open(path, "rb") as fh:
            fh.seek(a)
            body = fh.read(b - a + 1)
        return self._send(206, body, "application/octet-stream",
                          {"Content-Range": f"bytes {a}-{b}/{size}", "Accept-Ranges": "bytes"})

    def do_POST(self):
        body = self._body()
        u = urlparse(self.path)
        parts = [p for p in u.path.split("/") if p]
        if parts[:2] == ["s3", "complete"]:  # the storage's "complete multipart upload"
            return self._complete_storage(parts[2])
        if not self._authorized():
            return None
        data = json.loads(body or b"{}")
        if u.path == "/api/dandisets/":
            return self._create_dandiset(data)
        if u.path == "/api/uploads/initialize/":
            return self._initialize(data)
        if parts[:2] == ["api", "uploads"] and len(parts) == 4 and parts[3] == "complete":
            up = self.st.uploads[parts[2]]
            up["announced_parts"] = data["parts"]
            return self._json({"complete_url": f"{self.base}/s3/complete/{parts[2]}",
                               "body": "<CompleteMultipartUpload/>"})
        if parts[:2] == ["api", "uploads"] and len(parts) == 4 and parts[3] == "validate":
            return self._validate(parts[2])
        if u.path == "/api/blobs/digest/":
            for b in self.st.blobs.values():
                if data.get("algorithm") == "dandi:dandi-etag" and b["etag"] == data.get("value"):
                    return self._json({"blob_id": b["blob_id"], "etag": b["etag"], "size": b["size"]})
            return self._json({"detail": "Not found."}, 404)
        if parts[:2] == ["api", "dandisets"] and parts[3:] == ["versions", "draft", "assets"]:
            return self._put_asset(parts[2], None, data)
        return self._json({"detail": "Not found."}, 404)

    def do_PUT(self):
        body = self._body()
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        if parts[:2] == ["s3", "uploads"]:  # a presigned part URL: /s3/uploads/<upload_id>/<n>
            up = self.st.uploads.get(parts[2])
            n = int(parts[3])
            if up is None or up["sizes"].get(n) != len(body):
                return self._send(400, b"<Error>BadDigest</Error>", "application/xml")
            up["received"][n] = body
            return self._send(200, b"", "text/plain", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if not self._authorized():
            return None
        data = json.loads(body or b"{}")
        if parts[:2] == ["api", "dandisets"] and parts[3:] == ["versions", "draft"]:
            d = self.st.dandisets[parts[2]]
            d["metadata"] = {**data["metadata"], "identifier": f"DANDI:{parts[2]}", "id": f"DANDI:{parts[2]}/draft"}
            d["modified"] = _now()
            return self._json({**self._version(d), "metadata": d["metadata"]})
        if parts[:2] == ["api", "dandisets"] and parts[3:6] == ["versions", "draft", "assets"] and len(parts) == 7:
            return self._put_asset(parts[2], parts[6], data)
        return self._json({"detail": "Not found."}, 404)

    # -- actions -------------------------------------------------------------------------------
    def _create_dandiset(self, data: dict):
        with self.st.lock:
            did = f"{self.st.next_id:06d}"
            self.st.next_id += 1
        meta = {**data["metadata"], "name": data["name"], "identifier": f"DANDI:{did}",
                "id": f"DANDI:{did}/draft", "version": "draft"}
        contact = next((c["name"] for c in meta.get("contributor", [])
                        if "dcite:ContactPerson" in c.get("roleName", [])), "")
        self.st.dandisets[did] = {"metadata": meta, "assets": {}, "created": _now(), "modified": _now(),
                                  "contact": contact}
        return self._json(self._dandiset(did), 200)

    def _initialize(self, data: dict):
        from dandischema.digests.dandietag import PartGenerator

        etag = data["digest"]["value"]
        for b in self.st.blobs.values():
            if b["etag"] == etag and b["size"] == data["contentSize"]:
                return self._json({"detail": "Blob already exists."}, 409, {"Location": b["blob_id"]})
        upload_id = uuid.uuid4().hex
        parts = list(PartGenerator.for_file_size(int(data["contentSize"])))
        self.st.uploads[upload_id] = {"size": int(data["contentSize"]), "etag": etag, "received": {},
                                      "sizes": {p.number: p.size for p in parts}}
        return self._json({"upload_id": upload_id, "parts": [
            {"part_number": p.number, "size": p.size, "upload_url": f"{self.base}/s3/uploads/{upload_id}/{p.number}"}
            for p in parts]})

    def _multipart_etag(self, up: dict) -> str:
        digests = [hashlib.md5(up["received"][n]).digest() for n in sorted(up["received"])]
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"

    def _complete_storage(self, upload_id: str):
        up = self.st.uploads[upload_id]
        xml = ('<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult '
               'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ETag>"'
               f'{self._multipart_etag(up)}"</ETag></CompleteMultipartUploadResult>')
        return self._send(200, xml.encode(), "application/xml")

    def _validate(self, upload_id: str):
        up = self.st.uploads.pop(upload_id)
        data = b"".join(up["received"][n] for n in sorted(up["received"]))
        etag = self._multipart_etag(up)
        if len(data) != up["size"] or etag != up["etag"]:
            return self._json({"detail": f"ETag {etag} / size {len(data)} do not match the upload"}, 400)
        blob_id = uuid.uuid4().hex
        path = self.st.root / blob_id
        path.write_bytes(data)
        self.st.blobs[blob_id] = {"blob_id": blob_id, "path": path, "etag": etag, "size": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest()}
        return self._json({"blob_id": blob_id, "etag": etag, "size": len(data)})

    def _put_asset(self, did: str, asset_id: str | None, data: dict):
        d = self.st.dandisets[did]
        blob = self.st.blobs.get(data["blob_id"])
        if blob is None:
            return self._json({"detail": "No such blob."}, 400)
        path = data["metadata"]["path"]
        if asset_id is None and any(a["path"] == path for a in d["assets"].values()):
            return self._json({"detail": "Asset already exists at path."}, 409)
        if asset_id is not None:
            del d["assets"][asset_id]  # the archive makes a new asset when one is replaced
        new_id = str(uuid.uuid4())
        a = {"asset_id": new_id, "path": path, "size": blob["size"], "created": _now(), "modified": _now(),
             "blob": blob["blob_id"], "metadata": self._asset_metadata(did, new_id, data["metadata"], blob)}
        d["assets"][new_id] = a
        d["modified"] = _now()
        return self._json(self._asset(did, a, True))


def _schema_version() -> str:
    from dandischema.consts import DANDI_SCHEMA_VERSION

    return DANDI_SCHEMA_VERSION


class LocalArchive:
    """The archive on a free port of 127.0.0.1; a context manager. ``api`` is its API URL."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.state = ArchiveState(root)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def state(self) -> ArchiveState:
        return self.httpd.state

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def add_asset(self, dandiset: str, path: str, source: Path) -> str:
        """Put ``source`` in the archive as asset ``path`` of ``dandiset`` (created when new), as
        an upload would; returns the asset id. For tests that read from DANDI."""
        data = source.read_bytes()
        blob_id = uuid.uuid4().hex
        (self.state.root / blob_id).write_bytes(data)
        from dandischema.digests.dandietag import DandiETag

        etag = DandiETag.from_file(source).as_str()
        self.state.blobs[blob_id] = {"blob_id": blob_id, "path": self.state.root / blob_id, "etag": etag,
                                     "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        d = self.state.dandisets.setdefault(dandiset, {
            "metadata": {"name": "source", "identifier": f"DANDI:{dandiset}"}, "assets": {},
            "created": _now(), "modified": _now(), "contact": "Doe, Jane"})
        asset_id = str(uuid.uuid4())
        blob = self.state.blobs[blob_id]
        meta = {"path": path, "identifier": asset_id, "contentSize": len(data),
                "digest": {"dandi:dandi-etag": etag, "dandi:sha2-256": blob["sha256"]},
                "contentUrl": [f"{self.api}/assets/{asset_id}/download/", f"{self.url}/s3/blobs/{blob_id}"]}
        d["assets"][asset_id] = {"asset_id": asset_id, "path": path, "size": len(data), "created": _now(),
                                 "modified": _now(), "blob": blob_id, "metadata": meta}
        return asset_id

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
