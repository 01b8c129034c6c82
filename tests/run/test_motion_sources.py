"""hybridkit/motion.py: real Kilosort 4 / SpikeInterface motion files map time to displacement
as the truth says (tests/data/kilosort4_drift_120s_32ch, see its SOURCE.txt), plus tables, rez.mat
and the config section."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from hybridkit.errors import ConfigError
from hybridkit.run.motion import (
    MotionConfig,
    TableMotion,
    build_motion,
    read_kilosort4,
    read_kilosort_rez,
    read_spikeinterface,
    read_table,
)
from tests.conftest import DATA as TEST_DATA

DATA = TEST_DATA / "kilosort4_drift_120s_32ch"


@pytest.fixture(scope="module")
def truth():
    with np.load(DATA / "true_drift.npz") as z:
        return z["displacement_times_s"], z["displacement_y_um"]


def compare(motion, truth, width_s: float, shift_s: float = 0.0) -> dict:
    """The estimate at its bin centres (+ shift_s) vs the truth averaged over each bin, as in
    SOURCE.txt: mean offset, and RMS / max error after removing it; r."""
    tt, ty = truth
    c = motion.times_s
    tr = np.array([ty[(tt >= a - 1e-9) & (tt < b - 1e-9)].mean() for a, b in zip(c - width_s / 2, c + width_s / 2)])
    est = motion.displacement_at(c + shift_s, 150.0)
    err = est - tr
    off = err.mean()
    return {"offset": off, "rms": np.sqrt(((err - off) ** 2).mean()), "max": np.abs(err - off).max(),
            "r": np.corrcoef(est, tr)[0, 1]}


def test_kilosort4_ops_matches_true_drift(truth):
    m = read_kilosort4(DATA / "kilosort4")  # the results folder; ops.npy inside
    assert m.rigid and m.depths_um.tolist() == [149.0]
    assert m.times_s.size == 60 and m.times_s[0] == 1.0 and m.times_s[-1] == 119.0  # batch centres
    ops = np.load(DATA / "kilosort4" / "ops.npy", allow_pickle=True).item()
    assert np.array_equal(m.displacement_um[:, 0], -ops["dshift"][:, 0])  # Kilosort's sign flipped
    s = compare(m, truth, 2.0)
    # SOURCE.txt: r = 0.9974, offset -1.42 um, RMS 1.05 um, max |err| 2.48 um
    assert s["r"] > 0.997 and abs(s["offset"] + 1.42) < 0.01
    assert s["rms"] < 1.06 and s["max"] < 2.49
    # one batch early or late is clearly worse: the time mapping is right, not just the sign
    for shift in (-2.0, 2.0):
        assert compare(m, truth, 2.0, shift)["rms"] > 2.0


def test_kilosort4_batch_downsampling(tmp_path, truth):
    """batch_downsampling = 3: Kilosort read batches 0, 3, 6, ... only, so row k of dshift was
    measured 3 k batches in. Here the sorter's rows are every third row of the full run's."""
    ops = np.load(DATA / "kilosort4" / "ops.npy", allow_pickle=True).item()
    ops.update(dshift=ops["dshift"][::3], Nbatches=20, batch_downsampling=3)
    ops["settings"] = dict(ops["settings"], batch_downsampling=3)
    np.save(tmp_path / "ops.npy", ops, allow_pickle=True)
    m = read_kilosort4(tmp_path / "ops.npy")
    assert m.times_s.tolist() == [1.0 + 6.0 * k for k in range(20)]  # centres of the batches read
    s = compare(m, truth, 2.0)
    # as good as the full run's rows (r 0.9974, RMS 1.05 um) on a third of them: r 0.9966, RMS
    # 1.07 um. Placed at consecutive batches instead, the same rows give r 0.09, RMS 11 um.
    assert s["r"] > 0.995 and s["rms"] < 1.1
    dense = read_kilosort4(DATA / "kilosort4")
    assert np.array_equal(m.displacement_um, dense.displacement_um[::3])
    for bad in (0, 2.5):
        ops["batch_downsampling"] = bad
        np.save(tmp_path / "ops.npy", ops, allow_pickle=True)
        with pytest.raises(ConfigError, match=f"batch_downsampling is {bad}; Kilosort uses a whole"):
            read_kilosort4(tmp_path / "ops.npy")


def test_spikeinterface_motion_matches_true_drift(truth):
    m = read_spikeinterface(DATA / "spikeinterface_motion")
    assert m.rigid and m.times_s.size == 120 and m.times_s[0] == 0.5
    s = compare(m, truth, 1.0)
    # SOURCE.txt: r = 0.9970, offset 0.00 um, RMS 0.68 um, max |err| 1.43 um (same sign as truth)
    assert s["r"] > 0.996 and abs(s["offset"]) < 0.05
    assert s["rms"] < 0.69 and s["max"] < 1.44
    for shift in (-1.0, 1.0):
        assert compare(m, truth, 1.0, shift)["rms"] > 1.0


def test_between_bins_the_motion_follows_the_truth(truth):
    """Evaluated at the truth's own 0.2 s times, with linear interpolation between bin centres."""
    tt, ty = truth
    for m in (read_kilosort4(DATA / "kilosort4" / "ops.npy"), read_spikeinterface(DATA / "spikeinterface_motion")):
        err = m.displacement_at(tt + 0.1, 150.0) - ty
        err -= err.mean()
        assert np.sqrt((err ** 2).mean()) < 1.3 and np.corrcoef(m.displacement_at(tt + 0.1, 0.0), ty)[0, 1] > 0.99


