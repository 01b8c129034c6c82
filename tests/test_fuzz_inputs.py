"""Seeded fuzzing of the readers of user files: the SpikeGLX .meta parser, the config loader, the
phy loader and the JRCLUST .prm parser. Valid inputs are mutated (byte flips, truncation, random keys and values, wrong
types); a reader may accept a mutant or refuse it with a HybridkitError, and anything else (a
ValueError, a TypeError, a MemoryError...) is a bug. Seeds are fixed: a failure names the seed
and iteration, so it replays exactly.
"""
from __future__ import annotations

import copy
import json
import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.errors import HybridkitError
from hybridkit.formats.prmfile import parse_prm
from hybridkit.formats.spikeglx_meta import (
    channel_layout,
    gains_to_uV,
    read_meta,
    spikeglx_probe,
    stream_kind,
)
from hybridkit.model import Recording, SourceFile
from hybridkit.plugins.sorters.phy import PhyAdapter

DATA = Path(__file__).parent / "data"
META_FILES = [DATA / "spikeglx" / "ibl-neuropixel" / "sample3B2_exported.imec0.ap.meta",
              DATA / "spikeglx" / "ibl-neuropixel" / "sampleNP2.4_4shanks_g0_t0.imec.ap.meta",
              DATA / "spikeglx" / "probeinterface" / "NP1110_bank0_g0_t0.imec0.ap.meta"]

#: added to every target's seed: set another value locally to explore more mutants
SEED = 0
#: iterations per target (each is a few milliseconds; the targets together take seconds)
N_META, N_CONFIG, N_PHY, N_PRM = 150, 300, 200, 400

#: values that break readers that assume the right type
ODD_VALUES = [None, True, -1, 0, 2**63, -(2**70), 1e308, float("nan"), float("inf"), "", "x", "../..",
              "a" * 300, [], [1, "a"], {}, {"type": "x"}, [[[]]], "\u00e9\u0000", 3.5]
ODD_TEXT = ["nan", "inf", "-1", "0", "", "1e999", "0:383,768", "(", ")", "((", "(1 2)(3", "9" * 30,
            "all", "\u00ff", "1,2,3", "-0", "0x10", "384,0,1", "3.5"]


def _flip_bytes(rng: np.random.Generator, data: bytes, n: int = 4) -> bytes:
    b = bytearray(data)
    if not b:
        return bytes(rng.integers(0, 256, 8, dtype=np.uint8))
    for _ in range(n):
        b[int(rng.integers(len(b)))] = int(rng.integers(256))
    return bytes(b)


def _truncate(rng: np.random.Generator, data: bytes) -> bytes:
    return data[: int(rng.integers(0, max(len(data), 1)))]


def _mutate_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    return _flip_bytes(rng, data, int(rng.integers(1, 16))) if rng.random() < 0.6 else _truncate(rng, data)


def _check(reader, seed_label: str) -> str:
    """Run ``reader``; '' when it returned or raised a HybridkitError, else the failure text."""
    try:
        reader()
    except HybridkitError as exc:
        assert "\n" not in str(exc), f"{seed_label}: multi-line message {str(exc)!r}"
        return ""
    except Exception:  # anything else is what this test hunts
        return f"{seed_label}: {traceback.format_exc(limit=-3)}"
    return ""


# -- the .meta parser ---------------------------------------------------------------------------------
def _mutate_meta(rng: np.random.Generator, text: str) -> bytes:
    lines = text.splitlines()
    choice = rng.integers(4)
    if choice == 0:  # a value replaced by an odd one
        i = int(rng.integers(len(lines)))
        key = lines[i].split("=", 1)[0]
        lines[i] = f"{key}={ODD_TEXT[int(rng.integers(len(ODD_TEXT)))]}"
    elif choice == 1:  # a line dropped
        del lines[int(rng.integers(len(lines)))]
    elif choice == 2:  # the imroTbl / subset garbled
        for i, line in enumerate(lines):
            if line.lstrip("~").startswith(("imroTbl", "snsSaveChanSubset", "acqApLfSy", "snsGeomMap")):
                if rng.random() < 0.5:
                    key, _, value = line.partition("=")
                    cut = int(rng.integers(0, max(len(value), 1)))
                    lines[i] = f"{key}={value[:cut]}{ODD_TEXT[int(rng.integers(len(ODD_TEXT)))]}"
    else:
        return _mutate_bytes(rng, "\n".join(lines).encode())
    return "\n".join(lines).encode()


def test_fuzz_spikeglx_meta(tmp_path):
    rng = np.random.default_rng(20240613 + SEED)
    texts = [p.read_text() for p in META_FILES]
    failures = []
    for i in range(N_META):
        path = tmp_path / f"m{i % 4}.ap.meta"
        path.write_bytes(_mutate_meta(rng, texts[i % len(texts)]))

        def parse(path=path):
            meta = read_meta(path)
            stream_kind(meta, path)
            channel_layout(meta, path)
            gains_to_uV(meta, path)
            if i % 5 == 0:  # probeinterface is the slow part: every 5th mutant goes through it
                spikeglx_probe(path, meta)

        failures.append(_check(parse, f"meta iteration {i}"))
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} of {N_META} mutants crashed; first:\n{failures[0]}"


