"""formats/checksums: each file hashed once per run (the NWB writer's input identities and the
manifest share the run's FileDigests)."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from pathlib import Path

from hybridkit.formats import checksums
from hybridkit.formats.checksums import FileDigests


def _counting(monkeypatch) -> Counter:
    reads: Counter = Counter()
    real = checksums.sha256

    def counted(path, block=8 * 2**20, cancel=None):
        reads[Path(path).resolve()] += 1
        return real(path, block, cancel)

    monkeypatch.setattr(checksums, "sha256", counted)
    return reads


def test_a_file_is_read_once_however_many_ask(tmp_path, monkeypatch):
    reads = _counting(monkeypatch)
    path = tmp_path / "a.bin"
    path.write_bytes(os.urandom(3 * 2**20))
    os.link(path, tmp_path / "b.bin")  # a hard link is the same file
    digests = FileDigests()
    got = []
    threads = [threading.Thread(target=lambda: got.append(digests.sha256(path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got.append(digests.sha256(tmp_path / "b.bin"))
    assert got == [hashlib.sha256(path.read_bytes()).hexdigest()] * 5
    assert sum(reads.values()) == 1


def test_a_changed_file_is_hashed_again(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"one")
    digests = FileDigests()
    assert digests.sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two!")  # another size (and mtime): another file state
    assert digests.sha256(path) == hashlib.sha256(b"two!").hexdigest()
    assert len(digests.computed) == 2


def test_a_run_hashes_its_source_once_for_the_nwb_provenance_and_the_manifest(tmp_path, monkeypatch):
    import h5py

    from hybridkit.config.run_config import load_config
    from hybridkit.example import write_example
    from hybridkit.run.pipeline import generate

    config = write_example(tmp_path / "demo", duration_s=1.0, seed=2)
    cfg = json.loads(config.read_text())
    cfg["templates"] = {"type": "synthetic", "n_units": 2}
    cfg.pop("units", None)
    cfg["injection"]["trains"] = {"mode": "poisson", "rate_hz": 5}
    cfg["engine"] = {"progress": False}
    cfg["output"] = {"directory": str(tmp_path / "out"), "checksums": "all"}
    cfg["writers"] = [{"type": "legacy"}, {"type": "nwb", "traces": False, "dandi": False, "inspect": "off"}]
    config.write_text(json.dumps(cfg))
    reads = _counting(monkeypatch)
    result = generate(load_config(config))

    source = (tmp_path / "demo" / "demo_g0" / "demo_g0_t0.imec0.ap.bin").resolve()
    assert reads[source] == 1, reads  # before: once by the NWB writer's thread, once by the manifest
    assert max(reads.values()) == 1  # no file of the run is read twice
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["sources"][0]["sha256"] == expected
    [nwb] = result.output_dir.glob("*.nwb")
    with h5py.File(nwb, "r") as f:
        inputs = f["processing/hybridkit/inputs"]
        names = [n.decode() for n in inputs["file_name"][()]]
        assert inputs["sha256"][names.index(source.name)].decode() == expected
