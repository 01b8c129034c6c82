"""The same spikes presented in each sorter format give the same ground truth.

The example dataset's Kilosort-4-style phy folder is rewritten as a KiloSort rez.mat (v7.3 and
v5), a JRCLUST v4 _res.mat + .prm, and a YASS 2.0 project (tests/sorter_files.py says which field
has which index base). ``hybridkit generate`` runs end to end on each, with one seed and one set of
units: firings_true.npy, the events table and the hybrid binary must be identical to the phy run's.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.example import np1_positions
from hybridkit.run.pipeline import generate
from hybridkit.formats.phy_files import read_cluster_tsv
from tests.helpers import run_cli
from tests.plugins.sorters.sorter_files import rez_dict, savemat, write_jrclust_v4, write_yass

N_CH = 385


@pytest.fixture(scope="module")
def formats(example):
    """sorting section per format, all holding the example's spikes."""
    ks = example / "kilosort4"
    times = np.load(ks / "spike_times.npy")
    ids = np.load(ks / "spike_clusters.npy").astype(np.int64)
    tpl = np.load(ks / "templates.npy")
    labels = read_cluster_tsv(ks / "cluster_group.tsv")
    fs = float(json.loads((example / "config.json").read_text()).get("fs", 29999.9712))
    pos = np1_positions()
    out = {"phy": {"type": "phy", "path": str(ks)}}

    rez = rez_dict(times, ids, fs=fs, n_total=N_CH, chan_map0=np.arange(384), xc=pos[:, 0], yc=pos[:, 1],
                   templates=tpl, good=[labels[k] == "good" for k in range(tpl.shape[0])])
    for version in ("7.3", "5"):
        folder = example / f"ks_v{version}"
        folder.mkdir()
        savemat(folder / "rez.mat", {"rez": rez}, version)
        out[f"kilosort_v{version}"] = {"type": "kilosort", "path": str(folder / "rez.mat")}

    # JRCLUST: cluster ids are the phy ids; phy's unit 0 becomes JRCLUST's noise cluster 0, and
    # spikes deleted in curation (cluster < 0) are added: neither may change the ground truth
    peak = np.abs(tpl).max(axis=1).argmax(axis=1)  # site of each spike = its unit's peak channel
    rng = np.random.default_rng(0)
    deleted = np.sort(rng.integers(100, int(times.max()), 40))
    j_times = np.concatenate([times, deleted])
    j_clusters = np.concatenate([ids, np.full(deleted.size, -3)])
    j_sites = np.concatenate([peak[ids], np.full(deleted.size, 5)])
    order = np.argsort(j_times, kind="stable")
    write_jrclust_v4(example / "jrc", "demo", j_times[order], j_clusters[order], j_sites[order], fs=fs,
                     n_chans=N_CH, site_map0=np.arange(384), site_loc=pos)
    out["jrclust"] = {"type": "jrclust", "path": str(example / "jrc" / "demo_res.mat")}

    geom = np.vstack([pos, [[0.0, 5000.0]]])  # YASS wants a position for every column (sync too)
    tpl385 = np.concatenate([tpl, np.zeros(tpl.shape[:2] + (1,), np.float32)], axis=2)
    write_yass(example / "yass", times, ids, fs=fs, n_channels=N_CH, geometry=geom, templates=tpl385)
    out["yass"] = {"type": "yass", "path": str(example / "yass")}
    return out


def _run(example, tmp_path, sorting: dict):
    cfg = json.loads((example / "config.json").read_text())
    cfg["recording"]["path"] = str(example / cfg["recording"]["path"])
    cfg["sorting"] = sorting
    cfg["engine"] = {"progress": False}
    cfg["writers"] = [{"type": "legacy"}]
    cfg["output"] = {"directory": str(tmp_path / "out")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def _digest(out):
    bins = sorted(out.glob("*.GT.bin"))
    return {
        "firings_true": np.load(out / "firings_true.npy"),
        "events": (out / "hybrid_events-demo.csv").read_text(),
        "bin": hashlib.sha256(bins[0].read_bytes()).hexdigest(),
    }


@pytest.fixture(scope="module")
def reference(example, formats, tmp_path_factory):
    ids = json.loads((example / "config.json").read_text())["units"]["ids"]
    assert 0 not in ids  # unit 0 is JRCLUST's noise cluster in this test
    result = generate(load_config(_run(example, tmp_path_factory.mktemp("ref"), formats["phy"])))
    return _digest(result.output_dir)


@pytest.mark.parametrize("fmt", ["kilosort_v7.3", "kilosort_v5", "jrclust", "yass"])
def test_same_spikes_same_ground_truth(example, formats, reference, tmp_path, fmt):
    result = generate(load_config(_run(example, tmp_path, formats[fmt])))
    got = _digest(result.output_dir)
    assert got["firings_true"].shape == reference["firings_true"].shape
    assert got["firings_true"].shape[1] > 100
    np.testing.assert_array_equal(got["firings_true"], reference["firings_true"])
    assert got["events"] == reference["events"]
    assert got["bin"] == reference["bin"]
    sorting = result.truth.sorting
    assert sorting.format == fmt.split("_")[0]


def test_detected_type(example, formats, reference, tmp_path):
    """No sorting.type in the config: each adapter is detected; one full CLI run on the detected one."""
    for fmt in ("kilosort_v7.3", "jrclust", "yass"):
        path = _run(example, tmp_path, {"path": formats[fmt]["path"]})
        assert load_config(path).sorting.type == formats[fmt]["type"]
    out = run_cli("generate", path)  # yass, detected
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "firings_true.npy"), reference["firings_true"])


def test_wrong_format_is_one_line(example, formats, tmp_path):
    """A rez.mat given as JRCLUST, and a truncated rez.mat: one line, exit 2, no output folder."""
    for sorting in ({"type": "jrclust", "path": formats["kilosort_v7.3"]["path"]},):
        path = _run(example, tmp_path, sorting)
        out = run_cli("generate", path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "neither spikeClusters" in out.stderr and "(variables: rez)" in out.stderr
    rez = example / "ks_v7.3" / "rez.mat"
    short = tmp_path / "rez.mat"
    data = rez.read_bytes()
    short.write_bytes(data[: len(data) // 2])
    path = _run(example, tmp_path, {"type": "kilosort", "path": str(short)})
    out = run_cli("generate", path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "truncated" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()