# -- the config loader --------------------------------------------------------------------------------
def _valid_config() -> dict:
    return {
        "session": "demo", "seed": 42,
        "recording": {"type": "binary", "path": "rec.bin", "dtype": "int16", "n_channels": 4,
                      "sampling_rate": 30000, "geometry": "geom.npy"},
        "sorting": {"type": "phy", "path": "ks"},
        "units": {"ids": [1, 2], "max_contamination": 0.2},
        "templates": {"type": "local", "max_spikes": 100, "rank": 3},
        "injection": {"placement": {"mode": "random", "min_distance_um": 60},
                      "trains": {"mode": "source", "jitter_ms": 1.0},
                      "amplitude": {"min": 0.8, "max": 1.2}},
        "output": {"directory": "out", "overwrite": False},
        "engine": {"chunk_duration_s": 1.0, "max_memory_mb": 256},
        "motion": {"synthetic": [{"kind": "zigzag", "amplitude_um": 20, "period_s": 10}]},
        "writers": [{"type": "legacy"}, {"type": "phy"}],
    }


def _paths(node, prefix=()):
    """Every (path, container) of a nested dict/list, the root included."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _mutate_config(rng: np.random.Generator, cfg: dict) -> dict:
    for _ in range(int(rng.integers(1, 4))):
        spots = [(p, n) for p, n in _paths(cfg) if isinstance(n, (dict, list))]
        path, node = spots[int(rng.integers(len(spots)))]
        odd = copy.deepcopy(ODD_VALUES[int(rng.integers(len(ODD_VALUES)))])  # no shared lists
        if isinstance(node, dict) and node and rng.random() < 0.7:
            key = list(node)[int(rng.integers(len(node)))]
            if rng.random() < 0.2:
                del node[key]
            else:
                node[key] = odd
        elif isinstance(node, dict):
            node[str(rng.choice(["type", "path", "x", "ids", "kind", "Ω"]))] = odd
        elif node:
            node[int(rng.integers(len(node)))] = odd
    return cfg


def test_fuzz_config_loader(tmp_path):
    rng = np.random.default_rng(7 + SEED)
    np.save(tmp_path / "geom.npy", np.c_[np.zeros(4), np.arange(4) * 20.0])
    failures = []
    for i in range(N_CONFIG):
        kind = i % 3
        if kind == 0:  # structure: random keys, values and types, as JSON
            path = tmp_path / "c.json"
            path.write_text(json.dumps(_mutate_config(rng, _valid_config())))
        elif kind == 1:  # bytes of a valid JSON config flipped or cut
            path = tmp_path / "c.json"
            path.write_bytes(_mutate_bytes(rng, json.dumps(_valid_config(), indent=1).encode()))
        else:  # the same config as YAML, bytes flipped or cut
            import yaml

            path = tmp_path / "c.yaml"
            text = yaml.safe_dump(_mutate_config(rng, _valid_config()) if rng.random() < 0.5
                                  else _valid_config()).encode()
            path.write_bytes(_mutate_bytes(rng, text) if rng.random() < 0.7 else text)
        failures.append(_check(lambda path=path: load_config(path), f"config iteration {i}"))
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} of {N_CONFIG} mutants crashed; first:\n{failures[0]}"


# -- the phy loader -----------------------------------------------------------------------------------
PHY_FILES = ("spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "channel_map.npy",
             "channel_positions.npy", "templates.npy", "template_ind.npy", "params.py",
             "cluster_group.tsv", "cluster_KSLabel.tsv")


def _write_phy(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir()
    n, n_units, n_ch = 60, 3, 4
    times = np.sort(rng.integers(0, 2900, n)).astype(np.int64)
    units = rng.integers(0, n_units, n).astype(np.int32)
    np.save(folder / "spike_times.npy", times)
    np.save(folder / "spike_clusters.npy", units)
    np.save(folder / "spike_templates.npy", units.astype(np.uint32))
    np.save(folder / "channel_map.npy", np.arange(n_ch, dtype=np.int32))
    np.save(folder / "channel_positions.npy", np.c_[np.zeros(n_ch), np.arange(n_ch) * 20.0])
    np.save(folder / "templates.npy", rng.normal(size=(n_units, 20, 2)).astype(np.float32))
    np.save(folder / "template_ind.npy", np.array([[0, 1], [1, 2], [2, -1]], np.int64))
    (folder / "params.py").write_text("dat_path = 'rec.bin'\nn_channels_dat = 4\ndtype = 'int16'\n"
                                      "offset = 0\nsample_rate = 30000.0\nhp_filtered = False\n")
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tgood\n1\tmua\n2\tnoise\n")
    (folder / "cluster_KSLabel.tsv").write_text("cluster_id\tKSLabel\n0\tgood\n1\tmua\n2\tgood\n")


def _mutate_phy_file(rng: np.random.Generator, path: Path) -> None:
    if path.suffix == ".npy" and rng.random() < 0.4:  # a valid .npy of the wrong kind
        odd = [np.array([1.5, np.nan]), np.array(["a", "b"]), np.zeros((2, 2, 2)), np.array([-3, 7]),
               np.array([2**40], np.int64), np.zeros(0), np.array(3), np.ones((60, 2), np.uint64),
               np.array([True, False]), np.zeros(60, complex), np.full(60, 2**63, np.uint64)]
        np.save(path, odd[int(rng.integers(len(odd)))])
    elif path.suffix != ".npy" and rng.random() < 0.5:
        lines = path.read_bytes().decode("utf-8", "replace").splitlines() or [""]
        i = int(rng.integers(len(lines)))
        lines[i] = lines[i].split("=")[0] + ("= " + ODD_TEXT[int(rng.integers(len(ODD_TEXT)))]
                                              if "=" in lines[i] else "\t" + str(ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]))
        path.write_text("\n".join(lines))
    elif rng.random() < 0.1:
        path.unlink()
    else:
        path.write_bytes(_mutate_bytes(rng, path.read_bytes()))


def test_fuzz_phy_loader(tmp_path):
    rng = np.random.default_rng(31 + SEED)
    base = tmp_path / "base"
    _write_phy(base, np.random.default_rng(0))
    bin_path = tmp_path / "rec.bin"
    with open(bin_path, "wb") as fh:
        fh.truncate(3000 * 4 * 2)
    rec = Recording(files=[SourceFile(bin_path, 3000)], dtype=np.int16, n_channels=4,
                    sampling_rate=30000.0, gain_to_uV=np.full(4, 0.195), offset_to_uV=np.zeros(4),
                    channel_positions=np.c_[np.zeros(4), np.arange(4) * 20.0],
                    neural=np.ones(4, bool), name="rec")
    failures = []
    for i in range(N_PHY):
        folder = tmp_path / "phy"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(base, folder)
        for _ in range(int(rng.integers(1, 3))):
            target = folder / PHY_FILES[int(rng.integers(len(PHY_FILES)))]
            if target.exists():
                _mutate_phy_file(rng, target)
        adapter = PhyAdapter(PhyAdapter.Options(type="phy", path=folder))
        failures.append(_check(lambda a=adapter: a.load(rec), f"phy iteration {i}"))
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} of {N_PHY} mutants crashed; first:\n{failures[0]}"


# -- the JRCLUST .prm parser (MATLAB text, never evaluated) ----------------------------------------------
PRM = """% JRCLUST parameters (including defaults)
rawRecordings = {'D:\\data\\sess.bin'}; % Path or paths to raw recordings
sampleRate = 30000; % (formerly sRateHz) Sampling rate (in Hz) of raw recording
nChans = 385;
siteMap = [1, 2, 3:10, 1:2:9]; % 1-based
siteLoc = [0, 0; 0, 20; ...
  0, 40];
