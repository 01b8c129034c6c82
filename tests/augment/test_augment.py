"""``hybridkit augment``: labels true by construction, noise from quiet stretches or the measured
Kronecker covariance, one seed -> one file."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.engine.noise_model import estimate, relative_frobenius
from hybridkit.engine.placement import shift_template
from hybridkit.example import write_example
from hybridkit.hookspecs import RunContext
from hybridkit.registry import get_registry
from tests.helpers import main

COUNTS = {"clean": 30, "collided": 30, "misaligned_temporal": 30, "misaligned_spatial": 30,
          "noise": 30}


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("aug") / "demo", duration_s=4.0).parent


def config(example: Path, tmp: Path, name="config.json", **augment) -> Path:
    cfg = json.loads((example / "config.json").read_text())
    cfg["recording"]["path"] = str(example / cfg["recording"]["path"])
    cfg["sorting"]["path"] = str(example / cfg["sorting"]["path"])
    cfg["augment"] = {"output": "train.h5", "counts": COUNTS, "batch": 25, **augment}
    path = tmp / name
    path.write_text(json.dumps(cfg))
    return path


def load(path: Path) -> dict:
    with h5py.File(path, "r") as h5:
        return {k: h5[k][()] for k in h5} | {"attrs": dict(h5.attrs)}


def render_reference(t, gain, dt, channels, n_before, n_times):
    """Independent (loop) rendering of one scaled, shifted template onto a neighbourhood."""
    out = np.zeros((n_times, len(channels)), np.float32)
    for k, c in enumerate(channels):
        hits = np.flatnonzero(t.channels == c)
        if not hits.size:
            continue
        for j in range(t.n_times):
            s = n_before + dt - t.peak_index + j
            if 0 <= s < n_times:
                out[s, k] = np.float32(gain) * t.waveform[j, hits[0]]
    return out


def test_labels_are_true_by_construction(example, tmp_path, capsys):
    path = config(example, tmp_path, store_noise=True)
    code, out, err = main(capsys, "augment", path)
    assert code == 0, err
    assert "train.h5" in out and "30 collided" in out
    f = load(tmp_path / "train.h5")
    names = json.loads(f["attrs"]["label_names"])
    assert names == list(COUNTS)
    assert np.array_equal(np.bincount(f["labels"], minlength=5), [30] * 5)

    cfg = load_config(path)
    rec = get_registry().get("source_reader", "spikeglx")(cfg.recording, None).open()
    n_before = int(f["attrs"]["n_before"])
    n_times = f["waveforms"].shape[1]
    assert n_before == 30 and n_times == 75 and f["waveforms"].shape[2] == 7
    # the templates exactly as `generate` builds and places them
    from hybridkit.run.choosing import choose_and_place
    from hybridkit.run.planning import stage_rngs

    rngs = stage_rngs(cfg.seed)
    session = cfg.session or f"hybrid-{cfg.seed}"
    sorting = get_registry().get("sorter_adapter", "phy")(cfg.sorting, RunContext.for_plugin(
        cfg.base_dir, cfg.seed, session, "sorter_adapter", "phy")).load(rec)
    source = get_registry().get("template_source", "local")(cfg.templates, RunContext.for_plugin(
        cfg.base_dir, cfg.seed, session, "template_source", "local"))
    choice = choose_and_place(cfg, rec, sorting, source, rngs, cfg.seed)
    pos = rec.channel_positions
    placed = {u: shift_template(choice.bank.templates[u], s, pos, rec.neural)
              for u, s in choice.placement[0].items()}

    spikes = np.sort(sorting.spike_times)
    for i in range(len(f["labels"])):
        label, chans, centre = names[f["labels"][i]], f["channels"][i], f["centre_channels"][i]
        assert chans[0] == centre
        d = np.linalg.norm(pos[chans] - pos[centre], axis=1)
        assert np.all(np.diff(d) >= -1e-9)  # nearest first
        assert np.array_equal(f["positions"][i], pos[chans].astype(np.float32))
        # the noise is the recording's own window, in uV, with no sorted spike within 1 ms
        s0 = int(f["noise_starts"][i])
        raw = rec.read(s0, s0 + n_times, chans).astype(np.float32)
        assert np.array_equal(f["noise"][i], raw * rec.gain_to_uV[chans].astype(np.float32))
        near = spikes[(spikes >= s0 - 30) & (spikes < s0 + n_times + 30)]
        assert near.size == 0
        # waveform - every rendered template = the noise it was built on (float32 rounding)
        rest = f["waveforms"][i].copy()
        for slot in (1, 0):
            uid = int(f["template_ids"][i, slot])
            if uid < 0:
                assert f["gains"][i, slot] == 0
                continue
            t = placed[uid]
            if slot == 1:  # the second spike was moved: its peak is space_shifts_um from the centre
                t = shift_template(t, pos[centre] + f["space_shifts_um"][i, 1] - pos[t.peak_channel],
                                   pos, rec.neural)
            rest -= render_reference(t, f["gains"][i, slot], int(f["time_shifts"][i, slot]), chans,
                                     n_before, n_times)
        scale = np.abs(f["waveforms"][i]).max()
        assert np.abs(rest - f["noise"][i]).max() <= 4 * np.finfo(np.float32).eps * scale
        # each class's parameters in its configured ranges
        ts, ss = f["time_shifts"][i], np.linalg.norm(f["space_shifts_um"][i], axis=1)
        if label == "noise":
            assert f["template_ids"][i].tolist() == [-1, -1] and f["amplitudes"][i] == 0
            continue
        assert 50 - 1e-3 <= f["amplitudes"][i] <= 300 + 1e-3
        assert f["amplitudes"][i] == pytest.approx(f["gains"][i, 0] * placed[f["template_ids"][i, 0]].peak_amplitude_uV, rel=1e-5)
        assert f["unit_ids"][i, 0] == f["template_ids"][i, 0]  # local templates are sorted units
        if label == "clean":
            assert ts.tolist() == [0, 0] and ss[0] == 0 and f["template_ids"][i, 1] == -1
        elif label == "collided":
            assert ts[0] == 0 and 6 <= abs(ts[1]) <= 24 and ss[1] <= 60 + 1e-3
            assert f["template_ids"][i, 1] != f["template_ids"][i, 0]
        elif label == "misaligned_temporal":
            assert 9 <= abs(ts[0]) <= 24 and ss[0] == 0
        else:
            assert ts[0] == 0 and 40 - 1e-3 <= ss[0] <= 100 + 1e-3


def test_same_seed_same_file_and_another_seed_differs(example, tmp_path, capsys):
    """The whole file, byte for byte: no creation times, nothing drawn outside the seed."""
    files = []
    for seed in (5, 5, 6):
        cfg = config(example, tmp_path, overwrite=True)
        data = json.loads(cfg.read_text())
        data["seed"] = seed
        cfg.write_text(json.dumps(data))
        assert main(capsys, "augment", cfg)[0] == 0
        files.append((tmp_path / "train.h5").read_bytes())
    assert files[0] == files[1]
    assert files[0] != files[2]


def test_model_noise_has_the_measured_covariance(example, tmp_path, capsys):
    """Noise drawn from the Kronecker model: whitened by the measured covariance (restricted to
    each snippet's neighbourhood), the file's noise snippets have identity spatial and temporal
    factors within relative Frobenius error 0.1 (2,000 snippets of 75 samples x 7 channels); the
    measured spatial diagonal is the recording's per-channel noise variance within 10 %."""
    path = config(example, tmp_path, noise="model", noise_snippets=1500, store_noise=True,
                  counts={"noise": 2000, "clean": 0, "collided": 0, "misaligned_temporal": 0,
                          "misaligned_spatial": 0}, batch=500)
    code, out, err = main(capsys, "augment", path)
    assert code == 0, err
    f = load(tmp_path / "train.h5")
    assert (f["noise_starts"] == -1).all()
    with np.load(tmp_path / "train.noise.npz") as z:
        spatial, temporal, cols = z["spatial"], z["temporal"], z["channels"]
    index = {int(c): k for k, c in enumerate(cols)}
    wt = np.linalg.inv(np.linalg.cholesky(temporal))
    white = np.empty_like(f["noise"], dtype=np.float64)
    for i, (x, ch) in enumerate(zip(f["noise"], f["channels"])):
        k = np.array([index[int(c)] for c in ch])
        ws = np.linalg.inv(np.linalg.cholesky(spatial[np.ix_(k, k)]))
        white[i] = wt @ x @ ws.T
    est = estimate(white)
    assert relative_frobenius(est.temporal, np.eye(75)) < 0.1
    assert relative_frobenius(est.spatial, np.eye(7)) < 0.1
    cfg = load_config(path)
    rec = get_registry().get("source_reader", "spikeglx")(cfg.recording, None).open()
    raw = rec.read(0, rec.n_samples, cols[:16]).astype(np.float64) * rec.gain_to_uV[cols[:16]]
    variance = raw.var(axis=0) * np.mean(np.diag(temporal))
    assert np.allclose(np.diag(spatial)[:16], variance, rtol=0.1)


def test_errors_are_one_line(example, tmp_path, capsys):
    cfg = json.loads(config(example, tmp_path).read_text())
    del cfg["augment"]
    (tmp_path / "no_aug.json").write_text(json.dumps(cfg))
    code, out, err = main(capsys, "augment", tmp_path / "no_aug.json")
    assert code == 2 and "missing required field augment" in err and err.count("\n") == 1
    bad = config(example, tmp_path, n_channels=1000)
    code, out, err = main(capsys, "augment", bad)
    assert code == 2 and "augment.n_channels = 1000" in err and "valid: 1..384" in err
    assert not (tmp_path / "train.h5").exists() and not list(tmp_path.glob(".train.h5*"))
    zero = config(example, tmp_path, counts={k: 0 for k in COUNTS})
    code, out, err = main(capsys, "augment", zero)
    assert code == 2 and "augment" in err and "counts are all 0" in err
    ok = config(example, tmp_path)
    assert main(capsys, "augment", ok)[0] == 0
    code, out, err = main(capsys, "augment", ok)
    assert code == 2 and "exists; set augment.overwrite true" in err


def test_the_documented_loader_runs(example, tmp_path, capsys):
    """docs/augment.md's ten-line loader, run on a real file (numpy and h5py only)."""
    assert main(capsys, "augment", config(example, tmp_path))[0] == 0
    doc = (Path(__file__).resolve().parents[2] / "docs" / "augment.md").read_text()
    code = doc.split("## A training loop (numpy only)")[1].split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 12 and "torch" not in code
    scope: dict = {}
    exec(compile(code.replace("training_set.h5", str(tmp_path / "train.h5")), "augment.md", "exec"),
         scope)
    assert scope["x"].shape == (150, 75, 7) and scope["is_spike"].sum() == 60
    assert scope["xb"].ndim == 3 and len(scope["yb"]) == len(scope["xb"])
