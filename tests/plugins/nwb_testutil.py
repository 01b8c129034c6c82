"""Helpers of the NWB tests: NWB files written with pynwb inside the tests, a Range-capable server."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

START = datetime(2024, 3, 4, 12, 0, 0, tzinfo=timezone.utc)


def write_nwb(path: Path, data: np.ndarray, fs: float = 30000.0, conversion: float = 0.195e-6,
              positions: np.ndarray | None = "default", channel_conversion=None, offset: float = 0.0,
              series: tuple[str, ...] = ("ElectricalSeries",), position_columns=("rel_x", "rel_y"),
              timestamps: bool = False, chunks=None, names=None, start: float = 0.0,
              subject: dict | None = None, compression: str | None = None, shuffle: bool = False) -> Path:
    """An NWB file holding ``data`` (time, channel) as one or more ElectricalSeries.

    ``positions`` has one column per name in ``position_columns`` (e.g. atlas x, y, z); ``start``
    is the series' starting_time (or first timestamp); ``chunks`` + ``compression`` ("gzip")
    mimic neuroconv's chunked, compressed series."""
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    n, c = data.shape
    from pynwb.file import Subject

    nwb = NWBFile(session_description="test", identifier="test-id", session_start_time=START,
                  subject=Subject(**subject) if subject else None)
    dev = nwb.create_device(name="probe", description="test probe")
    grp = nwb.create_electrode_group(name="shank0", description="s", location="CA1", device=dev)
    if isinstance(positions, str):
        positions = np.c_[np.tile([0.0, 32.0], c)[:c], np.arange(c) * 20.0]
    nwb.add_electrode_column(name="channel_name", description="name")
    for i in range(c):
        kw = {}
        if positions is not None:
            kw = {col: float(positions[i, k]) for k, col in enumerate(position_columns)}
        nwb.add_electrode(group=grp, location="CA1", channel_name=(names or [f"AP{j}" for j in range(c)])[i], **kw)
    region = nwb.create_electrode_table_region(list(range(c)), "all")
    for name in series:
        wrapped = H5DataIO(data, chunks=chunks, compression=compression, shuffle=shuffle) if chunks else data
        timing = {"timestamps": start + np.arange(n) / fs} if timestamps else \
            {"rate": fs, "starting_time": start}
        nwb.add_acquisition(ElectricalSeries(name=name, data=wrapped, electrodes=region,
                                             conversion=conversion, offset=offset,
                                             channel_conversion=channel_conversion, **timing))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


class RangeHandler(SimpleHTTPRequestHandler):
    """http.server's file handler plus single-range ``Range: bytes=a-b`` requests (206)."""

    def log_message(self, *args):  # keep test output clean
        pass

    def _record(self, n: int) -> None:
        # before the answer is sent: once the client has it, the test may read the log at once
        if self.server.requests is not None:
            self.server.requests.append((self.command, self.path, n))

    def do_GET(self):
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            if not path.is_file():
                self._record(0)
                self.send_error(404, "Not Found")
                return
            size = path.stat().st_size
            self._record(size)
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            self.wfile.write(path.read_bytes())
            return
        size = path.stat().st_size
        first, last = rng.strip().split("=", 1)[1].split(",")[0].split("-", 1)
        if first == "":  # a suffix range: the last N bytes
            a, b = max(size - int(last), 0), size - 1
        else:
            a, b = int(first), min(int(last), size - 1) if last else size - 1
        with open(path, "rb") as fh:
            fh.seek(a)
            body = fh.read(b - a + 1)
        self._record(len(body))
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 (free port) serving ``root``; a context manager."""

    def __init__(self, root: Path, handler=RangeHandler, assets: dict | None = None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        self.httpd.requests = []
        self.httpd.assets = assets or {}
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def example_to_nwb(example: Path, path: Path) -> Path:
    """The example dataset's SpikeGLX recording as an NWB file (neural channels only, like neuroconv)."""
    from hybridkit.config.run_config import load_config
    from hybridkit.registry import get_registry

    cfg = load_config(example / "config.json")
    rec = get_registry().get("source_reader", cfg.recording.type)(cfg.recording).open()
    neural = rec.neural_channels
    data = rec.read(0, rec.n_samples)[:, neural]
    return write_nwb(path, data, fs=rec.sampling_rate, conversion=float(rec.gain_to_uV[neural[0]]) * 1e-6,
                     positions=rec.channel_positions[neural], names=[f"AP{c}" for c in neural],
                     chunks=(3000, neural.size))


class FakeDandiHandler(RangeHandler):
    """Stands in for a DANDI API (and its blob store) on 127.0.0.1: one dandiset, one asset.

    ``server.assets`` maps an asset path to the served file name; the asset's contentUrl lists an
    API download URL that redirects (302) to the file, as the real archive does.
    """

    def _json(self, obj, status=200):
        import json

        body = json.dumps(obj).encode()
        self._record(len(body))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        from urllib.parse import parse_qs, urlparse

        u = urlparse(self.path)
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        parts = [p for p in u.path.split("/") if p]
        if u.path in ("/server-info", "/api/info/"):
            return self._json({"version": "0.0.0", "cli-minimal-version": "0.0.0", "cli-bad-versions": [],
                               "services": {"api": {"url": f"{base}/api"}}})
        if parts[:2] == ["api", "dandisets"] and len(parts) == 3:  # the dandiset: draft only
            stamp = "2024-01-01T00:00:00Z"
            draft = {"version": "draft", "name": "test", "asset_count": len(self.server.assets), "size": 1,
                     "created": stamp, "modified": stamp, "status": "Valid"}
            return self._json({"identifier": parts[2], "created": stamp, "modified": stamp,
                               "contact_person": "Doe, Jane", "embargo_status": "OPEN",
                               "most_recent_published_version": None, "draft_version": draft})
        if parts[:2] == ["api", "dandisets"] and len(parts) == 6 and parts[5] == "assets":
            want = parse_qs(u.query).get("path", [""])[0]
            results = [self._asset(p) for p in self.server.assets if p.startswith(want)]
            return self._json({"count": len(results), "next": None, "results": results})
        if parts[:2] == ["api", "dandisets"] and len(parts) == 7 and parts[5] == "assets":
            for p, name in self.server.assets.items():
                if self._asset(p)["asset_id"] == parts[6]:
                    return self._json({"path": p, "contentUrl": [
                        f"{base}/api/assets/{parts[6]}/download/", f"{base}/blobs/{name}"]})
            return self._json({"detail": "Not found."}, 404)
        if parts[:2] == ["api", "assets"] and parts[-1] == "download":
            for p, name in self.server.assets.items():
                if self._asset(p)["asset_id"] == parts[2]:
                    self._record(0)
                    self.send_response(302)
                    self.send_header("Location", f"{base}/files/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
        return self._json({"detail": "Not found."}, 404)

    @staticmethod
    def _asset(path):
        import hashlib

        return {"asset_id": hashlib.md5(path.encode()).hexdigest(), "path": path, "size": 1,
                "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z", "blob": "b1",
                "zarr": None}

    def translate_path(self, path):
        # the blob store: /files/<name> -> <directory>/<name>
        return super().translate_path(path[len("/files"):] if path.startswith("/files/") else "/nonexistent/" + path)

    def do_GET(self):
        if self.path.startswith("/files/"):
            return super().do_GET()
        return self._route()

    def do_HEAD(self):
        if self.path.startswith("/files/"):
            return super().do_HEAD()
        if self.path.startswith("/api/assets/"):
            return self._route()
        self.send_error(404)