def test_spikeinterface_segments(tmp_path):
    folder = tmp_path / "motion"
    shutil.copytree(DATA / "spikeinterface_motion", folder)
    info = json.loads((folder / "spikeinterface_info.json").read_text())
    info["num_segments"] = 2
    (folder / "spikeinterface_info.json").write_text(json.dumps(info))
    np.save(folder / "temporal_bins_s_seg1.npy", np.array([0.5, 1.5]))
    np.save(folder / "displacement_seg1.npy", np.array([[100.0], [101.0]]))
    m = read_spikeinterface(folder, file_starts_s=np.array([0.0, 120.0]))
    assert np.allclose(m.displacement_at([120.5, 121.5], 0.0), [100.0, 101.0])
    assert np.allclose(read_spikeinterface(folder, segment=1).displacement_at([0.5], 0.0), [100.0])
    with pytest.raises(ConfigError, match="2 segments but the recording has 3 files"):
        read_spikeinterface(folder, file_starts_s=np.zeros(3))
    with pytest.raises(ConfigError, match="segment=2"):
        read_spikeinterface(folder, segment=2)


def test_kilosort_rez_mat(tmp_path, truth):
    """A KiloSort 2.5-style rez.mat (v5) whose dshift is minus the truth per 1-s batch, 2 blocks."""
    from scipy.io import savemat

    tt, ty = truth
    nt, fs = 30000, 30000.0
    batch_truth = ty.reshape(120, 5).mean(axis=1)  # 120 batches of 1 s
    dshift = -np.c_[batch_truth, 2 * batch_truth]
    ops = {"fs": fs, "NT": float(nt), "trange": np.array([[0.0, np.inf]]), "yblk": np.array([[50.0], [250.0]])}
    savemat(tmp_path / "rez.mat", {"rez": {"dshift": dshift, "ops": ops}})
    m = read_kilosort_rez(tmp_path)
    assert m.depths_um.tolist() == [50.0, 250.0] and m.times_s[0] == 0.5
    assert np.allclose(m.displacement_at(m.times_s, 50.0), batch_truth)
    assert np.allclose(m.displacement_at(m.times_s, 150.0), 1.5 * batch_truth)
    savemat(tmp_path / "bad.mat", {"rez": {"ops": ops}})
    with pytest.raises(ConfigError, match="no rez.dshift"):
        read_kilosort_rez(tmp_path / "bad.mat")


