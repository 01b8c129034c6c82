"""``hybridkit verify``: passes on every kind of output generate writes, and names the spot when
one sample, one table row, one template value or the source changes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from hybridkit.config.run_config import load_config
from hybridkit.example import write_example
from hybridkit.formats.spikeglx_meta import read_meta, rewrite_meta
from hybridkit.results.plan_file import read_plan_file
from hybridkit.run.pipeline import generate
from tests.helpers import config_with, main
from tests.plugins.nwb_testutil import example_to_nwb
from tests.test_nwb_end_to_end import NWB_META

BIN = "demo_g0_t0.imec0.ap.bin"
NWB_GT = {"type": "nwb", "dandi": False, "inspect": "off", "traces": False, "file_name": "truth.nwb"}
NWB_TRACES = {"type": "nwb", **NWB_META, "inspect": "off"}


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify_example")
    write_example(root / "demo", seed=3, duration_s=3.0)
    return root / "demo"


def _split_in_two(example: Path, dest: Path) -> Path:
    """The example's one SpikeGLX file as two consecutive files of one stream (g0_t0, g0_t1)."""
    src = example / "demo_g0" / BIN
    meta = read_meta(src.with_suffix(".meta"))
    n_ch = int(meta["nSavedChans"])
    data = np.fromfile(src, np.int16).reshape(-1, n_ch)
    cut = data.shape[0] // 2 + 17
    dest.mkdir(parents=True)
    for k, (part, first) in enumerate([(data[:cut], 0), (data[cut:], cut)]):
        path = dest / f"demo_g0_t{k}.imec0.ap.bin"
        part.tofile(path)
        rewrite_meta(src.with_suffix(".meta"), path.with_suffix(".meta"),
                     {"fileSizeBytes": str(part.nbytes), "firstSample": str(first), "fileSHA1": None})
    return dest / "demo_g0_t*.imec0.ap.bin"


def _synthetic(cfg_path: Path, amplitude_uV: float) -> None:
    """Synthetic templates (no sorting) scaled to ``amplitude_uV``: above ~76 mV they saturate int16."""
    cfg = json.loads(cfg_path.read_text())
    for key in ("sorting", "units"):
        cfg.pop(key, None)
    cfg["templates"] = {"type": "synthetic", "n_units": 3,
                        "scaling": {"mode": "amplitude", "min": amplitude_uV, "max": amplitude_uV}}
    cfg["injection"]["trains"] = {"mode": "poisson", "rate_hz": 5.0}
    cfg_path.write_text(json.dumps(cfg))


#: kind -> how its output is made (each in its own folder): writers, and extra config changes
KINDS = ["legacy_phy_nwb", "nwb_traces", "drift", "multi_file", "clipped_synthetic", "nwb_source",
         "binary_header_channels_major"]
HEADER = 64


def _binary_with_header(example: Path, dest: Path) -> dict:
    """The example's samples as a flat channels-major file behind a 64-byte header."""
    from hybridkit.example import np1_positions

    data = np.fromfile(example / "demo_g0" / BIN, np.int16).reshape(-1, 385)
    dest.mkdir(parents=True)
    path = dest / "rec.dat"
    with open(path, "wb") as fh:
        fh.write(bytes(range(HEADER)))
        data.T.tofile(fh)
    np.save(dest / "geom.npy", np1_positions())
    return {"type": "binary", "path": str(path), "dtype": "int16", "n_channels": 385,
            "sampling_rate": 30000.0, "gain_to_uV": 2.34375, "offset_bytes": HEADER,
            "order": "channels", "geometry": str(dest / "geom.npy"), "channels": list(range(384))}


