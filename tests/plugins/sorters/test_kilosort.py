"""The ``kilosort`` adapter on rez.mat files built to the layout MATLAB KiloSort saves.

Index bases, per field: st3(:,1) spike sample, taken as is (rezToPhy writes it unchanged as phy's
0-based spike_times); st3(:,2) template, 1-based (unit id = value - 1, as phy shows it);
st3(:,5) KiloSort 1 merged cluster, written unchanged by rezToPhy as phy's cluster id;
ops.chanMap 1-based raw channels. v7.3 files are written by hdf5storage (MATLAB's HDF5 layout,
transposed arrays, MATLAB_class attributes), v5 files by scipy.io.savemat.
"""
from __future__ import annotations


import h5py
import numpy as np
import pytest

from hybridkit.config.run_config import validate_config
from hybridkit.errors import ConfigError, SortingError
from hybridkit.plugins.sorters.kilosort import KilosortAdapter
from tests.helpers import make_recording, run_cli
from tests.plugins.sorters.sorter_files import col, rez_dict, savemat
from tests.plugins.sorters.compliance import assert_sorting_conventions

TIMES = np.array([100, 40, 40, 7, 250])  # 0-based samples, unsorted as st3 may be
UNITS = np.array([2, 0, 1, 0, 2])  # 0-based template ids
CHAN0 = np.array([0, 1, 3, 4])  # used channels (file columns); column 2 is broken, 5 is sync


def _templates(n=3, nt=5, nch=4):
    return np.arange(n * nt * nch, dtype=np.float64).reshape(n, nt, nch) / 10.0


def _rez(**kw):
    args = dict(fs=30000.0, n_total=6, chan_map0=CHAN0, xc=[0, 32, 0, 32], yc=[0, 0, 40, 40],
                templates=_templates(), good=[True, False, True])
    args.update(kw)
    return rez_dict(TIMES, UNITS, **args)


def load(path, **opts):
    return KilosortAdapter(KilosortAdapter.Options(type="kilosort", path=path, **opts)).load()


@pytest.mark.parametrize("version", ["7.3", "5"])
def test_rez_fields_and_index_bases(tmp_path, version):
    path = savemat(tmp_path / "rez.mat", {"rez": _rez()}, version)
    s = load(path)
    order = np.argsort(TIMES, kind="stable")
    assert_sorting_conventions(s, unit_ids=[0, 1, 2], labels={0: "good", 1: "mua", 2: "good"},
                               fmt="kilosort", n_samples=251, n_channels=5)
    assert s.spike_times.tolist() == TIMES[order].tolist() == [7, 40, 40, 100, 250]  # no -1
    assert s.spike_units.tolist() == UNITS[order].tolist() == [0, 0, 1, 2, 2]  # st3(:,2) - 1
    assert s.channel_map.tolist() == [0, 1, 3, 4]  # chanMap - 1
    assert s.channel_positions.tolist() == [[0, 0], [32, 0], [0, 40], [32, 40]]
    assert s.sampling_rate == 30000.0
    tpl = _templates()
    assert s.templates.shape == (3, 5, 4) and s.template_units.tolist() == [0, 1, 2]
    # Wraw is Nchan x nt0 x Nfilt in MATLAB: element (c, t, k) is template k, time t, channel c
    assert s.templates[2, 3, 1] == np.float32(tpl[2, 3, 1])
    np.testing.assert_array_equal(s.templates, tpl.astype(np.float32))


def test_v73_file_is_matlab_layout(tmp_path):
    """The test file really has MATLAB's v7.3 encoding, so the reader's transposes are exercised."""
    path = savemat(tmp_path / "rez.mat", {"rez": _rez()})
    assert open(path, "rb").read(19) == b"MATLAB 7.3 MAT-file"
    with h5py.File(path, "r") as f:
        assert f["rez/st3"].shape == (5, 5) and f["rez/st3"][1, 0] == 3.0  # row = MATLAB column
        assert f["rez/Wraw"].shape == (3, 5, 4)  # Nfilt, nt0, Nchan reversed from MATLAB
        assert f["rez/ops/chanMap"].shape == (1, 4)
        assert f["rez/cProj"].attrs["MATLAB_empty"] == 1
        assert f["rez"].attrs["MATLAB_class"] == b"struct"


def test_templates_from_w_u_mu(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 3, 2))  # nt0 x Nfilt x nRank
    U = rng.normal(size=(4, 3, 2))  # Nchan x Nfilt x nRank
    mu = np.array([1.0, 2.0, 3.0])
    rez = _rez(templates=None)
    rez.update(W=W, U=U, mu=col(mu))
    s = load(savemat(tmp_path / "rez.mat", {"rez": rez}))
    k, t, c = 1, 4, 2
    expected = mu[k] * (W[t, k, 0] * U[c, k, 0] + W[t, k, 1] * U[c, k, 1])
    assert s.templates.shape == (3, 5, 4)
    assert s.templates[k, t, c] == pytest.approx(expected, rel=1e-6)


