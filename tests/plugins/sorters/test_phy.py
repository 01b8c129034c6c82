"""The ``phy`` sorter adapter on genuine Kilosort4 output and on MATLAB-style copies of it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hybridkit.errors import SortingError
from hybridkit.model import Recording, SourceFile
from hybridkit.formats.phy_files import read_cluster_tsv, read_params_py
from hybridkit.plugins.sorters.phy import PhyAdapter
from tests.conftest import DATA as TEST_DATA
from tests.plugins.sorters.compliance import assert_sorting_conventions

DATA = TEST_DATA / "kilosort4_cpu_10s_32ch"
KS4 = DATA / "kilosort4"
N_SPIKES = 1936
LAST_TIME = 299819  # the last spike time in spike_times.npy


def adapter(path: Path) -> PhyAdapter:
    return PhyAdapter(PhyAdapter.Options(type="phy", path=path))


@pytest.fixture
def ks4_copy(tmp_path: Path) -> Path:
    """A writable copy of the Kilosort4 folder."""
    dst = tmp_path / "ks4"
    shutil.copytree(KS4, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def make_recording(tmp_path: Path, n_samples: int, n_channels: int = 32, fs: float = 30000.0) -> Recording:
    """A recording over a sparse (all-zero) int16 file: only its shape matters to the adapter."""
    path = tmp_path / f"rec_{n_samples}_{n_channels}.bin"
    with open(path, "wb") as fh:
        fh.truncate(n_samples * n_channels * 2)
    pos = np.zeros((n_channels, 2))
    pos[:, 1] = np.arange(n_channels) * 20.0
    return Recording(
        files=[SourceFile(path, n_samples)], dtype=np.int16, n_channels=n_channels,
        sampling_rate=fs, gain_to_uV=np.full(n_channels, 0.195), offset_to_uV=np.zeros(n_channels),
        channel_positions=pos, neural=np.ones(n_channels, bool), name="rec",
    )


def write_matlab_style(src: Path, dst: Path, channel_map_as_row: bool = True) -> None:
    """Rewrite a phy folder the way MATLAB Kilosort's rezToPhy + writeNPY does."""
    dst.mkdir()

    def col(a, dtype):
        return np.asfortranarray(np.asarray(a, dtype=dtype).reshape(-1, 1))

    np.save(dst / "spike_times.npy", col(np.load(src / "spike_times.npy"), np.uint64))
    np.save(dst / "spike_templates.npy", col(np.load(src / "spike_templates.npy"), np.uint32))
    np.save(dst / "spike_clusters.npy", col(np.load(src / "spike_clusters.npy"), np.uint32))
    np.save(dst / "amplitudes.npy", col(np.load(src / "amplitudes.npy"), np.float64))
    cmap = np.load(src / "channel_map.npy").astype(np.uint32)
    cmap = cmap.reshape(1, -1) if channel_map_as_row else cmap.reshape(-1, 1)
    np.save(dst / "channel_map.npy", np.asfortranarray(cmap))
    np.save(dst / "channel_positions.npy",
            np.asfortranarray(np.load(src / "channel_positions.npy").astype(np.float64)))
    np.save(dst / "templates.npy", np.asfortranarray(np.load(src / "templates.npy")))
    ks = (src / "cluster_KSLabel.tsv").read_text().splitlines()
    crlf = "\r\n".join(ks) + "\r\n"  # rezToPhy writes CRLF and copies KSLabel into cluster_group
    (dst / "cluster_KSLabel.tsv").write_bytes(crlf.encode())
    (dst / "cluster_group.tsv").write_bytes(crlf.encode())
    (dst / "params.py").write_text(
        "dat_path = 'C:\\\\data\\\\temp_wh.dat'\nn_channels_dat = 32\ndtype = 'int16'\n"
        "offset = 0\nsample_rate = 30000.\nhp_filtered = True\n"
    )


# -- genuine Kilosort4 output ---------------------------------------------------------------------
def test_kilosort4_output_loads_exactly():
    s = adapter(KS4).load()
    assert_sorting_conventions(
        s, unit_ids=range(8), fmt="phy", n_samples=LAST_TIME + 1, n_channels=32,
        labels={0: "good", 1: "mua", 2: "mua", 3: "good", 4: "good", 5: "mua", 6: "mua", 7: "good"})
    assert s.spike_times.shape == (N_SPIKES,)
    np.testing.assert_array_equal(s.spike_times, np.load(KS4 / "spike_times.npy"))
    np.testing.assert_array_equal(s.spike_units, np.load(KS4 / "spike_clusters.npy"))
    assert s.spike_times[-1] == LAST_TIME
    assert sum(v == "good" for v in s.labels.values()) == 4
    assert s.sampling_rate == 30000.0
    np.testing.assert_array_equal(s.channel_map, np.arange(32))
    np.testing.assert_array_equal(s.channel_positions, np.load(KS4 / "channel_positions.npy"))
    np.testing.assert_array_equal(s.channel_positions, np.load(DATA / "channel_locations_um.npy"))
    assert s.templates.shape == (8, 61, 32)
    np.testing.assert_array_equal(s.templates, np.load(KS4 / "templates.npy"))
    np.testing.assert_array_equal(s.template_units, np.arange(8))
    assert s.path == KS4
    assert [int((s.spike_units == u).sum()) for u in range(8)] == [159, 296, 295, 157, 159, 260, 450, 160]


