"""The ``jrclust`` adapter on JRCLUST v4 _res.mat + .prm and v3 _jrc.mat built to the formats JRCLUST writes.

Index bases, per field: spikeTimes / viTime_spk 1-based samples (-1 at the adapter); spikeSites /
viSite_spk / clusterSites / siteMap / viSite2Chan / miSites 1-based; spikeClusters / S_clu.viClu
> 0 units (ids kept), 0 noise, < 0 deleted. Side files are int16 in MATLAB column-major order.
"""
from __future__ import annotations


import numpy as np
import pytest

from hybridkit.config.run_config import validate_config
from hybridkit.errors import SortingError
from hybridkit.plugins.sorters.jrclust import JrclustAdapter
from hybridkit.formats.prmfile import parse_prm
from tests.helpers import make_recording, run_cli
from tests.plugins.sorters.sorter_files import col, savemat, write_jrclust_v4
from tests.plugins.sorters.compliance import assert_sorting_conventions

TIMES = np.array([10, 30, 30, 55, 80, 95])  # 0-based
CLUSTERS = np.array([1, 0, 2, -1, 2, 1])  # 0 noise, -1 deleted
SITES = np.array([0, 1, 2, 2, 2, 0])  # 0-based
SITE_MAP = np.array([0, 1, 3])  # site -> file column (column 2 unused, 4 is sync)
SITE_LOC = np.array([[0.0, 0.0], [0.0, 20.0], [0.0, 40.0]])


def _write(tmp_path, **kw):
    args = dict(fs=25000.0, n_chans=5, site_map0=SITE_MAP, site_loc=SITE_LOC, notes=["single", "MULTI"])
    args.update(kw)
    return write_jrclust_v4(tmp_path, "sess", TIMES, CLUSTERS, SITES, **args)


def load(path, **opts):
    return JrclustAdapter(JrclustAdapter.Options(type="jrclust", path=path, **opts)).load()


@pytest.mark.parametrize("version", ["7.3", "5"])
def test_v4_fields_and_index_bases(tmp_path, version):
    wf = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)  # (clusters, samples, sites)
    s = load(_write(tmp_path, mean_wf=wf, version=version))
    assert_sorting_conventions(s, unit_ids=[0, 1, 2], labels={0: "noise", 1: "single", 2: "multi"},
                               fmt="jrclust", n_samples=100, n_channels=5)
    assert s.spike_times.tolist() == [10, 30, 30, 80, 95]  # spikeTimes - 1, deleted spike dropped
    assert s.spike_units.tolist() == [1, 0, 2, 2, 1]
    assert s.sampling_rate == 25000.0
    assert s.channel_map.tolist() == [0, 1, 3]  # siteMap - 1
    assert s.channel_positions.tolist() == SITE_LOC.tolist()
    # meanWfGlobalRaw is nSamples x nSites x nClusters in MATLAB
    assert s.templates.shape == (2, 4, 3) and s.template_units.tolist() == [1, 2]
    np.testing.assert_array_equal(s.templates, wf)


def test_templates_from_the_raw_side_file(tmp_path):
    """No mean waveforms in the .mat: each cluster's mean over its spikes on its centre site."""
    n_samples, n_evt = 3, 2
    raw = np.zeros((n_samples, n_evt, TIMES.size), np.int16)
    for i in range(TIMES.size):
        raw[:, :, i] = (i + 1) * np.array([[1, -1], [2, -2], [3, -3]])
    s = load(_write(tmp_path, raw=raw))
    # cluster 1: spikes 0 and 5, both on site 0, whose nearest sites are (0, 1)
    expected1 = np.zeros((3, 3), np.float32)
    expected1[:, [0, 1]] = (raw[:, :, 0].astype(float) + raw[:, :, 5]) / 2
    np.testing.assert_array_equal(s.templates[0], expected1)
    # cluster 2: spikes 2 and 4 on site 2 (spike 3 was deleted); neighbours of site 2 are (2, 1)
    expected2 = np.zeros((3, 3), np.float32)
    expected2[:, [2, 1]] = (raw[:, :, 2].astype(float) + raw[:, :, 4]) / 2
    np.testing.assert_array_equal(s.templates[1], expected2)
    assert s.template_units.tolist() == [1, 2]


def test_truncated_side_file(tmp_path):
    raw = np.ones((3, 2, TIMES.size), np.int16)
    _write(tmp_path, raw=raw)
    side = tmp_path / "sess_raw.jrc"
    side.write_bytes(side.read_bytes()[:-4])
    with pytest.raises(SortingError, match=r"sess_raw.jrc: 68 bytes but the waveform shape \[3, 2, 6\]"):
        load(tmp_path / "sess_res.mat")


def test_v3_jrc_mat(tmp_path):
    """v3: viTime_spk/viSite_spk, S_clu.viClu and csNote_clu, parameters in the P struct."""
    jrc = {
        "viTime_spk": col(TIMES + 1, np.int32), "viSite_spk": col(SITES + 1, np.int32),
        "S_clu": {"viClu": col(CLUSTERS, np.int32),
                  "csNote_clu": np.array(["single", ""], dtype=object).reshape(-1, 1)},
        "P": {"sRateHz": 25000.0, "nChans": 5.0, "viSite2Chan": col(SITE_MAP + 1),
              "mrSiteXY": SITE_LOC, "vcFile_prm": "D:\\sess.prm"},
        "dimm_raw": np.array([[3.0, 2.0, TIMES.size]]),
    }
    path = savemat(tmp_path / "sess_jrc.mat", jrc)
    s = load(path)
    assert s.spike_times.tolist() == [10, 30, 30, 80, 95]
    assert s.spike_units.tolist() == [1, 0, 2, 2, 1]
    assert s.labels == {0: "noise", 1: "single"}
    assert s.channel_map.tolist() == [0, 1, 3] and s.sampling_rate == 25000.0
    assert s.templates is None  # no side file, no mean waveforms
    raw = np.arange(3 * 2 * TIMES.size, dtype=np.int16).reshape(3, 2, TIMES.size)
    raw.ravel(order="F").tofile(tmp_path / "sess_spkraw.jrc")
    jrc["P"]["miSites"] = np.array([[1, 2, 3], [2, 1, 2]], np.float64)  # nSitesEvt x nSites, 1-based
    s = load(savemat(tmp_path / "sess_jrc.mat", jrc))
    np.testing.assert_array_equal(s.templates[1][:, [2, 1]], (raw[:, :, 2] + raw[:, :, 4]) / 2.0)


