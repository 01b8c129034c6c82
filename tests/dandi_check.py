"""``dandi organize`` and ``dandi validate``, offline, on every hybrid NWB the suite writes.

tests/conftest.py records each NWB file the ``nwb`` writer finishes in-process with its DANDI
checks on (``dandi: true``; files written with ``dandi: false`` are not meant for DANDI), follows it
through the rename of the staging folder, and after each test runs the dandi client's organize
(hard links into a scratch dandiset) and validator on the files that test (or the fixtures it
used) wrote. Any validation error fails that test.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: (NWB path as written in the staging folder) of finished files waiting for the check
pending: list[Path] = []
#: staging folder -> output folder, as renamed by the pipeline
renamed: dict[Path, Path] = {}


def record_finish(original):
    def finish(self, truth, out_dir):
        files = original(self, truth, out_dir)
        if getattr(self.options, "dandi", False):
            pending.append(Path(self.path))
        return files
    return finish


def record_commit(original):
    def commit_staging(staging, out_dir, overwrite):
        original(staging, out_dir, overwrite)
        renamed[Path(staging)] = Path(out_dir)
    return commit_staging


def _final(path: Path) -> Path:
    return renamed[path.parent] / path.name if path.parent in renamed else path


def check_pending() -> list[str]:
    """Organize and validate every pending file that exists; the error lines (empty when none)."""
    from dandi.organize import FileOperationMode, organize

    from hybridkit.publish.upload import validation_errors

    todo = [p for p in map(_final, pending) if p.is_file()]
    pending.clear()
    errors = []
    old = os.environ.get("DANDI_NO_ET")
    os.environ["DANDI_NO_ET"] = "1"  # no online version check
    try:
        for nwb in todo:
            with tempfile.TemporaryDirectory(prefix="dandiset-") as d:
                ds = Path(d)
                (ds / "dandiset.yaml").write_text("identifier: '000999'\nname: hybridkit test\n"
                                                  "description: hybrid ground truth written by the tests\n")
                organize([str(nwb)], dandiset_path=str(ds), files_mode=FileOperationMode.HARDLINK, jobs=1)
                if not list(ds.rglob("*.nwb")):
                    errors.append(f"{nwb}: dandi organize placed nothing")
                errors += [f"{nwb}: {e}" for e in validation_errors(ds)]
    finally:
        if old is None:
            os.environ.pop("DANDI_NO_ET", None)
        else:
            os.environ["DANDI_NO_ET"] = old
    return errors