@pytest.fixture(scope="module")
def outputs(example, tmp_path_factory, request):
    """kind -> output folder, each generated once on first use."""
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind in made:
            return made[kind]
        if kind == "legacy_phy_nwb":  # the suite's shared run (tests/conftest.py)
            made[kind] = request.getfixturevalue("generated")
            return made[kind]
        tmp = tmp_path_factory.mktemp(kind)
        changes: dict = {"output": {"directory": str(tmp / "out"), "checksums": "all"},
                         "writers": [{"type": "legacy"}]}
        if kind == "nwb_traces":
            changes["writers"] = [{"type": "legacy"}, {"type": "phy"}, NWB_TRACES]
        elif kind == "drift":
            changes["writers"] = [{"type": "legacy"}, NWB_GT]
            changes["motion"] = {"source": {"type": "table", "times_s": [0.0, 1.3],
                                            "displacement_um": [0.0, 20.0], "interpolation": "previous"},
                                 "reference": "zero"}
        elif kind == "multi_file":
            changes["recording"] = {"type": "spikeglx", "path": str(_split_in_two(example, tmp / "src"))}
            changes["writers"] = [{"type": "legacy"}, {"type": "phy"}]
        elif kind == "binary_header_channels_major":
            changes["recording"] = _binary_with_header(example, tmp / "src")
        elif kind == "nwb_source":
            source = example_to_nwb(example, tmp / "source.nwb")
            changes["recording"] = {"type": "nwb", "path": str(source)}
            changes["writers"] = [{**NWB_TRACES, "file_name": "hybrid.nwb"}]
        path = config_with(example, tmp, **changes)
        if kind == "clipped_synthetic":
            _synthetic(path, 1.2e5)
        made[kind] = generate(load_config(path)).output_dir
        return made[kind]

    return get


