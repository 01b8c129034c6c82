"""Objects over HTTP with a checked on-disk cache, and a minimal zarr v2 reader on top.

Why not the ``zarr`` library: hybridkit needs exact control of what crosses the network (one GET
per needed chunk, nothing listed, nothing prefetched), a cache that survives going offline, and
one behaviour across zarr 2 and zarr 3. The v2 layout is small: JSON metadata (``.zarray``,
``.zattrs``, consolidated ``.zmetadata``) and one compressed object per chunk, decoded here with
``numcodecs`` (blosc, vlen-utf8, ...), the codec library zarr itself uses.

Cache: each object is stored at ``<cache_dir>/<host and path of the base URL>/<key>``, with a
sidecar ``<key>.hybridkit.json`` recording its size, SHA-256, the server's ETag and Last-Modified
and the URL. A cached object is used only when its size and hash match the sidecar; otherwise it
is fetched again. Revalidation (the index) asks the server for the object's ETag; a server that
sends none (plain static hosting) is judged by Last-Modified, and one that sends neither by the
content's hash (the object is downloaded again: the index is small). An object and its sidecar
are written under temporary names and renamed together at the end
(:mod:`hybridkit.formats.atomic_files`), so an interrupted download never leaves a half file that
looks complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np

from hybridkit.errors import TemplateError
from hybridkit.formats.atomic_files import AtomicFiles

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".hybridkit.json"
_MD5_ETAG = re.compile(r'^(W/)?"?([0-9a-fA-F]{32})"?$')


class NotFound(Exception):
    """HTTP 404/403 for an object (S3 answers 403 for a missing key without list rights)."""


class Unreachable(Exception):
    """No answer from the server (offline, refused, timed out, DNS)."""


#: one path component of a key: a conservative charset (the database's dataset names use
#: letters, digits and ``_ - + .``), bounded so that ``<name>.hybridkit.json`` still fits NAME_MAX
_COMPONENT = re.compile(r"[A-Za-z0-9_.+=-]{1,200}")


def check_name(name: object, what: str, single: bool = False) -> str:
    """``name`` if it is safe to put into a cache path and a URL, else a TemplateError.

    Names come from the remote index and zarr metadata, so they are checked before they touch a
    path or a URL: components of letters, digits and ``_ . + = -`` (1-200 characters each), no
    ``.``/``..`` component, not absolute, no backslash; ``single`` also forbids ``/``.

    Args:
        name: the dataset name, zarr key or key component.
        what: where it comes from, for the message (e.g. "templates.csv row 3 dataset").
        single: one path component expected (a dataset name).
    """
    parts = name.split("/") if isinstance(name, str) else []
    bad = (not parts or (single and len(parts) > 1) or len(name) > 1000
           or any(p in (".", "..") or not _COMPONENT.fullmatch(p) for p in parts))
    if bad:
        raise TemplateError(
            f"template database: {what} {str(name)[:120]!r} is not a safe name; expected "
            f"{'one name' if single else '/-separated names'} of letters, digits and _ . + = - "
            "(1-200 characters, not '.' or '..'); the database index or metadata is corrupt")
    return name


def _slug(base_url: str) -> str:
    parts = urlsplit(base_url)
    raw = (parts.netloc + parts.path).strip("/") or "local"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)


class HttpCache:
    """GET objects below ``base_url``, through a checked on-disk cache.

    Args:
        base_url: e.g. ``https://bucket.s3.us-east-2.amazonaws.com``; keys are appended with "/".
        cache_dir: root of the cache; objects go under a folder named after the base URL.
        offline: never contact the server; a missing cache entry is an error.
        timeout_s: network timeout per request, s.
    """

    def __init__(self, base_url: str, cache_dir: Path, offline: bool = False,
                 timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = Path(cache_dir) / _slug(self.base_url)
        self.offline = offline
        self.timeout_s = timeout_s
        #: requests sent by this object (HEAD and GET), for logs and tests
        self.requests = 0

    def url(self, key: str) -> str:
        return f"{self.base_url}/{quote(check_name(key, 'object key'), safe='/')}"

    def path(self, key: str) -> Path:
        return self.root / check_name(key, "object key")

    # -- network -------------------------------------------------------------------------------
    def _request(self, key: str, method: str) -> tuple[bytes, dict]:
        import http.client
        import urllib.error
        import urllib.request

        from hybridkit import __version__

        url = self.url(key)
        req = urllib.request.Request(url, method=method,
                                     headers={"User-Agent": f"hybridkit/{__version__}"})
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                body = resp.read() if method == "GET" else b""
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404):
                raise NotFound(f"HTTP {exc.code}") from None
            raise TemplateError(f"template database: {url} answered HTTP {exc.code} "
                                f"{exc.reason}") from None
        except http.client.IncompleteRead as exc:
            raise TemplateError(f"template database: {url}: the download stopped after "
                                f"{len(exc.partial)} bytes; try again") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise Unreachable(str(getattr(exc, "reason", exc))) from None
        if method == "GET":
            self._check_body(url, body, headers)
        return body, headers

    @staticmethod
    def _check_body(url: str, body: bytes, headers: dict) -> None:
        length = headers.get("content-length")
        if length is not None and int(length) != len(body):
            raise TemplateError(f"template database: {url}: received {len(body)} bytes, the "
                                f"server announced {length}; try again")
        match = _MD5_ETAG.match(headers.get("etag", ""))
        # S3 ETags of single-part uploads are the MD5 of the object: a free end-to-end check
        if match and not match.group(1) and hashlib.md5(body).hexdigest() != match.group(2).lower():
            raise TemplateError(f"template database: {url}: the received bytes do not match the "
                                f"server's checksum (ETag {match.group(2)}); try again")

    # -- cache ---------------------------------------------------------------------------------
    def _sidecar(self, key: str) -> Path:
        p = self.path(key)
        return p.with_name(p.name + SIDECAR_SUFFIX)

    def _cached(self, key: str) -> tuple[bytes, dict] | None:
        """The cached bytes and sidecar when both exist and agree (size and SHA-256), else None."""
        path, side = self.path(key), self._sidecar(key)
        try:
            info = json.loads(side.read_text())
            data = path.read_bytes()
        except (OSError, ValueError):
            return None
        if len(data) != info.get("size") or hashlib.sha256(data).hexdigest() != info.get("sha256"):
            log.warning("cached %s does not match its recorded size/hash; fetching it again", path)
            return None
        return data, info

    def _store(self, key: str, data: bytes, headers: dict) -> None:
        path = self.path(key)
        info = {"url": self.url(key), "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "etag": headers.get("etag"), "last_modified": headers.get("last-modified"),
                "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with AtomicFiles() as pending:  # the object, then its sidecar, renamed at the end
            pending.temp(path).write_bytes(data)
            pending.temp(self._sidecar(key)).write_bytes(json.dumps(info).encode())

    @staticmethod
    def _unchanged(head: dict, info: dict) -> bool:
        """Whether a HEAD answer shows the cached object is still current: same size and, by the
        first validator the server gives, same ETag or same Last-Modified. A server giving
        neither proves nothing (a same-size edit keeps the size): False, so it is downloaded."""
        if head.get("content-length") not in (None, str(info["size"])):
            return False
        if head.get("etag") is not None:
            return head["etag"] == info.get("etag")
        if head.get("last-modified") is not None:
            return head["last-modified"] == info.get("last_modified")
        return False

    def get(self, key: str, revalidate: bool = False, missing_ok: bool = False
            ) -> tuple[bytes | None, bool]:
        """The object's bytes, and whether they differ from a copy cached before this call.

        A valid cached copy is returned without any request, unless ``revalidate``: then a HEAD
        compares the server's size and ETag with the cached copy's, or, when the server sends no
        ETag, its Last-Modified; with neither, the object is downloaded and its SHA-256 compared
        (if the server cannot be reached the cached copy is used, with a warning). ``missing_ok`` returns
        ``(None, False)`` for an object the server does not have instead of raising.

        Raises:
            TemplateError: not found, offline without a cached copy, server unreachable without a
                cached copy, or a download that fails its checks.
        """
        cached = self._cached(key)
        if cached is not None and (not revalidate or self.offline):
            return cached[0], False
        if self.offline:
            raise TemplateError(f"template database: {key} is not in the cache {self.root} and "
                                f"offline is set; run once with network access (offline: false)")
        url = self.url(key)
        if cached is not None:
            try:
                _, head = self._request(key, "HEAD")
            except Unreachable as exc:
                log.warning("template database %s unreachable (%s); using the cached %s",
                            self.base_url, exc, self.path(key))
                return cached[0], False
            except NotFound:
                head = {}
            if head and self._unchanged(head, cached[1]):
                return cached[0], False
        try:
            data, headers = self._request(key, "GET")
        except NotFound as exc:
            if missing_ok:
                return None, False
            raise TemplateError(f"template database: {url} not found ({exc}); check "
                                f"templates.base_url and that the object exists") from None
        except Unreachable as exc:
            raise TemplateError(f"template database: cannot reach {url} ({exc}) and there is no "
                                f"valid cached copy in {self.root}; check the network or "
                                f"templates.base_url") from None
        if cached is not None and cached[0] == data:  # same content (the hash-only case)
            self._store(key, data, headers)  # new validators, same bytes
            return data, False
        self._store(key, data, headers)
        return data, cached is not None


# -- zarr v2 -----------------------------------------------------------------------------------
def _fill(meta: dict, dtype: np.dtype):
    value = meta.get("fill_value")
    if value is None:
        return "" if dtype.kind in "USO" else 0
    if isinstance(value, str) and dtype.kind == "f":
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(value, 0.0)
    return value


class ZarrV2Group:
    """A zarr v2 group read through an :class:`HttpCache`, consolidated metadata preferred.

    Args:
        store: the object cache.
        prefix: the group's key prefix, e.g. ``"<dataset>.zarr"``.
    """

    def __init__(self, store: HttpCache, prefix: str) -> None:
        self.store = store
        self.prefix = check_name(prefix.strip("/"), "zarr group")
        raw, _ = store.get(f"{self.prefix}/.zmetadata", missing_ok=True)
        self.consolidated = raw is not None
        self._meta: dict = {}
        if raw is None:  # not consolidated: the group itself must exist
            self._meta[".zgroup"] = json.loads(store.get(f"{self.prefix}/.zgroup")[0])
        else:
            try:
                self._meta = dict(json.loads(raw)["metadata"])
            except (ValueError, KeyError, TypeError) as exc:
                raise TemplateError(f"template database: {store.url(self.prefix + '/.zmetadata')} "
                                    f"is not consolidated zarr metadata ({exc})") from None

    def _json(self, rel: str, missing_ok: bool) -> dict | None:
        if rel in self._meta:
            return self._meta[rel]
        if self.consolidated:  # consolidated metadata lists every node: absent means absent
            if missing_ok:
                return None
            raise TemplateError(f"template database: {self.prefix} has no {rel}")
        raw, _ = self.store.get(f"{self.prefix}/{rel}", missing_ok=missing_ok)
        self._meta[rel] = None if raw is None else json.loads(raw)
        return self._meta[rel]

    def attrs(self, path: str = "") -> dict:
        """The ``.zattrs`` of a node ("" for the group itself); {} when it has none."""
        rel = f"{path}/.zattrs" if path else ".zattrs"
        return self._json(rel, missing_ok=True) or {}

    def has_array(self, path: str) -> bool:
        return self._json(f"{path}/.zarray", missing_ok=True) is not None

    def array_meta(self, path: str) -> dict:
        meta = self._json(f"{path}/.zarray", missing_ok=True)
        if meta is None:
            raise TemplateError(f"template database: {self.prefix} has no array {path!r}")
        return meta

    def _decode(self, key: str, raw: bytes, meta: dict) -> np.ndarray:
        from numcodecs import get_codec

        url = self.store.url(key)
        chunk_shape = tuple(meta["chunks"])
        dtype = np.dtype(meta["dtype"])
        try:
            buf = get_codec(meta["compressor"]).decode(raw) if meta.get("compressor") else raw
            for spec in reversed(meta.get("filters") or []):
                buf = get_codec(spec).decode(buf)
        except Exception as exc:  # numcodecs raises RuntimeError/ValueError on bad bytes
            raise TemplateError(f"template database: {url} is corrupt: it does not decode "
                                f"({type(exc).__name__}: {exc}); delete it from the cache "
                                f"{self.store.root} or report it upstream") from None
        if dtype.kind == "O":
            arr = np.asarray(buf, dtype=object)
        else:
            arr = np.frombuffer(bytes(buf) if not isinstance(buf, np.ndarray) else buf.tobytes(),
                                dtype=dtype)
        if arr.size != int(np.prod(chunk_shape)):
            raise TemplateError(f"template database: {url} is corrupt: it decodes to {arr.size} "
                                f"values, expected {int(np.prod(chunk_shape))} ({chunk_shape})")
        return arr.reshape(chunk_shape, order=meta.get("order", "C"))

    def read(self, path: str, rows=None, required: bool = False) -> np.ndarray:
        """An array, or only ``rows`` (indices along axis 0) of it, fetching only their chunks.

        A chunk the server does not have is the array's fill value (zarr's rule) unless
        ``required``, when it is an error.
        """
        meta = self.array_meta(path)
        shape, chunks = tuple(meta["shape"]), tuple(meta["chunks"])
        dtype = np.dtype(meta["dtype"])
        sep = meta.get("dimension_separator", ".")
        if sep not in (".", "/"):  # it goes into keys: a "/../" here would climb out of the group
            raise TemplateError(f"template database: {self.prefix}/{path}/.zarray has "
                                f"dimension_separator {str(sep)[:40]!r}; zarr allows '.' or '/'")
        if len(shape) == 0:
            shape, chunks = (1,), (1,)
        sel = (np.arange(shape[0]) if rows is None else np.asarray(rows, dtype=np.int64).ravel())
        if sel.size and (sel.min() < 0 or sel.max() >= shape[0]):
            raise TemplateError(f"template database: {self.prefix}/{path}: rows "
                                f"{sel.min()}..{sel.max()} outside 0..{shape[0] - 1}")
        grid = [math.ceil(s / c) for s, c in zip(shape[1:], chunks[1:])]
        out = np.empty((sel.size, *shape[1:]), dtype=dtype)
        for c0 in np.unique(sel // chunks[0]):
            block = np.full((chunks[0], *[g * c for g, c in zip(grid, chunks[1:])]),
                            _fill(meta, dtype), dtype=dtype)
            for rest in np.ndindex(*grid):
                key = f"{self.prefix}/{path}/" + sep.join(str(int(i)) for i in (c0, *rest))
                raw, _ = self.store.get(key, missing_ok=not required)
                if raw is None:
                    continue
                where = tuple(slice(i * c, (i + 1) * c) for i, c in zip(rest, chunks[1:]))
                block[(slice(None), *where)] = self._decode(key, raw, meta)
            mine = np.flatnonzero(sel // chunks[0] == c0)
            part = block[(sel[mine] - c0 * chunks[0],) + tuple(slice(0, s) for s in shape[1:])]
            out[mine] = part
        return out if len(meta["shape"]) else out.reshape(())
