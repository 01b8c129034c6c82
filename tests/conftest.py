"""Shared test helpers: small recordings and configs built inside the tests (offline; nothing outside the repository)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybridkit.example import write_example
from hybridkit.results.truth import load_truth
from tests.helpers import DELTA, run_cli, write_phy

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg, indent=2))
    return path


@pytest.fixture
def minimal_config(tmp_path) -> dict:
    """A structurally valid config (files need not exist for validation)."""
    geom = tmp_path / "geom.npy"
    np.save(geom, np.c_[np.zeros(4), np.arange(4) * 20.0])
    return {
        "seed": 1,
        "recording": {"type": "binary", "path": "rec.bin", "dtype": "int16", "n_channels": 4,
                      "sampling_rate": 30000, "geometry": "geom.npy"},
        "sorting": {"type": "phy", "path": "ks"},
        "units": {"ids": [1, 2]},
    }


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The example dataset (``hybridkit example``, seed 3, 4 s: a SpikeGLX recording, its
    Kilosort output and config.json), made once per test module: modules may add files to it."""
    root = tmp_path_factory.mktemp("example")
    write_example(root / "demo", seed=3, duration_s=4.0)
    return root / "demo"


# -- shared by test_score.py and test_report.py: one example run scored against a known sorting --
@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """``hybridkit example`` (4 s) and ``hybridkit generate`` with the legacy, phy and NWB writers.

    Made once per test session: test_score.py and test_report.py both use it, and the second
    finds it on disk.
    """
    root = tmp_path_factory.getbasetemp() / "score-shared"
    if (root / "out" / "manifest.json").is_file():
        return root / "out"
    res = run_cli("example", root / "demo", "--duration", "4", "--seed", "3")
    assert res.returncode == 0, res.stderr
    config = root / "demo" / "config.json"
    cfg = json.loads(config.read_text())
    cfg["output"] = {"directory": str(root / "out")}
    cfg["engine"] = {"progress": False}
    cfg["writers"] = [{"type": "legacy"}, {"type": "phy"},
                      {"type": "nwb", "traces": False, "dandi": False, "inspect": "off"}]
    config.write_text(json.dumps(cfg))
    res = run_cli("generate", config)
    assert res.returncode == 0, res.stderr
    return root / "out"


@pytest.fixture(scope="module")
def perturbed(generated, tmp_path_factory):
    """A phy sorting of the hybrid recording built from the truth; returns (folder, expected)."""
    truth = load_truth(generated)
    fs = truth.sampling_rate
    u = truth.unit_ids.tolist()
    assert len(u) == 4
    a, b, c, d = u
    times, clusters = [], []
    # unit a -> cluster 500: every 5th spike dropped, the rest shifted by exactly the tolerance,
    # except 3 shifted one sample further (missed and false), and 5 spikes added far from any a
    ta = truth.times_of(a)
    kept = np.delete(ta, np.arange(0, ta.size, 5))
    moved = kept + DELTA
    moved[:3] += 1
    gaps = np.flatnonzero(np.diff(ta) > 400)[:5]
    added = ta[gaps] + 200
    times += [moved, added]
    clusters += [np.full(moved.size + added.size, 500)]
    # unit b split 70 / 30 into clusters 600 / 601
    tb = truth.times_of(b)
    first = np.arange(tb.size) % 10 < 7
    times += [tb[first], tb[~first]]
    clusters += [np.full(first.sum(), 600), np.full((~first).sum(), 601)]
    # units c and d merged into cluster 700
    tcd = np.concatenate([truth.times_of(c), truth.times_of(d)])
    times.append(tcd)
    clusters.append(np.full(tcd.size, 700))
    # and the source sorting's own units, as a sorter would find them in the hybrid recording
    src = json.loads((generated / "config.resolved.json").read_text())["sorting"]["path"]
    st = np.load(Path(src) / "spike_times.npy").ravel()
    sc = np.load(Path(src) / "spike_clusters.npy").ravel()
    times.append(st)
    clusters.append(sc)
    folder = write_phy(generated.parent / "sorting" / "ks_hybrid", np.concatenate(times),
                       np.concatenate(clusters), fs)
    tp = kept.size - 3
    expected = {
        "a": a, "b": b, "c": c, "d": d,
        "a_tp": tp, "a_fn": ta.size - tp, "a_fp": 3 + added.size, "a_n_sorted": moved.size + added.size,
        "b_first": int(first.sum()), "b_n": tb.size, "nc": truth.times_of(c).size, "nd": truth.times_of(d).size,
    }
    return folder, expected


@pytest.fixture(scope="module")
def scored(generated, perturbed, tmp_path_factory):
    folder, expected = perturbed
    out = generated.parent / "scores"
    if not (out / "stdout.txt").is_file():  # once per session, through the real command line
        res = run_cli("score", generated, folder, "-o", out)
        assert res.returncode == 0, res.stderr
        (out / "stdout.txt").write_text(res.stdout)
    return out, expected, (out / "stdout.txt").read_text()


# -- dandi organize + dandi validate on every hybrid NWB the suite writes (tests/dandi_check.py) ----
def pytest_configure(config):
    from hybridkit.plugins.writers.nwb.writer import NwbWriter
    from hybridkit.run import provenance
    from tests import dandi_check

    NwbWriter.finish = dandi_check.record_finish(NwbWriter.finish)
    provenance.commit_staging = dandi_check.record_commit(provenance.commit_staging)


@pytest.fixture(autouse=True)
def _dandi_validates_written_nwb():
    yield
    from tests import dandi_check

    if dandi_check.pending:
        errors = dandi_check.check_pending()
        assert not errors, "dandi validate:\n" + "\n".join(errors)