def test_load_checks_pass_against_matching_recording(tmp_path):
    s = adapter(KS4).load(make_recording(tmp_path, LAST_TIME + 1))
    assert s.spike_times.size == N_SPIKES


def test_matlab_style_copy_loads_identically(tmp_path):
    reference = adapter(KS4).load()
    for as_row in (True, False):
        dst = tmp_path / f"matlab_{as_row}"
        write_matlab_style(KS4, dst, channel_map_as_row=as_row)
        assert np.load(dst / "spike_times.npy").shape == (N_SPIKES, 1)
        assert b"\r\n" in (dst / "cluster_group.tsv").read_bytes()
        s = adapter(dst).load(make_recording(tmp_path, 300000))
        for field in ("spike_times", "spike_units", "unit_ids", "templates", "template_units",
                      "channel_map", "channel_positions"):
            a, b = getattr(s, field), getattr(reference, field)
            assert a.shape == b.shape, field
            np.testing.assert_array_equal(a, b, err_msg=field)
        assert s.spike_times.dtype == np.int64 and s.channel_map.dtype == np.int64
        assert s.labels == reference.labels
        assert s.sampling_rate == 30000.0


def test_cluster_group_overrides_kslabel(ks4_copy):
    # phy's curated file: `group` header, columns in any order, an unlabelled cluster
    (ks4_copy / "cluster_group.tsv").write_text("group\tcluster_id\r\nnoise\t0\r\ngood\t1\r\n\t2\r\n")
    s = adapter(ks4_copy).load()
    assert s.labels[0] == "noise" and s.labels[1] == "good"
    assert s.labels[2] == "mua"  # empty curated value: the KSLabel stays
    assert s.labels[7] == "good"


def test_spike_templates_used_when_no_clusters(ks4_copy):
    (ks4_copy / "spike_clusters.npy").unlink()
    s = adapter(ks4_copy).load()
    np.testing.assert_array_equal(s.spike_units, np.load(KS4 / "spike_templates.npy"))


