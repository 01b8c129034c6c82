"""SpikeGLX reader: every real .meta in tests/data/spikeglx, with tiny .bin files made here."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import probeinterface as pi
import pytest

from hybridkit.errors import HybridkitError, SourceError
from hybridkit.model import Recording
from hybridkit.plugins.sources.spikeglx import SpikeGLXReader
from hybridkit.formats.spikeglx_meta import read_meta, rewrite_meta
from tests.conftest import DATA as TEST_DATA

DATA = TEST_DATA / "spikeglx"
IBL = DATA / "ibl-neuropixel"
PI = DATA / "probeinterface"
OLD_NIDQ = DATA / "jrclust_v3_old_nidq" / "sample.meta"
ALL_METAS = sorted(IBL.glob("*.meta")) + sorted(PI.glob("*.meta"))
NIDQ = {"sample3B_g0_t0.nidq.meta"}
IMEC_METAS = [m for m in ALL_METAS if m.name not in NIDQ]
NIDQ_METAS = [m for m in ALL_METAS if m.name in NIDQ] + [OLD_NIDQ]

# SpikeInterface 0.105 (neo) fails on these: NP1110 imro groups, and a meta whose keys lack '~'
SI_UNREADABLE = {
    "NP1110_2x192_bank4_g0_t0.imec0.ap.meta", "NP1110_bank0_g0_t0.imec0.ap.meta",
    "NP1110_botrow80_g0_t0.imec0.ap.meta", "NP1110_vstripe_g0_t0.imec0.ap.meta",
    "sampleNP2.4_4shanks_g0_t0.imec.ap.meta",
}

# hand-computed from the meta: imAiRangeMax / imMaxInt / gain * 1e6
NP1_AP = 0.6 / 512 / 500 * 1e6  # 2.34375
NP1_LF = 0.6 / 512 / 250 * 1e6  # 4.6875
NP2_80 = 0.5 / 8192 / 80 * 1e6  # 0.762939453125
NP2_100 = 0.62 / 2048 / 100 * 1e6  # 3.02734375
EXPECTED_UV = {
    "sample3A_g0_t0.imec.lf.meta": NP1_LF, "sample3B_g0_t0.imec1.lf.meta": NP1_LF,
    "sampleNP2.1_g0_t0.imec.ap.meta": NP2_80, "sampleNP2.4_1shank_g0_t0.imec.ap.meta": NP2_80,
    "sampleNP2.4_4shanks_g0_t0.imec.ap.meta": NP2_80,
    "sampleNP2.4_4shanks_while_acquiring_incomplete.ap.meta": NP2_80,
    "NP2_4_shanks.imec0.ap.meta": NP2_80, "NP2_4_shanks_save_different_electrodes.imec0.ap.meta": NP2_80,
    "p2_g0_t0.imec0.ap.meta": NP2_80,
    "sampleNP2.4_4shanks_appVersion20230905.ap.meta": NP2_100, "sampleNP2QB.imec.ap.meta": NP2_100,
    "NP2020_sample_g0_t0.imec0.ap.meta": NP2_100, "NP2_2013_all_channels.imec0.ap.meta": NP2_100,
    "NP2_2013_subset_channels.imec0.ap.meta": NP2_100,
}  # every other imec meta here is NP1-family AP at gain 500


def make_stream(meta_src, folder, n_samples=200, *, stem="x_g0_t0.imec0.ap", data=None, updates=None):
    """Write ``<stem>.bin`` (int16 data) and a copy of ``meta_src`` whose sizes match; return the .bin."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = read_meta(meta_src)
    n_chan = int(meta["nSavedChans"])
    if data is None:
        data = np.arange(n_samples * n_chan, dtype=np.int64).reshape(n_samples, n_chan) % 30000
    data = np.asarray(data, dtype="<i2")
    bin_path = folder / f"{stem}.bin"
    data.tofile(bin_path)
    new = {"fileName": str(bin_path)}
    if "fileSizeBytes" in meta:  # an incomplete meta stays incomplete
        new["fileSizeBytes"] = str(data.nbytes)
        new["fileTimeSecs"] = repr(data.shape[0] / float(meta.get("imSampRate") or meta.get("niSampRate")))
    new.update(updates or {})
    rewrite_meta(meta_src, bin_path.with_suffix(".meta"), new)
    return bin_path


