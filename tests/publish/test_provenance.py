"""The provenance a hybrid NWB carries (processing/hybridkit) and ``generate --from-nwb``."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np

from hybridkit.formats.checksums import sha256
from hybridkit.formats.json_pointers import flatten
from tests.helpers import main


def _strings(h5):
    """Every text value in an HDF5 file: datasets and attributes."""
    out = []

    def visit(name, obj):
        for v in obj.attrs.values():
            out.extend(np.ravel(v).tolist() if isinstance(v, np.ndarray) else [v])
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "SO":
            out.extend(np.ravel(obj[()]).tolist())

    h5.visititems(visit)
    return [v.decode() if isinstance(v, bytes) else v for v in out if isinstance(v, (bytes, str))]


def test_nwb_carries_config_inputs_and_truth(pub_run, pub_example):
    nwb = pub_run.output_dir / "demo.nwb"
    resolved = json.loads((pub_run.output_dir / "config.resolved.json").read_text())
    with h5py.File(nwb, "r") as f:
        g = f["processing/hybridkit"]
        rows = dict(zip([v.decode() for v in g["run_config/field"][()]],
                        [json.loads(v) for v in g["run_config/value"][()]]))
        # every leaf of the resolved config, with paths reduced to base names
        for pointer, text in flatten(resolved):
            want = json.loads(text)
            if isinstance(want, str) and want.startswith("/"):
                want = want.rsplit("/", 1)[-1]
            assert rows[pointer] == want, pointer
        fields = [v.decode() for v in g["inputs/field"][()]]
        src = pub_example / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
        k = fields.index("/recording/path")
        assert g["inputs/sha256"][k].decode() == sha256(src)
        assert int(g["inputs/bytes"][k]) == src.stat().st_size
        assert g["inputs/kind"][fields.index("/sorting/path")].decode() == "folder"
        listed = {v.decode() for v in g["input_files/file_name"][()]}
        assert listed == {p.relative_to(pub_example / "kilosort4").as_posix()
                          for p in (pub_example / "kilosort4").rglob("*") if p.is_file()}
        # events: the legacy firings_true, to the sample; templates exactly as injected
        ft = np.load(pub_run.output_dir / "firings_true.npy")
        np.testing.assert_array_equal(g["injected_events/time_samples"][()], ft[1].astype(np.int64))
        np.testing.assert_array_equal(g["injected_events/peak_channel"][()], ft[0].astype(np.int64))
        plan = pub_run.truth.plan
        np.testing.assert_array_equal(g["injected_events/gain"][()], plan.gains.astype(np.float32))
        np.testing.assert_array_equal(g["injected_events/template_row"][()], plan.event_template_index())
        ends = g["templates/waveform_uv_index"][()]
        for k, u in enumerate(plan.units):
            a = ends[k - 1] if k else 0
            np.testing.assert_array_equal(g["templates/waveform_uv"][a:ends[k]],
                                          u.template.waveform.astype(np.float32).ravel())
        assert list(g["templates/unit"][()]) == [u.new_unit_id for u in plan.units]
        clipped = dict(zip(g["clipped_samples/file_column"][()], g["clipped_samples/clipped_samples"][()]))
        assert sum(clipped.values()) == pub_run.truth.clipped_samples
        assert len(clipped) == pub_run.truth.recording.neural_channels.size
        manifest = dict(zip([v.decode() for v in g["manifest/field"][()]], g["manifest/value"][()]))
        assert json.loads(manifest["/injected_events"]) == plan.n_events
        # nothing names a path of the machine that wrote it
        leaks = [s for s in _strings(f) if str(pub_example.parent) in s or str(pub_run.output_dir) in s]
        assert leaks == []


def test_from_nwb_reproduces_the_truth(pub_run, pub_example, tmp_path, capsys, monkeypatch):
    from hybridkit.formats import checksums

    reads = []
    real = checksums.sha256
    monkeypatch.setattr(checksums, "sha256", lambda path, *a, **k: reads.append(path.resolve()) or real(path, *a, **k))
    out = tmp_path / "again"
    code, stdout, err = main(capsys, "generate", "--from-nwb", pub_run.output_dir / "demo.nwb",
                             "--inputs", pub_example, "--inputs", pub_example / "demo_g0", "-o", out)
    assert code == 0, err
    assert "regenerating session demo" in stdout
    # the source is hashed once: found and checked by --from-nwb, then reused by the run's NWB
    # provenance and manifest (it was read three times)
    src = (pub_example / "demo_g0" / "demo_g0_t0.imec0.ap.bin").resolve()
    assert reads.count(src) == 1, reads
    for name in ("firings_true.npy", "hybrid_events-demo.csv", "hybrid_units-demo.csv",
                 "templates-demo.npz", "demo_g0_t0.imec0.ap.GT.bin"):
        assert (out / name).read_bytes() == (pub_run.output_dir / name).read_bytes(), name
    with h5py.File(out / "demo.nwb", "r") as a, h5py.File(pub_run.output_dir / "demo.nwb", "r") as b:
        for col in ("spike_times", "spike_times_index", "amplitude_scale", "spike_peak_channel"):
            np.testing.assert_array_equal(a[f"units/{col}"][()], b[f"units/{col}"][()])
        np.testing.assert_array_equal(a["acquisition/ElectricalSeries/data"][()],
                                      b["acquisition/ElectricalSeries/data"][()])


def test_from_nwb_refuses_other_bytes(pub_run, pub_example, tmp_path, capsys):
    """A source with the same name and size but one byte changed is not the recorded input."""
    src = pub_example / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
    (tmp_path / "d").mkdir()
    shutil.copytree(pub_example / "kilosort4", tmp_path / "d" / "kilosort4")
    fake = tmp_path / "d" / src.name
    data = bytearray(src.read_bytes())
    data[1000] ^= 1
    fake.write_bytes(bytes(data))
    code, _, err = main(capsys, "generate", "--from-nwb", pub_run.output_dir / "demo.nwb",
                        "--inputs", tmp_path / "d", "-o", tmp_path / "out")
    assert code == 2
    assert "recording.path" in err and "SHA-256" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    code, _, err = main(capsys, "generate", "--from-nwb", pub_run.output_dir / "demo.nwb",
                        "--inputs", tmp_path / "nowhere", "-o", tmp_path / "out")
    assert code == 2 and "not found in" in err and "--inputs" in err
