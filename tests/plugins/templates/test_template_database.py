"""Template source ``template_database`` against a copy of the database replica served on 127.0.0.1.

The server (GET, HEAD, Range, S3-style MD5 ETags) is started and stopped by the tests and logs
every request, so the tests can state exactly which objects were fetched.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from hybridkit.cli import main as cli_main
from hybridkit.config.run_config import load_config
from hybridkit.errors import TemplateError
from hybridkit.example import np1_positions, write_example
from hybridkit.run.pipeline import generate
from hybridkit.plugins.templates.database.source import CACHE_ENV, DatabaseOptions, TemplateDatabase, default_cache_dir, list_templates
from hybridkit.plugins.templates.database.zarr_http import HttpCache
from tests.helpers import assert_generate_invariant, make_recording
from tests.conftest import DATA

REPLICA = DATA / "template_database" / "spikeinterface-template-database"
KS042 = ("000409_sub-KS042_ses-5f82c2d9-cfeb-4fa3-a1d7-d982f8bd1045_behavior+ecephys+image_"
         "b8e8cd4e-a93d-4d0a-9df0-4213b6273b04.zarr")
NPU = "steinmetz_ye_np_ultra_2022_figshare19493588v2_0.zarr"


class _Handler(BaseHTTPRequestHandler):
    """Static files with GET, HEAD, Range and an MD5 ETag; ``tamper`` serves other bytes."""

    def __init__(self, *args, root: Path, log: list, tamper: dict, validators: dict, **kw):
        self.root, self.reqlog, self.tamper, self.validators = root, log, tamper, validators
        super().__init__(*args, **kw)

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _serve(self, with_body: bool) -> None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        self.reqlog.append((self.command, rel))
        path = self.root / rel
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        data = self.tamper.get(rel, data)
        status, start, part = 200, 0, data
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes="):
            a, b = spec[6:].split("-")
            start = int(a) if a else len(data) - int(b)
            stop = int(b) + 1 if a and b else len(data)
            status, part = 206, data[start:stop]
        self.send_response(status)
        self.send_header("Content-Length", str(len(part)))
        if self.validators["etag"]:
            self.send_header("ETag", etag)
        if self.validators["last_modified"]:
            from email.utils import formatdate

            self.send_header("Last-Modified", formatdate(path.stat().st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{start + len(part) - 1}/{len(data)}")
        self.end_headers()
        if with_body:
            self.wfile.write(part)

    def do_GET(self):
        self._serve(True)

    def do_HEAD(self):
        self._serve(False)


class Server:
    def __init__(self, root: Path) -> None:
        self.log: list[tuple[str, str]] = []
        self.tamper: dict[str, bytes] = {}
        #: which validators the server sends (plain static hosting sends no ETag)
        self.validators = {"etag": True, "last_modified": False}
        handler = partial(_Handler, root=root, log=self.log, tamper=self.tamper,
                          validators=self.validators)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def replica(tmp_path) -> Path:
    root = tmp_path / "bucket"
    shutil.copytree(REPLICA, root)
    return root


@pytest.fixture
def server(replica):
    srv = Server(replica)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def np1_recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("np1")
    return make_recording(tmp, np.zeros((600, 384), np.int16), positions=np1_positions())


def _options(server, tmp_path, **kw) -> DatabaseOptions:
    return DatabaseOptions(base_url=server.url, cache_dir=tmp_path / "cache", **kw)


def _reference(dataset: str, index: int):
    """The template and probe as the zarr library reads them from the test copy (independent)."""
    import zarr

    g = zarr.open_consolidated(str(REPLICA / dataset), mode="r")
    return (np.asarray(g["templates_array"][index]), np.c_[g["probe/x"][:], g["probe/y"][:]],
            int(g["unit_ids"][index]))


# -- query -------------------------------------------------------------------------------------
@pytest.mark.parametrize("filters, rows", [
    ({"brain_areas": ["PO"]}, [5, 11, 16, 21]),
    ({"brain_areas": ["PO"], "depth_um": (600, 700)}, [5]),
    ({"brain_areas": ["VISp*"]}, [0, 2, 4, 7, 9, 18, 19, 25, 28, 30, 34, 35]),
    ({"brain_areas": ["visp"]}, [25, 28, 30, 34, 35]),
    ({"snr": (100, 200)}, [5, 7, 17]),  # NP-Ultra rows have no SNR: never in an SNR range
    ({"probes": ["Neuropixels Ultra"], "amplitude_uV": (0, 120)}, [28, 30]),
    ({"datasets": ["000409_sub-KS043*"], "min_spikes": 15000}, [14, 22]),
])
def test_query_filters(server, tmp_path, filters, rows):
    got = list_templates(base_url=server.url, cache_dir=tmp_path / "c", **filters)
    assert [r["row"] for r in got] == rows
    assert server.log == [("GET", "templates.csv")]  # a query reads the index only


def test_query_row_values(server, tmp_path):
    (row,) = list_templates(base_url=server.url, cache_dir=tmp_path / "c", rows=[28])
    assert row["dataset"] == NPU and row["template_index"] == 4 and row["brain_area"] == "VISp"
    assert row["noise_level_uv"] is None and row["signal_to_noise_ratio"] is None
    assert row["amplitude_uv"] == pytest.approx(86.47924) and row["spikes_per_unit"] == 1896


# -- fetch ---------------------------------------------------------------------------------------
def test_fetch_reads_only_the_chosen_chunks(server, tmp_path, np1_recording):
    opt = _options(server, tmp_path, rows=[5, 28])
    bank = TemplateDatabase(opt).build(np1_recording, None, [])
    assert list(bank.templates) == [5, 28]
    chunks = sorted(p for _, p in server.log if "/templates_array/" in p)
    assert chunks == [f"{KS042}/templates_array/5.0.0", f"{NPU}/templates_array/4.0.0"]
    # the index, then per dataset: consolidated metadata, probe x and y, unit ids, one chunk per unit
    assert len(server.log) == 1 + 2 * 5 and all(m == "GET" for m, _ in server.log)
    assert not any(p.endswith((".zarray", ".zattrs", "peak_to_peak/0.0")) for _, p in server.log)

    ref, ref_pos, unit_id = _reference(KS042, 5)
    tpl = bank.templates[5]
    assert tpl.peak_amplitude_uV == pytest.approx(np.abs(ref).max(), rel=1e-6)
    # the source peak contact's trace, unchanged, on the target contact at the unit's own depth
    src_peak = int(np.argmax(np.abs(ref).max(axis=0)))
    assert np.allclose(tpl.position, ref_pos[src_peak])
    col = list(tpl.channels).index(tpl.peak_channel)
    assert np.allclose(tpl.waveform[:, col], ref[:, src_peak], atol=1e-4)
    assert tpl.peak_index == 90 and tpl.n_times == 240 and tpl.source == "template_database"
    p = tpl.provenance
    assert (p["dataset"], p["template_index"], p["unit_id"], p["brain_area"], p["csv_row"]) == (
        KS042, 5, unit_id, "PO", 5)
    assert unit_id == 561
    assert bank.templates[28].provenance["probe"] == "Neuropixels Ultra"


def test_cache_reused_then_offline_with_server_stopped(server, tmp_path, np1_recording):
    opt = _options(server, tmp_path, rows=[5])
    first = TemplateDatabase(opt).build(np1_recording, None, []).templates[5]
    server.log.clear()
    TemplateDatabase(opt).build(np1_recording, None, [])
    assert server.log == [("HEAD", "templates.csv")]  # everything else from the cache
    server.stop()
    again = TemplateDatabase(opt).build(np1_recording, None, []).templates[5]
    assert np.array_equal(first.waveform, again.waveform)
    offline = DatabaseOptions(base_url=server.url, cache_dir=tmp_path / "cache", offline=True, rows=[5])
    assert np.array_equal(TemplateDatabase(offline).build(np1_recording, None, []).templates[5].waveform,
                          first.waveform)
    with pytest.raises(TemplateError, match=r"not in the cache .* offline"):
        TemplateDatabase(offline.model_copy(update={"rows": [28]})).build(np1_recording, None, [])


def test_changed_index_drops_cached_datasets(server, replica, tmp_path, np1_recording):
    opt = _options(server, tmp_path, rows=[5])
    TemplateDatabase(opt).build(np1_recording, None, [])
    csv_path = replica / "templates.csv"
    csv_path.write_bytes(csv_path.read_bytes() + b"\n")  # same rows, new ETag and size
    server.log.clear()
    TemplateDatabase(opt).build(np1_recording, None, [])
    assert server.log[:2] == [("HEAD", "templates.csv"), ("GET", "templates.csv")]
    assert ("GET", f"{KS042}/templates_array/5.0.0") in server.log  # refetched, not trusted


def _same_size_edit(csv_path: Path) -> None:
    """Row 5's brain area PO becomes PF: same size, other content (what no size check sees)."""
    lines = csv_path.read_bytes().split(b"\n")
    assert b",PO," in lines[6]
    lines[6] = lines[6].replace(b",PO,", b",PF,")
    before = csv_path.stat().st_size
    csv_path.write_bytes(b"\n".join(lines))
    assert csv_path.stat().st_size == before