def open_glx(path, **options) -> "Recording":
    return SpikeGLXReader(SpikeGLXReader.Options(type="spikeglx", path=path, **options)).open()


def pi_probe(meta_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pi.read_spikeglx(meta_path)


def test_fixture_list_is_complete():
    assert len(ALL_METAS) == 36 and len(IMEC_METAS) == 35


@pytest.mark.parametrize("meta_src", IMEC_METAS, ids=lambda p: p.name)
def test_every_real_meta(meta_src, tmp_path):
    meta = read_meta(meta_src)
    band = "lf" if ".lf." in meta_src.name else "ap"
    bin_path = make_stream(meta_src, tmp_path, 150, stem=f"x_g0_t0.imec0.{band}")
    rec = open_glx(bin_path, min_sampling_rate_hz=0)  # LF streams too (refused by default)
    n_chan = int(meta["nSavedChans"])
    n_sync = int(meta["snsApLfSy"].split(",")[2])
    assert rec.n_channels == n_chan and rec.n_samples == 150 and rec.dtype == np.int16
    assert rec.sampling_rate == float(meta["imSampRate"])

    # sync words are the last SY columns: non-neural, gain 0, no position
    sync = np.arange(n_chan - n_sync, n_chan)
    assert np.array_equal(rec.neural_channels, np.arange(n_chan - n_sync))
    assert np.all(rec.gain_to_uV[sync] == 0) and np.isnan(rec.channel_positions[sync]).all()

    # gains: hand-computed, and SpikeInterface where it can read the file
    neural = rec.neural_channels
    np.testing.assert_allclose(rec.gain_to_uV[neural], EXPECTED_UV.get(meta_src.name, NP1_AP), rtol=1e-12)
    if meta_src.name not in SI_UNREADABLE:
        import spikeinterface.extractors as se

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            si_rec = se.read_spikeglx(tmp_path, stream_id=f"imec0.{band}")
        assert si_rec.get_num_channels() == neural.size
        np.testing.assert_allclose(rec.gain_to_uV[neural], si_rec.get_channel_gains(), rtol=1e-9)
        if si_rec.has_probe():  # SI attaches no probe to LF streams
            np.testing.assert_allclose(rec.channel_positions[neural], si_rec.get_channel_locations())

    # positions: probeinterface's own reading (of the AP sibling for LF files, same imroTbl)
    ref_meta = bin_path.with_suffix(".meta") if band == "ap" else Path(str(meta_src).replace(".lf.", ".ap."))
    ref = pi_probe(ref_meta)
    np.testing.assert_array_equal(rec.channel_positions[neural], ref.contact_positions[:, :2])
    assert np.array_equal(rec.probe.device_channel_indices, neural)
    np.testing.assert_array_equal(
        rec.channel_positions[rec.probe.device_channel_indices], rec.probe.contact_positions
    )
    assert rec.files[0].first_sample == int(meta.get("firstSample", 0))
    assert rec.files[0].meta_path == bin_path.with_suffix(".meta")


@pytest.mark.parametrize("meta_src", [IBL / "sample3A_g0_t0.imec.lf.meta", IBL / "sample3B_g0_t0.imec1.lf.meta"],
                         ids=lambda p: p.name)
def test_an_lf_stream_is_refused_below_min_sampling_rate(meta_src, tmp_path, capsys):
    """As an NWB LFP series: 2.5 kHz cannot carry spikes; one line naming the file, the rate,
    the option and what to read instead; lowering the option reads it."""
    from tests.helpers import main

    import re

    fs = float(read_meta(meta_src)["imSampRate"])  # a calibrated ~2.5 kHz
    bin_path = make_stream(meta_src, tmp_path, 150, stem="x_g0_t0.imec0.lf")
    with pytest.raises(SourceError, match=r"^recording: SpikeGLX file x_g0_t0\.imec0\.lf\.bin is sampled at "
                       rf"{re.escape(f'{fs:g}')} Hz, below recording\.min_sampling_rate_hz 10000 .*\(\.ap\.bin\).* lower "
                       r"min_sampling_rate_hz$"):
        open_glx(bin_path)
    assert open_glx(bin_path, min_sampling_rate_hz=fs).sampling_rate == fs  # the limit itself passes
    # an AP stream of the same probe passes the default
    ap_meta = Path(str(meta_src).replace(".lf.", ".ap."))
    ap = make_stream(ap_meta, tmp_path / "ap", 150, stem="x_g0_t0.imec0.ap")
    assert open_glx(ap).sampling_rate == float(read_meta(ap_meta)["imSampRate"]) > 10000
    # and the command line says it in one line, exit 2
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"recording": {"type": "spikeglx", "path": str(bin_path)},
                               "templates": {"type": "synthetic", "n_units": 1},
                               "injection": {"trains": {"mode": "poisson", "rate_hz": 5}}}))
    code, _, err = main(capsys, "generate", cfg)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "min_sampling_rate_hz 10000" in err


