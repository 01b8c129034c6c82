"""A hybrid NWB file named by a local path, an http(s) URL or a DANDI asset, opened for reading.

DANDI assets are named as the dandi client does (``dandi://INSTANCE/DANDISET[@VERSION]/PATH``,
e.g. ``dandi://dandi/000123@draft/sub-mouse01/sub-mouse01_ses-demo_ecephys.nwb``). ``INSTANCE`` is
a known instance name (``dandi``, ``dandi-sandbox``) or ``host:port`` of another archive's API
(``http://host:port/api``; used for a local archive). Remote files are streamed with HTTP
``Range`` requests (:func:`hybridkit.formats.remote_http.open_url`): only the HDF5 metadata
and the datasets that are read are fetched, which :attr:`NwbHandle.bytes_fetched` reports.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridkit.errors import PublishError

DANDI_URI = re.compile(r"^dandi://(?P<instance>[^/]+)/(?P<dandiset>\d{6})(@(?P<version>[^/]+))?/(?P<path>.+)$")


@dataclass
class DandiAsset:
    instance: str
    dandiset: str
    version: str | None
    path: str

    @property
    def api(self) -> str:
        """What the dandi client takes: an instance name, or an API URL for ``host:port``."""
        return f"http://{self.instance}/api" if ":" in self.instance else self.instance


def parse_dandi_uri(text: str, field: str = "HYBRID") -> DandiAsset | None:
    """The DANDI asset a ``dandi://`` name points to; None for other names."""
    if not text.startswith("dandi://"):
        return None
    m = DANDI_URI.match(text)
    if not m:
        raise PublishError(f"{field}: {text!r} is not a DANDI asset name; use "
                           "dandi://INSTANCE/DANDISET[@VERSION]/PATH, e.g. "
                           "dandi://dandi/000123@draft/sub-1/sub-1_ecephys.nwb")
    return DandiAsset(m["instance"], m["dandiset"], m["version"], m["path"])


@dataclass
class NwbHandle:
    """An open h5py.File and what it came from; ``close`` releases both."""

    h5: Any
    label: str
    size: int
    remote: Any = None  # a RemoteFile when streamed
    fetched: list = None  # [bytes received], counted by the streamed file's fetcher

    @property
    def bytes_fetched(self) -> int:
        """Bytes received from the server so far (the whole size for a local file)."""
        return self.size if self.remote is None else int(self.fetched[0])

    def close(self) -> None:
        self.h5.close()
        if self.remote is not None:
            self.remote.close()


def open_hybrid_nwb(name: str | Path, field: str = "HYBRID", block_mb: float = 0.25) -> NwbHandle:
    """Open a hybrid NWB (local path, http(s) URL, or ``dandi://`` asset) read-only.

    ``block_mb`` is the size of one HTTP request: small, because reading a Units table touches a
    few small datasets spread over a file that is mostly traces."""
    import h5py

    from hybridkit.formats.remote_http import open_url, resolve_dandi_asset

    text = str(name)
    asset = parse_dandi_uri(text, field)
    if asset is None and not text.lower().startswith(("http://", "https://")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise PublishError(f"{field}: {path} is not an NWB file (give a .nwb path, an http(s) "
                               "URL, or dandi://INSTANCE/DANDISET[@VERSION]/PATH)")
        try:
            return NwbHandle(h5py.File(path, "r"), str(path), path.stat().st_size)
        except OSError as exc:
            raise PublishError(f"{field}: {path} is not an NWB (HDF5) file ({exc})") from None
    url = text if asset is None else resolve_dandi_asset(asset.dandiset, asset.path, asset.version, asset.api)
    remote = open_url(url, block_mb, field)
    fetched = [remote.bytes_probed]  # open_url's Range probe is traffic too
    cache = getattr(remote.handle, "cache", None)
    if cache is not None and callable(getattr(cache, "fetcher", None)):
        # count what the server actually sends (a block at the end of the file is short)
        fetch = cache.fetcher

        def counted(start: int, end: int) -> bytes:
            data = fetch(start, end)
            fetched[0] += len(data)
            return data

        cache.fetcher = counted
    try:
        h5 = h5py.File(remote.handle, "r")
    except OSError as exc:
        remote.close()
        raise PublishError(f"{field}: {text} is not an NWB (HDF5) file ({exc})") from None
    return NwbHandle(h5, text, remote.size, remote, fetched)
