"""Templates: noise level, alignment, averaging, rank-k SVD denoising, taper, sparsity, errors."""
import numpy as np
import pytest

from hybridkit.engine.snippets import gather_snippets
from hybridkit.engine.noise import estimate_noise_uV
from hybridkit.engine.templates import build_template, sparsify
from hybridkit.errors import TemplateError
from hybridkit.model import Recording, SourceFile
from tests.helpers import best_lag, corr as _corr

FS = 30000.0
N_NEURAL = 48
SYNC = N_NEURAL  # the last file column is a sync word, no contact
GAIN = 2.34375  # uV per bit (Neuropixels 1.0 AP at gain 500)
NOISE_UV = 10.0
PEAK_CH = 20  # x=43, y=200
N_BEFORE, N_AFTER = 30, 60
N_SAMPLES = 90000
SPIKE_TIMES = np.arange(400, N_SAMPLES - 400, 600)


def np1_positions(n_neural):
    """Neuropixels 1.0 staggered layout: x cycles 43, 11, 59, 27; two contacts per 20 um row."""
    k = np.arange(n_neural)
    return np.column_stack([np.array([43.0, 11.0, 59.0, 27.0])[k % 4], 20.0 * (k // 2)])


def true_waveform(positions, peak=PEAK_CH, amp=150.0):
    """(90, n_ch) uV: a trough at sample 30 plus a slow positive bump, decaying (and delayed) with
    distance from ``peak``, exactly 0 on contacts more than 60 um away."""
    d = np.hypot(*(positions - positions[peak]).T)
    scale = np.where(d <= 60.0, amp * np.exp(-d / 25.0), 0.0)
    t = np.arange(N_BEFORE + N_AFTER)[:, None] - N_BEFORE - 0.05 * d[None, :]
    shape = -np.exp(-0.5 * (t / 4.5) ** 2) + 0.3 * np.exp(-0.5 * ((t - 15) / 12.0) ** 2)
    return shape * scale[None, :]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A one-file int16 recording: NP1 geometry, 10 uV Gaussian noise, one unit at SPIKE_TIMES."""
    rng = np.random.default_rng(7)
    pos = np1_positions(N_NEURAL)
    wf = true_waveform(pos)
    data = rng.normal(0.0, NOISE_UV, size=(N_SAMPLES, N_NEURAL))
    for t in SPIKE_TIMES:
        data[t - N_BEFORE : t + N_AFTER] += wf
    raw = np.zeros((N_SAMPLES, N_NEURAL + 1), np.int16)
    raw[:, :N_NEURAL] = np.rint(data / GAIN).astype(np.int16)
    raw[:, SYNC] = (np.arange(N_SAMPLES) // 1000) % 2 * 64
    path = tmp_path_factory.mktemp("rec") / "rec.bin"
    raw.tofile(path)
    positions = np.vstack([pos, [np.nan, np.nan]])
    rec = Recording(files=[SourceFile(path=path, n_samples=N_SAMPLES)], dtype=np.int16,
                    n_channels=N_NEURAL + 1, sampling_rate=FS,
                    gain_to_uV=np.r_[np.full(N_NEURAL, GAIN), 0.0], offset_to_uV=np.zeros(N_NEURAL + 1),
                    channel_positions=positions, neural=np.r_[np.ones(N_NEURAL, bool), False])
    return rec, wf, pos


def _snippets_uV(rec, times):
    chans = rec.neural_channels
    return gather_snippets(rec, times, N_BEFORE, N_AFTER, chans) * rec.gain_to_uV[chans].astype(np.float32)


def test_noise_estimate(synthetic):
    rec, wf, _ = synthetic
    chans = rec.neural_channels
    noise = estimate_noise_uV(rec, chans)
    assert noise.shape == (N_NEURAL,) and noise.dtype == np.float64
    quiet = np.abs(wf).max(axis=0) == 0
    assert quiet.sum() > 20
    np.testing.assert_allclose(noise[quiet], NOISE_UV, rtol=0.06)
    # fixed chunks (from the recording's length): the same answer bit for bit
    again = estimate_noise_uV(rec, chans)
    np.testing.assert_array_equal(noise, again)


def test_noise_estimate_integer_path_matches_float(synthetic, tmp_path):
    """The int16 fast path (radix sorts, lower median) agrees with the float path on the same data."""
    import dataclasses

    rec, _, _ = synthetic
    raw = np.fromfile(rec.files[0].path, np.int16).reshape(-1, rec.n_channels)
    path = tmp_path / "rec_f32.bin"
    raw.astype(np.float32).tofile(path)
    rec32 = dataclasses.replace(rec, files=[SourceFile(path=path, n_samples=rec.n_samples)],
                                dtype=np.dtype(np.float32))
    chans = rec.neural_channels
    n16 = estimate_noise_uV(rec, chans)
    n32 = estimate_noise_uV(rec32, chans)
    # centring on the lower median moves each deviation by at most half a raw unit
    np.testing.assert_allclose(n16, n32, atol=0.5 * GAIN / 0.6745)


def test_template_recovers_known_waveform(synthetic):
    rec, wf, _ = synthetic
    snips = _snippets_uV(rec, SPIKE_TIMES)
    template, n_used, _ = build_template(snips, rank=6, max_shift=6, peak_index=N_BEFORE)
    assert template.shape == wf.shape and template.dtype == np.float32
    assert n_used == SPIKE_TIMES.size
    assert _corr(template, wf) > 0.95
    true_peak = np.abs(wf[:, PEAK_CH]).max()  # 150 uV trough plus the bump's tail
    assert np.abs(template[:, PEAK_CH]).max() == pytest.approx(true_peak, rel=0.03)
    assert int(np.argmax(np.abs(template).max(axis=0))) == PEAK_CH
    assert best_lag(template, wf) == 0
    assert abs(int(np.argmin(template[:, PEAK_CH])) - N_BEFORE) <= 1  # the trough is flat to ~1 uV
    # the taper: injected waveforms start and end at exactly 0
    assert template[0].tolist() == [0.0] * N_NEURAL
    assert template[-1].tolist() == [0.0] * N_NEURAL


def test_best_lag_helper_sees_one_sample():
    wf = true_waveform(np1_positions(N_NEURAL))
    assert best_lag(wf, wf) == 0
    assert best_lag(np.roll(wf, 1, axis=0), wf) == 1 and best_lag(np.roll(wf, -2, axis=0), wf) == -2


def test_alignment_undoes_time_jitter(synthetic):
    rec, wf, _ = synthetic
    jitter = np.random.default_rng(3).integers(-3, 4, size=SPIKE_TIMES.size)
    snips = _snippets_uV(rec, SPIKE_TIMES + jitter)
    aligned, _, _ = build_template(snips, rank=6, max_shift=6, peak_index=N_BEFORE)
    blurred, _, _ = build_template(snips, rank=6, max_shift=0, peak_index=N_BEFORE)
    assert _corr(aligned, wf) > 0.95
    assert np.abs(aligned[:, PEAK_CH]).max() == pytest.approx(np.abs(wf[:, PEAK_CH]).max(), rel=0.04)
    assert best_lag(aligned, wf) == 0
    assert abs(int(np.argmin(aligned[:, PEAK_CH])) - N_BEFORE) <= 1
    # without alignment the jittered average is visibly smeared
    assert np.abs(blurred[:, PEAK_CH]).max() < 0.93 * np.abs(aligned[:, PEAK_CH]).max()


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_svd_keeps_rank_k(synthetic, rank):
    rec, wf, _ = synthetic
    template, _, _ = build_template(_snippets_uV(rec, SPIKE_TIMES[:60]), rank=rank, max_shift=4,
                                 peak_index=N_BEFORE)
    s = np.linalg.svd(template.astype(np.float64), compute_uv=False)
    assert s[rank - 1] / s[0] > 1e-3
    assert s[rank] / s[0] < 1e-5


def test_denoising_projects_on_the_top_svd_components(synthetic):
    """Independent reference: the mean projected on the top-k right singular vectors (economy SVD)."""
    from hybridkit.engine.templates import _N_SVD_CHANNELS, _taper

    rec, _, _ = synthetic
    snips = _snippets_uV(rec, SPIKE_TIMES[:80]).astype(np.float64)
    got, _, _ = build_template(snips, rank=3, max_shift=0, peak_index=N_BEFORE)
    n_base = N_BEFORE // 2
    x = snips - snips[:, :n_base].mean(axis=1, keepdims=True)
    mean = x.mean(axis=0)
    amp = np.abs(mean).max(axis=0)
    best = np.sort(np.argsort(-amp, kind="stable")[:_N_SVD_CHANNELS])
    rows = x[:, :, best].transpose(0, 2, 1).reshape(-1, x.shape[1])
    vt = np.linalg.svd(rows, full_matrices=False)[2][:3]
    expected = (vt.T @ (vt @ mean)) * _taper(x.shape[1], 2)[:, None]
    np.testing.assert_allclose(got, expected, atol=1e-3 * np.abs(expected).max())


def test_noise_free_spikes_are_reproduced_exactly():
    """Identical spikes of temporal rank 2: rank >= 2 reproduces them; only the ends are tapered."""
    t = np.arange(80)
    a = -np.exp(-0.5 * ((t - 25) / 3.0) ** 2)
    b = np.exp(-0.5 * ((t - 40) / 8.0) ** 2)
    wf = np.column_stack([100 * a + 10 * b, 40 * a, 30 * b, 5 * a - 20 * b]).astype(np.float32)
    snips = np.repeat(wf[None], 25, axis=0)
    out, n_used, _ = build_template(snips, rank=2, max_shift=3, peak_index=25)
    assert n_used == 25
    wf = wf - wf[:12].mean(axis=0)  # the documented baseline: first half of the 25 samples before the peak
    np.testing.assert_allclose(out[3:-3], wf[3:-3], atol=1e-4)
    assert (out[0] == 0).all() and (out[-1] == 0).all()
    assert (np.abs(out[1:3]) < np.abs(wf[1:3]) + 1e-6).all()
    # rank larger than the data allows is clipped, not an error
    big, _, _ = build_template(snips, rank=500, max_shift=3, peak_index=25)
    np.testing.assert_allclose(big[3:-3], wf[3:-3], atol=1e-4)
    # rank 1 cannot hold two temporal shapes
    one, _, _ = build_template(snips, rank=1, max_shift=3, peak_index=25)
    assert np.abs(one - wf)[3:-3].max() > 1.0


def test_rank_used_is_what_the_spikes_allow():
    """The rank recorded is the rank applied: 2 spikes on 2 channels hold at most 4 components."""
    rng = np.random.default_rng(3)
    snips = rng.normal(size=(2, 60, 2)).astype(np.float32) * 10
    snips[:, 20, 0] -= 200
    assert build_template(snips, rank=6, max_shift=0, peak_index=20).rank == 4
    assert build_template(snips, rank=3, max_shift=0, peak_index=20).rank == 3
    assert build_template(snips, rank=0, max_shift=0, peak_index=20).rank == 0
    # more components than samples: nothing is projected away, all 60 are kept
    assert build_template(np.repeat(snips, 40, axis=0), rank=500, max_shift=0, peak_index=20).rank == 60


def test_a_template_without_signal_is_an_error():
    with pytest.raises(TemplateError, match="unit 5: the template is zero on every channel: its 30 spikes"):
        build_template(np.zeros((30, 40, 3), np.float32), unit_id=5)
    # a constant offset is baseline, not signal
    with pytest.raises(TemplateError, match="unit 5: the template is zero"):
        build_template(np.full((30, 40, 3), 250.0, np.float32), unit_id=5)


def test_baseline_is_removed():
    t = np.arange(60)
    wf = (-80 * np.exp(-0.5 * ((t - 20) / 3.0) ** 2))[:, None] * np.array([1.0, 0.5])
    snips = np.repeat((wf + np.array([300.0, -120.0]))[None], 10, axis=0)
    out, _, _ = build_template(snips, rank=6, max_shift=2, peak_index=20)
    np.testing.assert_allclose(out[2:-2], (wf - wf[:10].mean(axis=0))[2:-2], atol=1e-3)
    assert np.abs(wf[:10].mean(axis=0)).max() < 0.1  # i.e. the 300 / -120 uV offsets are gone


def test_sparsity_keeps_footprint_and_peak(synthetic):
    rec, wf, pos = synthetic
    chans = rec.neural_channels
    template, _, _ = build_template(_snippets_uV(rec, SPIKE_TIMES), rank=6, max_shift=6, peak_index=N_BEFORE)
    noise = estimate_noise_uV(rec, chans)
    mask = sparsify(template, noise, pos, PEAK_CH)
    true_amp = np.abs(wf).max(axis=0)
    strong = true_amp >= 2 * 1.5 * NOISE_UV
    assert strong.sum() == 6  # the peak, four contacts at 25.6 um and one at 32 um
    assert mask[strong].all()
    assert not mask[true_amp == 0].any()
    assert mask[PEAK_CH]
    # the radius applies even to loud channels; the peak survives any threshold
    near = sparsify(template, noise, pos, PEAK_CH, radius_um=30.0)
    d = np.hypot(*(pos - pos[PEAK_CH]).T)
    assert not near[d > 30].any() and near[(d <= 30) & strong].all()
    only_peak = sparsify(template, noise, pos, PEAK_CH, threshold=1e6)
    assert np.flatnonzero(only_peak).tolist() == [PEAK_CH]


def test_nan_is_a_template_error():
    snips = np.zeros((5, 40, 3), np.float32)
    snips[2, 10, 1] = np.nan
    with pytest.raises(TemplateError, match="unit 12: 1 of 5 snippets contain NaN"):
        build_template(snips, unit_id=12)
    snips[2, 10, 1] = np.inf
    with pytest.raises(TemplateError, match="unit 12"):
        build_template(snips, unit_id=12)
    wf = np.ones((40, 3), np.float32)
    pos = np.zeros((3, 2))
    with pytest.raises(TemplateError, match="unit 4: the noise contain NaN"):
        sparsify(wf, np.array([1.0, np.nan, 1.0]), pos, 0, unit_id=4)
    with pytest.raises(TemplateError, match="unit 4: the waveform"):
        sparsify(np.full((40, 3), np.nan), np.ones(3), pos, 0, unit_id=4)
    with pytest.raises(TemplateError, match=r"unit 9: need snippets of shape"):
        build_template(np.zeros((0, 40, 3)), unit_id=9)


def test_shift_take_equals_a_clamped_gather():
    """Per-spike shifts with edge replication, including shifts beyond the window."""
    from hybridkit.engine.templates import _shift_take

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 20, 3)).astype(np.float32)
    shifts = rng.integers(-25, 25, 50)
    idx = np.clip(np.arange(20)[None, :] + shifts[:, None], 0, 19)
    np.testing.assert_array_equal(_shift_take(x, shifts), np.take_along_axis(x, idx[:, :, None], axis=1))