def test_traces_are_the_file(tmp_path):
    data = np.random.default_rng(0).integers(-2000, 2000, (300, 385))
    bin_path = make_stream(IBL / "sample3B_g0_t0.imec1.ap.meta", tmp_path, data=data)
    rec = open_glx(bin_path)
    np.testing.assert_array_equal(rec.read(0, 300), data)
    np.testing.assert_array_equal(rec.read(17, 18, np.array([0, 384])), data[17:18, [0, 384]])


def test_saved_channel_subset(tmp_path):
    src = PI / "NP1_saved_only_subset_of_channels.meta"
    rec = open_glx(make_stream(src, tmp_path))
    assert rec.n_channels == 152 and rec.neural.sum() == 151
    assert not rec.neural[151] and rec.gain_to_uV[151] == 0 and np.isnan(rec.channel_positions[151]).all()
    assert rec.gain_to_uV[150] == NP1_AP
    ref = pi_probe(tmp_path / "x_g0_t0.imec0.ap.meta")
    np.testing.assert_array_equal(rec.channel_positions[:151], ref.contact_positions)


def test_gain_indexed_by_acquisition_id(tmp_path):
    """Saved subset 0:9,20:29: column 10 carries acquisition channel 20, so imro entry 20's gain."""
    meta = read_meta(PI / "Noise_g0_t0.imec0.ap.meta")
    header, *entries = meta["imroTbl"].split(")(")
    rows = []
    for e in entries:
        f = e.strip("()").split()
        f[3] = "250" if int(f[0]) >= 20 else "500"  # apgain by acquisition channel
        rows.append("(" + " ".join(f) + ")")
    imro = header + ")" + "".join(rows)
    bin_path = make_stream(
        PI / "Noise_g0_t0.imec0.ap.meta", tmp_path, 50, data=np.zeros((50, 21)),
        updates={"imroTbl": imro, "snsSaveChanSubset": "0:9,20:29,768", "nSavedChans": "21",
                 "snsApLfSy": "20,0,1", "fileSizeBytes": str(50 * 21 * 2)},
    )
    rec = open_glx(bin_path)
    np.testing.assert_array_equal(rec.gain_to_uV[:10], NP1_AP)
    np.testing.assert_array_equal(rec.gain_to_uV[10:20], 2 * NP1_AP)
    assert rec.gain_to_uV[20] == 0 and not rec.neural[20]
    full = pi_probe(PI / "Noise_g0_t0.imec0.ap.meta")
    np.testing.assert_array_equal(rec.channel_positions[10:20], full.contact_positions[20:30])


def test_two_files_ordered_by_first_sample(tmp_path):
    src = IBL / "sample3B_g0_t0.imec1.ap.meta"
    a = np.random.default_rng(1).integers(-500, 500, (120, 385))
    b = np.random.default_rng(2).integers(-500, 500, (80, 385))
    # t0 starts later than t1: name order and time order disagree on purpose
    make_stream(src, tmp_path, stem="run_g0_t0.imec0.ap", data=b, updates={"firstSample": "9000"})
    make_stream(src, tmp_path, stem="run_g0_t1.imec0.ap", data=a, updates={"firstSample": "1000"})
    rec = open_glx(tmp_path / "run_g0_t*.imec0.ap.bin")
    assert [f.path.name for f in rec.files] == ["run_g0_t1.imec0.ap.bin", "run_g0_t0.imec0.ap.bin"]
    assert [f.first_sample for f in rec.files] == [1000, 9000]
    assert rec.n_samples == 200 and list(rec.file_starts) == [0, 120, 200]
    np.testing.assert_array_equal(rec.read(117, 123), np.concatenate([a[117:], b[:3]]))
    np.testing.assert_array_equal(rec.read(120, 121), b[:1])


