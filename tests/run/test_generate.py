"""``hybridkit generate`` end to end on the example dataset (SpikeGLX NP1.0 + Kilosort-style phy).

Checks the promises of the product: the invariant over the whole file, the exact ground truth
(channel, time, unit), refractory trains, the untouched source, atomic outputs, readers that
users will open the outputs with (phylib, SpikeInterface), and one-line errors on bad input.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.run.pipeline import generate

from tests.helpers import config_with, run_cli

N_CH = 385


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run(example, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    bin_path = example / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
    before = sha(bin_path)
    cfg = load_config(config_with(example, tmp))
    result = generate(cfg)
    return {"result": result, "cfg": cfg, "source": bin_path, "source_sha_before": before,
            "out": result.output_dir}


def test_source_unchanged(run):
    assert sha(run["source"]) == run["source_sha_before"]


def test_invariant_over_whole_file(run):
    result, out = run["result"], run["out"]
    plan, rec = result.truth.plan, result.truth.recording
    src = np.fromfile(run["source"], np.int16).reshape(-1, N_CH)
    hyb = np.fromfile(out / "demo_g0_t0.imec0.ap.GT.bin", np.int16).reshape(-1, N_CH)
    assert src.shape == hyb.shape
    touched = np.unique(np.concatenate([u.template.channels for u in plan.units]))
    others = np.setdiff1d(np.arange(N_CH), touched)
    assert np.array_equal(src[:, others], hyb[:, others])  # incl. the sync column 384
    assert 384 not in touched
    planned = np.zeros((src.shape[0], touched.size))
    for t, u, g in zip(plan.times, plan.unit_index, plan.gains):
        tpl = plan.units[u].template
        cols = np.searchsorted(touched, tpl.channels)
        a = t - tpl.peak_index
        planned[a:a + tpl.n_times, cols] += float(g) * tpl.waveform / rec.gain_to_uV[tpl.channels]
    diff = hyb[:, touched].astype(float) - src[:, touched]
    assert result.truth.clipped_samples == 0
    assert np.abs(diff - planned).max() <= 0.5 + 1e-3
    assert np.abs(planned).max() > 20  # the injected spikes are real, not empty


def test_firings_true_exact(run):
    out, plan = run["out"], run["result"].truth.plan
    ft = np.load(out / "firings_true.npy")
    assert ft.dtype == np.uint64 and ft.shape == (3, plan.n_events)
    assert np.all(np.diff(ft[1].astype(np.int64)) >= 0)
    by_source = {u.source_unit_id: u for u in plan.units}
    for ch, t, src in ft.T:
        tpl = by_source[int(src)].template
        # the channel is the probe channel where the injected template peaks, after placement
        assert ch == tpl.channels[np.argmax(np.abs(tpl.waveform).max(axis=0))]
    # and the injected waveform really peaks there at that sample in the hybrid file
    hyb = np.memmap(out / "demo_g0_t0.imec0.ap.GT.bin", np.int16, "r").reshape(-1, N_CH)
    src = np.memmap(run["source"], np.int16, "r").reshape(-1, N_CH)
    u0 = plan.units[0]
    times0 = plan.times[plan.unit_index == 0]
    t = int(times0[len(times0) // 2])
    ch = u0.template.peak_channel
    added = hyb[t - 5:t + 6, ch].astype(int) - src[t - 5:t + 6, ch]
    assert np.argmax(np.abs(added)) == 5  # off-by-one in time would move this


def test_csv_tables_agree_with_firings(run):
    out, truth = run["out"], run["result"].truth
    ft = np.load(out / "firings_true.npy").astype(np.int64)
    ev = np.genfromtxt(out / "hybrid_events-demo.csv", delimiter=",", names=True)
    assert np.array_equal(ev["time_samples"].astype(np.int64), ft[1])
    assert np.array_equal(ev["channel"].astype(np.int64), ft[0])
    assert np.array_equal(ev["source_unit"].astype(np.int64), ft[2])
    assert np.allclose(ev["time_s"], ft[1] / truth.recording.sampling_rate)
    au = np.genfromtxt(out / "artificial_units-demo.csv", delimiter=",", names=True)
    assert np.array_equal(au["center_channel"].astype(np.int64), ft[0])
    gains = ev["gain"]
    assert gains.min() >= 0.8 and gains.max() <= 1.2 and gains.std() > 0.05


def test_annotations_are_the_sorting_plus_the_hybrid_spikes_by_time(run):
    """annotations-<session>.csv: every source-sorting spike and every injected event (as its new
    unit), in time order, source spikes first at equal samples."""
    out, truth = run["out"], run["result"].truth
    an = np.loadtxt(out / "annotations-demo.csv", delimiter=",", skiprows=1, dtype=np.int64)
    plan, sorting = truth.plan, truth.sorting
    new_ids = np.array([u.new_unit_id for u in plan.units])[plan.unit_index]
    t = np.r_[sorting.spike_times, plan.times]
    c = np.r_[sorting.spike_units, new_ids]
    order = np.argsort(t, kind="stable")
    assert an.shape == (t.size, 3) and plan.n_events > 100
    assert np.array_equal(an[:, 0], t[order]) and np.array_equal(an[:, 1], c[order])
    assert np.array_equal(an[:, 2], an[:, 1])


def test_template_provenance_file(run):
    import json

    out, truth = run["out"], run["result"].truth
    prov = json.loads((out / "templates-demo.json").read_text())
    assert prov["session"] == "demo"
    assert sorted(map(int, prov["units"])) == [u.new_unit_id for u in truth.plan.units]
    for u in truth.plan.units:
        row = prov["units"][str(u.new_unit_id)]
        assert row["source_unit"] == u.source_unit_id and row["template_source"] == "local"
        assert row["peak_channel"] == u.template.peak_channel
        assert row["provenance"]["rank"] == 6 and row["n_template_spikes"] == u.template.n_spikes


def test_new_unit_ids_follow_the_sorting(run):
    truth = run["result"].truth
    max_src = int(truth.sorting.unit_ids.max())
    assert [u.new_unit_id for u in truth.plan.units] == list(range(max_src + 1, max_src + 1 + len(truth.plan.units)))


def test_no_refractory_violations(run):
    plan, fs = run["result"].truth.plan, run["result"].truth.recording.sampling_rate
    for k in range(len(plan.units)):
        t = plan.times[plan.unit_index == k]
        assert t.size > 5
        assert np.diff(t).min() >= round(1.5e-3 * fs)


def test_placement_moved_units_by_contact_positions(run):
    rec = run["result"].truth.recording
    for u in run["result"].truth.plan.units:
        src_pos = np.asarray(u.template.provenance["source_position"])
        assert np.hypot(*(u.template.position - src_pos)) >= 60
        # every channel landed on a contact exactly shifted
        src_ch = np.asarray(u.template.provenance["source_channels"])
        assert np.allclose(rec.channel_positions[u.template.channels],
                           rec.channel_positions[src_ch] + u.shift_um)


def test_resolved_config_and_manifest(run):
    out = run["out"]
    resolved = json.loads((out / "config.resolved.json").read_text())
    assert resolved["seed"] == 42 and resolved["templates"]["rank"] == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["injected_events"] == run["result"].truth.plan.n_events
    names = {f["path"] for f in manifest["files"]}
    assert "firings_true.npy" in names and "phy/params.py" in names
    small = next(f for f in manifest["files"] if f["path"] == "firings_true.npy")
    assert small["sha256"] == sha(out / "firings_true.npy")
    assert not list(out.parent.glob(".*partial*"))


def test_phylib_opens_the_phy_folder(run, tmp_path):
    from phylib.io.model import load_model

    phy = tmp_path / "phy"
    shutil.copytree(run["out"], tmp_path, dirs_exist_ok=True)
    model = load_model(phy / "params.py")
    try:
        ft = np.load(run["out"] / "firings_true.npy")
        assert np.array_equal(model.spike_samples, ft[1].astype(np.int64))
        assert model.n_channels == 384
        assert model.traces.shape[0] == np.load(run["out"] / "firings_true.npy").shape[1] * 0 + \
            (run["out"] / "demo_g0_t0.imec0.ap.GT.bin").stat().st_size // (2 * N_CH)
    finally:
        model.close()


def test_spikeinterface_reads_hybrid_and_truth(run):
    import probeinterface as pi
    import spikeinterface.core as sc
    import spikeinterface.extractors as se  # noqa: F401  (registers the readers)

    out, truth = run["out"], run["result"].truth
    fs = truth.recording.sampling_rate
    rec = sc.read_binary(out / "demo_g0_t0.imec0.ap.GT.bin", sampling_frequency=fs, dtype="int16",
                         num_channels=N_CH)
    probe = pi.read_probeinterface(out / "probe-demo.json").probes[0]
    rec = rec.select_channels_with_probegroup(_group(probe))
    assert rec.get_num_channels() == 384
    hyb = np.memmap(out / "demo_g0_t0.imec0.ap.GT.bin", np.int16, "r").reshape(-1, N_CH)
    cols = probe.device_channel_indices
    assert np.array_equal(rec.get_traces(start_frame=1000, end_frame=1100), hyb[1000:1100][:, np.sort(cols)])
    ft = np.load(out / "firings_true.npy").astype(np.int64)
    sorting = sc.NumpySorting.from_samples_and_labels([ft[1]], [ft[2]], fs)
    ev = np.genfromtxt(out / "hybrid_events-demo.csv", delimiter=",", names=True)
    for uid in sorting.unit_ids:
        mine = ev["time_samples"][ev["source_unit"] == uid].astype(np.int64)
        assert np.array_equal(sorting.get_unit_spike_train(uid), mine)


def _group(probe):
    import probeinterface as pi

    group = pi.ProbeGroup()
    group.add_probe(probe)
    return group


def test_cli_generate_and_refusal_to_overwrite(example, tmp_path):
    cfg = config_with(example, tmp_path, seed=None, output={"directory": str(tmp_path / "o")})
    first = run_cli("generate", cfg)
    assert first.returncode == 0, first.stderr
    resolved = json.loads((tmp_path / "o" / "config.resolved.json").read_text())
    assert isinstance(resolved["seed"], int)  # drawn and written out
    again = run_cli("generate", cfg)
    assert again.returncode == 2 and "already exists" in again.stderr
    # the resolved config reproduces the run bit for bit
    resolved["output"] = {"directory": str(tmp_path / "o2")}
    (tmp_path / "r.json").write_text(json.dumps(resolved))
    assert run_cli("generate", tmp_path / "r.json").returncode == 0
    assert sha(tmp_path / "o" / "demo_g0_t0.imec0.ap.GT.bin") == sha(tmp_path / "o2" / "demo_g0_t0.imec0.ap.GT.bin")
    assert sha(tmp_path / "o" / "firings_true.npy") == sha(tmp_path / "o2" / "firings_true.npy")


def _expect_user_error(cfg_path: Path, *needles: str, out_dir: Path | None = None):
    res = run_cli("generate", cfg_path)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len([ln for ln in lines if ln.startswith("hybridkit: error")]) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr
    if out_dir is not None:
        assert not out_dir.exists()
        assert not list(out_dir.parent.glob(f".{out_dir.name}.partial*"))
    return res.stderr


def _copy_recording(example: Path, tmp: Path) -> Path:
    dst = tmp / "rec"
    shutil.copytree(example / "demo_g0", dst)
    return dst / "demo_g0_t0.imec0.ap.bin"


def test_bad_bin_size(example, tmp_path):
    bin_path = _copy_recording(example, tmp_path)
    with open(bin_path, "r+b") as fh:
        fh.truncate(bin_path.stat().st_size - 3)
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, recording={"type": "spikeglx", "path": str(bin_path)},
                      output={"directory": str(out)})
    _expect_user_error(cfg, bin_path.name, "385", out_dir=out)


def test_meta_disagrees_with_bin(example, tmp_path):
    bin_path = _copy_recording(example, tmp_path)
    with open(bin_path, "r+b") as fh:
        fh.truncate(bin_path.stat().st_size - 2 * N_CH * 10)  # whole samples, but not what meta says
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, recording={"type": "spikeglx", "path": str(bin_path)},
                      output={"directory": str(out)})
    _expect_user_error(cfg, "fileSizeBytes", out_dir=out)


def test_spike_times_past_the_end(example, tmp_path):
    ks = tmp_path / "ks"
    shutil.copytree(example / "kilosort4", ks)
    times = np.load(ks / "spike_times.npy")
    n = (example / "demo_g0" / "demo_g0_t0.imec0.ap.bin").stat().st_size // (2 * N_CH)
    times[-1] = n + 100
    np.save(ks / "spike_times.npy", times)
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, sorting={"type": "phy", "path": str(ks)}, output={"directory": str(out)})
    _expect_user_error(cfg, "spike_times.npy", str(n + 100), out_dir=out)


def test_unknown_unit_ids(example, tmp_path):
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, units={"ids": [1, 999]}, output={"directory": str(out)})
    err = _expect_user_error(cfg, "units.ids", "999", "units that exist: 0, 1, 2", out_dir=out)
    assert "[999]" in err


def test_one_based_ids_mixup_is_caught(example, tmp_path):
    """A 1-based habit (ids shifted by one) names a unit that does not exist: a clear error."""
    n_units = len(np.unique(np.load(example / "kilosort4" / "spike_clusters.npy")))
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, units={"ids": [n_units]}, output={"directory": str(out)})
    _expect_user_error(cfg, f"[{n_units}]", out_dir=out)


def test_nan_in_templates(example, tmp_path):
    """A float32 binary copy of the recording with NaNs around a unit's spikes: TemplateError."""
    src = np.memmap(example / "demo_g0" / "demo_g0_t0.imec0.ap.bin", np.int16, "r").reshape(-1, N_CH)
    data = np.asarray(src, np.float32)
    times = np.load(example / "kilosort4" / "spike_times.npy")
    clusters = np.load(example / "kilosort4" / "spike_clusters.npy")
    uid = json.loads((example / "config.json").read_text())["units"]["ids"][0]
    data[times[clusters == uid], 10] = np.nan
    path = tmp_path / "rec.f32"
    data.tofile(path)
    np.save(tmp_path / "geom.npy", np.load(example / "kilosort4" / "channel_positions.npy"))
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, recording={
        "type": "binary", "path": str(path), "dtype": "float32", "n_channels": N_CH,
        "sampling_rate": 29999.9712, "geometry": str(tmp_path / "geom.npy"), "gain_to_uV": 2.34375,
        "channels": list(range(384))}, output={"directory": str(out)})
    _expect_user_error(cfg, f"unit {uid}", "NaN", out_dir=out)


def test_unwritable_output_folder(example, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = config_with(example, tmp_path, output={"directory": str(blocker / "out")})
    _expect_user_error(cfg, "output.directory", f"{blocker} is a file")


def test_nothing_placed_fails_even_when_skipping(example, tmp_path):
    """The predecessor inserted nothing on a Neuropixels recording and exited 0: we refuse."""
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, output={"directory": str(out)},
                      injection={"placement": {"mode": "random", "min_distance_um": 1e6, "on_no_place": "skip"}})
    _expect_user_error(cfg, "nothing to inject", "min_distance_um", out_dir=out)


def test_no_place_is_an_error_naming_the_unit(example, tmp_path):
    out = tmp_path / "out"
    cfg = config_with(example, tmp_path, output={"directory": str(out)},
                      injection={"placement": {"mode": "random", "min_distance_um": 1e6}})
    _expect_user_error(cfg, "unit ", "no place on the probe", "on_no_place", out_dir=out)
