"""``hybridkit example DIR``: a small, realistic dataset to try hybridkit on.

:func:`write_example` writes, in a few seconds:

* ``demo_g0/demo_g0_t0.imec0.ap.bin`` + ``.meta``: a SpikeGLX Neuropixels 1.0 AP file, 384 neural
  channels + the sync word (385 int16 columns), modelled on real NP1.0 metas (imroTbl with AP gain
  500, so 2.34375 uV/bit; snsGeomMap; muxTbl; fileSizeBytes/fileTimeSecs/fileSHA1 of the .bin).
  Content: spatially and temporally correlated noise (8-12 uV rms per channel), ``n_units`` units
  with biphasic, spatially spread waveforms (50-250 uV on their peak channel) firing as Poisson
  trains with a refractory period, and a 1 Hz square wave on bit 6 of the sync word.
* ``kilosort4/``: a phy folder in the layout Kilosort 4 writes, holding the units' true spike times
  (unwhitened templates in uV; amplitudes are the per-spike scale factors applied to them).
* ``config.json``: a ``hybridkit generate`` run on the two, and ``README.txt``.

Speed: drawing 30 s x 384 Gaussian samples (3.5e8) and filtering them would dominate the run, so a
short bank of correlated noise (:data:`NOISE_BANK_S`) is built once and every block of the file
copies a random window of it with a random sign. The noise therefore repeats (shifted) over the
file; it is meant as realistic-looking background, not as statistically independent noise.
The file is written block by block (bounded memory) and spikes are added to the int16 block with
saturation, so the whole recording never sits in memory.

Independent random streams (numpy SeedSequence children) drive the units, the noise bank and the
block offsets, so a shorter example starts with the same units, spikes and noise as a longer one.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridkit.errors import ConfigError, OutputError
from hybridkit.formats.atomic_files import AtomicFiles

log = logging.getLogger(__name__)

#: Hz, a calibrated-looking NP1.0 AP rate (real metas carry e.g. 30000.390639481, not 30000)
SAMPLING_RATE = 29999.9712
N_NEURAL = 384
N_SAVED = N_NEURAL + 1
SYNC_BIT = 6
#: uV per bit of an NP1.0 AP channel: imAiRangeMax / imMaxInt / apGain * 1e6
GAIN_UV = 0.6 / 512 / 500 * 1e6
#: template window in samples and the sample aligned to the spike time (Kilosort 4's nt0, nt0min)
N_TIMES, T_BEFORE = 61, 20
BLOCK_SAMPLES = 15_000
#: seconds of correlated noise generated once and reused (see the module docstring)
NOISE_BANK_S = 1.0
#: the run's first sample on the stream's clock (SpikeGLX firstSample); nonzero as in real files
FIRST_SAMPLE = 91_552
RUN = "demo"
PART_NUMBER = "PRB_1_4_0480_1_C"
BIN_REL = Path(f"{RUN}_g0") / f"{RUN}_g0_t0.imec0.ap.bin"
SORTING_DIR = "kilosort4"


def np1_positions() -> np.ndarray:
    """(384, 2) float64 contact (x, y) in um of NP1.0 bank 0, as probeinterface 0.4 reports them.

    Staggered columns: x = 16, 48, 0, 32 for channel % 4; two contacts per 20 um row.
    (SpikeGLX's snsGeomMap measures x from the other reference: x + 11 = 27, 59, 11, 43.)
    """
    ch = np.arange(N_NEURAL)
    return np.column_stack([np.array([16.0, 48.0, 0.0, 32.0])[ch % 4], 20.0 * (ch // 2)])


@dataclass
class _Unit:
    unit_id: int
    soma: np.ndarray  # (3,) um: x, y along the probe, z distance from the probe plane
    rate_hz: float
    amplitude_uV: float  # trough on the peak channel
    waveform: np.ndarray  # (N_TIMES, c1 - c0) float32 uV, columns are channels c0..c1-1
    c0: int
    c1: int
    peak_channel: int
    times: np.ndarray  # (n,) int64 samples, trough at the spike time
    gains: np.ndarray  # (n,) float32 per-spike amplitude scale
    label: str = "good"


# -- units ------------------------------------------------------------------------------------
def _waveforms(rng: np.random.Generator, soma: np.ndarray, amplitude_uV: float,
               positions: np.ndarray, fs: float) -> tuple[np.ndarray, int, int]:
    """A unit's dense-on-its-support waveform (N_TIMES, c1-c0) float32 uV, and c0, c1.

    Biphasic: a Gaussian trough (sd 0.07-0.16 ms) then a slower positive repolarisation (sd
    0.15-0.35 ms, 0.25-0.75 ms later, 15-45 % of the trough). Amplitude decays with the 3-D distance
    d from the soma as (1 + (d/r0)^2)^-1.5; farther contacts see a later, broader, more positive
    spike, so the template is not one shape times a gain.
    """
    trough_sd, peak_sd = rng.uniform(0.07, 0.16), rng.uniform(0.15, 0.35)
    t_peak, ratio, r0 = rng.uniform(0.25, 0.75), rng.uniform(0.15, 0.45), rng.uniform(30.0, 45.0)
    d = np.sqrt(((positions - soma[:2]) ** 2).sum(axis=1) + soma[2] ** 2)
    extra = (d - d.min()) / 100.0  # per 100 um beyond the nearest contact
    spatial = (1.0 + (d / r0) ** 2) ** -1.5
    spatial /= spatial.max()
    support = np.flatnonzero(spatial >= 0.03)
    c0, c1 = int(support.min()), int(support.max()) + 1
    sl = slice(c0, c1)

    def shape(t_ms: np.ndarray, ex: np.ndarray) -> np.ndarray:
        t = t_ms[:, None] - 0.12 * ex[None, :]  # later on far contacts
        s1, s2 = trough_sd * (1 + 0.3 * ex), peak_sd * (1 + 0.3 * ex)
        return (-np.exp(-0.5 * (t / s1) ** 2)
                + ratio * (1 + 0.5 * ex) * np.exp(-0.5 * ((t - t_peak) / s2) ** 2))

    # put the nearest contact's trough exactly on sample T_BEFORE (sub-sample search)
    fine = np.linspace(-0.2, 0.2, 401)
    shift = fine[np.argmin(shape(fine, np.zeros(1))[:, 0])]
    t_ms = (np.arange(N_TIMES) - T_BEFORE) / fs * 1e3 + shift
    wf = shape(t_ms, extra[sl]) * spatial[sl]
    # taper both ends to zero so an injected copy has no step at the window's edges
    taper = np.ones(N_TIMES)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, 8))
    taper[:8], taper[-8:] = ramp, ramp[::-1]
    wf *= taper[:, None]
    wf *= amplitude_uV / np.abs(wf).max()
    return wf.astype(np.float32), c0, c1


def _train(rng: np.random.Generator, rate_hz: float, n_samples: int, fs: float) -> np.ndarray:
    """(n,) int64 spike samples: a Poisson process with a 1.5-3 ms dead time, mean rate ``rate_hz``.

    ISIs are drawn in fixed batches so a shorter recording gets a prefix of a longer one's train.
    Spikes whose template window would cross the file's ends are dropped (as a sorter would miss them).
    """
    refractory = rng.uniform(1.5e-3, 3e-3)
    scale = 1.0 / rate_hz - refractory  # mean ISI = refractory + scale = 1/rate
    duration = n_samples / fs
    t, chunks = rng.uniform(0, 1.0 / rate_hz), []
    while t < duration:
        isi = refractory + rng.exponential(scale, 256)
        chunk = t + np.concatenate([[0.0], np.cumsum(isi[:-1])])
        chunks.append(chunk)
        t = chunk[-1] + isi[-1]
    times = np.round(np.concatenate(chunks) * fs).astype(np.int64)
    keep = (times >= T_BEFORE) & (times <= n_samples - (N_TIMES - T_BEFORE))
    return times[keep]


def _make_units(ss: np.random.SeedSequence, n_units: int, n_samples: int, fs: float) -> list[_Unit]:
    """``n_units`` units; each draws its shape, train and gains from its own child of ``ss``."""
    positions = np1_positions()
    span = positions[:, 1].max() - 200.0
    rng = np.random.default_rng(ss)
    # somata spread along the probe (one per depth stratum, shuffled) so units rarely overlap
    depths = 100.0 + (np.arange(n_units) + rng.uniform(0.15, 0.85, n_units)) * span / n_units
    rng.shuffle(depths)
    units = []
    for uid, child in enumerate(ss.spawn(n_units)):
        shape_rng, train_rng, gain_rng = (np.random.default_rng(c) for c in child.spawn(3))
        soma = np.array([shape_rng.uniform(-10.0, 58.0), depths[uid], shape_rng.uniform(12.0, 40.0)])
        amp = float(np.exp(shape_rng.uniform(np.log(50.0), np.log(250.0))))
        rate = float(shape_rng.uniform(2.0, 20.0))
        wf, c0, c1 = _waveforms(shape_rng, soma, amp, positions, fs)
        peak = c0 + int(np.abs(wf).max(axis=0).argmax())
        times = _train(train_rng, rate, n_samples, fs)
        gains = np.clip(gain_rng.normal(1.0, 0.07, times.size), 0.8, 1.2).astype(np.float32)
        units.append(_Unit(uid, soma, rate, amp, wf, c0, c1, peak, times, gains))
    if n_units >= 6:  # the two smallest units are labelled mua, as Kilosort labels some
        for u in sorted(units, key=lambda u: u.amplitude_uV)[:2]:
            u.label = "mua"
    return units


# -- recording --------------------------------------------------------------------------------
def _noise_bank(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """(n, 384) int16 raw noise: band-passed 300-6000 Hz, spatially smoothed, 8-12 uV rms/channel.

    Spatial correlation: white noise is mixed across contacts with a Gaussian kernel of their
    distance (sd 15 um), plus a weak common-mode component, as reference noise would be.
    """
    from scipy.signal import butter, sosfilt

    pad = int(0.05 * fs)  # filter transient, discarded
    sos = butter(2, [300.0, 6000.0], btype="bandpass", fs=fs, output="sos")
    white = rng.standard_normal((n + pad, N_NEURAL), dtype=np.float32)
    x = sosfilt(sos, white, axis=0)[pad:].astype(np.float32)
    common = sosfilt(sos, rng.standard_normal(n + pad))[pad:].astype(np.float32)
    pos = np1_positions()
    dist2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
    mix = np.exp(-dist2 / (2 * 15.0**2)).astype(np.float32)
    x = x @ mix
    x /= x.std(axis=0)
    x += 0.3 * (common / common.std())[:, None]
    # rms varies smoothly along the probe, 8-12 uV
    depth = pos[:, 1] / pos[:, 1].max()
    phase = rng.uniform(0, 2 * np.pi)
    rms_uV = 10.0 + 2.0 * np.sin(2 * np.pi * 1.5 * depth + phase)
    x *= (rms_uV / GAIN_UV / x.std(axis=0)).astype(np.float32)
    return np.rint(x).astype(np.int16)


def _sync(start: int, stop: int, fs: float) -> np.ndarray:
    """(stop-start,) int16 sync word: bit 6 high during the first half of each second of the run."""
    absolute = FIRST_SAMPLE + np.arange(start, stop, dtype=np.float64)
    high = np.floor(absolute * 2.0 / fs).astype(np.int64) % 2 == 0
    return (high.astype(np.int16) << SYNC_BIT).astype(np.int16)


def _write_bin(path: Path, units: list[_Unit], n_samples: int, fs: float,
               noise_rng: np.random.Generator, block_rng: np.random.Generator) -> str:
    """Write the .bin block by block; return its SHA1 (upper-case hex, as SpikeGLX writes it)."""
    bank = _noise_bank(noise_rng, int(NOISE_BANK_S * fs), fs)
    times = np.concatenate([u.times for u in units])
    which = np.concatenate([np.full(u.times.size, i) for i, u in enumerate(units)])
    gains = np.concatenate([u.gains for u in units])
    order = np.argsort(times, kind="stable")
    times, which, gains = times[order], which[order], gains[order]
    bits = [u.waveform / np.float32(GAIN_UV) for u in units]
    sha = hashlib.sha1()
    block = np.empty((BLOCK_SAMPLES, N_SAVED), np.int16)
    with open(path, "wb") as f:
        for b0 in range(0, n_samples, BLOCK_SAMPLES):
            b1 = min(n_samples, b0 + BLOCK_SAMPLES)
            out = block[: b1 - b0]
            off = int(block_rng.integers(0, bank.shape[0] - BLOCK_SAMPLES + 1))
            sign = np.int16(1 if block_rng.random() < 0.5 else -1)
            np.multiply(bank[off : off + b1 - b0], sign, out=out[:, :N_NEURAL])
            out[:, N_NEURAL] = _sync(b0, b1, fs)
            # spikes whose window [t - T_BEFORE, t - T_BEFORE + N_TIMES) meets this block
            lo = np.searchsorted(times, b0 - (N_TIMES - T_BEFORE) + 1)
            hi = np.searchsorted(times, b1 + T_BEFORE)
            for t, i, g in zip(times[lo:hi], which[lo:hi], gains[lo:hi]):
                u, s0 = units[i], int(t) - T_BEFORE
                a, b = max(s0, b0), min(s0 + N_TIMES, b1)
                seg = out[a - b0 : b - b0, u.c0 : u.c1]
                add = np.rint(bits[i][a - s0 : b - s0] * g).astype(np.int32)
                seg[...] = np.clip(seg.astype(np.int32) + add, -32768, 32767)  # saturate, never wrap
            f.write(out.data)
            sha.update(out)
    return sha.hexdigest().upper()


def _meta_text(n_samples: int, fs: float, sha1: str) -> str:
    """A SpikeGLX NP1.0 AP .meta (keys as in SpikeGLX 20230411 metas, LF line endings)."""
    size = n_samples * N_SAVED * 2
    pos = np1_positions()
    imro = "(0,384)" + "".join(f"({c} 0 0 500 250 1)" for c in range(N_NEURAL))
    mux = "(32,12)" + "".join(
        "(" + " ".join(f"{24 * k + 2 * s} {24 * k + 2 * s + 1}" for k in range(16)) + ")"
        for s in range(12))
    chan_map = ("(384,384,1)" + "".join(f"(AP{c};{c}:{c})" for c in range(N_NEURAL))
                + "(SY0;768:768)")
    geom = f"({PART_NUMBER},1,0,70)" + "".join(
        f"(0:{x + 11:g}:{y:g}:1)" for x, y in pos)
    keys = {
        "acqApLfSy": "384,384,1", "appVersion": "20230411",
        "fileCreateTime": "2024-03-05T14:21:07",
        "fileName": f"D:/SGL_DATA/{BIN_REL.as_posix()}",
        "fileSHA1": sha1, "fileSizeBytes": str(size),
        "fileTimeSecs": repr(size / fs / N_SAVED / 2), "firstSample": str(FIRST_SAMPLE),
        "gateMode": "Immediate", "imAiRangeMax": "0.6", "imAiRangeMin": "-0.6",
        "imAnyChanFullBand": "false", "imCalibrated": "true", "imChan0apGain": "500",
        "imDatApi": "3.60", "imDatBs_fw": "2.0.169", "imDatBsc_fw": "3.2.186",
        "imDatBsc_hw": "2.1", "imDatBsc_pn": "NP2_QBSC_00", "imDatBsc_sn": "21230000",
        "imDatFx_hw": "4.13", "imDatFx_pn": "NP2_FLEX_0", "imDatFx_sn": "0",
        "imDatHs_hw": "5.1", "imDatHs_pn": "NP2_HS_30", "imDatHs_sn": "700",
        "imDatPrb_dock": "1", "imDatPrb_pn": PART_NUMBER, "imDatPrb_port": "1",
        "imDatPrb_slot": "2", "imDatPrb_sn": "20000000001", "imDatPrb_type": "0",
        "imIsSvyRun": "false", "imLEDEnable": "false", "imMaxInt": "512",
        "imSampRate": repr(fs), "imStdby": "", "imSvyMaxBnk": "-1", "imSvySecPerBnk": "35",
        "imTrgRising": "true", "imTrgSource": "0", "imroFile": "", "nDataDirs": "1",
        "nSavedChans": str(N_SAVED), "snsApLfSy": "384,0,1", "snsSaveChanSubset": "0:383,768",
        "syncImInputSlot": "2", "syncSourceIdx": "1", "syncSourcePeriod": "1",
        "trigMode": "Immediate", "typeImEnabled": "1", "typeNiEnabled": "0",
        "typeObEnabled": "0", "typeThis": "imec",
        "userNotes": "hybridkit example: synthetic data (hybridkit.example)",
        "~imroTbl": imro, "~muxTbl": mux, "~snsChanMap": chan_map, "~snsGeomMap": geom,
    }
    return "".join(f"{k}={v}\n" for k, v in keys.items())


# -- sorting, config, readme ------------------------------------------------------------------
def _write_sorting(folder: Path, units: list[_Unit], fs: float, put) -> None:
    """The phy/Kilosort 4 files of the true units (dtypes as Kilosort 4 writes them); each file is
    written to ``put(final path)`` (a temporary name, see :func:`write_example`)."""
    def save(name: str, array: np.ndarray) -> None:
        with open(put(folder / name), "wb") as fh:  # a file object: np.save adds no suffix
            np.save(fh, array)

    times = np.concatenate([u.times for u in units])
    ids = np.concatenate([np.full(u.times.size, u.unit_id) for u in units])
    amps = np.concatenate([u.gains for u in units])
    order = np.argsort(times, kind="stable")
    n = len(units)
    templates = np.zeros((n, N_TIMES, N_NEURAL), np.float32)
    for u in units:
        templates[u.unit_id, :, u.c0 : u.c1] = u.waveform
    flat = templates.reshape(n, -1)
    norm = np.linalg.norm(flat, axis=1)
    similar = (flat @ flat.T) / np.outer(norm, norm)
    save("spike_times.npy", times[order].astype(np.int64))
    save("spike_clusters.npy", ids[order].astype(np.int32))
    save("spike_templates.npy", ids[order].astype(np.int32))
    save("amplitudes.npy", amps[order].astype(np.float32))
    save("templates.npy", templates)
    save("templates_ind.npy", np.tile(np.arange(N_NEURAL, dtype=np.int64), (n, 1)))
    save("channel_map.npy", np.arange(N_NEURAL, dtype=np.int64))
    save("channel_positions.npy", np1_positions().astype(np.float32))
    save("channel_shanks.npy", np.zeros(N_NEURAL, np.int32))
    save("similar_templates.npy", similar.astype(np.float32))
    # identity whitening: the templates are not whitened (and phylib would otherwise write these)
    eye = np.eye(N_NEURAL, dtype=np.float32)
    save("whitening_mat.npy", eye)
    save("whitening_mat_inv.npy", eye)
    labels = "".join(f"{u.unit_id}\t{u.label}\n" for u in units)
    for name in ("cluster_KSLabel.tsv", "cluster_group.tsv"):
        put(folder / name).write_text("cluster_id\tKSLabel\n" + labels)
    put(folder / "cluster_Amplitude.tsv").write_text(
        "cluster_id\tAmplitude\n" + "".join(f"{u.unit_id}\t{u.amplitude_uV:.1f}\n" for u in units))
    dat = Path("..") / BIN_REL
    put(folder / "params.py").write_text(
        f"dat_path = {dat.as_posix()!r}\nn_channels_dat = {N_SAVED}\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {fs!r}\nhp_filtered = False\n")


def chosen_units(units: list[_Unit]) -> list[int]:
    """Ids of up to four good units with the largest amplitude (the config's ground truth).

    Units firing at >= 3 Hz are preferred, so each has enough spikes for a template.
    """
    good = [u for u in units if u.label == "good"]
    busy = [u for u in good if u.rate_hz >= 3.0]
    good = sorted(busy if len(busy) >= 3 else good, key=lambda u: -u.amplitude_uV)
    return sorted(u.unit_id for u in good[:4])


def _config(unit_ids: list[int]) -> dict:
    return {
        "session": RUN, "seed": 42,
        "recording": {"type": "spikeglx", "path": BIN_REL.as_posix()},
        "sorting": {"type": "phy", "path": SORTING_DIR},
        "units": {"ids": unit_ids},
        "templates": {"type": "local"},
        "injection": {
            "placement": {"mode": "random", "min_distance_um": 60},
            "trains": {"mode": "source", "jitter_ms": 1.0},
            "amplitude": {"min": 0.8, "max": 1.2},
        },
        "output": {"directory": "hybrid", "overwrite": False},
        "writers": [{"type": "legacy"}, {"type": "phy"}],
    }


def _readme(units: list[_Unit], n_samples: int, fs: float, seed: int, chosen: list[int]) -> str:
    rows = "\n".join(
        f"  {u.unit_id:>4}  {u.label:<5} {u.peak_channel:>5}  {u.amplitude_uV:7.1f}  "
        f"{u.rate_hz:5.1f}  {u.times.size:>6}  ({u.soma[0]:.0f}, {u.soma[1]:.0f}, {u.soma[2]:.0f})"
        for u in units)
    return f"""hybridkit example dataset (synthetic; seed {seed})

Run:  hybridkit generate config.json   -> writes hybrid/

{BIN_REL.as_posix()} (+ .meta)
    SpikeGLX Neuropixels 1.0 AP file: {n_samples} samples x {N_SAVED} int16 channels
    ({n_samples / fs:.3f} s at {fs!r} Hz): 384 neural channels (2.34375 uV/bit) and the sync
    word (column 384; bit {SYNC_BIT} carries a 1 Hz square wave). firstSample={FIRST_SAMPLE}.
    Noise: 8-12 uV rms, correlated across nearby contacts; a 1-s noise bank is reused with
    random offsets, so the noise repeats. Spikes are added with int16 saturation.
{SORTING_DIR}/
    phy folder as Kilosort 4 writes it, with each unit's TRUE spike times (samples, 0-based,
    trough aligned to template sample {T_BEFORE}). templates.npy holds the true waveforms in uV
    (not whitened; whitening matrices are identity); amplitudes.npy the per-spike scale factors.
    Open with: phy template-gui {SORTING_DIR}/params.py
config.json
    hybridkit run: units {chosen} (good, large) as ground truth, injected at random places.

Units (id, label, peak channel, peak uV, rate Hz, spikes, soma x/y/z um):
{rows}
"""


def write_example(dest: Path, seed: int = 0, duration_s: float = 30.0, n_units: int = 12,
                  force: bool = False) -> Path:
    """Write the example dataset into ``dest`` and return the path of its ``config.json``.

    Args:
        dest: target folder; created if missing. If it exists and is not empty, ``force`` must be
            True (the example's files are then overwritten; other files are left alone).
        seed: seeds every random choice; the same seed gives byte-identical files.
        duration_s: recording length in seconds (>= 1).
        n_units: number of units (1-100); with >= 6 units the two smallest are labelled mua.

    Raises:
        OutputError: ``dest`` is a file, or a non-empty folder without ``force``.
        ConfigError: ``duration_s`` or ``n_units`` out of range.
    """
    dest = Path(dest)
    if not duration_s >= 1.0:
        raise ConfigError(f"example duration_s={duration_s!r}: must be at least 1 second")
    if not 1 <= int(n_units) <= 100 or int(n_units) != n_units:
        raise ConfigError(f"example n_units={n_units!r}: must be an integer from 1 to 100")
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"example destination {dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise OutputError(
            f"example destination {dest} exists and is not empty; choose an empty folder "
            "or pass --force to overwrite the example's files")
    if dest.is_dir() and force:
        _check_force(dest)
    fs = SAMPLING_RATE
    n_samples = int(round(duration_s * fs))
    unit_ss, noise_ss, block_ss = np.random.SeedSequence(seed).spawn(3)
    units = _make_units(unit_ss, int(n_units), n_samples, fs)

    bin_path = dest / BIN_REL
    log.info("writing %s (%.1f s, %d units)", bin_path, n_samples / fs, len(units))
    config = dest / "config.json"
    # every file under a temporary name, all renamed at the end: an interrupted run leaves the
    # previous example (or nothing), never a half-written recording
    with AtomicFiles() as pending:
        sha1 = _write_bin(pending.temp(bin_path), units, n_samples, fs,
                          np.random.default_rng(noise_ss), np.random.default_rng(block_ss))
        pending.temp(bin_path.with_suffix(".meta")).write_text(_meta_text(n_samples, fs, sha1))
        _write_sorting(dest / SORTING_DIR, units, fs, put=pending.temp)
        chosen = chosen_units(units)
        pending.temp(config).write_text(json.dumps(_config(chosen), indent=2) + "\n")
        pending.temp(dest / "README.txt").write_text(_readme(units, n_samples, fs, seed, chosen))
    return config


#: the first line of the example's README.txt: how ``--force`` knows a folder is an example
README_FIRST_LINE = "hybridkit example dataset"
#: what the example writes besides its sorting folder's files (paths relative to the folder)
OWN_FILES = (BIN_REL, BIN_REL.with_suffix(".meta"), Path("config.json"), Path("README.txt"))


def _check_force(dest: Path) -> None:
    """``--force`` replaces only an example's own files, and never a recording that a hybrid
    output in ``dest`` was made from (its manifest's source): OutputError naming the path."""
    from hybridkit.run.output_guard import check_not_an_input, output_inputs

    targets = [dest / p for p in OWN_FILES] + [dest / SORTING_DIR / p.name for p in
                                               (dest / SORTING_DIR).glob("*") if p.is_file()]
    existing = [p for p in targets if p.exists()]
    if not existing:
        return
    readme = dest / "README.txt"
    try:
        is_example = readme.is_file() and readme.read_text(errors="replace").startswith(README_FIRST_LINE)
    except OSError:
        is_example = False
    if not is_example:
        raise OutputError(
            f"example --force: {dest} holds {existing[0].relative_to(dest).as_posix()} but is not a "
            f"hybridkit example (its README.txt does not start with {README_FIRST_LINE!r}); --force "
            "replaces only an example's own files: choose an empty folder")
    inputs = [item for sub in (dest, *(p for p in dest.iterdir() if p.is_dir()))
              for item in output_inputs(sub)]
    for target in existing:
        check_not_an_input(target, inputs, "example --force")