def test_files_of_different_streams_refused(tmp_path):
    make_stream(PI / "Noise_g0_t0.imec0.ap.meta", tmp_path, stem="run_g0_t0.imec0.ap")
    make_stream(PI / "NP1_saved_only_subset_of_channels.meta", tmp_path, stem="run_g0_t1.imec0.ap")
    with pytest.raises(SourceError, match=r"run_g0_t0.*run_g0_t1.*differ in nSavedChans|"
                                          r"run_g0_t1.*run_g0_t0.*differ in nSavedChans"):
        open_glx(tmp_path / "run_g0_t*.imec0.ap.bin")


def test_overlapping_files_refused(tmp_path):
    src = IBL / "sample3B_g0_t0.imec1.ap.meta"
    make_stream(src, tmp_path, 100, stem="run_g0_t0.imec0.ap", updates={"firstSample": "1000"})
    make_stream(src, tmp_path, 100, stem="run_g0_t1.imec0.ap", updates={"firstSample": "1099"})
    with pytest.raises(SourceError, match=r"run_g0_t0.imec0.ap.bin and run_g0_t1.imec0.ap.bin overlap"
                                          r".*firstSample 1099, before .* ends at 1100"):
        open_glx(tmp_path / "run_g0_t*.imec0.ap.bin")
    # contiguous (1100) is accepted
    make_stream(src, tmp_path, 100, stem="run_g0_t1.imec0.ap", updates={"firstSample": "1100"})
    assert open_glx(tmp_path / "run_g0_t*.imec0.ap.bin").n_samples == 200


def test_bad_size(tmp_path):
    bin_path = make_stream(IBL / "sample3B_g0_t0.imec1.ap.meta", tmp_path, 10)
    with open(bin_path, "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(SourceError, match=r"x_g0_t0.imec0.ap.bin: size 7702 bytes is not a multiple "
                                          r"of nSavedChans 385 x itemsize 2"):
        open_glx(bin_path)


def test_meta_disagrees_with_bin(tmp_path):
    bin_path = make_stream(IBL / "sample3B_g0_t0.imec1.ap.meta", tmp_path, 10,
                           updates={"fileSizeBytes": "15400"})
    with pytest.raises(SourceError, match=r"size 7700 bytes but its meta says fileSizeBytes=15400"):
        open_glx(bin_path)


def test_missing_meta_and_no_match(tmp_path):
    bin_path = make_stream(IBL / "sample3B_g0_t0.imec1.ap.meta", tmp_path, 10)
    bin_path.with_suffix(".meta").unlink()
    with pytest.raises(SourceError, match=r"meta file x_g0_t0.imec0.ap.meta is missing"):
        open_glx(bin_path)
    with pytest.raises(SourceError, match=r"no file matches the pattern .*nothing_\*.bin"):
        open_glx(tmp_path / "nothing_*.bin")
    with pytest.raises(SourceError, match=r"does not exist"):
        open_glx(tmp_path / "absent.imec0.ap.bin")


def test_meta_path_accepted(tmp_path):
    bin_path = make_stream(IBL / "sample3B_g0_t0.imec1.ap.meta", tmp_path, 10)
    assert open_glx(bin_path.with_suffix(".meta")).files[0].path == bin_path


@pytest.mark.parametrize("meta_src", NIDQ_METAS, ids=lambda p: p.name)
def test_nidq_refused(meta_src, tmp_path):
    bin_path = make_stream(meta_src, tmp_path, 20, stem="x_g0_t0.nidq")
    with pytest.raises(HybridkitError, match=r"nidq stream has no probe.*'binary' reader"):
        open_glx(bin_path)


