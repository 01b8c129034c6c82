"""``hybridkit publish`` with the real dandi client library against a local archive on 127.0.0.1,
and reading a published hybrid back (score, --from-nwb) from that archive, streamed."""
from __future__ import annotations

import json

import h5py
import pytest

from tests.helpers import main, write_phy

from .dandi_archive_server import API_KEY, LocalArchive

ASSET = "sub-mouse01/sub-mouse01_ses-demo_ecephys.nwb"
META = """dandiset:
  name: Hybrid ground truth demo
  description: Units of the example sorting injected back at known places and times.
  license: spdx:CC-BY-4.0
  contributors:
    - {name: "Doe, Jane", email: jane@example.org, roles: [ContactPerson, Author]}
"""


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("DANDI_NO_ET", "1")  # no etelemetry version check: the client's only other network use
    monkeypatch.setenv("DANDI_API_KEY", API_KEY)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    with LocalArchive(tmp_path_factory.mktemp("archive")) as a:
        yield a


def _sent(archive, since: int = 0) -> list[tuple[str, str]]:
    """Writes the client made to the archive after log entry ``since``."""
    return [(m, p) for m, p, _, _ in archive.state.log[since:] if m in ("POST", "PUT", "DELETE")]


@pytest.fixture(scope="module")
def published(pub_run, archive, tmp_path_factory):
    """The run published with --create; returns (dandiset id, dandiset folder, stdout)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DANDI_NO_ET", "1")
    mp.setenv("DANDI_API_KEY", API_KEY)
    root = tmp_path_factory.mktemp("publish")
    (root / "meta.yaml").write_text(META)
    from hybridkit.cli import main as cli_main

    try:
        code = cli_main(["publish", str(pub_run.output_dir), "--create", str(root / "meta.yaml"),
                         "--instance", archive.api, "--dandiset-dir", str(root / "ds")])
    finally:
        mp.undo()
    assert code == 0
    (did,) = archive.state.dandisets
    return did, root / "ds"


def test_upload_bytes_and_metadata(published, archive, pub_run):
    did, ds = published
    d = archive.state.dandisets[did]
    (asset,) = d["assets"].values()
    assert asset["path"] == ASSET
    organized = ds / ASSET
    sent = archive.state.blobs[asset["blob"]]["path"].read_bytes()
    assert sent == organized.read_bytes() == (pub_run.output_dir / "demo.nwb").read_bytes()
    meta = asset["metadata"]
    assert meta["path"] == ASSET and meta["contentSize"] == organized.stat().st_size
    assert meta["encodingFormat"] == "application/x-nwb"
    assert [s["identifier"] for s in meta["wasAttributedTo"]] == ["mouse01"]
    assert meta["wasAttributedTo"][0]["species"]["identifier"].endswith("NCBITaxon_10090")
    assert meta["digest"]["dandi:dandi-etag"].endswith("-1")  # the etag the archive verified
    # the dandiset: hybrid ground truth, hybridkit's version, a contact person; dandiset.yaml matches
    dmeta = d["metadata"]
    assert "hybrid ground-truth data for spike sorting, made with hybridkit" in dmeta["description"]
    assert "demo_g0_t0.imec0.ap.bin" in dmeta["description"]  # the source, by identity
    assert dmeta["contributor"][0]["roleName"] == ["dcite:ContactPerson", "dcite:Author"]
    import yaml

    local = yaml.safe_load((ds / "dandiset.yaml").read_text())
    assert local["identifier"] == f"DANDI:{did}" and local["description"] == dmeta["description"]


def test_second_run_uploads_nothing(published, archive, pub_run, offline, tmp_path, capsys):
    did, ds = published
    before = len(archive.state.log)
    code, out, err = main(capsys, "publish", pub_run.output_dir, "--dandiset", did,
                          "--instance", archive.api, "--dandiset-dir", ds)
    assert code == 0, err
    assert f"unchanged {ASSET}" in out
    assert _sent(archive, before) == []  # no upload, no asset, no metadata write
    assert len(archive.state.dandisets[did]["assets"]) == 1

    # a changed file (another identifier: other bytes, same name) replaces the asset
    import shutil

    changed = tmp_path / "changed"
    changed.mkdir()
    shutil.copyfile(pub_run.output_dir / "demo.nwb", changed / "demo.nwb")
    with h5py.File(changed / "demo.nwb", "r+") as f:
        del f["identifier"]
        f.create_dataset("identifier", data="another-identifier")
    code, out, err = main(capsys, "publish", changed, "--dandiset", did, "--instance", archive.api,
                          "--dandiset-dir", tmp_path / "ds2")
    assert code == 0, err
    assert f"uploaded {ASSET}" in out
    (asset,) = archive.state.dandisets[did]["assets"].values()
    assert archive.state.blobs[asset["blob"]]["path"].read_bytes() == (changed / "demo.nwb").read_bytes()
    assert (changed / "demo.nwb").read_bytes() != (pub_run.output_dir / "demo.nwb").read_bytes()


def test_dry_run_sends_nothing(pub_run, archive, offline, tmp_path, capsys):
    (tmp_path / "meta.yaml").write_text(META)
    before = len(archive.state.log)
    code, out, err = main(capsys, "publish", pub_run.output_dir, "--create", tmp_path / "meta.yaml",
                          "--instance", archive.api, "--dandiset-dir", tmp_path / "ds", "--dry-run")
    assert code == 0, err
    assert f"would upload {ASSET} ({(pub_run.output_dir / 'demo.nwb').stat().st_size} bytes)" in out
    assert archive.state.log[before:] == []  # a dry run of --create needs no archive at all
    assert (tmp_path / "ds" / ASSET).is_file() and (tmp_path / "ds" / "dandiset.yaml").is_file()


def test_refusals_before_any_network_call(pub_run, archive, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    before = len(archive.state.log)
    code, _, err = main(capsys, "publish", pub_run.output_dir, "--dandiset", "000001",
                        "--instance", archive.api, "--dandiset-dir", tmp_path / "ds")
    assert code == 2 and "DANDI_API_KEY" in err and err.count("\n") == 1
    code, _, err = main(capsys, "publish", pub_run.output_dir, "--dandiset", "000001",
                        "--instance", "dandi-sandbox", "--dandiset-dir", tmp_path / "ds")
    assert code == 2 and "DANDI_SANDBOX_API_KEY" in err
    monkeypatch.setenv("DANDI_API_KEY", API_KEY)
    (tmp_path / "meta.yaml").write_text(META.replace("email: jane@example.org, ", ""))
    code, _, err = main(capsys, "publish", pub_run.output_dir, "--create", tmp_path / "meta.yaml",
                        "--instance", archive.api, "--dandiset-dir", tmp_path / "ds")
    assert code == 2 and "contributor.0" in err and "email" in err
    # an NWB that is not a hybridkit output: says what is missing
    import numpy as np

    from tests.plugins.nwb_testutil import write_nwb

    other = write_nwb(tmp_path / "plain.nwb", np.zeros((100, 4), np.int16))
    code, _, err = main(capsys, "publish", other, "--dandiset", "000001", "--instance", archive.api)
    assert code == 2 and "subject.subject_id" in err and "run_config" in err
    assert archive.state.log[before:] == []
    assert not (tmp_path / "ds").exists()


def test_incomplete_dandiset_metadata_is_refused(pub_run, archive, offline, tmp_path, capsys):
    """An existing dandiset without description, license or contact: one line, nothing uploaded."""
    archive.add_asset("000555", "sub-x/sub-x_ecephys.nwb", pub_run.output_dir / "config.resolved.json")
    before = len(archive.state.log)
    code, _, err = main(capsys, "publish", pub_run.output_dir, "--dandiset", "000555",
                        "--instance", archive.api, "--dandiset-dir", tmp_path / "ds")
    assert code == 2 and err.count("\n") == 1
    assert "dandiset 000555" in err and "description" in err and "license" in err and "contributor" in err
    assert _sent(archive, before) == []


def test_score_and_from_nwb_stream_the_published_asset(published, archive, pub_run, offline,
                                                       tmp_path, capsys):
    """score reads only the Units table of the asset; --from-nwb rebuilds the same config from it."""
    did, _ = published
    host = archive.url.removeprefix("http://")
    uri = f"dandi://{host}/{did}@draft/{ASSET}"
    plan, fs = pub_run.truth.plan, pub_run.truth.recording.sampling_rate
    new_ids = [u.new_unit_id for u in plan.units]
    sorting = write_phy(tmp_path / "sorted", plan.times, [new_ids[k] for k in plan.unit_index], fs)
    before = len(archive.state.log)
    code, out, err = main(capsys, "score", uri, sorting, "-o", tmp_path / "score")
    assert code == 0, err
    score = json.loads((tmp_path / "score" / "score.json").read_text())
    assert score["summary"]["mean_accuracy"] == 1.0
    served = sum(n for m, p, _, n in archive.state.log[before:] if m == "GET" and p.startswith("/s3/blobs/"))
    (asset,) = archive.state.dandisets[did]["assets"].values()  # (replaced by an earlier test)
    size = asset["size"]
    assert 0 < served < 0.1 * size  # the traces were not fetched
    assert f"fetched {served:,} of {size:,} bytes" in out
    # the same file by its plain URL (the archive's blob store): the same score
    code, out, err = main(capsys, "score", f"{archive.url}/s3/blobs/{asset['blob']}", sorting,
                          "-o", tmp_path / "score_url")
    assert code == 0, err
    assert json.loads((tmp_path / "score_url" / "score.json").read_text())["units"] == score["units"]

    from hybridkit.publish.from_nwb import config_from_nwb

    example = pub_run.truth.recording.files[0].path.parents[1]
    search = [example, example / "demo_g0"]
    streamed = config_from_nwb(uri, search, tmp_path / "again")
    local = config_from_nwb(str(pub_run.output_dir / "demo.nwb"), search, tmp_path / "again")
    assert streamed == local
    assert streamed["recording"]["path"] == str(pub_run.truth.recording.files[0].path.resolve())
    with h5py.File(pub_run.output_dir / "demo.nwb", "r") as f:
        assert "processing/hybridkit/run_config" in f


def test_dandi_source_named_by_identity_and_regenerated(pub_example, archive, offline, tmp_path, capsys):
    """A run whose source is a DANDI asset (streamed from the local archive) records the asset's
    id, version and SHA-256; --from-nwb streams it again and makes the same ground truth."""
    from hybridkit.config.run_config import load_config
    from hybridkit.run.pipeline import generate
    from hybridkit.formats.checksums import sha256
    from tests.helpers import config_with
    from tests.plugins.nwb_testutil import example_to_nwb

    from .conftest import NWB_META

    src = example_to_nwb(pub_example, tmp_path / "source.nwb")
    asset_id = archive.add_asset("000777", "sub-mouse01/sub-mouse01_ecephys.nwb", src)
    recording = {"type": "nwb", "dandiset": "000777", "asset_path": "sub-mouse01/sub-mouse01_ecephys.nwb",
                 "dandi_instance": archive.api}
    nwb = {"type": "nwb", **NWB_META, "traces": False, "inspect": "off"}
    cfg = config_with(pub_example, tmp_path, writers=[nwb], templates={"type": "local", "min_spikes": 5},
                      engine={"chunk_duration_s": 0.5, "progress": False},
                      output={"directory": str(tmp_path / "first")})
    data = json.loads(cfg.read_text())
    data["recording"] = recording  # replaced whole: a DANDI asset instead of the SpikeGLX path
    cfg.write_text(json.dumps(data))
    first = generate(load_config(cfg))
    with h5py.File(first.output_dir / "demo.nwb", "r") as f:
        g = f["processing/hybridkit/inputs"]
        k = [v.decode() for v in g["field"][()]].index("/recording/dandiset")
        got = {c: g[c][k] for c in ("kind", "dandiset", "dandiset_version", "asset_id", "sha256", "bytes")}
    assert {c: (v.decode() if isinstance(v, bytes) else int(v)) for c, v in got.items()} == {
        "kind": "dandi_asset", "dandiset": "000777", "dandiset_version": "draft", "asset_id": asset_id,
        "sha256": sha256(src), "bytes": src.stat().st_size}
    code, _, err = main(capsys, "generate", "--from-nwb", first.output_dir / "demo.nwb",
                        "--inputs", pub_example, "-o", tmp_path / "again")
    assert code == 0, err
    with h5py.File(first.output_dir / "demo.nwb", "r") as a, h5py.File(tmp_path / "again" / "demo.nwb", "r") as b:
        for col in ("spike_times", "spike_times_index", "amplitude_scale", "spike_peak_channel"):
            assert (a[f"units/{col}"][()] == b[f"units/{col}"][()]).all(), col
        for col in ("time_samples", "unit", "gain", "template_row"):
            assert (a[f"processing/hybridkit/injected_events/{col}"][()] ==
                    b[f"processing/hybridkit/injected_events/{col}"][()]).all(), col


@pytest.mark.parametrize("where", ["the output", "inside the output", "above the output"])
def test_the_dandiset_folder_is_never_an_output(pub_run, archive, offline, tmp_path, capsys, where):
    """--dandiset-dir gets new files and is validated whole: it may not be an output folder, lie
    inside one or hold one; refused in one line before any work or archive call."""
    out = pub_run.output_dir
    folder = {"the output": out, "inside the output": out / "ds", "above the output": out.parent}[where]
    before_files = sorted(p.relative_to(out.parent) for p in out.parent.rglob("*"))
    before = len(archive.state.log)
    code, _, err = main(capsys, "publish", out, "--dandiset", "000001", "--instance", archive.api,
                        "--dandiset-dir", folder)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"hybridkit: error: --dandiset-dir: {folder} ")
    assert f"the output {out}" in err
    assert archive.state.log[before:] == []
    assert sorted(p.relative_to(out.parent) for p in out.parent.rglob("*")) == before_files