def test_tables_npz_csv_inline(tmp_path):
    np.savez(tmp_path / "m.npz", times_s=[0.0, 10.0], depths_um=[0.0, 100.0],
             displacement_um=[[0.0, 0.0], [10.0, 20.0]])
    m = read_table(TableMotion(type="table", path=tmp_path / "m.npz"))
    assert np.allclose(m.displacement_at([5.0], 50.0), [7.5])
    (tmp_path / "m.csv").write_text("time_s,depth_um,displacement_um\n0,0,0\n0,100,0\n10,0,10\n10,100,20\n")
    m = read_table(TableMotion(type="table", path=tmp_path / "m.csv"))
    assert np.allclose(m.displacement_at([5.0, 10.0], [50.0, 100.0]), [7.5, 20.0])
    (tmp_path / "r.csv").write_text("time_s,displacement_um\n0,1\n4,-3\n")
    m = read_table(TableMotion(type="table", path=tmp_path / "r.csv", interpolation="previous"))
    assert np.array_equal(m.displacement_at([3.9, 4.0], 0.0), [1.0, -3.0])
    (tmp_path / "gap.csv").write_text("time_s,depth_um,displacement_um\n0,0,0\n0,100,0\n10,0,10\n")
    with pytest.raises(ConfigError, match="1 are missing"):
        read_table(TableMotion(type="table", path=tmp_path / "gap.csv"))
    (tmp_path / "bad.csv").write_text("t,d\n0,1\n")
    with pytest.raises(ConfigError, match="need time_s, displacement_um"):
        read_table(TableMotion(type="table", path=tmp_path / "bad.csv"))
    with pytest.raises(ConfigError, match="strictly increasing"):
        read_table(TableMotion(type="table", times_s=[1.0, 0.0], displacement_um=[0.0, 1.0]))


def test_config_section_and_reference(tmp_path):
    with pytest.raises(ValidationError, match="source and/or synthetic"):
        MotionConfig()
    with pytest.raises(ValidationError, match="either path or times_s"):
        MotionConfig(source={"type": "table"})
    with pytest.raises(ValidationError):
        MotionConfig(source={"type": "kilosort5", "path": "x"})

    class Rec:  # what build_motion needs of a Recording
        channel_positions = np.c_[np.zeros(4), np.arange(4) * 20.0]
        neural = np.ones(4, bool)
        duration_s = 10.0
        sampling_rate = 30000.0
        file_starts = np.array([0, 300000])

    src = {"type": "table", "times_s": [0.0, 1.0, 2.0], "displacement_um": [2.0, 4.0, 9.0]}
    rng = np.random.default_rng(0)
    zero = build_motion(MotionConfig(source=src, reference="zero"), Rec, rng)
    median = build_motion(MotionConfig(source=src), Rec, rng)
    mean = build_motion(MotionConfig(source=src, reference="mean"), Rec, rng)
    t = np.array([0.0, 1.0, 2.0])
    assert np.allclose(zero.displacement_at(t, 0.0), [2.0, 4.0, 9.0])
    assert np.allclose(median.displacement_at(t, 0.0), [-2.0, 0.0, 5.0])
    assert np.allclose(mean.displacement_at(t, 0.0), [-3.0, -1.0, 4.0])
    both = build_motion(MotionConfig(source=src, reference="zero", synthetic=[
        {"kind": "zigzag", "amplitude_um": 10.0, "period_s": 8.0}]), Rec, rng)
    assert np.allclose(both.displacement_at([2.0], 0.0), [19.0])
    with pytest.raises(ConfigError, match="motion.source.path: .*does not exist"):
        build_motion(MotionConfig(source={"type": "kilosort4", "path": str(tmp_path / "nope")}), Rec, rng)
