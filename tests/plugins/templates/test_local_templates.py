"""Template source ``local``: templates from a synthetic Neuropixels 1.0 recording with a known unit."""
import numpy as np
import pytest
from pydantic import ValidationError

from hybridkit.errors import TemplateError
from hybridkit.hookspecs import RunContext
from hybridkit.model import Recording, Sorting, SourceFile
from hybridkit.plugins.templates.local import LocalTemplateOptions, LocalTemplates, hybridkit_template_sources
from hybridkit.registry import build_registry
from tests.helpers import best_lag, corr as _corr

FS = 30000.0
N_NEURAL = 64
SYNC = N_NEURAL
GAIN = 2.34375
NOISE_UV = 10.0
PEAK_CH = 30  # k % 4 == 2: x=59, y=300
N_SAMPLES = 90000
GOOD_TIMES = np.arange(400, N_SAMPLES - 400, 600)
EDGE_TIMES = np.array([5, N_SAMPLES - 10])  # windows leave the recording: skipped


def np1_positions(n):
    k = np.arange(n)
    return np.column_stack([np.array([43.0, 11.0, 59.0, 27.0])[k % 4], 20.0 * (k // 2)])


def true_waveform(pos):
    """(90, n) uV around sample 30: 150 uV trough + bump, 0 beyond 60 um from PEAK_CH."""
    d = np.hypot(*(pos - pos[PEAK_CH]).T)
    scale = np.where(d <= 60.0, 150.0 * np.exp(-d / 25.0), 0.0)
    t = np.arange(90)[:, None] - 30 - 0.05 * d[None, :]
    return (-np.exp(-0.5 * (t / 4.5) ** 2) + 0.3 * np.exp(-0.5 * ((t - 15) / 12.0) ** 2)) * scale


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(11)
    pos = np1_positions(N_NEURAL)
    wf = true_waveform(pos)
    uV = rng.normal(0.0, NOISE_UV, size=(N_SAMPLES, N_NEURAL)) + rng.uniform(-200, 200, N_NEURAL)
    for t in GOOD_TIMES:
        uV[t - 30 : t + 60] += wf
    raw = np.zeros((N_SAMPLES, N_NEURAL + 1), np.int16)
    raw[:, :N_NEURAL] = np.rint((uV - 50.0) / GAIN)  # offset_to_uV = 50 uV
    raw[:, SYNC] = np.where((np.arange(N_SAMPLES) // 700) % 2, 30000, 0)  # loud, but not neural
    path = tmp_path_factory.mktemp("local") / "rec.bin"
    raw.tofile(path)
    rec = Recording(
        files=[SourceFile(path=path, n_samples=N_SAMPLES)], dtype=np.int16, n_channels=N_NEURAL + 1,
        sampling_rate=FS, gain_to_uV=np.r_[np.full(N_NEURAL, GAIN), 0.0],
        offset_to_uV=np.r_[np.full(N_NEURAL, 50.0), 0.0],
        channel_positions=np.vstack([pos, [np.nan, np.nan]]), neural=np.r_[np.ones(N_NEURAL, bool), False],
    )
    few = np.array([1000, 20000, 40000, 60000, 80000])
    times = np.concatenate([GOOD_TIMES, EDGE_TIMES, few])
    units = np.concatenate([np.full(GOOD_TIMES.size + 2, 7), np.full(5, 3)])
    sorting = Sorting(spike_times=times, spike_units=units, unit_ids=np.array([3, 7]))
    return rec, sorting, wf, pos


def _source(tmp_path, seed=0, **opts):
    ctx = RunContext(base_dir=tmp_path, rng=np.random.default_rng(seed), seed=seed)
    return LocalTemplates(LocalTemplateOptions(**opts), ctx)


def test_builds_the_known_unit(data, tmp_path):
    rec, sorting, wf, pos = data
    bank = _source(tmp_path).build(rec, sorting, [7])
    assert bank.sampling_rate == FS and list(bank.templates) == [7]
    t = bank.templates[7]
    assert t.unit_id == 7 and t.source == "local"
    assert t.peak_index == 30 and t.n_times == 90
    assert t.peak_channel == PEAK_CH and t.position.tolist() == [59.0, 300.0]
    assert t.n_spikes == GOOD_TIMES.size  # the two edge spikes are skipped, not an error
    assert t.provenance["rank"] == 6 and t.provenance["n_spikes_available"] == GOOD_TIMES.size + 2
    assert SYNC not in t.channels
    true_amp = np.abs(wf).max(axis=0)
    assert set(np.flatnonzero(true_amp >= 30.0)) <= set(t.channels.tolist())
    assert not set(np.flatnonzero(true_amp == 0)) & set(t.channels.tolist())
    assert _corr(t.waveform, wf[:, t.channels]) > 0.95
    col = int(np.flatnonzero(t.channels == PEAK_CH)[0])
    assert np.abs(t.waveform[:, col]).max() == pytest.approx(np.abs(wf[:, PEAK_CH]).max(), rel=0.03)
    assert best_lag(t.waveform, wf[:, t.channels]) == 0  # the peak sits on the spike time
    assert abs(int(np.argmin(t.waveform[:, col])) - 30) <= 1
    assert t.waveform.dtype == np.float32
    assert (t.waveform[0] == 0).all() and (t.waveform[-1] == 0).all()


def test_max_spikes_and_seed(data, tmp_path):
    rec, sorting, _, _ = data
    a = _source(tmp_path, seed=1, max_spikes=40).build(rec, sorting, [7]).templates[7]
    b = _source(tmp_path, seed=1, max_spikes=40).build(rec, sorting, [7]).templates[7]
    c = _source(tmp_path, seed=2, max_spikes=40).build(rec, sorting, [7]).templates[7]
    assert a.n_spikes == 40
    np.testing.assert_array_equal(a.waveform, b.waveform)
    assert a.waveform.shape != c.waveform.shape or not np.array_equal(a.waveform, c.waveform)


def test_provenance_records_the_rank_used(data, tmp_path):
    """One spike on <= 32 SVD channels holds at most 32 components: rank 50 is clamped, and the
    provenance says so (it used to record the 50 asked for)."""
    rec, sorting, _, _ = data
    t = _source(tmp_path, rank=50, min_spikes=1, max_spikes=1).build(rec, sorting, [3]).templates[3]
    assert t.provenance["rank_requested"] == 50
    assert 1 <= t.provenance["rank"] <= 32
    many = _source(tmp_path, rank=50).build(rec, sorting, [7]).templates[7]
    assert many.provenance["rank"] == many.provenance["rank_requested"] == 50


def test_window_options_in_samples(data, tmp_path):
    rec, sorting, _, _ = data
    t = _source(tmp_path, ms_before=0.5, ms_after=1.5, rank=0).build(rec, sorting, [7]).templates[7]
    assert t.peak_index == 15 and t.n_times == 60
    assert t.peak_channel == PEAK_CH


def test_too_few_spikes_names_unit_and_count(data, tmp_path):
    rec, sorting, _, _ = data
    with pytest.raises(TemplateError, match=r"unit 3: 5 spikes .*min_spikes is 20"):
        _source(tmp_path).build(rec, sorting, [7, 3])
    with pytest.raises(TemplateError, match=r"unit 99: 0 spikes"):
        _source(tmp_path).build(rec, sorting, [99])
    assert 3 in _source(tmp_path, min_spikes=5).build(rec, sorting, [3]).templates
    with pytest.raises(TemplateError, match="needs a sorting"):
        _source(tmp_path).build(rec, None, [7])


def test_options():
    opt = LocalTemplateOptions()
    assert (opt.type, opt.max_spikes, opt.min_spikes, opt.ms_before, opt.ms_after, opt.rank,
            opt.align_ms) == ("local", 500, 20, 1.0, 2.0, 6, 0.2)
    for name, field in LocalTemplateOptions.model_fields.items():
        if name != "type":
            assert field.description, name
    with pytest.raises(ValidationError):
        LocalTemplateOptions(max_spike=10)  # typo: unknown key
    with pytest.raises(ValidationError, match="min_spikes"):
        LocalTemplateOptions(min_spikes=50, max_spikes=10)
    with pytest.raises(ValidationError):
        LocalTemplateOptions(ms_before=0)


def test_registered_through_the_hook():
    assert hybridkit_template_sources() == [LocalTemplates]
    assert build_registry().get("template_source", "local") is LocalTemplates


@pytest.fixture(scope="module")
def wideband(tmp_path_factory):
    """The known unit in a wideband recording: ongoing slow LFP on every channel (+-400 uV) and,
    locked to each spike, a 25 Hz wave that adds a ~100 uV slope across the template window."""
    rng = np.random.default_rng(12)
    pos = np1_positions(N_NEURAL)
    wf = true_waveform(pos)
    t = np.arange(N_SAMPLES) / FS
    lfp = 250 * np.sin(2 * np.pi * 7 * t) + 150 * np.sin(2 * np.pi * 13 * t + 1)
    uV = rng.normal(0.0, NOISE_UV, size=(N_SAMPLES, N_NEURAL)) + lfp[:, None]
    locked = 300 * np.sin(2 * np.pi * 25 * (np.arange(-330, 360) / FS))
    for s in GOOD_TIMES:
        uV[s - 30 : s + 60] += wf
        uV[s - 330 : s + 360] += locked[:, None]
    raw = np.zeros((N_SAMPLES, N_NEURAL + 1), np.int16)
    raw[:, :N_NEURAL] = np.rint(uV / GAIN)
    path = tmp_path_factory.mktemp("wideband") / "rec.bin"
    raw.tofile(path)
    rec = Recording(
        files=[SourceFile(path=path, n_samples=N_SAMPLES)], dtype=np.int16, n_channels=N_NEURAL + 1,
        sampling_rate=FS, gain_to_uV=np.r_[np.full(N_NEURAL, GAIN), 0.0],
        offset_to_uV=np.zeros(N_NEURAL + 1), channel_positions=np.vstack([pos, [np.nan, np.nan]]),
        neural=np.r_[np.ones(N_NEURAL, bool), False],
    )
    sorting = Sorting(spike_times=GOOD_TIMES, spike_units=np.full(GOOD_TIMES.size, 7),
                      unit_ids=np.array([7]))
    return rec, sorting, wf


def test_highpass_keeps_spike_locked_slow_waves_out_of_templates(wideband, tmp_path):
    from hybridkit.engine.filtering import Highpass

    rec, sorting, wf = wideband
    band = Highpass.for_recording(300.0, FS)
    padded = np.pad(wf, ((band.pad, band.pad), (0, 0)))
    truth = band.apply(padded, axis=0, crop=band.pad)[:, PEAK_CH]  # the spike as the filter sees it
    truth -= truth[:15].mean()  # the builder's baseline: the first half of the 30 pre-peak samples

    plain = _source(tmp_path).build(rec, sorting, [7]).templates[7]
    hp = _source(tmp_path, highpass_hz=300.0).build(rec, sorting, [7]).templates[7]
    assert hp.peak_channel == PEAK_CH and hp.peak_index == 30
    got = hp.waveform[:, list(hp.channels).index(PEAK_CH)]
    raw = plain.waveform[:, list(plain.channels).index(PEAK_CH)]
    inner = slice(8, -8)  # the taper's ramps
    err_hp = np.sqrt(np.mean((got - truth)[inner] ** 2))
    err_plain = np.sqrt(np.mean((raw - truth)[inner] ** 2))
    assert err_hp < 3.0 and err_plain > 10 * err_hp  # uV: the locked slope is gone with the filter
    # the noise level (sparsity, SNR) is measured in the same band: the 10 uV noise plus the unit's
    # own spikes (15 % of the samples here), not the LFP's +-400 uV swing
    assert 9.0 < hp.provenance["noise_uV_peak_channel"] < 25.0
    assert plain.provenance["noise_uV_peak_channel"] > 100.0


def test_highpass_corner_must_be_below_nyquist(data, tmp_path):
    rec, sorting, _, _ = data
    with pytest.raises(TemplateError, match=r"highpass_hz = 16000.0 Hz.*Nyquist frequency \(15000 Hz"):
        _source(tmp_path, highpass_hz=16000.0).build(rec, sorting, [7])
    with pytest.raises(ValidationError, match="highpass_hz"):
        LocalTemplateOptions(highpass_hz=0)


def test_selection_measures_amplitude_and_snr_in_the_templates_band(wideband, tmp_path):
    """With highpass_hz, the units criteria see the spike as the templates do: amplitude near the
    filtered spike's peak and the noise without the LFP. Unfiltered, the LFP makes the noise
    ~240 uV and a clean 115 uV unit fails min_snr."""
    from hybridkit.config.run_config import UnitsConfig
    from hybridkit.engine.filtering import Highpass
    from hybridkit.run.selection import evaluate

    rec, sorting, wf = wideband
    band = Highpass.for_recording(300.0, FS)
    truth = band.apply(np.pad(wf, ((band.pad, band.pad), (0, 0))), axis=0, crop=band.pad)
    truth -= truth[:15].mean(axis=0)  # the templates' baseline: the first 15 of 30 pre-peak samples
    peak_uV = float(np.abs(truth[:, PEAK_CH]).max())  # 129.8 uV

    source = _source(tmp_path, highpass_hz=300.0)
    assert source.highpass_hz == 300.0 and _source(tmp_path).highpass_hz is None
    units = UnitsConfig(min_snr=5)
    [hp] = evaluate(sorting, units, fs=FS, n_samples=N_SAMPLES, recording=rec,
                    highpass_hz=source.highpass_hz)
    [plain] = evaluate(sorting, units, fs=FS, n_samples=N_SAMPLES, recording=rec)
    assert hp.selected and hp.metrics.peak_channel == PEAK_CH
    assert hp.metrics.amplitude_uV == pytest.approx(peak_uV, rel=0.1)
    noise = hp.metrics.amplitude_uV / hp.metrics.snr
    assert 9.0 < noise < 25.0  # the 10 uV noise (plus the unit's own spikes), not the LFP
    assert not plain.selected and plain.failed == "min_snr" and plain.metrics.snr < 1.5


def test_selection_band_needs_room_for_the_filter_padding(wideband, tmp_path):
    """Spikes whose padded window leaves the recording are left out, not read past the end."""
    from hybridkit.engine.filtering import Highpass
    from hybridkit.engine.quality import amplitude_and_snr

    rec, _, _ = wideband
    band = Highpass.for_recording(300.0, FS)
    near_edges = np.array([band.pad - 1 + 30, N_SAMPLES - 60 - band.pad + 1])  # fit only unpadded
    noise = np.full(N_NEURAL, 10.0)
    rng = np.random.default_rng(0)
    assert np.isnan(amplitude_and_snr(rec, near_edges, 30, 60, noise, rng, band=band)[0])
    assert np.isfinite(amplitude_and_snr(rec, near_edges, 30, 60, noise, rng)[0])


@pytest.mark.parametrize("highpass", [None, 300.0], ids=["raw", "highpass"])
def test_compressed_nwb_source_gives_the_same_templates(data, tmp_path, highpass):
    """The same samples as a neuroconv-like NWB series (chunked, gzip + shuffle): the chunk-order
    sweep (every unit in one pass) builds exactly the templates the flat binary gives."""
    from hybridkit.engine.noise import recording_noise_uV
    from hybridkit.plugins.sources.nwb.reader import NwbReader
    from tests.plugins.nwb_testutil import write_nwb

    rec, sorting, _, pos = data
    samples = rec.read(0, rec.n_samples)
    # two units on this probe: the known one, and one 5-spike unit (its first spikes are all it has)
    path = write_nwb(tmp_path / "src.nwb", samples, conversion=GAIN * 1e-6,
                     positions=np.vstack([pos, [500.0, 5000.0]]), chunks=(7000, 16),
                     compression="gzip", shuffle=True)
    nwb = NwbReader(NwbReader.Options(type="nwb", path=path, geometry=None)).open()
    nwb.neural[:] = rec.neural  # the sync column is not a contact in the flat description
    nwb.gain_to_uV[:], nwb.offset_to_uV[:] = rec.gain_to_uV, rec.offset_to_uV
    opts = {"min_spikes": 5, **({"highpass_hz": highpass} if highpass else {})}
    flat = _source(tmp_path, **opts).build(rec, sorting, [3, 7])
    source = _source(tmp_path, **opts)
    # the run hands its noise estimate over before templates are built (the same samples: the
    # flat file's estimate is the NWB's)
    source.context.noise_uV = recording_noise_uV(rec, highpass)
    chunked = source.build(nwb, sorting, [3, 7])
    assert nwb.chunks_touched and nwb._chunks.reads == len(nwb.chunks_touched)  # each chunk once
    for unit in (3, 7):
        a, b = flat.templates[unit], chunked.templates[unit]
        assert np.array_equal(a.channels, b.channels) and a.peak_channel == b.peak_channel
        np.testing.assert_allclose(b.waveform, a.waveform, rtol=0, atol=1e-4)
    nwb.close()