figList = {'FigPos', 'FigMap'};
bitScaling = 0.30518; evtWindow = [-0.25, 0.75]; useGPU = false; maxAmp = Inf;
"""
PRM_BYTES = list(b"[]{}()';:,.%\"=0123456789-eE\n ")


def test_fuzz_jrclust_prm_parser(tmp_path):
    rng = np.random.default_rng(11 + SEED)
    failures = []
    for i in range(N_PRM):
        raw = bytearray(PRM.encode())
        for _ in range(int(rng.integers(1, 10))):  # MATLAB's punctuation flipped, cut or added
            at = int(rng.integers(len(raw) + 1))
            op = rng.integers(3)
            if op == 0 and at < len(raw):
                raw[at] = PRM_BYTES[int(rng.integers(len(PRM_BYTES)))]
            elif op == 1 and at < len(raw):
                del raw[at]
            else:
                raw.insert(at, PRM_BYTES[int(rng.integers(len(PRM_BYTES)))])
        path = tmp_path / "sess.prm"
        path.write_bytes(bytes(raw) if i % 10 else _mutate_bytes(rng, bytes(raw)))
        failures.append(_check(lambda path=path: parse_prm(path), f"prm iteration {i}"))
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} of {N_PRM} mutants crashed; first:\n{failures[0]}"


@pytest.mark.parametrize("target", ["meta", "config", "phy", "prm"])
def test_fuzzing_would_catch_a_crash(tmp_path, target):
    """The harness itself: a reader that raises something else than a HybridkitError is reported."""
    def broken():
        raise ValueError(f"{target} bug")

    assert "ValueError" in _check(broken, target)
    assert _check(lambda: (_ for _ in ()).throw(HybridkitError("fine")), target) == ""