def test_missing_prm_and_wrong_format(tmp_path):
    _write(tmp_path)
    (tmp_path / "sess.prm").unlink()
    with pytest.raises(SortingError, match=r"sess.prm is not beside it; set sorting.prm"):
        load(tmp_path / "sess_res.mat")
    other = savemat(tmp_path / "x_res.mat", {"rez": {"st3": np.ones((2, 4))}})
    with pytest.raises(SortingError, match=r"neither spikeClusters .* \(variables: rez\)"):
        load(other)


def test_prm_that_is_there_is_not_called_missing(tmp_path):
    """A .prm saved as UTF-16 (a Windows editor's "Unicode") parsed to nothing, and the adapter
    then said the file was not beside the _res.mat: it is read now, and an unreadable one is
    named for what it is."""
    path = _write(tmp_path)
    prm = tmp_path / "sess.prm"
    text = prm.read_text()
    prm.write_bytes(text.encode("utf-16"))
    assert load(path).sampling_rate == 25000.0
    prm.write_bytes(b"\xef\xbb\xbf" + text.encode())  # UTF-8 with a BOM
    assert load(path).sampling_rate == 25000.0
    # a bracket inside a string left the statement open to the end of the file: nothing parsed
    prm.write_text("outputDir = 'D:\\sorted[old'; % (moved)\n" + text)
    assert load(path).sampling_rate == 25000.0
    prm.write_text("% parameters follow\nsee the lab wiki\n")
    with pytest.raises(SortingError, match=r"sess.prm: no parameter could be read") as info:
        load(path)
    assert "not beside" not in str(info.value)


def test_prm_range_cannot_exhaust_memory(tmp_path):
    prm = tmp_path / "a.prm"
    prm.write_text("sampleRate = 30000;\nsiteMap = [1:1e12];\n")
    with pytest.raises(SortingError, match=r"a.prm: siteMap: the range '1:1e12' has 1000000000000 values"):
        parse_prm(prm)
    prm.write_text("siteMap = [" + ", ".join(["1:900000"] * 3) + "];\n")
    with pytest.raises(SortingError, match=r"siteMap: the matrix holds more than 1000000 values"):
        parse_prm(prm)


def test_checked_against_recording(tmp_path):
    path = _write(tmp_path)
    adapter = JrclustAdapter(JrclustAdapter.Options(type="jrclust", path=path))
    assert adapter.load(make_recording(tmp_path, np.zeros((100, 5), np.int16), fs=25000.0)).spike_times.size == 5
    with pytest.raises(SortingError, match="read a file of 5 channels but recording rec has 4"):
        adapter.load(make_recording(tmp_path, np.zeros((100, 4), np.int16), fs=25000.0))
    with pytest.raises(SortingError, match=r"sess.prm: sample rate: sampling rate 25000 Hz"):
        adapter.load(make_recording(tmp_path, np.zeros((100, 5), np.int16), fs=30000.0))


def test_detection_and_cli(tmp_path, minimal_config):
    _write(tmp_path / "jr")
    assert JrclustAdapter.detect(tmp_path / "jr") and JrclustAdapter.detect(tmp_path / "jr" / "sess_res.mat")
    minimal_config["sorting"] = {"path": "jr"}
    assert validate_config(minimal_config, tmp_path, "c.json").sorting.type == "jrclust"
    out = run_cli("units", tmp_path / "jr")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "(jrclust): 3 units, 25000 Hz" in lines[0]
    assert lines[2].split()[:3] == ["0", "noise", "1"]
    (tmp_path / "jr" / "sess.prm").unlink()
    out = run_cli("units", tmp_path / "jr")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "set sorting.prm" in out.stderr


def test_prm_parser(tmp_path):
    prm = tmp_path / "a.prm"
    prm.write_text(
        "% comment line\n"
        "sampleRate = 30000.5; % Hz\n"
        "siteMap = [1:3, 7 9];\n"
        "siteLoc = [0, 0; ...\n  16 20\n  32, 40];\n"
        "rawRecordings = {'C:\\data\\a.bin', 'b.bin'};\n"
        "name = 'it''s 50% done';\n"
        "evtWindow = [-0.25, 0.75];\n"
        "f = someFunction(3);\n"
        "useGPU = true;\n")
    p = parse_prm(prm)
    assert p["sampleRate"] == 30000.5
    assert p["siteMap"].tolist() == [[1, 2, 3, 7, 9]]
    assert p["siteLoc"].tolist() == [[0, 0], [16, 20], [32, 40]]
    assert p["rawRecordings"] == ["C:\\data\\a.bin", "b.bin"]
    assert p["name"] == "it's 50% done"
    assert p["evtWindow"].tolist() == [[-0.25, 0.75]]
    assert "f" not in p and p["useGPU"] == 1.0