@pytest.mark.parametrize("last_modified", [True, False], ids=["last-modified", "no-validator"])
def test_server_without_etag_notices_a_same_size_edit(server, replica, tmp_path, np1_recording,
                                                     last_modified):
    """Plain static hosting: no ETag. Last-Modified decides when sent (no download while it is
    unchanged); with no validator at all the index is downloaded and its hash compared."""
    import os

    server.validators.update(etag=False, last_modified=last_modified)
    opt = _options(server, tmp_path, rows=[5])
    TemplateDatabase(opt).build(np1_recording, None, [])
    server.log.clear()
    TemplateDatabase(opt).build(np1_recording, None, [])  # unchanged
    index = [r for r in server.log if r[1] == "templates.csv"]
    assert index == ([("HEAD", "templates.csv")] if last_modified
                     else [("HEAD", "templates.csv"), ("GET", "templates.csv")])
    assert not any("templates_array" in p for _, p in server.log)  # the cached datasets are kept

    csv_path = replica / "templates.csv"
    stat = csv_path.stat()
    _same_size_edit(csv_path)
    os.utime(csv_path, (stat.st_atime, stat.st_mtime + 10))  # a later edit, same size
    server.log.clear()
    rows = list_templates(base_url=server.url, cache_dir=tmp_path / "cache", brain_areas=["PF"])
    assert 5 in [r["row"] for r in rows]  # the edit is seen
    assert ("GET", "templates.csv") in server.log
    server.log.clear()
    TemplateDatabase(_options(server, tmp_path, rows=[5], brain_areas=["PF"])).build(np1_recording, None, [])
    assert ("GET", f"{KS042}/templates_array/5.0.0") in server.log  # the datasets were dropped


