"""publish/organize: a hybrid NWB placed into the dandiset folder, and dandiset.yaml, whole or
not at all (formats/atomic_files); the output's own file is never changed."""
from __future__ import annotations

import os

import pytest
import yaml

from hybridkit.publish.organize import HybridNwb, place, write_dandiset_yaml

ASSET = "sub-m1/sub-m1_ses-s1_ecephys.nwb"


def _interrupted(src, dst):
    raise KeyboardInterrupt


@pytest.fixture
def nwb(tmp_path) -> HybridNwb:
    path = tmp_path / "run" / "demo.nwb"
    path.parent.mkdir()
    path.write_bytes(b"new hybrid nwb bytes")
    return HybridNwb(path=path, subject_id="m1", session_id="s1")


def test_place_links_over_an_older_file_and_removes_a_stale_partial(nwb, tmp_path):
    ds = tmp_path / "ds"
    (ds / "sub-m1").mkdir(parents=True)
    (ds / ASSET).write_bytes(b"an older version")
    stale = ds / "sub-m1" / f".{(ds / ASSET).name}.partial-0badc0de"
    stale.write_bytes(b"half a copy a killed publish left")
    assert place(nwb, ds) == ds / ASSET
    assert os.path.samefile(ds / ASSET, nwb.path)  # a hard link: no second copy of GBs
    assert sorted(p.name for p in (ds / "sub-m1").iterdir()) == ["sub-m1_ses-s1_ecephys.nwb"]
    assert place(nwb, ds) == ds / ASSET  # already there: kept


def test_place_copies_where_links_fail(nwb, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    target = place(nwb, tmp_path / "ds")
    assert target.read_bytes() == nwb.path.read_bytes() and not os.path.samefile(target, nwb.path)


def test_interrupted_place_and_yaml_leave_the_previous_files(nwb, tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    (ds / "sub-m1").mkdir(parents=True)
    (ds / ASSET).write_bytes(b"an older version")
    write_dandiset_yaml(ds, {"name": "old"})
    before = {p.relative_to(ds).as_posix(): p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    monkeypatch.setattr(os, "replace", _interrupted)
    with pytest.raises(KeyboardInterrupt):
        place(nwb, ds)
    with pytest.raises(KeyboardInterrupt):
        write_dandiset_yaml(ds, {"name": "new"})
    assert {p.relative_to(ds).as_posix(): p.read_bytes() for p in ds.rglob("*") if p.is_file()} == before
    assert yaml.safe_load((ds / "dandiset.yaml").read_text()) == {"name": "old"}
    assert nwb.path.read_bytes() == b"new hybrid nwb bytes"
    # into a dandiset folder that did not exist: no folder is left behind either
    with pytest.raises(KeyboardInterrupt):
        place(nwb, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
