"""Files that appear whole or not at all.

Each file is written under a temporary name beside its target (``.<name>.partial-XXXXXXXX``, the
same folder, so the rename cannot cross file systems) and all of them are renamed over their
targets together when the block ends without an error. An interrupted or failed command leaves
no half-written file, and an existing file is only ever replaced by a complete one. Used by the
commands that write single files or a few tables (``score``, ``report``, ``units --csv``,
``example``, ``augment``, a study's ``study.json``, ``study score``'s tables, ``study report``,
``publish``'s dandiset folder), the template database's cache and a staging folder's owner
record; ``generate`` stages a whole folder instead and renames the folder
(:func:`hybridkit.run.provenance.commit_staging`: ``os.replace`` cannot put a folder over one).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from hybridkit.errors import output_write_error


class AtomicFiles:
    """``with AtomicFiles() as files: write(files.temp(target))``: targets replaced at the end.

    Folders created for the targets are removed again, when still empty, if the block fails.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._made: list[Path] = []

    def temp(self, target: str | Path) -> Path:
        """The temporary path to write ``target``'s content to (its folder is created)."""
        target = Path(target)
        missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder goes, no permission: the user's to fix
            raise output_write_error(target, exc, "path") from None
        self._made.extend(reversed(missing))  # outermost first; removed innermost first
        tmp = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
        self._pending.append((tmp, target))
        return tmp

    def __enter__(self) -> "AtomicFiles":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        pending, self._pending = self._pending, []
        if exc_type is None:
            try:
                for tmp, target in pending:
                    os.replace(tmp, target)
                return False
            except OSError as err:
                self._discard(pending)
                _raise_for_target(err, pending)
                raise
            except BaseException:
                self._discard(pending)
                raise
        self._discard(pending)
        if isinstance(exc, OSError):
            _raise_for_target(exc, pending)
        return False

    def _discard(self, pending: list[tuple[Path, Path]]) -> None:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:  # not empty (another file landed there) or already gone
                pass
        self._made = []


def _raise_for_target(exc: OSError, pending: list[tuple[Path, Path]]) -> None:
    """An OSError on one of the targets or their temporary files (permission denied, disk full,
    a folder where the file goes) is the user's to fix: one OutputError line naming the target.
    Any other OSError is left as it is."""
    where = {exc.filename, exc.filename2} - {None}
    for tmp, target in pending:
        if where & {str(tmp), str(target)}:
            raise output_write_error(target, exc, "path") from None