def test_corrupt_cache_entry_is_fetched_again(server, tmp_path, np1_recording):
    opt = _options(server, tmp_path, rows=[5])
    first = TemplateDatabase(opt).build(np1_recording, None, []).templates[5]
    store = HttpCache(server.url, tmp_path / "cache")
    key = f"{KS042}/templates_array/5.0.0"
    path = store.path(key)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    server.log.clear()
    again = TemplateDatabase(opt).build(np1_recording, None, []).templates[5]
    assert ("GET", key) in server.log
    assert np.array_equal(first.waveform, again.waveform)


def test_an_interrupted_download_caches_neither_object_nor_sidecar(server, tmp_path, monkeypatch):
    """Interrupted after both went to their temporary names, before the renames (os.replace
    raises): nothing is left in the cache, not even its folders; the next get stores both."""
    import os

    key = f"{KS042}/templates_array/5.0.0"
    store = HttpCache(server.url, tmp_path / "cache")
    real_replace = os.replace

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.get(key)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))
    monkeypatch.setattr(os, "replace", real_replace)
    data, _ = store.get(key)
    assert data == (REPLICA / key).read_bytes()
    side = store.path(key).with_name(store.path(key).name + ".hybridkit.json")
    assert json.loads(side.read_text())["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in store.path(key).parent.iterdir()) == ["5.0.0", side.name]


def test_corrupt_chunk_on_server_is_a_clear_error(server, replica, tmp_path, np1_recording):
    chunk = replica / KS042 / "templates_array" / "5.0.0"
    chunk.write_bytes(b"\x00" * 64)
    with pytest.raises(TemplateError, match=r"templates_array/5\.0\.0 is corrupt"):
        TemplateDatabase(_options(server, tmp_path, rows=[5])).build(np1_recording, None, [])


def test_bytes_not_matching_the_etag_are_rejected(server, tmp_path, np1_recording):
    key = f"{KS042}/templates_array/5.0.0"
    good = (REPLICA / key).read_bytes()
    server.tamper[key] = good[:100] + bytes([good[100] ^ 1]) + good[101:]
    with pytest.raises(TemplateError, match="do not match the server's checksum"):
        TemplateDatabase(_options(server, tmp_path, rows=[5])).build(np1_recording, None, [])
    assert not HttpCache(server.url, tmp_path / "cache").path(key).exists()  # nothing cached


@pytest.mark.parametrize("row, missing", [(0, f"{KS042}/templates_array/0.0.0"),  # chunk absent
                                          (12, "000409_sub-KS043")])  # dataset absent
def test_missing_object_is_a_clear_error(server, tmp_path, np1_recording, row, missing):
    with pytest.raises(TemplateError, match=r"not found \(HTTP 404\)") as info:
        TemplateDatabase(_options(server, tmp_path, rows=[row])).build(np1_recording, None, [])
    assert missing.replace("+", "%2B") in str(info.value)


def test_unreachable_without_cache(server, tmp_path, np1_recording):
    server.stop()
    with pytest.raises(TemplateError, match=r"cannot reach .*templates\.csv"):
        TemplateDatabase(_options(server, tmp_path, rows=[5])).build(np1_recording, None, [])


def _set_scale_attr(root: Path, name: str, value: bool) -> None:
    for rel in (".zattrs", ".zmetadata"):
        path = root / KS042 / rel
        doc = json.loads(path.read_text())
        attrs = doc["metadata"][".zattrs"] if rel == ".zmetadata" else doc
        attrs.pop("is_scaled", None)
        attrs[name] = value
        path.write_text(json.dumps(doc))


def test_is_in_uV_accepted_and_raw_units_refused(server, replica, tmp_path, np1_recording):
    _set_scale_attr(replica, "is_in_uV", True)
    bank = TemplateDatabase(_options(server, tmp_path, rows=[5])).build(np1_recording, None, [])
    ref, _, _ = _reference(KS042, 5)
    assert bank.templates[5].peak_amplitude_uV == pytest.approx(np.abs(ref).max(), rel=1e-6)
    _set_scale_attr(replica, "is_in_uV", False)
    with pytest.raises(TemplateError, match="is_in_uV=false"):
        TemplateDatabase(_options(server, tmp_path / "fresh", rows=[5])).build(np1_recording, None, [])


def test_seeded_choice_and_too_few_matches(server, tmp_path):
    opt = _options(server, tmp_path, brain_areas=["CA1"], n_units=3)
    rows = list_templates(base_url=server.url, cache_dir=tmp_path / "cache", brain_areas=["CA1"])
    src = TemplateDatabase(opt)
    picks = [[r["row"] for r in src.choose(rows, np.random.default_rng(s))] for s in (1, 1, 2)]
    assert picks[0] == picks[1] and len(set(picks[0])) == 3 and picks[0] == sorted(picks[0])
    assert set(picks[0]) <= {12, 22, 24, 27, 31, 32, 33}
    with pytest.raises(TemplateError, match="7 database templates match the query, n_units is 8"):
        TemplateDatabase(_options(server, tmp_path, n_units=8)).choose(rows, np.random.default_rng(0))
    with pytest.raises(TemplateError, match=r"rows \[5\] do not match"):
        TemplateDatabase(_options(server, tmp_path, rows=[5, 12], brain_areas=["CA1"])).choose(
            [r for r in rows if r["row"] == 12], np.random.default_rng(0))


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "hybridkit" / "template_database"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_templates_list(server, tmp_path, capsys):
    code = cli_main(["templates", "list", "--brain-area", "PO", "--depth", "0", "2000",
                     "--base-url", server.url, "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr()
    assert code == 0
    lines = out.out.strip().splitlines()
    assert lines[0].split()[:3] == ["row", "probe", "brain_area"]
    assert [ln.split()[0] for ln in lines[1:]] == ["5", "11"]
    assert "2 templates match" in out.err
    code = cli_main(["templates", "list", "--snr", "9", "3", "--base-url", server.url,
                     "--cache-dir", str(tmp_path / "c")])
    assert code == 2 and "snr" in capsys.readouterr().err


# -- end to end ----------------------------------------------------------------------------------
def test_generate_with_database_templates(server, tmp_path):
    write_example(tmp_path / "demo", seed=3, duration_s=2.0)
    cfg = json.loads((tmp_path / "demo" / "config.json").read_text())
    for key in ("sorting", "units"):
        cfg.pop(key)
    cfg["templates"] = {"type": "template_database", "base_url": server.url,
                        "cache_dir": str(tmp_path / "cache"), "rows": [5, 28],
                        "scaling": {"mode": "snr", "min": 8, "max": 12}}
    cfg["injection"]["trains"] = {"mode": "poisson", "rate_hz": 8.0}
    cfg["engine"] = {"progress": False, "chunk_duration_s": 0.1}
    (tmp_path / "demo" / "config.json").write_text(json.dumps(cfg))
    result = generate(load_config(tmp_path / "demo" / "config.json"))
    truth = result.truth
    plan = truth.plan
    assert [u.source_unit_id for u in plan.units] == [5, 28]
    assert [u.new_unit_id for u in plan.units] == [0, 1]
    for u, (dataset, index) in zip(plan.units, [(KS042, 5), (NPU, 4)]):
        p = u.template.provenance
        assert (p["dataset"], p["template_index"]) == (dataset, index)
        snr = u.template.peak_amplitude_uV / p["noise_uV"]
        assert 8 <= snr <= 12 and snr == pytest.approx(p["target_snr"], rel=1e-5)
        # scaled against the run's one noise estimate (its median over the neural contacts)
        assert p["noise_uV"] == float(np.median(truth.noise_uV[truth.recording.neural_channels]))
    assert plan.n_events > 10
    assert_generate_invariant(result)
    ft = np.load(result.output_dir / "firings_true.npy")
    assert set(np.unique(ft[2]).tolist()) == {5, 28}  # the database rows are the source units
    from hybridkit.results.verify import verify

    proof = verify(result.output_dir)  # hybridkit verify proves outputs of database templates too
    assert proof.ok, [d.line() for d in proof.findings.listed]


def test_spikeinterface_templates_sparse_with_text_unit_ids(tmp_path):
    """SpikeInterface's own Templates.to_zarr (not consolidated), with text unit ids and a
    sparsity_mask (templates_array then holds each unit's active channels only), served locally."""
    import csv

    import probeinterface as pi
    from spikeinterface.core import Templates
    from spikeinterface.core.sparsity import ChannelSparsity

    from hybridkit.plugins.templates.database.source import CSV_COLUMNS, _Dataset, open_store

    pos = np1_positions()[:48]
    probe = pi.Probe(ndim=2, si_units="um")
    probe.set_contacts(positions=pos, shapes="circle", shape_params={"radius": 6})
    probe.set_device_channel_indices(np.arange(48))
    rng = np.random.default_rng(4)
    t = np.arange(90) - 30
    active = [[0, 1, 2, 3, 5], [20, 21, 22], [30, 31, 32, 33, 34, 35, 36]]
    dense = np.zeros((3, 90, 48), np.float32)
    mask = np.zeros((3, 48), bool)
    for u, chans in enumerate(active):
        mask[u, chans] = True
        amp = rng.uniform(0.3, 1.0, len(chans)) * 100
        amp[1] = 150.0  # a clear peak channel
        dense[u][:, chans] = -np.exp(-(t / 3.0) ** 2)[:, None] * amp
    ids = np.array(["a1", "b22", "c"])
    full = Templates(templates_array=dense, sampling_frequency=30000.0, nbefore=30, unit_ids=ids,
                     probe=probe, is_in_uV=True)
    sparse = full.to_sparse(ChannelSparsity(mask, ids, full.channel_ids))
    assert sparse.templates_array.shape == (3, 90, 7)

    bucket = tmp_path / "bucket"
    bucket.mkdir()
    name = "si_sparse_text_ids.zarr"
    sparse.to_zarr(bucket / name)
    with open(bucket / "templates.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for u, chans in enumerate(active):
            w.writerow(["Neuropixels 1.0", "IMEC", "CA1", pos[chans[1], 1], 150.0, 5.0, 30.0, u,
                        chans[1], 100, name, f"s3://bucket/{name}"])
    srv = Server(bucket)
    try:
        opt = DatabaseOptions(base_url=srv.url, cache_dir=tmp_path / "cache", rows=[0, 1, 2])
        ds = _Dataset(open_store(opt), name)
        np.testing.assert_array_equal(ds.templates([2, 0]), sparse.get_dense_templates()[[2, 0]])
        recording = make_recording(tmp_path, np.zeros((600, 48), np.int16), positions=pos)
        bank = TemplateDatabase(opt).build(recording, None, [])
    finally:
        srv.stop()
    assert [bank.templates[k].provenance["unit_id"] for k in (0, 1, 2)] == ["a1", "b22", "c"]
    for k, chans in enumerate(active):
        tpl = bank.templates[k]
        assert tpl.peak_amplitude_uV == pytest.approx(150.0, rel=1e-5)
        col = list(tpl.channels).index(tpl.peak_channel)
        np.testing.assert_allclose(tpl.waveform[:, col], dense[k][:, chans[1]], atol=1e-3)


# -- a malicious index or zarr metadata: nothing leaves cache_dir, no ".." reaches a URL ----------
def _files_outside(root: Path, cache: Path) -> set[Path]:
    """Files and folders under ``root`` that are neither in ``cache`` nor on the way to it."""
    return {p for p in root.rglob("*") if cache not in p.parents and p != cache
            and p not in cache.parents}


@pytest.mark.parametrize("name", ["../../ESCAPED/x", "..", "/etc/ESCAPED", "a/b", "",
                                  "x" * 300, "a\\..\\..\\ESCAPED", "ok name"])
def test_malicious_dataset_name_in_the_index_is_refused(server, replica, tmp_path, np1_recording,
                                                        name):
    index = (replica / "templates.csv").read_text()
    (replica / "templates.csv").write_text(index.replace(KS042 + ",", f"{name},", 1))
    work = tmp_path / "work"  # the cache lives two levels below what a "../../" would reach
    cache = work / "deep" / "cache"
    before = _files_outside(tmp_path, cache)
    opt = DatabaseOptions(base_url=server.url, cache_dir=cache, rows=[5])
    with pytest.raises(TemplateError) as err:
        TemplateDatabase(opt).build(np1_recording, None, [])
    msg = str(err.value)
    assert "\n" not in msg and "row 0 dataset" in msg and "not a safe name" in msg
    assert _files_outside(tmp_path, cache) == before  # nothing written outside cache_dir
    assert not list(tmp_path.rglob("ESCAPED*"))
    assert [p for _, p in server.log] == ["templates.csv"]  # refused before any dataset request
    assert not any(".." in p for _, p in server.log)


def test_malicious_dimension_separator_is_refused(server, replica, tmp_path, np1_recording):
    meta_path = replica / KS042 / ".zmetadata"
    meta = json.loads(meta_path.read_text())
    meta["metadata"]["templates_array/.zarray"]["dimension_separator"] = "/../../../ESCAPED/"
    meta_path.write_text(json.dumps(meta))
    cache = tmp_path / "cache"
    before = _files_outside(tmp_path, cache)
    with pytest.raises(TemplateError, match="dimension_separator '/../../../ESCAPED/'"):
        TemplateDatabase(_options(server, tmp_path, rows=[5])).build(np1_recording, None, [])
    assert _files_outside(tmp_path, cache) == before
    assert not any(".." in p for _, p in server.log)
    assert not any("templates_array/" in p for _, p in server.log)  # no chunk was asked for


def test_safe_names_are_the_real_ones():
    from hybridkit.plugins.templates.database.zarr_http import check_name

    for name in (KS042, NPU, f"{KS042}/templates_array/5.0.0", f"{NPU}/.zmetadata", "probe/x"):
        assert check_name(name, "key") == name
    with pytest.raises(TemplateError, match="not a safe name"):
        check_name(f"{KS042}/../x", "key")
    with pytest.raises(TemplateError, match="one name"):
        check_name("probe/x", "dataset", single=True)