def _copy(out: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(out, dest)
    return dest


@pytest.mark.parametrize("kind", KINDS)
def test_passes_on_every_kind_of_output(outputs, kind, capsys):
    out = outputs(kind)
    code, stdout, stderr = main(capsys, "verify", out)
    assert code == 0, stdout + stderr
    assert stdout.count("\n") == 1 and stdout.startswith(f"verified {out}: "), stdout
    plan, _ = read_plan_file(next(out.glob("templates-*.npz")))
    assert plan.n_events > 10
    assert f"+ {plan.n_events} events of {len(plan.units)} units" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"({manifest['clipped_samples']} clipped)" in stdout
    if kind == "clipped_synthetic":
        assert manifest["clipped_samples"] > 0
        assert json.loads(next(out.glob("templates-*.json")).read_text())["units"]["0"][
            "template_source"] == "synthetic"
    if kind == "drift":
        assert plan.drifting and "truth.nwb" in stdout  # the ground-truth-only NWB units table
    if kind == "nwb_traces":
        assert "2 hybrid copies" in stdout and "phy/" in stdout and ".nwb" in stdout
    if kind == "nwb_source":
        assert "1 hybrid copy" in stdout and not list(out.glob("*.GT.bin"))
    if kind == "multi_file":
        assert len(manifest["sources"]) == 2 and all("sha256" in s for s in manifest["sources"])


def test_plan_file_holds_the_drift_variants_verify_uses(outputs):
    """The drift output's plan uses variants other than the placed template, so verify's
    expected traces depend on the per-event variants of the plan file."""
    out = outputs("drift")
    plan, _ = read_plan_file(next(out.glob("templates-*.npz")))
    assert plan.drifting and np.any(plan.variant_index != [
        plan.units[u].variants.zero if plan.units[u].variants is not None else 0
        for u in plan.unit_index])
    ft = np.load(out / "firings_true.npy")
    np.testing.assert_array_equal(plan.event_channels(), ft[0].astype(np.int64))


def _one_line_per_discrepancy(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert " discrepanc" in lines[0]
    return lines[1:]


@pytest.mark.parametrize("delta", [1, -1])
def test_one_changed_hybrid_sample_is_named(outputs, tmp_path, capsys, delta):
    out = _copy(outputs("legacy_phy_nwb"), tmp_path)
    plan, rest = read_plan_file(next(out.glob("templates-*.npz")))
    n_ch = len(rest["gain_to_uV"])
    sample, channel = int(plan.times[3]), int(plan.event_channels()[3])  # the peak of an event
    quiet = int(plan.times[0]) - 200  # before every event: hybrid == source there
    hybrid = np.memmap(out / BIN.replace(".bin", ".GT.bin"), np.int16, "r+").reshape(-1, n_ch)
    before = [int(hybrid[sample, channel]), int(hybrid[quiet, 5])]
    hybrid[sample, channel] += delta
    hybrid[quiet, 5] += delta
    hybrid.flush()
    del hybrid
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    lines = _one_line_per_discrepancy(stdout)
    name = BIN.replace(".bin", ".GT.bin")
    assert f"  {name}: sample {quiet}, channel 5: expected {before[1]}, found {before[1] + delta}" in lines
    assert f"  {name}: sample {sample}, channel {channel}: expected {before[0]}, found {before[0] + delta}" in lines
    assert len(lines) == 2


def test_changed_header_is_named(outputs, tmp_path, capsys):
    out = _copy(outputs("binary_header_channels_major"), tmp_path)
    with open(out / "rec.GT.dat", "r+b") as fh:
        fh.seek(10)
        fh.write(b"\xff")
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    assert f"  rec.GT.dat: header (bytes 0-{HEADER - 1}): expected the bytes of rec.dat, found other bytes" \
        in _one_line_per_discrepancy(stdout)


def test_one_changed_nwb_trace_sample_is_named(outputs, tmp_path, capsys):
    out = _copy(outputs("nwb_source"), tmp_path)
    plan, _ = read_plan_file(next(out.glob("templates-*.npz")))
    sample = int(plan.times[5])
    with h5py.File(out / "hybrid.nwb", "r+") as f:
        data = f["acquisition/ElectricalSeries/data"]
        value = int(data[sample, 7])
        data[sample, 7] = value + 40
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    lines = _one_line_per_discrepancy(stdout)
    assert f"  hybrid.nwb: sample {sample}, channel 7: expected {value}, found {value + 40}" in lines
    # the rewritten chunk changes the file's bytes: its recorded size or checksum disagrees
    assert any(line.startswith(("  hybrid.nwb: size: expected ", "  hybrid.nwb: sha256: expected "))
               for line in lines), lines


@pytest.mark.parametrize("column,change", [("time_samples", lambda v: str(int(v) + 1)),
                                           ("gain", lambda v: f"{float(v) + 1e-6:.6f}"),
                                           ("new_unit", lambda v: str(int(v) + 1))])
def test_one_changed_events_row_is_named(outputs, tmp_path, capsys, column, change):
    out = _copy(outputs("legacy_phy_nwb"), tmp_path)
    events = next(out.glob("hybrid_events-*.csv"))
    lines = events.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[7].split(",")  # data row 7
    old = row[header.index(column)]
    row[header.index(column)] = change(old)
    lines[7] = ",".join(row)
    events.write_text("\n".join(lines) + "\n")
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    found = _one_line_per_discrepancy(stdout)
    mine = [line for line in found if line.startswith(f"  {events.name}: row 7, column {column}: ")]
    assert len(mine) == 1 and mine[0].endswith(f"found {row[header.index(column)]}"), found
    assert any(line.startswith(f"  {events.name}: sha256: ") for line in found)


def test_one_changed_template_value_is_named(outputs, tmp_path, capsys):
    """A template value in templates-<session>.npz changes the expected traces at every event of
    that unit; the same change in phy's templates.npy disagrees with the plan."""
    out = _copy(outputs("multi_file"), tmp_path)
    npz = next(out.glob("templates-*.npz"))
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    plan, _ = read_plan_file(npz)
    t0 = plan.units[0].template
    assert plan.units[0].variants is None  # template 0 of the file is unit 0's only one
    k = int(np.argmax(np.abs(t0.waveform[:, 0])))  # the largest value on its first channel
    arrays["plan_template_waveforms_uV"][0, k, 0] += 50.0
    np.savez(npz, **arrays)
    templates = np.load(out / "phy" / "templates.npy")
    templates[1, 30, 40] += 1.0
    np.save(out / "phy" / "templates.npy", templates)
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    lines = _one_line_per_discrepancy(stdout)
    first = plan.times[plan.unit_index == 0][0]
    sample = int(first) - t0.peak_index + k
    assert any(f": sample {sample}" in line and f", channel {int(t0.channels[0])}: expected " in line
               for line in lines), lines
    assert "  phy/templates.npy: unit, sample, channel [1, 30, 40]: expected " in "\n".join(lines)
    assert any(line.startswith(f"  {npz.name}: sha256: ") for line in lines)


def test_changed_source_is_named(example, outputs, tmp_path, capsys):
    """--source names a moved source; a changed byte fails its recorded checksum (and the traces
    at that sample); an appended byte fails its size."""
    out = outputs("nwb_traces")
    moved = tmp_path / "moved"
    moved.mkdir()
    for suffix in (".bin", ".meta"):
        shutil.copy(example / "demo_g0" / BIN.replace(".bin", suffix), moved)
    code, stdout, _ = main(capsys, "verify", out, "--source", moved / BIN)
    assert code == 0 and stdout.startswith("verified"), stdout

    n_ch = 385
    data = np.memmap(moved / BIN, np.int16, "r+").reshape(-1, n_ch)
    data[1000, 3] += 1
    data.flush()
    del data
    code, stdout, _ = main(capsys, "verify", out, "--source", moved / BIN)
    assert code == 1
    lines = _one_line_per_discrepancy(stdout)
    assert any(line.startswith(f"  {moved / BIN}: sha256: ") for line in lines), lines
    assert any(": sample 1000, channel 3: expected " in line for line in lines)

    with open(moved / BIN, "ab") as fh:
        fh.write(b"\0" * n_ch * 2)  # one more sample: the meta disagrees, so the reader says so
    code, _, stderr = main(capsys, "verify", out, "--source", moved / BIN)
    assert code == 2 and "size" in stderr and stderr.count("\n") == 1


def test_source_size_recorded_in_the_manifest(outputs, tmp_path, capsys):
    out = _copy(outputs("legacy_phy_nwb"), tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["sources"][0]["bytes"] += 2
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    size = manifest["sources"][0]["bytes"]
    assert f"size: expected {size} bytes (recorded), found {size - 2} bytes" in stdout


def test_not_an_output_is_one_line_exit_2(tmp_path, capsys):
    code, stdout, stderr = main(capsys, "verify", tmp_path)
    assert code == 2 and stdout == ""
    assert stderr == f"hybridkit: error: {tmp_path}: no manifest.json; give the output folder of `hybridkit generate`\n"


def test_output_without_the_exact_plan_is_one_line_exit_2(outputs, tmp_path, capsys):
    """An output of a hybridkit that did not store the plan cannot be re-derived: say so."""
    out = _copy(outputs("legacy_phy_nwb"), tmp_path)
    npz = next(out.glob("templates-*.npz"))
    with np.load(npz) as z:
        old_keys = {k: z[k] for k in z.files if not k.startswith("plan_")}
    np.savez(npz, **old_keys)
    code, _, stderr = main(capsys, "verify", out)
    assert code == 2 and stderr.count("\n") == 1
    assert f"{npz}: no 'plan_unit_ids'" in stderr


def test_multi_file_discrepancy_names_the_file_and_its_sample(outputs, tmp_path, capsys):
    out = _copy(outputs("multi_file"), tmp_path)
    src = json.loads((out / "manifest.json").read_text())["sources"]
    first_n = src[0]["n_samples"]
    second = out / "demo_g0_t1.imec0.ap.GT.bin"
    hybrid = np.memmap(second, np.int16, "r+").reshape(-1, 385)
    value = int(hybrid[10, 384])  # the sync column: never injected
    hybrid[10, 384] = value ^ 1
    hybrid.flush()
    del hybrid
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    assert (f"  {second.name}: sample {first_n + 10} (its sample 10), channel 384: expected {value}, "
            f"found {value ^ 1}") in _one_line_per_discrepancy(stdout)


def test_missing_hybrid_file_is_a_discrepancy(outputs, tmp_path, capsys):
    out = _copy(outputs("multi_file"), tmp_path)
    (out / "demo_g0_t0.imec0.ap.GT.bin").unlink()
    code, stdout, _ = main(capsys, "verify", out)
    assert code == 1
    lines = _one_line_per_discrepancy(stdout)
    assert "  demo_g0_t0.imec0.ap.GT.bin: file: expected present (listed in manifest.json), found missing" in lines
    assert sum("demo_g0_t0.imec0.ap.GT.bin" in line for line in lines) == 1
