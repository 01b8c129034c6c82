"""The ``yass`` adapter on real YASS files (tests/data/yass, see its SOURCE.txt) and FORMATS.md section 5.

spike_train.npy columns are [sample, unit], both 0-based; YASS 2.0 templates are
(n_units, n_times, n_channels), YASS 0.x templates (n_channels, n_times, n_units).
The 10-channel sample's native outputs are rebuilt from its real phy export (same arrays).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from hybridkit.config.run_config import validate_config
from hybridkit.errors import SortingError
from hybridkit.plugins.sorters.yass import YassAdapter, read_geometry, read_yass_config
from tests.conftest import DATA
from tests.helpers import make_recording, run_cli
from tests.plugins.sorters.compliance import assert_sorting_conventions

YASS = DATA / "yass"
PHY = YASS / "10chan" / "phy_export"


def project(tmp_path, layout="2.0", templates=True):
    """The real 10chan config + geometry, with its sorting in YASS's native output layout."""
    root = tmp_path / "yass10"
    root.mkdir()
    shutil.copy(YASS / "10chan" / "config.yaml", root)
    shutil.copy(YASS / "10chan" / "geom.txt", root)
    out = root / ("tmp/output" if layout == "2.0" else "tmp")
    out.mkdir(parents=True)
    train = np.column_stack([np.load(PHY / "spike_times.npy"), np.load(PHY / "spike_clusters.npy")])
    np.save(out / "spike_train.npy", train)
    if templates:
        tpl = np.load(PHY / "templates.npy")
        np.save(out / "templates.npy", tpl if layout == "2.0" else np.transpose(tpl, (2, 1, 0)))
    return root


def load(path, **opts):
    return YassAdapter(YassAdapter.Options(type="yass", path=path, **opts)).load()


def test_real_10chan_sample(tmp_path):
    s = load(project(tmp_path))
    times, clusters = np.load(PHY / "spike_times.npy"), np.load(PHY / "spike_clusters.npy")
    assert_sorting_conventions(s, unit_ids=range(29), labels={}, fmt="yass",
                               n_samples=int(times.max()) + 1, n_channels=10)
    assert s.spike_times.size == 60161
    assert np.array_equal(s.spike_times, times) and np.array_equal(s.spike_units, clusters)
    assert s.sampling_rate == 20000.0
    assert s.templates.shape == (29, 101, 10)
    np.testing.assert_array_equal(s.templates, np.load(PHY / "templates.npy"))
    assert s.channel_map.tolist() == list(range(10))
    np.testing.assert_array_equal(s.channel_positions, np.loadtxt(YASS / "10chan" / "geom.txt"))
    np.testing.assert_array_equal(s.channel_positions, np.load(PHY / "channel_positions.npy"))


def test_yass0_template_axis_order(tmp_path):
    s = load(project(tmp_path, layout="0.x"))  # output in tmp/, templates (10, 101, 29)
    np.testing.assert_array_equal(s.templates, np.load(PHY / "templates.npy"))


def test_ambiguous_template_order(tmp_path):
    root = project(tmp_path)
    tpl = np.load(PHY / "templates.npy")[:10]  # 10 units on 10 channels: (10, 101, 10)
    np.save(root / "tmp/output/templates.npy", tpl)
    # the real config is a YASS 2.0 one (it has a neuralnetwork section): that decides
    np.testing.assert_array_equal(load(root).templates, tpl)
    cfg = read_yass_config(root / "config.yaml")
    del cfg["neuralnetwork"]
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SortingError, match="fit both .* set sorting.templates_layout"):
        load(root)
    swapped = load(root, templates_layout="channels_times_units").templates
    np.testing.assert_array_equal(swapped, np.transpose(tpl, (2, 1, 0)))
    np.save(root / "tmp/output/templates.npy", tpl[:7, :, :7])
    with pytest.raises(SortingError, match=r"no axis of recordings.n_channels = 10"):
        load(root)


def test_drift_updated_templates(tmp_path):
    root = project(tmp_path, templates=False)
    tpl = np.load(PHY / "templates.npy")
    (root / "tmp/output/templates").mkdir()
    np.save(root / "tmp/output/templates/templates_120sec.npy", tpl * 2)
    np.save(root / "tmp/output/templates/templates_0sec.npy", tpl)
    np.testing.assert_array_equal(load(root).templates, tpl)


def test_checked_against_recording(tmp_path):
    root = project(tmp_path)
    n = int(np.load(PHY / "spike_times.npy").max()) + 50
    rec = make_recording(tmp_path, np.zeros((n, 10), np.int16), fs=20000.0)
    adapter = YassAdapter(YassAdapter.Options(type="yass", path=root))
    assert adapter.load(rec).spike_times.size == 60161
    with pytest.raises(SortingError, match="recordings.dtype is int16 but recording rec is float32"):
        adapter.load(make_recording(tmp_path, np.zeros((n, 10), np.float32), fs=20000.0))
    with pytest.raises(SortingError, match="recordings.sampling_rate: sampling rate 20000 Hz"):
        adapter.load(make_recording(tmp_path, np.zeros((n, 10), np.int16), fs=30000.0))
    with pytest.raises(SortingError, match="read a file of 10 channels but recording rec has 12"):
        adapter.load(make_recording(tmp_path, np.zeros((n, 12), np.int16), fs=20000.0))


def test_truncated_spike_train(tmp_path):
    root = project(tmp_path)
    path = root / "tmp/output/spike_train.npy"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SortingError, match=r"spike_train.npy: not a readable .npy array"):
        load(root)
    out = run_cli("units", root)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "spike_train.npy" in out.stderr
    np.save(path, np.zeros((5, 3), np.int64))
    with pytest.raises(SortingError, match=r"shape \(5, 3\).*expected \(n_spikes, 2\)"):
        load(root)


def test_real_geometry_files_and_configs():
    npy = read_geometry(YASS / "test_files" / "geometry.npy", None)
    txt = read_geometry(YASS / "test_files" / "geometry.txt", None)
    assert npy.shape == (10, 2) and npy[2].tolist() == [59.0, 40.0]
    assert txt.shape == (7, 2) and txt[6].tolist() == [-685.0, 220.0]  # trailing spaces on each line
    assert read_geometry(YASS / "49chan_1min" / "geom.txt", 49).shape == (49, 2)
    with pytest.raises(SortingError, match="49 channel positions but recordings.n_channels is 10"):
        read_geometry(YASS / "49chan_1min" / "geom.txt", 10)
    cfg = read_yass_config(YASS / "49chan_1min" / "config.yaml")
    assert cfg["recordings"]["n_channels"] == 49 and cfg["recordings"]["dtype"] == "int16"


def test_detection_and_cli(tmp_path, minimal_config):
    root = project(tmp_path)
    assert YassAdapter.detect(root) and YassAdapter.detect(root / "tmp/output")
    assert not YassAdapter.detect(PHY)  # its phy export is phy's
    minimal_config["sorting"] = {"path": str(root)}
    assert validate_config(minimal_config, tmp_path, "c.json").sorting.type == "yass"
    out = run_cli("units", root, "--min-rate", "5")
    assert out.returncode == 0, out.stderr
    assert "(yass): 29 units, 20000 Hz" in out.stdout.splitlines()[0]
    rows = out.stdout.splitlines()[2:]
    n0 = int(np.sum(np.load(PHY / "spike_clusters.npy") == 0))
    assert rows[0].split()[:3] == ["0", "-", str(n0)]
