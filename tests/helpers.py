"""Builders for small in-test recordings, templates, plans and example-dataset configs (no files
outside tmp_path), and the invariant checks shared by the tests."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
from pathlib import Path

import numpy as np

from hybridkit.model import PlacedUnit, Plan, Recording, SourceFile, Template


def make_recording(tmp_path: Path, data: np.ndarray, fs: float = 30000.0, gain: float = 0.5,
                   positions: np.ndarray | None = None, n_files: int = 1, name: str = "rec",
                   sync_last: bool = False, order: str = "samples") -> Recording:
    """Write ``data`` (time, channels) into ``n_files`` consecutive files and describe them."""
    n, c = data.shape
    if positions is None:
        positions = np.c_[np.zeros(c), np.arange(c) * 20.0]
    positions = np.asarray(positions, float).copy()
    neural = np.ones(c, bool)
    gains = np.full(c, gain)
    if sync_last:
        neural[-1] = False
        gains[-1] = 0.0
        positions[-1] = np.nan
    edges = np.linspace(0, n, n_files + 1).astype(int)
    files = []
    for i in range(n_files):
        path = tmp_path / f"{name}_{i}.bin"
        part = data[edges[i]:edges[i + 1]]
        (part if order == "samples" else part.T).astype(data.dtype).tofile(path)
        files.append(SourceFile(path=path, n_samples=int(edges[i + 1] - edges[i]), first_sample=int(edges[i])))
    return Recording(files=files, dtype=data.dtype, n_channels=c, sampling_rate=fs,
                     gain_to_uV=gains, offset_to_uV=np.zeros(c), channel_positions=positions,
                     neural=neural, order=order, name=name)


def make_template(unit_id: int, channels, n_times: int = 40, peak_index: int = 12, amp_uV: float = 100.0,
                  positions: np.ndarray | None = None, seed: int = 0) -> Template:
    rng = np.random.default_rng(seed)
    channels = np.asarray(channels)
    t = np.arange(n_times) - peak_index
    shape = -np.exp(-(t / 3.0) ** 2) + 0.3 * np.exp(-((t - 8) / 5.0) ** 2)
    spatial = np.linspace(1.0, 0.3, channels.size) * rng.uniform(0.8, 1.2, channels.size)
    spatial[0] = 1.3
    wf = (amp_uV * shape[:, None] * spatial[None, :]).astype(np.float32)
    peak = int(channels[np.argmax(np.abs(wf).max(axis=0))])
    pos = np.zeros(2) if positions is None else positions[peak]
    return Template(unit_id=unit_id, waveform=wf, channels=channels, peak_index=peak_index,
                    peak_channel=peak, position=pos, source="test")


def make_plan(templates: list[Template], times: list[np.ndarray], gains: list[np.ndarray]) -> Plan:
    units = [PlacedUnit(new_unit_id=100 + i, source_unit_id=t.unit_id, template=t, shift_um=np.zeros(2))
             for i, t in enumerate(templates)]
    idx = np.concatenate([np.full(len(ts), i) for i, ts in enumerate(times)])
    return Plan(units=units, times=np.concatenate(times), unit_index=idx, gains=np.concatenate(gains))


def planned_sum(plan: Plan, n_samples: int, n_channels: int, gain_to_uV: np.ndarray) -> np.ndarray:
    """Independent float64 reference: the sum of scaled templates in raw units, (n, C)."""
    out = np.zeros((n_samples, n_channels))
    for t, u, g in zip(plan.times, plan.unit_index, plan.gains):
        tpl = plan.units[u].template
        a = t - tpl.peak_index
        raw = tpl.waveform.astype(np.float64) / gain_to_uV[tpl.channels]
        lo, hi = max(a, 0), min(a + tpl.n_times, n_samples)
        out[lo:hi, tpl.channels] += float(g) * raw[lo - a:hi - a]
    return out


def best_lag(template: np.ndarray, truth: np.ndarray) -> int:
    """Shift (samples, -3..3) of ``template`` that best matches ``truth``: 0 when aligned."""
    inner = slice(5, -5)
    scores = [np.sum(np.roll(template, -lag, axis=0)[inner] * truth[inner]) for lag in range(-3, 4)]
    return int(np.argmax(scores)) - 3


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays, flattened."""
    a, b = np.ravel(a) - np.mean(a), np.ravel(b) - np.mean(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def assert_generate_invariant(result, hybrid_name: str = "demo_g0_t0.imec0.ap.GT.bin") -> None:
    """For a one-file int16 run of ``generate``: channels no template touches are the source's
    exactly, and hybrid - source equals the planned scaled templates within one rounding."""
    plan, rec = result.truth.plan, result.truth.recording
    n_ch = rec.n_channels
    src = np.fromfile(rec.files[0].path, np.int16).reshape(-1, n_ch)
    hyb = np.fromfile(result.output_dir / hybrid_name, np.int16).reshape(-1, n_ch)
    touched = np.unique(np.concatenate([u.template.channels for u in plan.units]))
    assert np.array_equal(np.delete(src, touched, axis=1), np.delete(hyb, touched, axis=1))
    expected = planned_sum(plan, src.shape[0], n_ch, rec.gain_to_uV)
    assert result.truth.clipped_samples == 0
    diff = hyb[:, touched].astype(np.float64) - src[:, touched]
    assert np.abs(diff - expected[:, touched]).max() <= 0.5 + 1e-3


def config_with(example: Path, tmp: Path, **changes) -> Path:
    """A copy of the example config (paths absolute) written to ``tmp``, with top-level changes."""
    cfg = json.loads((example / "config.json").read_text())
    cfg["recording"]["path"] = str(example / cfg["recording"]["path"])
    cfg["sorting"]["path"] = str(example / cfg["sorting"]["path"])
    cfg["engine"] = {"progress": False, "chunk_duration_s": 0.05}  # many blocks: edges get exercised
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg))
    return path


# -- the score and report tests: the command line, and a phy folder from spike arrays ----------------
#: the example's sampling rate gives floor(0.4 ms * 29999.97 Hz) = 11 samples
DELTA = 11


def run_cli(*args) -> subprocess.CompletedProcess:
    """The command line in-process, with what it printed: ``returncode``, ``stdout``, ``stderr``.

    Runs ``hybridkit.cli.main`` as the console script does (argument errors exit 2 through
    SystemExit) without the ~1 s start of a new interpreter; tests/test_cli.py keeps running the
    real ``python -m hybridkit`` for the console script itself.
    """
    from hybridkit.cli import main as cli_main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return subprocess.CompletedProcess(["hybridkit", *argv], code, out.getvalue(), err.getvalue())


def main(capsys, *args) -> tuple[int, str, str]:
    """The command line in-process (fast): exit code, stdout, stderr."""
    from hybridkit.cli import main as cli_main

    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {r[next(iter(r))]: r for r in rows}


def write_phy(folder: Path, times: np.ndarray, clusters: np.ndarray, fs: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    order = np.argsort(times, kind="stable")
    np.save(folder / "spike_times.npy", np.asarray(times, np.int64)[order])
    np.save(folder / "spike_clusters.npy", np.asarray(clusters, np.int32)[order])
    (folder / "params.py").write_text(f"sample_rate = {fs!r}\nn_channels_dat = 385\n")
    return folder
