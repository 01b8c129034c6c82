"""Remote NWB files (an ``nwb`` source, a published hybrid): a streamed HTTP(S) file object and
DANDI asset resolution.

Streaming uses fsspec's HTTP filesystem (installed with dandi/nwbinspector): h5py reads the file
through a Python file object, and fsspec turns each read into an HTTP ``Range`` request for the
bytes h5py asks for (plus a read-ahead block), so only the HDF5 metadata and the chunks that are
actually read are fetched. A DANDI asset is resolved to a content URL with the dandi client.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from hybridkit.errors import SourceError

log = logging.getLogger(__name__)

FIELD = "recording"


@dataclass
class RemoteFile:
    """An open streamed file: ``handle`` is what h5py reads; ``close`` releases it."""

    url: str
    handle: Any
    size: int
    #: bytes fetched while opening (the Range probe), before any read of the file's content
    bytes_probed: int = 0

    def close(self) -> None:
        try:
            self.handle.close()
        except Exception:  # closing a half-broken connection must not mask the real error
            pass


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    return int(status) if isinstance(status, int) else None


def _what_happened(exc: BaseException) -> str:
    """What went wrong when opening a URL, read from the exception chain: fsspec reports a failed
    HEAD and GET as FileNotFoundError whatever the cause, and a refused connection is no 404."""
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for e in chain:
        status = _http_status(e)
        if status == 404:
            return "answered HTTP 404 Not Found; check the URL"
        if status:
            return f"answered HTTP {status} {getattr(e, 'message', '') or ''}".rstrip()
    for e in chain:
        name = type(e).__name__
        if isinstance(e, ConnectionError) or "Connector" in name:
            code = getattr(getattr(e, "os_error", e), "errno", None)
            reason = os.strerror(code).lower() if code else name
            return (f"cannot be reached: the connection failed ({reason}); check the host and "
                    "port, and that the server is running")
        if "Timeout" in name or isinstance(e, TimeoutError):
            return "cannot be reached: the connection timed out"
    if isinstance(exc, FileNotFoundError):
        return "answered HTTP 404 Not Found; check the URL"
    return f"cannot be opened ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"


def _check_ranges(handle, url: str, field: str, size: int) -> int:
    """Fail now, in one line, when the server ignores ``Range`` and sends the whole file for
    every read: h5py would fail deep inside a read with fsspec's ValueError, after downloading
    the start of the file again for each block. Returns the bytes the probe fetched."""
    if size <= 1:
        return 0
    try:
        # one byte at offset 1: a Range-capable server answers 206 with that byte; for one that
        # is not, fsspec raises before it reads the body (the start is not 0)
        return len(handle._fetch_range(1, 2))
    except ValueError as exc:
        if "range" not in str(exc).lower():
            raise
        raise SourceError(f"{field}: the server of {url} does not support HTTP Range requests (it "
                          "answered a byte-range request with the whole file); streaming needs them: "
                          "download the file and set recording.path instead") from None


def open_url(url: str, block_mb: float = 2.0, field: str = f"{FIELD}.url") -> RemoteFile:
    """Open ``url`` (http/https) for random-access streaming reads.

    Args:
        url: the file's URL; the server must answer ``Range`` requests.
        block_mb: MB fetched per request (h5py's many small metadata reads share a block).
        field: the config field named in error messages.

    Raises:
        SourceError: the URL is not http(s), does not exist (404), or the server cannot be reached.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise SourceError(f"{field}: {url!r} is not an http:// or https:// URL")
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with dandi/nwbinspector
        raise SourceError(f"{field}: streaming {url} needs fsspec and aiohttp; pip install fsspec aiohttp") from None
    fs = fsspec.filesystem("http", skip_instance_cache=True)
    try:
        handle = fs.open(url, "rb", block_size=max(int(block_mb * 2**20), 2**16), cache_type="blockcache")
        if handle.size is None:
            raise SourceError(f"{field}: {url} does not state its size (no Content-Length); "
                              "streaming needs it: download the file and set recording.path instead")
        size = int(handle.size)
        probed = _check_ranges(handle, url, field, size)
    except SourceError:
        raise
    except Exception as exc:  # aiohttp ClientResponseError / connection errors
        raise SourceError(f"{field}: {url} {_what_happened(exc)}").with_traceback(None) from None
    return RemoteFile(url=url, handle=handle, size=size, bytes_probed=probed)


def dandi_client(instance: str, field: str, token: str | None = None):
    """A ``DandiAPIClient`` for a known instance name (``"dandi"``, ``"dandi-sandbox"``) or the base
    URL of a DANDI API (``"https://api.dandiarchive.org/api"``, or a local archive in tests)."""
    from dandi.dandiapi import DandiAPIClient

    try:
        if instance.lower().startswith(("http://", "https://")):
            return DandiAPIClient(api_url=instance.rstrip("/"), token=token)
        return DandiAPIClient.for_dandi_instance(instance, token=token)
    except Exception as exc:
        raise SourceError(f"{field}: cannot use DANDI instance {instance!r} "
                          f"({type(exc).__name__}: {exc}); give a known instance name such as "
                          "'dandi' or 'dandi-sandbox', or an API URL ending in /api") from None


def resolve_dandi_asset(dandiset: str, asset_path: str, version: str | None = None,
                        instance: str = "dandi") -> str:
    """The content URL of one asset of a dandiset, for streaming.

    Args:
        dandiset: the dandiset identifier, e.g. ``"000409"``.
        asset_path: the asset's path in the dandiset, e.g. ``"sub-1/sub-1_ecephys.nwb"``.
        version: ``"draft"``, a published version (``"0.230101.1200"``), or None for the most recent
            published version (else the draft).
        instance: a DANDI instance name known to the dandi client (``"dandi"``, ``"dandi-sandbox"``)
            or the base URL of a DANDI API (``"https://api.dandiarchive.org/api"``).

    The S3 URL is preferred (it serves ``Range`` requests directly); otherwise the API's download URL
    is followed through its redirect.
    """
    field = f"{FIELD}.dandiset"
    try:
        from dandi.exceptions import NotFoundError
    except ImportError:  # pragma: no cover - dandi is a core dependency
        raise SourceError(f"{field}: resolving DANDI assets needs the dandi client; pip install dandi") from None
    client = dandi_client(instance, f"{FIELD}.dandi_instance")
    try:
        with client:
            ds = client.get_dandiset(dandiset, version, lazy=version is not None)
            asset = ds.get_asset_by_path(asset_path)
            try:
                url = asset.get_content_url(regex=r"amazonaws\.com")
            except NotFoundError:
                url = asset.get_content_url(follow_redirects=1)
    except NotFoundError as exc:
        raise SourceError(f"{FIELD}.asset_path: {asset_path!r} not found in dandiset {dandiset} "
                          f"(version {version or 'latest'}) on {instance}: {exc}") from None
    except Exception as exc:
        status = _http_status(getattr(exc, "response", None) or exc)
        detail = f"HTTP {status}" if status else f"{type(exc).__name__}: {exc}"
        raise SourceError(f"{field}: cannot resolve {dandiset}/{asset_path} on DANDI instance "
                          f"{instance!r} ({detail})") from None
    log.info("DANDI %s/%s -> %s", dandiset, asset_path, url)
    return url