def test_geometry_probeinterface_cannot_read(tmp_path):
    bin_path = make_stream(PI / "Noise_g0_t0.imec0.ap.meta", tmp_path, 10,
                           updates={"imDatPrb_pn": "NP9999"})
    with pytest.raises(SourceError, match=r"probeinterface cannot read its geometry.*'binary' reader"):
        open_glx(bin_path)


def test_garbled_imro(tmp_path):
    bin_path = make_stream(PI / "Noise_g0_t0.imec0.ap.meta", tmp_path, 10,
                           updates={"imroTbl": "(0,384)(0 0 zero 500 250 1)"})
    with pytest.raises(SourceError, match=r"x_g0_t0.imec0.ap.meta: imroTbl is not a table"):
        open_glx(bin_path)


def test_unknown_probe_type_gain(tmp_path):
    bin_path = make_stream(IBL / "sampleNP2.1_g0_t0.imec.ap.meta", tmp_path, 10,
                           updates={"imDatPrb_type": "9999", "imDatPrb_pn": "NP9999",
                                    "imroTbl": "(9999,384)(0 1 0 0)"})
    with pytest.raises(SourceError, match=r"cannot determine gains for probe type 9999"):
        open_glx(bin_path)


# -- .meta text -----------------------------------------------------------------------------------
def test_read_meta_pitfalls():
    tab = read_meta(IBL / "sample3B_g0_t0.imec1.ap.meta")
    assert tab["imDatBsc_pn"] == "NP2_QBSC_00"  # trailing TAB stripped
    assert tab["nSavedChans"] == "385" and tab["imroTbl"].startswith("(0,384)(0 0 0 500 250 1)")
    no_tilde = read_meta(IBL / "sampleNP2.4_4shanks_g0_t0.imec.ap.meta")
    assert no_tilde["imroTbl"].startswith("(24,384)(0 0 0 0 0)") and no_tilde["imRoFile"].endswith(".imro")
    old = read_meta(OLD_NIDQ)
    assert old["snsChanMap"].startswith("(0,0,6,2,32,0,0)") and "typeThis" not in old
    assert read_meta(PI / "Noise_g0_t0.imec0.ap.meta")["userNotes"] == ""
    crlf_src = PI / "NP1_saved_only_subset_of_channels.meta"
    assert crlf_src.read_bytes().count(b"\r\n") > 10
    crlf = read_meta(crlf_src)
    assert crlf["snsSaveChanSubset"] == "0:150,768" and crlf["nSavedChans"] == "152"


def test_rewrite_meta_keeps_everything_else(tmp_path):
    src = PI / "NP1_saved_only_subset_of_channels.meta"  # CRLF
    dst = rewrite_meta(src, tmp_path / "a.meta",
                       {"fileSizeBytes": "770", "~imroTbl": "(0,1)(0 0 0 500 250 1)",
                        "fileSHA1": None, "newKey": "1"})
    expected = b""
    for line in src.read_bytes().splitlines(keepends=True):
        key = line.split(b"=", 1)[0]
        if key == b"fileSHA1":
            continue
        if key == b"fileSizeBytes":
            line = b"fileSizeBytes=770\r\n"
        if key == b"~imroTbl":
            line = b"~imroTbl=(0,1)(0 0 0 500 250 1)\r\n"
        expected += line
    assert dst.read_bytes() == expected + b"newKey=1\r\n"
    meta = read_meta(dst)
    assert meta["fileSizeBytes"] == "770" and "fileSHA1" not in meta and meta["newKey"] == "1"
    assert meta["imroTbl"] == "(0,1)(0 0 0 500 250 1)"
    assert b"~imroTbl=(0,1)(0 0 0 500 250 1)\r\n" in dst.read_bytes()
    # a file with LF endings and a trailing TAB is copied byte for byte when nothing changes
    lf_src = IBL / "sample3B_g0_t0.imec1.ap.meta"
    copy = rewrite_meta(lf_src, tmp_path / "b.meta", {}).read_bytes()
    assert copy == lf_src.read_bytes() and b"NP2_QBSC_00\t\n" in copy
    assert rewrite_meta(lf_src, tmp_path / "c.meta", {"x": "1"}).read_bytes() == copy + b"x=1\n"


def test_registered_as_plugin():
    from hybridkit.registry import build_registry

    assert build_registry().table("source_reader")["spikeglx"] is SpikeGLXReader