def test_kilosort1_full_chanmap_connected_and_merged_clusters(tmp_path):
    """KS1: ops.chanMap lists every channel, rez.connected marks used ones; st3(:,5) merged ids."""
    rez = _rez()
    del rez["ops"]["igood"]
    rez["ops"]["chanMap"] = col([1, 2, 3, 4, 5, 6])
    rez["connected"] = col([1, 1, 0, 1, 1, 0], bool)
    rez["xcoords"], rez["ycoords"] = col([0, 32, 0, 0, 32, 0]), col([0, 0, 20, 40, 40, 60])
    del rez["xc"], rez["yc"]
    rez["st3"][:, 4] = [9, 4, 4, 4, 9]  # merged cluster of each spike
    s = load(savemat(tmp_path / "rez.mat", {"rez": rez}))
    assert s.channel_map.tolist() == [0, 1, 3, 4]
    assert s.channel_positions.tolist() == [[0, 0], [32, 0], [0, 40], [32, 40]]
    assert s.spike_units.tolist() == [4, 4, 4, 9, 9]  # as rezToPhy writes spike_clusters
    assert s.labels == {}
    assert load(tmp_path / "rez.mat", clusters="templates").spike_units.tolist() == [0, 0, 1, 2, 2]


def test_chanmap_given_as_a_windows_path(tmp_path):
    rez = _rez()
    rez["ops"]["chanMap"] = "C:\\Users\\lab\\configs\\chanMap_np.mat"
    rez["ops"]["igood"] = col([True, True, True, True, False], bool)
    savemat(tmp_path / "rez.mat", {"rez": rez})
    with pytest.raises(SortingError, match=r"chanMap_np.mat.*not found.*sorting.chan_map"):
        load(tmp_path / "rez.mat")
    savemat(tmp_path / "chanMap_np.mat", {
        "chanMap": col([1, 2, 3, 4, 5, 6]), "connected": col([1, 1, 0, 1, 1, 1], bool),
        "xcoords": col([0, 32, 0, 0, 32, 0]), "ycoords": col([0, 0, 20, 40, 40, 60])}, "5")
    s = load(tmp_path / "rez.mat")  # found by name beside the rez; igood drops the last one
    assert s.channel_map.tolist() == [0, 1, 3, 4]
    other = tmp_path / "maps"
    other.mkdir()
    (tmp_path / "chanMap_np.mat").rename(other / "cm.mat")
    assert load(tmp_path / "rez.mat", chan_map=other / "cm.mat").channel_map.tolist() == [0, 1, 3, 4]


def test_failed_run_without_st3(tmp_path):
    rez = _rez()
    del rez["st3"]
    path = savemat(tmp_path / "rez.mat", {"rez": rez})
    with pytest.raises(SortingError, match=r"rez has no st3 .*did not finish"):
        load(path)


def test_empty_st3_stored_as_dims(tmp_path):
    s = load(savemat(tmp_path / "rez.mat", {"rez": rez_dict([], [], fs=30000.0, n_total=6,
                                                             chan_map0=CHAN0, xc=[0] * 4, yc=[0] * 4)}))
    assert s.spike_times.size == 0 and s.unit_ids.size == 0


def test_wrong_and_truncated_files(tmp_path):
    path = savemat(tmp_path / "rez.mat", {"rez": _rez()})
    data = path.read_bytes()
    short = tmp_path / "short.mat"
    short.write_bytes(data[: len(data) // 2])
    with pytest.raises(SortingError, match="truncated"):
        load(short)
    notmat = tmp_path / "notes.mat"
    notmat.write_text("hello")
    with pytest.raises(SortingError, match="not a MATLAB .mat file"):
        load(notmat)
    other = savemat(tmp_path / "other.mat", {"x": np.ones((2, 2))}, "5")
    with pytest.raises(SortingError, match=r"no struct variable 'rez' \(variables: x\)"):
        load(other)


def test_checked_against_recording(tmp_path):
    path = savemat(tmp_path / "rez.mat", {"rez": _rez()})
    rec = make_recording(tmp_path, np.zeros((300, 6), np.int16), fs=30000.0)
    adapter = KilosortAdapter(KilosortAdapter.Options(type="kilosort", path=path))
    assert adapter.load(rec).spike_times.max() == 250
    with pytest.raises(SortingError, match="read a file of 6 channels but recording rec has 5"):
        adapter.load(make_recording(tmp_path, np.zeros((300, 5), np.int16)))
    with pytest.raises(SortingError, match=r"rez.ops.fs: sampling rate 30000 Hz .* 20000 Hz"):
        adapter.load(make_recording(tmp_path, np.zeros((300, 6), np.int16), fs=20000.0))
    with pytest.raises(SortingError, match=r"spike \d+ at sample 250 .* past the end"):
        adapter.load(make_recording(tmp_path, np.zeros((250, 6), np.int16)))


def test_detection(tmp_path, minimal_config):
    savemat(tmp_path / "rez.mat", {"rez": _rez()})
    assert KilosortAdapter.detect(tmp_path) and KilosortAdapter.detect(tmp_path / "rez.mat")
    minimal_config["sorting"] = {"path": "rez.mat"}
    assert validate_config(minimal_config, tmp_path, "c.json").sorting.type == "kilosort"
    minimal_config["sorting"] = {"path": "."}
    assert validate_config(minimal_config, tmp_path, "c.json").sorting.type == "kilosort"
    # a KiloSort 2 output folder with rezToPhy's files is both: the user must choose
    np.save(tmp_path / "spike_times.npy", np.arange(3))
    (tmp_path / "params.py").write_text("sample_rate = 30000.0\n")
    with pytest.raises(ConfigError, match="looks like several formats: kilosort, phy"):
        validate_config(minimal_config, tmp_path, "c.json")


def test_cli_errors_are_one_line(tmp_path):
    rez = _rez()
    del rez["st3"]
    savemat(tmp_path / "rez.mat", {"rez": rez})
    out = run_cli("units", tmp_path / "rez.mat")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "rez has no st3" in out.stderr
    assert "Traceback" not in out.stderr
