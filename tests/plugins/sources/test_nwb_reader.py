"""Source reader ``nwb``: local files (pynwb-written and real fixtures), streamed URLs, DANDI assets."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.errors import ConfigError, OutputError, SourceError
from hybridkit.plugins.sources.nwb.reader import NwbReader

from tests.plugins.nwb_testutil import FakeDandiHandler, Server, write_nwb

FS = 30000.0


def open_nwb(**options):
    return NwbReader(NwbReader.Options(type="nwb", **options)).open()


@pytest.fixture
def data():
    return (np.random.default_rng(5).normal(size=(4000, 6)) * 40).astype(np.int16)


def test_reads_traces_gains_positions_rate(tmp_path, data):
    cc = np.array([1.0, 1.0, 2.0, 1.0, 0.5, 1.0], np.float32)
    pos = np.c_[[0, 32, 0, 32, 0, 32], [0, 0, 20, 20, 40, 40]].astype(float)
    path = write_nwb(tmp_path / "a.nwb", data, fs=FS, conversion=0.195e-6, channel_conversion=cc,
                     offset=-1e-5, positions=pos, chunks=(1000, 6))
    rec = open_nwb(path=path)
    assert (rec.n_samples, rec.n_channels, rec.sampling_rate, rec.dtype) == (4000, 6, FS, np.int16)
    np.testing.assert_allclose(rec.gain_to_uV, 0.195 * cc.astype(float), rtol=1e-12)
    np.testing.assert_allclose(rec.offset_to_uV, np.full(6, -10.0), rtol=1e-12)
    np.testing.assert_array_equal(rec.channel_positions, pos)
    assert rec.neural.all() and list(rec.probe.device_channel_indices) == list(range(6))
    # blocks straddling the 1000-sample chunks, a channel subset, the last sample
    np.testing.assert_array_equal(rec.read(999, 2001), data[999:2001])
    np.testing.assert_array_equal(rec.read(3999, 4000, np.array([5, 1])), data[3999:4000, [5, 1]])
    assert rec.meta["nwb"]["channel_names"] == [f"AP{i}" for i in range(6)]
    assert rec.meta["nwb"]["electrical_series_path"] == "acquisition/ElectricalSeries"
    rec.close()


def test_matches_spikeinterface(tmp_path, data):
    import spikeinterface.extractors as se

    path = write_nwb(tmp_path / "a.nwb", data, conversion=0.3e-6)
    rec = open_nwb(path=path)
    si = se.read_nwb_recording(path)
    uv = rec.read(100, 300).astype(float) * rec.gain_to_uV + rec.offset_to_uV
    np.testing.assert_allclose(uv, si.get_traces(start_frame=100, end_frame=300, return_in_uV=True), rtol=1e-6)
    np.testing.assert_allclose(rec.channel_positions, si.get_channel_locations())


def test_atlas_positions_are_not_probe_positions(tmp_path, data):
    """x/y/z are the electrodes' places in the brain (NWB): only rel_x/rel_y place contacts on the
    probe. Atlas-only tables (repeating positions too) ask for geometry in one line."""
    atlas = np.c_[np.full(6, 1.2), np.linspace(-4.5, -4.0, 6), np.full(6, -1.6)]
    atlas[3] = atlas[2]  # two contacts at the same atlas point: no internal ValueError
    path = write_nwb(tmp_path / "a.nwb", data, positions=atlas, position_columns=("x", "y", "z"))
    with pytest.raises(SourceError, match=r"a.nwb:/acquisition/ElectricalSeries: the electrodes table has "
                                          r"only x/y/z, the electrodes' places in the brain .* give "
                                          r"recording.geometry"):
        open_nwb(path=path)
    geom = np.c_[np.zeros(6), np.arange(6) * 15.0]
    np.save(tmp_path / "geom.npy", geom)
    np.testing.assert_array_equal(open_nwb(path=path, geometry=tmp_path / "geom.npy").channel_positions, geom)
    # both: rel_x/rel_y are used, the atlas ignored
    both = np.c_[geom, atlas]
    path = write_nwb(tmp_path / "b.nwb", data, positions=both, position_columns=("rel_x", "rel_y", "x", "y", "z"))
    np.testing.assert_array_equal(open_nwb(path=path).channel_positions, geom)


def test_repeated_probe_positions_are_one_line(tmp_path, data):
    pos = np.c_[np.zeros(6), [0, 20, 40, 40, 80, 100]].astype(float)
    path = write_nwb(tmp_path / "a.nwb", data, positions=pos)
    with pytest.raises(SourceError, match=r"channels \[2, 3\] share the probe position \(rel_x, rel_y\) = "
                                          r"\(0.0, 40.0\) um; .* recording.geometry"):
        open_nwb(path=path)


@pytest.mark.parametrize("timestamps", [False, True], ids=["starting_time", "timestamps"])
def test_start_time_is_kept(tmp_path, data, timestamps):
    """neuroconv's starting_time (3.05 s) or a first timestamp (12.5 s) is the recording's start."""
    start = 12.5 if timestamps else 3.05
    path = write_nwb(tmp_path / "a.nwb", data, fs=25000.0, start=start, timestamps=timestamps)
    rec = open_nwb(path=path)
    assert rec.start_time_s == start
    assert rec.sampling_rate == pytest.approx(25000.0, rel=1e-9)


def test_low_sampling_rate_refused_unless_asked(tmp_path, data):
    path = write_nwb(tmp_path / "lfp.nwb", data, fs=2500.0)
    with pytest.raises(SourceError, match=r"lfp.nwb:/acquisition/ElectricalSeries is sampled at 2500 Hz, "
                                          r"below recording.min_sampling_rate_hz 10000 .* lower "
                                          r"min_sampling_rate_hz"):
        open_nwb(path=path)
    assert open_nwb(path=path, min_sampling_rate_hz=2000).sampling_rate == 2500.0


def test_several_series_need_a_choice(tmp_path, data):
    path = write_nwb(tmp_path / "a.nwb", data, series=("ElectricalSeriesAP", "ElectricalSeriesLF"))
    with pytest.raises(SourceError, match=r"holds 2 ElectricalSeries \(acquisition/ElectricalSeriesAP, "
                                          r"acquisition/ElectricalSeriesLF\); choose one"):
        open_nwb(path=path)
    rec = open_nwb(path=path, electrical_series_path="/acquisition/ElectricalSeriesLF")
    assert rec.name == "ElectricalSeriesLF"
    with pytest.raises(SourceError, match="'acquisition/Nope' is not an ElectricalSeries .* it has: "
                                          "acquisition/ElectricalSeriesAP, acquisition/ElectricalSeriesLF"):
        open_nwb(path=path, electrical_series_path="acquisition/Nope")


def test_neuroconv_export_positions_from_geometry(tmp_path, data_dir):
    """The real SpikeInterface/neuroconv export: gain 0.195, no positions in the electrodes table."""
    import spikeinterface.extractors as se

    path = data_dir / "nwb" / "ks4_sample_si_neuroconv_first6000.nwb"
    with pytest.raises(SourceError, match="electrodes table has no positions .* give recording.geometry"):
        open_nwb(path=path)
    locs = np.load(data_dir / "kilosort4_cpu_10s_32ch" / "channel_locations_um.npy")
    np.save(tmp_path / "geom.npy", locs)
    rec = open_nwb(path=path, geometry=tmp_path / "geom.npy")
    assert (rec.n_samples, rec.n_channels) == (6000, 32)
    np.testing.assert_allclose(rec.gain_to_uV, np.full(32, 0.195), rtol=1e-12)
    np.testing.assert_array_equal(rec.channel_positions, locs)
    assert rec.meta["nwb"]["channel_names"] == [str(i) for i in range(32)]
    si = se.read_nwb_recording(path)
    np.testing.assert_array_equal(rec.read(0, 6000), si.get_traces())
    np.testing.assert_array_equal(rec.read(2500, 2600, np.array([31])), si.get_traces(start_frame=2500, end_frame=2600)[:, [31]])


def test_missing_position_is_one_line(tmp_path, data):
    pos = np.c_[np.zeros(6), np.arange(6) * 20.0]
    pos[3, 1] = np.nan
    path = write_nwb(tmp_path / "a.nwb", data, positions=pos)
    with pytest.raises(SourceError) as info:
        open_nwb(path=path)
    assert "position (rel_x, rel_y) is missing (NaN) for channel(s) [3]" in str(info.value)
    assert "\n" not in str(info.value)


def test_no_electrical_series(data_dir):
    with pytest.raises(SourceError, match=r"holds no ElectricalSeries \(it has acquisition, intervals, "
                                          r"processing, units\)"):
        open_nwb(path=data_dir / "nwb" / "sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb")


def test_not_nwb_and_missing(tmp_path):
    (tmp_path / "x.nwb").write_bytes(b"not hdf5")
    with pytest.raises(SourceError, match="is not an NWB HDF5 file"):
        open_nwb(path=tmp_path / "x.nwb")
    with pytest.raises(SourceError, match="does not exist"):
        open_nwb(path=tmp_path / "missing.nwb")


def test_options_need_exactly_one_source(tmp_path):
    cfg = {"recording": {"type": "nwb", "path": "a.nwb", "url": "http://x/a.nwb"},
           "templates": {"type": "local"}, "sorting": {"type": "phy", "path": "ks"}, "units": {"ids": [1]}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="give exactly one of path, url or dandiset"):
        load_config(tmp_path / "c.json")
    cfg["recording"] = {"type": "nwb", "dandiset": "12"}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"recording.dandiset = \"12\": .*six digits"):
        load_config(tmp_path / "c.json")


def test_legacy_writer_refuses_nwb_source(tmp_path, data):
    rec = open_nwb(path=write_nwb(tmp_path / "a.nwb", data))
    with pytest.raises(OutputError, match="not a flat binary"):
        rec.layout(0)


# -- streaming ---------------------------------------------------------------------------------
def test_streamed_read_fetches_only_what_is_read(tmp_path):
    big = (np.random.default_rng(1).normal(size=(200_000, 16)) * 40).astype(np.int16)  # 6.4 MB
    write_nwb(tmp_path / "big.nwb", big, chunks=(5000, 16))
    size = (tmp_path / "big.nwb").stat().st_size
    with Server(tmp_path) as srv:
        rec = open_nwb(url=f"{srv.url}/big.nwb", stream_block_mb=0.25)
        assert rec.n_samples == 200_000 and rec.files[0].path.name == "big.nwb"
        np.testing.assert_array_equal(rec.read(150_000, 151_000), big[150_000:151_000])
        rec.close()
        fetched = sum(n for method, _, n in srv.requests if method == "GET")
    assert any(method == "GET" for method, _, _ in srv.requests)
    assert fetched < size / 4, f"fetched {fetched} of {size} bytes"


def test_url_404_is_one_line(tmp_path):
    with Server(tmp_path) as srv:
        with pytest.raises(SourceError) as info:
            open_nwb(url=f"{srv.url}/nope.nwb")
    assert str(info.value) == f"recording.url: {srv.url}/nope.nwb answered HTTP 404 Not Found; check the URL"


def test_dandi_asset_resolved_and_streamed(tmp_path, data, monkeypatch):
    monkeypatch.setenv("DANDI_NO_ET", "1")
    write_nwb(tmp_path / "blob.nwb", data)
    assets = {"sub-1/sub-1_ecephys.nwb": "blob.nwb"}
    with Server(tmp_path, FakeDandiHandler, assets) as srv:
        rec = open_nwb(dandiset="000999", asset_path="sub-1/sub-1_ecephys.nwb", dandiset_version="draft",
                       dandi_instance=f"{srv.url}/api")
        np.testing.assert_array_equal(rec.read(0, 4000), data)
        rec.close()
        # no version: the latest published one, else the draft (this dandiset has only a draft)
        rec = open_nwb(dandiset="000999", asset_path="sub-1/sub-1_ecephys.nwb", dandi_instance=f"{srv.url}/api")
        np.testing.assert_array_equal(rec.read(3990, 4000), data[3990:])
        rec.close()
        paths = [p for _, p, _ in srv.requests]
        with pytest.raises(SourceError, match=r"recording.asset_path: 'sub-2/x.nwb' not found in dandiset 000999"):
            open_nwb(dandiset="000999", asset_path="sub-2/x.nwb", dandiset_version="draft",
                     dandi_instance=f"{srv.url}/api")
    assert any(p.startswith("/api/dandisets/000999/versions/draft/assets/") for p in paths)
    assert any(p.startswith("/api/assets/") and p.endswith("/download/") for p in paths)  # redirect followed
    assert any(p == "/files/blob.nwb" for p in paths)


# -- the CLI: one line, exit 2 -------------------------------------------------------------------
@pytest.mark.parametrize("case", ["no_series", "no_position", "http_404"])
def test_cli_bad_input_one_line(tmp_path, data_dir, case):
    src = data_dir / "nwb" / "sub_anm00239123_ses_20170627T093549_ecephys_and_ogen.nwb"
    recording = {"type": "nwb", "path": str(src)}
    if case == "no_position":
        recording["path"] = str(data_dir / "nwb" / "ks4_sample_si_neuroconv_first6000.nwb")
    if case == "http_404":
        srv = Server(tmp_path).__enter__()
        recording = {"type": "nwb", "url": f"{srv.url}/missing.nwb"}
    shutil.copytree(data_dir / "kilosort4_cpu_10s_32ch" / "kilosort4", tmp_path / "ks")
    cfg = {"seed": 1, "recording": recording, "sorting": {"type": "phy", "path": "ks"}, "units": {"ids": [1]},
           "engine": {"progress": False}, "output": {"directory": "out"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    try:
        proc = subprocess.run([sys.executable, "-m", "hybridkit", "generate", str(tmp_path / "c.json")],
                              capture_output=True, text=True, env={"DANDI_NO_ET": "1", "PATH": "/usr/bin:/bin"})
    finally:
        if case == "http_404":
            srv.__exit__(None)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    expected = {"no_series": "holds no ElectricalSeries", "no_position": "has no positions",
                "http_404": "answered HTTP 404 Not Found"}[case]
    assert expected in lines[0]
    assert not (tmp_path / "out").exists()
