"""Flat binary reader: layouts, geometry formats, and every user error."""
from __future__ import annotations

import numpy as np
import probeinterface as pi
import pytest
from pydantic import ValidationError

from hybridkit.errors import SourceError
from hybridkit.plugins.sources.binary import BinaryReader

N_CH, N_S = 6, 101
POS = np.array([[0, 0], [16, 20], [-3.5, 40], [0, 60], [16, 80]], dtype=float)  # 5 contacts, col 5 = sync


def data():
    return np.random.default_rng(3).integers(-30000, 30000, (N_S, N_CH)).astype(np.int16)


@pytest.fixture
def folder(tmp_path):
    data().tofile(tmp_path / "rec.bin")
    np.savetxt(tmp_path / "geom.txt", POS)
    return tmp_path


def open_bin(folder, **kw):
    opts = dict(type="binary", path=folder / "rec.bin", dtype="int16", n_channels=N_CH,
                sampling_rate=25000.0, geometry=folder / "geom.txt")
    opts.update(kw)
    return BinaryReader(BinaryReader.Options(**opts)).open()


def test_defaults_and_sync_column(folder):
    rec = open_bin(folder)
    assert rec.n_channels == N_CH and rec.n_samples == N_S and rec.sampling_rate == 25000.0
    assert rec.dtype == np.int16 and rec.order == "samples"
    np.testing.assert_array_equal(rec.read(0, N_S), data())
    np.testing.assert_array_equal(rec.neural, [True] * 5 + [False])
    np.testing.assert_array_equal(rec.channel_positions[:5], POS)
    assert np.isnan(rec.channel_positions[5]).all()
    np.testing.assert_array_equal(rec.gain_to_uV, [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(rec.probe.device_channel_indices, np.arange(5))
    np.testing.assert_array_equal(rec.probe.contact_positions, POS)


def test_samples_and_channels_major_read_identically(tmp_path):
    d = data()
    header = b"HDR!" * 4
    (tmp_path / "s.bin").write_bytes(header + d.tobytes())
    (tmp_path / "c.bin").write_bytes(header + d.T.copy().tobytes())
    np.save(tmp_path / "geom.npy", POS)
    common = dict(type="binary", dtype="<i2", n_channels=N_CH, sampling_rate=30000,
                  geometry=tmp_path / "geom.npy", offset_bytes=16)
    s = BinaryReader(BinaryReader.Options(path=tmp_path / "s.bin", **common)).open()
    c = BinaryReader(BinaryReader.Options(path=tmp_path / "c.bin", order="channels", **common)).open()
    assert s.n_samples == c.n_samples == N_S and c.files[0].offset_bytes == 16
    np.testing.assert_array_equal(s.read(0, N_S), d)
    np.testing.assert_array_equal(c.read(0, N_S), d)
    np.testing.assert_array_equal(c.read(50, 53, np.array([4, 1])), d[50:53, [4, 1]])


def test_float_dtype_and_gains(tmp_path):
    d = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    d.tofile(tmp_path / "rec.bin")
    np.savetxt(tmp_path / "geom.txt", POS[:3])
    rec = open_bin(tmp_path, dtype="float32", n_channels=3, gain_to_uV=[0.5, 0.25, 2.0], offset_to_uV=-1.0)
    assert rec.n_samples == 40
    np.testing.assert_array_equal(rec.read(0, 40), d)
    np.testing.assert_array_equal(rec.gain_to_uV, [0.5, 0.25, 2.0])
    np.testing.assert_array_equal(rec.offset_to_uV, [-1.0, -1.0, -1.0])


def test_channels_option(folder):
    rec = open_bin(folder, channels=[5, 4, 3, 1, 0], gain_to_uV=0.195)
    np.testing.assert_array_equal(rec.neural, [True, True, False, True, True, True])
    np.testing.assert_array_equal(rec.channel_positions[[5, 4, 3, 1, 0]], POS)
    assert np.isnan(rec.channel_positions[2]).all() and rec.gain_to_uV[2] == 0
    assert rec.gain_to_uV[0] == 0.195
    np.testing.assert_array_equal(rec.probe.device_channel_indices, [5, 4, 3, 1, 0])


def test_txt_any_whitespace(folder):
    (folder / "geom.txt").write_text("# x y\n0\t0\n16   20\n-3.5 40\n0 60\n16\t 80\n")
    np.testing.assert_array_equal(open_bin(folder).channel_positions[:5], POS)


def test_probeinterface_json_with_wiring(folder):
    probe = pi.Probe(ndim=2, si_units="um")
    probe.set_contacts(positions=POS, shapes="square", shape_params={"width": 12})
    probe.set_device_channel_indices([2, 0, 1, 4, -1])  # last contact not connected
    pi.write_probeinterface(folder / "probe.json", probe)
    rec = open_bin(folder, geometry=folder / "probe.json")
    np.testing.assert_array_equal(rec.neural, [True, True, True, False, True, False])
    np.testing.assert_array_equal(rec.channel_positions[[2, 0, 1, 4]], POS[:4])
    np.testing.assert_array_equal(rec.probe.device_channel_indices, [2, 0, 1, 4])
    assert rec.probe.contact_shapes[0] == "square"
    # config channels override the file's wiring
    rec2 = open_bin(folder, geometry=folder / "probe.json", channels=[0, 1, 2, 3])
    np.testing.assert_array_equal(rec2.channel_positions[:4], POS[:4])


def test_probeinterface_json_without_wiring(folder):
    probe = pi.Probe(ndim=2, si_units="um")
    probe.set_contacts(positions=POS)
    pi.write_probeinterface(folder / "probe.json", probe)
    rec = open_bin(folder, geometry=folder / "probe.json")
    np.testing.assert_array_equal(rec.channel_positions[:5], POS)
    assert not rec.neural[5]


def test_prb_two_groups(folder):
    a = pi.Probe(ndim=2)
    a.set_contacts(positions=POS[:2])
    a.set_device_channel_indices([3, 1])
    b = pi.Probe(ndim=2)
    b.set_contacts(positions=POS[2:] + [200, 0])
    b.set_device_channel_indices([0, 2, 5])
    group = pi.ProbeGroup()
    group.add_probe(a)
    group.add_probe(b)
    pi.write_prb(folder / "probe.prb", group)
    rec = open_bin(folder, geometry=folder / "probe.prb")
    np.testing.assert_array_equal(rec.neural, [True, True, True, True, False, True])
    np.testing.assert_array_equal(rec.channel_positions[[3, 1]], POS[:2])
    np.testing.assert_array_equal(rec.channel_positions[[0, 2, 5]], POS[2:] + [200, 0])


# -- errors -------------------------------------------------------------------------------------------
def test_size_not_a_multiple(folder):
    with pytest.raises(SourceError, match=r"recording.n_channels: file .*rec.bin has 1212 bytes.*"
                                          r"not a multiple of n_channels 7 x itemsize 2"):
        open_bin(folder, n_channels=7)
    with pytest.raises(SourceError, match=r"offset_bytes 2 that is not a multiple"):
        open_bin(folder, offset_bytes=2)
    with pytest.raises(SourceError, match=r"itemsize 4 \(float32\)"):
        open_bin(folder, dtype="float32", n_channels=5)


def test_geometry_rows_mismatch(folder):
    with pytest.raises(SourceError, match=r"recording.geometry: .*geom.txt has 5 rows but the file "
                                          r"has n_channels=4"):
        (folder / "rec4.bin").write_bytes(b"\0" * 32)
        open_bin(folder, path=folder / "rec4.bin", n_channels=4)
    with pytest.raises(SourceError, match=r"describes 5 contacts but recording.channels lists 4"):
        open_bin(folder, channels=[0, 1, 2, 3])


def test_gain_list_wrong_length(folder):
    with pytest.raises(SourceError, match=r"recording.gain_to_uV: 5 values given for n_channels=6"):
        open_bin(folder, gain_to_uV=[1.0] * 5)


def test_channel_out_of_range_or_repeated(folder):
    with pytest.raises(SourceError, match=r"recording.channels: column 6 .*valid columns are 0..5"):
        open_bin(folder, channels=[0, 1, 2, 3, 6])
    with pytest.raises(SourceError, match=r"column -1"):
        open_bin(folder, channels=[0, 1, 2, 3, -1])
    with pytest.raises(SourceError, match=r"column 2 .* more than one contact"):
        open_bin(folder, channels=[0, 2, 2, 3, 4])


def test_unknown_dtype(folder):
    with pytest.raises(ValidationError, match=r"'int17' is not a numpy dtype"):
        open_bin(folder, dtype="int17")
    with pytest.raises(ValidationError, match=r"'U4' is not an integer or float dtype"):
        open_bin(folder, dtype="U4")


def test_bad_geometry_files(folder):
    (folder / "geom.csv").write_text("0,0\n")
    with pytest.raises(SourceError, match=r"recording.geometry: .*geom.csv has an unknown geometry "
                                          r"format '.csv'; use .json"):
        open_bin(folder, geometry=folder / "geom.csv")
    with pytest.raises(SourceError, match=r"geometry file .*missing.npy does not exist"):
        open_bin(folder, geometry=folder / "missing.npy")
    np.save(folder / "bad.npy", np.zeros((5, 3)))
    with pytest.raises(SourceError, match=r"bad.npy must hold an \(n, 2\) table.*shape \(5, 3\)"):
        open_bin(folder, geometry=folder / "bad.npy")
    (folder / "bad.json").write_text("{not json")
    with pytest.raises(SourceError, match=r"cannot read probeinterface JSON file .*bad.json"):
        open_bin(folder, geometry=folder / "bad.json")
    with pytest.raises(SourceError, match=r"recording.path: binary file .*nope.bin does not exist"):
        open_bin(folder, path=folder / "nope.bin")


def test_registered_as_plugin():
    from hybridkit.registry import build_registry

    assert build_registry().table("source_reader")["binary"] is BinaryReader
