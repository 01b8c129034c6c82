"""Source reader ``synthetic``: a recording that needs no file, generated block by block.

Gaussian noise on a probeinterface probe, white in time, with spatial covariance
``noise_uV^2 exp(-d / correlation_um)`` between contacts ``d`` um apart, or a covariance
measured on a real recording (``covariance``: an ``.npz`` with ``spatial`` (n_channels,
n_channels) in uV^2, as ``hybridkit augment`` writes beside its training set). Samples are int16
raw units of ``gain_uV`` microvolts.

Determinism: the recording is cut into blocks of ``block_samples``; block ``k``'s noise is drawn
from ``numpy.random.default_rng([seed, k])`` alone, so any block can be read on its own, in any
order, by any thread, and reads the same every time. Memory is one block (plus the read's output).

Probes, offline only (probeinterface's ``get_probe`` downloads from the internet, so it is never
called): manufacturer ``imec`` with a Neuropixels part number from probeinterface's bundled table
(``NP1000``, ``NP2000``, ``NP2010``, ``NP1010``, ...: the first ``num_readout_channels`` electrodes,
bank 0); manufacturer
``generic`` with ``linear-<n>`` (one column, 20 um pitch) or ``columns-<c>x<n>`` (c columns of n,
20 um pitches, as probeinterface's generate_multi_columns_probe); any other manufacturer/model is
taken from the local probeinterface cache (a probe fetched earlier with ``get_probe``), else an
error lists what is supported; or a probe file (``geometry``).
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit.engine.noise_model import distance_covariance, psd_sqrt
from hybridkit.errors import SourceError
from hybridkit.hookspecs import SourceReader, hookimpl
from hybridkit.model import Recording, SourceFile
from hybridkit.options import InputFile, PluginOptions

FIELD = "recording"
INT16_MAX = np.iinfo(np.int16).max


class SyntheticOptions(PluginOptions):
    type: Literal["synthetic"]
    manufacturer: str = Field("imec", description="Probe manufacturer: 'imec' (Neuropixels part "
                              "numbers bundled with probeinterface), 'generic', or one in the local "
                              "probeinterface cache.")
    model: str = Field("NP1000", description="Probe model: a Neuropixels part number (NP1000, "
                       "NP2000, NP2010, ...), 'linear-<n>' or 'columns-<c>x<n>' for 'generic'.")
    geometry: InputFile | None = Field(None, description="A probe file instead of "
                                       "manufacturer/model (probeinterface JSON, .prb, .txt, .npy).")
    duration_s: float = Field(60.0, gt=0, description="Length of the recording (s).")
    sampling_rate: float = Field(30000.0, gt=0, description="Hz.")
    noise_uV: float = Field(10.0, ge=0, description="Noise standard deviation per channel (uV).")
    correlation_um: float = Field(0.0, ge=0, description="Spatial correlation length (um): the "
                                  "covariance of contacts d um apart is noise_uV^2 exp(-d / "
                                  "correlation_um); 0 = independent channels.")
    covariance: InputFile | None = Field(None, description="An .npz with 'spatial' (n_channels, "
                                         "n_channels) uV^2 measured on a real recording; replaces "
                                         "noise_uV and correlation_um.")
    gain_uV: float = Field(0.195, gt=0, description="Microvolts per int16 unit of the samples.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of the noise (not the run's seed: the "
                      "same synthetic recording under different injections).")
    block_s: float = Field(1.0, gt=0, description="Length (s) of one independently generated block.")
    name: str = Field("synthetic", pattern=r"^[A-Za-z0-9_.-]+$", description="The recording's "
                      "name; the legacy writer writes <name>.GT.bin.")


def build_probe(manufacturer: str, model: str):
    """A probeinterface Probe from a manufacturer and model, without the internet."""
    import probeinterface as pi

    if manufacturer.lower() == "imec":
        from probeinterface.neuropixels_tools import build_neuropixels_probe

        try:
            probe = build_neuropixels_probe(model)
            n_readout = int(probe.annotations.get("num_readout_channels", 0) or 0)
        except Exception:
            raise SourceError(f"{FIELD}.model: {model!r} is not a Neuropixels part number in "
                              f"probeinterface {pi.__version__}'s bundled table; valid e.g. NP1000, "
                              "NP2000, NP2010, NP1010") from None
        # the channels a probe records at once: its first num_readout_channels electrodes (bank 0)
        if 0 < n_readout < probe.get_contact_count():
            probe = probe.get_slice(np.arange(n_readout))
        return probe
    if manufacturer.lower() == "generic":
        m = re.fullmatch(r"linear-(\d+)|columns-(\d+)x(\d+)", model)
        if m and m.group(1):
            return pi.generate_linear_probe(num_elec=int(m.group(1)), ypitch=20)
        if m and m.group(2):
            return pi.generate_multi_columns_probe(num_columns=int(m.group(2)),
                                                   num_contact_per_column=int(m.group(3)))
        raise SourceError(f"{FIELD}.model: {model!r} is not a generic probe; valid: 'linear-<n>' "
                          "or 'columns-<c>x<n>'")
    from probeinterface.library import get_from_cache

    probe = get_from_cache(manufacturer, model)  # local only; get_probe would download
    if probe is None:
        raise SourceError(f"{FIELD}: probe {manufacturer}/{model} is not available offline; valid: "
                          "manufacturer 'imec' with a Neuropixels part number, 'generic' with "
                          "'linear-<n>'/'columns-<c>x<n>', a probe in the probeinterface cache, or "
                          "a geometry file")
    return probe


class SyntheticRecording(Recording):
    """A Recording whose samples are generated on read (see the module docstring)."""

    flat_binary = False
    #: writers that keep the source's layout write it as one flat binary (legacy: <name>.GT.bin)
    flat_export = True

    def configure(self, mixing: np.ndarray | None, block_samples: int, seed: int,
                  neural_cols: np.ndarray) -> None:
        """``mixing``: the transposed square root of the spatial covariance in raw units, a scipy
        sparse (n_neural, n_neural) float32 matrix, or None for independent channels of
        ``_sigma_raw`` raw units each."""
        self._mixing = mixing
        self._block = int(block_samples)
        self._seed = int(seed)
        self._cols = neural_cols
        self._cache: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def block(self, k: int) -> np.ndarray:
        """(len, n_channels) int16 samples of block ``k``: depends on (seed, k) only."""
        cached = self._cache
        if cached is not None and cached[0] == k:
            return cached[1]
        start = k * self._block
        n = min(self._block, self.n_samples - start)
        rng = np.random.default_rng([self._seed, k])
        z = rng.standard_normal((n, self._cols.size), dtype=np.float32)
        if self._mixing is not None:
            x = np.asarray(z @ self._mixing, dtype=np.float32)
        else:
            x = np.multiply(z, self._sigma_raw, out=z)
        np.rint(x, out=x)
        np.clip(x, -INT16_MAX - 1, INT16_MAX, out=x)
        if self._cols.size == self.n_channels:
            out = x.astype(np.int16)
        else:
            out = np.zeros((n, self.n_channels), np.int16)
            out[:, self._cols] = x
        self._cache = (k, out)  # a reader of consecutive windows regenerates nothing
        return out

    def read(self, start: int, stop: int, channels: np.ndarray | slice | None = None) -> np.ndarray:
        """Samples ``[start, stop)`` as a new (stop - start, n_channels or len(channels)) int16 array."""
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"read [{start}, {stop}) outside recording of {self.n_samples} samples")
        cols = np.arange(self.n_channels) if channels is None else np.arange(self.n_channels)[channels]
        out = np.empty((stop - start, cols.size), np.int16)
        first, pos = start, start
        k = start // self._block
        while pos < stop:
            lo = k * self._block
            b = self.block(k)
            a, e = pos - lo, min(stop - lo, b.shape[0])
            out[pos - first:lo + e - first] = b[a:e][:, cols]
            pos = lo + e
            k += 1
        return out

    def layout(self, index: int):
        raise SourceError(f"recording {self.name} is synthetic: it has no file layout")

    def fd(self, index: int) -> int:
        raise SourceError(f"recording {self.name} is synthetic: it has no file")

    def close(self) -> None:
        pass


class SyntheticReader(SourceReader):
    name: ClassVar[str] = "synthetic"
    Options: ClassVar[type[PluginOptions]] = SyntheticOptions

    def open(self) -> Recording:
        o = self.options
        if o.geometry is not None:
            from hybridkit.formats.geometry import load_geometry

            geo = load_geometry(Path(o.geometry))
            positions, probe = np.asarray(geo.positions, dtype=np.float64), None
        else:
            probe = build_probe(o.manufacturer, o.model)
            probe.set_device_channel_indices(np.arange(probe.get_contact_count()))
            positions = np.asarray(probe.contact_positions, dtype=np.float64)[:, :2]
        c = len(positions)
        if o.covariance is not None:
            spatial = _load_spatial(Path(o.covariance), c)
        else:
            spatial = distance_covariance(positions, o.noise_uV, o.correlation_um)
        n_samples = int(round(o.duration_s * o.sampling_rate))
        block = max(1, int(round(o.block_s * o.sampling_rate)))
        rec = SyntheticRecording(
            files=[SourceFile(path=Path(f"{o.name}.bin"), n_samples=n_samples)],
            dtype=np.int16, n_channels=c, sampling_rate=float(o.sampling_rate),
            gain_to_uV=np.full(c, o.gain_uV), offset_to_uV=np.zeros(c),
            channel_positions=positions, neural=np.ones(c, bool), probe=probe, name=o.name,
            meta={"synthetic": {"manufacturer": o.manufacturer, "model": o.model,
                                "seed": o.seed, "block_samples": block}})
        independent = o.covariance is None and o.correlation_um == 0
        rec._sigma_raw = np.float32(o.noise_uV / o.gain_uV)
        mixing = None if independent else sparse_mixing(spatial, o.gain_uV)
        rec.configure(mixing, block, o.seed, np.arange(c))
        return rec


#: entries of the covariance's square root below this fraction of its largest are dropped
MIXING_CUTOFF = 1e-3


def sparse_mixing(spatial: np.ndarray, gain_uV: float):
    """(n, n) scipy CSC float32 ``L^T / gain`` with ``L L^T = spatial`` (uV^2), entries below
    :data:`MIXING_CUTOFF` of the largest dropped: a contact's noise then mixes only its
    neighbours' (3x faster on NP1.0 at 25 um correlation, covariance off by 0.3 % relative
    Frobenius)."""
    import scipy.sparse

    root = psd_sqrt(spatial) / gain_uV
    root[np.abs(root) < MIXING_CUTOFF * np.abs(root).max()] = 0.0
    return scipy.sparse.csc_matrix(root.T.astype(np.float32))


def _load_spatial(path: Path, n_channels: int) -> np.ndarray:
    """The 'spatial' covariance (uV^2) of an .npz, checked against the probe's channel count."""
    try:
        with np.load(path, allow_pickle=False) as z:
            spatial = np.asarray(z["spatial"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise SourceError(f"{FIELD}.covariance: {path} is not an .npz with a 'spatial' array "
                          f"({exc})") from None
    if spatial.shape != (n_channels, n_channels):
        raise SourceError(f"{FIELD}.covariance: {path} has 'spatial' of shape {spatial.shape}; "
                          f"valid: ({n_channels}, {n_channels}) for the probe's {n_channels} contacts")
    return spatial


@hookimpl
def hybridkit_source_readers():
    return [SyntheticReader]