def test_curated_clusters_keep_ids_and_template_rows(ks4_copy):
    clusters = np.load(KS4 / "spike_clusters.npy")
    merged = np.where(np.isin(clusters, [1, 2]), 8, clusters).astype(np.int32)
    np.save(ks4_copy / "spike_clusters.npy", merged)
    s = adapter(ks4_copy).load()
    np.testing.assert_array_equal(s.unit_ids, [0, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(s.template_units, np.arange(8))
    assert int((s.spike_units == 8).sum()) == 296 + 295


def test_sparse_templates_are_made_dense(ks4_copy):
    dense = np.load(KS4 / "templates.npy")
    ind = np.array([[3, 1, -1], [0, 31, 2]] + [[4, 5, 6]] * 6)
    sparse = np.zeros((8, 61, 3), np.float32)
    for k in range(8):
        for j, c in enumerate(ind[k]):
            if c >= 0:
                sparse[k, :, j] = dense[k, :, c]
    np.save(ks4_copy / "templates.npy", sparse)
    np.save(ks4_copy / "template_ind.npy", ind)
    s = adapter(ks4_copy).load()
    assert s.templates.shape == (8, 61, 32)
    np.testing.assert_array_equal(s.templates[0][:, [3, 1]], dense[0][:, [3, 1]])
    assert not s.templates[0][:, [0, 2]].any()
    np.testing.assert_array_equal(s.templates[1][:, 31], dense[1][:, 31])


def test_params_py_is_parsed_not_executed(ks4_copy, tmp_path):
    sentinel = tmp_path / "EXECUTED"
    (ks4_copy / "params.py").write_text(
        "import os\n"
        f"open({str(sentinel)!r}, 'w').close()\n"
        "dat_path = os.path.join('missing', 'file.bin')\n"
        "sample_rate = 25000.0\ndtype = 'int16'\n"
    )
    assert read_params_py(ks4_copy / "params.py") == {"sample_rate": 25000.0, "dtype": "int16"}
    assert adapter(ks4_copy).load().sampling_rate == 25000.0
    assert not sentinel.exists()


def test_detect(tmp_path, ks4_copy):
    assert PhyAdapter.detect(KS4)
    assert not PhyAdapter.detect(tmp_path / "nothing")
    only_times = tmp_path / "only_times"
    only_times.mkdir()
    np.save(only_times / "spike_times.npy", np.arange(3))
    assert not PhyAdapter.detect(only_times)
    np.save(only_times / "spike_clusters.npy", np.zeros(3, np.int32))
    assert PhyAdapter.detect(only_times)
    (ks4_copy / "spike_times.npy").unlink()
    assert not PhyAdapter.detect(ks4_copy)


def test_registered_as_builtin_sorter_adapter():
    from hybridkit.registry import build_registry

    assert build_registry().get("sorter_adapter", "phy") is PhyAdapter


def test_options_resolve_relative_path():
    opts = PhyAdapter.Options.model_validate(
        {"type": "phy", "path": "kilosort4"}, context={"base_dir": DATA}
    )
    assert opts.path == KS4
    with pytest.raises(Exception):
        PhyAdapter.Options.model_validate({"type": "phy", "path": "x", "dat_path": "y"})


def test_read_cluster_tsv_rejects_missing_cluster_id(tmp_path):
    p = tmp_path / "cluster_group.tsv"
    p.write_text("id\tgroup\n0\tgood\n")
    with pytest.raises(SortingError, match="cluster_group.tsv.*cluster_id"):
        read_cluster_tsv(p)
    p.write_text("cluster_id\tgroup\nzero\tgood\n")
    with pytest.raises(SortingError, match="line 2.*'zero'"):
        read_cluster_tsv(p)


# -- errors ---------------------------------------------------------------------------------------
def test_error_spike_past_end_of_recording(tmp_path):
    rec = make_recording(tmp_path, LAST_TIME)  # one sample too short
    with pytest.raises(SortingError) as err:
        adapter(KS4).load(rec)
    msg = str(err.value)
    assert f"spike_times.npy: spike {N_SPIKES - 1} at sample {LAST_TIME} (0-based)" in msg
    assert f"({LAST_TIME} samples)" in msg


def test_error_channel_map_outside_recording(tmp_path):
    with pytest.raises(SortingError, match=r"channel_map.npy: sorter channel 31 maps to file column 31 .* columns 0..30"):
        adapter(KS4).load(make_recording(tmp_path, 300000, n_channels=31))


def test_error_sampling_rate_mismatch(tmp_path):
    adapter(KS4).load(make_recording(tmp_path, 300000, fs=30290.0))  # 0.97 %: accepted
    with pytest.raises(SortingError, match=r"params.py sample_rate: sampling rate 30000 Hz .* 30310 Hz"):
        adapter(KS4).load(make_recording(tmp_path, 300000, fs=30310.0))  # 1.03 %


def test_error_missing_folder(tmp_path):
    with pytest.raises(SortingError, match="sorting.path.*does not exist"):
        adapter(tmp_path / "absent").load()


def test_error_missing_spike_times(ks4_copy):
    (ks4_copy / "spike_times.npy").unlink()
    with pytest.raises(SortingError, match="spike_times.npy: missing"):
        adapter(ks4_copy).load()


def test_error_missing_clusters_and_templates(ks4_copy):
    (ks4_copy / "spike_clusters.npy").unlink()
    (ks4_copy / "spike_templates.npy").unlink()
    with pytest.raises(SortingError, match="neither spike_clusters.npy nor spike_templates.npy"):
        adapter(ks4_copy).load()


def test_error_length_mismatch(ks4_copy):
    np.save(ks4_copy / "spike_clusters.npy", np.load(KS4 / "spike_clusters.npy")[:-1])
    with pytest.raises(SortingError, match=f"spike_clusters.npy: {N_SPIKES - 1} entries .* {N_SPIKES}"):
        adapter(ks4_copy).load()


def test_error_non_monotonic_times(ks4_copy):
    t = np.load(KS4 / "spike_times.npy")
    t[10], t[11] = t[11], t[10]
    np.save(ks4_copy / "spike_times.npy", t)
    with pytest.raises(SortingError, match=rf"non-decreasing .*spike_times\[11\] = {t[11]} < spike_times\[10\]"):
        adapter(ks4_copy).load()


def test_error_bad_spike_times_content(ks4_copy):
    np.save(ks4_copy / "spike_times.npy", np.linspace(0.5, 10.5, N_SPIKES))
    with pytest.raises(SortingError, match="non-integer"):
        adapter(ks4_copy).load()
    (ks4_copy / "spike_times.npy").write_bytes(b"not an npy file")
    with pytest.raises(SortingError, match="spike_times.npy: not a readable .npy"):
        adapter(ks4_copy).load()


def test_error_templates_do_not_match_channel_map(ks4_copy):
    np.save(ks4_copy / "templates.npy", np.load(KS4 / "templates.npy")[:, :, :30])
    with pytest.raises(SortingError, match="templates.npy: 30 channels but channel_map.npy has 32"):
        adapter(ks4_copy).load()


def test_error_params_py_not_python(ks4_copy):
    (ks4_copy / "params.py").write_text("sample_rate = = 3\n")
    with pytest.raises(SortingError, match="params.py: not a valid params.py"):
        adapter(ks4_copy).load()
