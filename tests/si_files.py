"""Small recordings in neo-backed formats, written from the formats' public specifications, for the
SpikeInterface source reader tests (no files outside tmp_path).

* Open Ephys binary (GUI >= 0.6 layout): ``<node>/experiment1/recording<k>/structure.oebin`` (JSON:
  ``continuous[]`` with ``folder_name``, ``sample_rate``, ``num_channels``, ``channels[]`` each with
  ``channel_name``, ``bit_volts``, ``units``), ``continuous/<folder_name>/continuous.dat`` (int16,
  samples-major) and ``sample_numbers.npy`` (int64, one per sample); one recording folder per
  segment. (open-ephys.github.io, GUI user manual, "Binary format".)
* Neuroscope: ``<name>.xml`` (``acquisitionSystem``: ``nBits``, ``nChannels``, ``samplingRate``,
  ``voltageRange`` (V), ``amplification``, ``offset``; ``anatomicalDescription/channelGroups``) and
  ``<name>.dat`` (int16, samples-major); raw x voltageRange / 2**nBits / amplification = volts.
  (neurosuite.sourceforge.net, "File formats".)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: the Open Ephys channel scale the tests write (uV per bit, as Intan headstages)
OE_BIT_VOLTS = 0.195


def write_open_ephys(root: Path, segments: list[np.ndarray], fs: float = 30000.0,
                     first_sample: int = 1000) -> Path:
    """Write int16 (time, channel) arrays as the recordings of one Open Ephys binary experiment.

    Returns the record-node folder (what ``read_openephys(folder_path=...)`` takes).
    """
    node = root / "Record Node 101"
    n_ch = segments[0].shape[1]
    stream = "Acquisition_Board-100.Rhythm Data"
    for k, data in enumerate(segments, start=1):
        rec = node / "experiment1" / f"recording{k}"
        cont = rec / "continuous" / stream
        cont.mkdir(parents=True)
        np.ascontiguousarray(data, np.int16).tofile(cont / "continuous.dat")
        start = first_sample + 10 * fs * (k - 1)
        np.save(cont / "sample_numbers.npy", np.arange(data.shape[0], dtype=np.int64) + int(start))
        np.save(cont / "timestamps.npy", (np.arange(data.shape[0]) + start) / fs)
        oebin = {
            "GUI version": "0.6.7",
            "continuous": [{
                "folder_name": f"{stream}/", "sample_rate": fs, "source_processor_name": "Acquisition Board",
                "source_processor_id": 100, "stream_name": "Rhythm Data", "recorded_processor": "Record Node",
                "recorded_processor_id": 101, "num_channels": n_ch,
                "channels": [{"channel_name": f"CH{c + 1}", "description": "headstage data",
                              "identifier": "genericdata.continuous", "history": "", "bit_volts": OE_BIT_VOLTS,
                              "units": "uV", "source_processor_index": c, "recorded_processor_index": c}
                             for c in range(n_ch)],
            }],
            "events": [], "spikes": [],
        }
        (rec / "structure.oebin").write_text(json.dumps(oebin, indent=2))
    return node


def neuroscope_gain_uV(voltage_range: float, n_bits: int, amplification: float) -> float:
    """Microvolts per raw unit of a Neuroscope file: voltageRange / 2**nBits / amplification."""
    return voltage_range / 2 ** n_bits / amplification * 1e6


def write_neuroscope(folder: Path, data: np.ndarray, fs: float = 20000.0, voltage_range: float = 20.0,
                     n_bits: int = 16, amplification: float = 1000.0) -> Path:
    """Write int16 (time, channel) ``data`` as ``session.xml`` + ``session.dat``; return the .dat."""
    folder.mkdir(parents=True, exist_ok=True)
    n_ch = data.shape[1]
    channels = "".join(f"<channel skip=\"0\">{c}</channel>" for c in range(n_ch))
    xml = (
        '<?xml version="1.0"?>\n<parameters creator="neuroscope-2.0.0" version="1.0">'
        "<acquisitionSystem>"
        f"<nBits>{n_bits}</nBits><nChannels>{n_ch}</nChannels><samplingRate>{fs}</samplingRate>"
        f"<voltageRange>{voltage_range}</voltageRange><amplification>{amplification}</amplification>"
        "<offset>0</offset></acquisitionSystem>"
        f"<anatomicalDescription><channelGroups><group>{channels}</group></channelGroups>"
        "</anatomicalDescription></parameters>\n"
    )
    (folder / "session.xml").write_text(xml)
    dat = folder / "session.dat"
    np.ascontiguousarray(data, np.int16).tofile(dat)
    return dat


def noise(n: int, n_ch: int, seed: int = 0, scale: float = 40.0) -> np.ndarray:
    """int16 (n, n_ch) Gaussian noise."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, scale, (n, n_ch)), -32768, 32767).astype(np.int16)


def open_ephys_run_config(root: Path, node: Path, out: Path, n_channels: int, **changes) -> Path:
    """A run config over an Open Ephys source: synthetic templates, Poisson trains, legacy writer;
    ``changes`` replace top-level keys. Geometry: two columns 32 um apart, rows 20 um apart."""
    geom = root / "geom.npy"
    np.save(geom, np.c_[(np.arange(n_channels) % 2) * 32.0, (np.arange(n_channels) // 2) * 20.0])
    cfg = {"session": "oe", "seed": 5,
           "recording": {"type": "spikeinterface", "extractor": "openephys", "folder_path": str(node),
                         "geometry": str(geom)},
           "templates": {"type": "synthetic", "n_units": 3},
           "injection": {"trains": {"mode": "poisson", "rate_hz": 40},
                         "placement": {"mode": "random", "min_distance_um": 20},
                         "amplitude": {"min": 0.9, "max": 1.1}},
           "output": {"directory": str(out)},
           "engine": {"progress": False, "chunk_duration_s": 0.3},
           "writers": [{"type": "legacy"}]}
    cfg.update(changes)
    path = out.parent / f"{out.name}_config.json"
    path.write_text(json.dumps(cfg))
    return path
