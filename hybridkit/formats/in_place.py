"""In-place runs (``output.in_place``): the hybrid is the source file itself, with an exact reset.

For recordings too large to copy, a run may patch its source in place. Before any byte of the
source is overwritten, its original value is appended to an undo file and the undo file is
fsync'd, so at any moment (even after ``kill -9`` or a power loss) the undo file holds every
original byte that the source no longer holds. ``hybridkit reset OUTPUT_DIR`` writes them back.

The journal is a folder beside the output, ``.<output name>.in-place`` (not inside the output: a
run that dies leaves no output folder, only its journal). It holds

* ``state.json``: the source path and size, and, once the run completed, the source's mtime and
  the SHA-256 of the patched byte ranges after patching (so that reset can refuse a source that
  changed since);
* ``undo.bin``: records of ``offset`` (uint64 LE), ``length`` (uint64 LE) and ``length`` original
  bytes. A record cut short by a crash is ignored: its bytes were fsync'd before the source was
  written, so a short record means the source write never happened.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

from hybridkit.errors import OutputError

STATE = "state.json"
UNDO = "undo.bin"
_HEAD = struct.Struct("<QQ")  # offset, length (bytes)


def journal_dir(out_dir: Path) -> Path:
    """The journal folder of in-place runs into ``out_dir``."""
    out_dir = Path(out_dir).resolve()
    return out_dir.parent / f".{out_dir.name}.in-place"


def _write_state(journal: Path, state: dict) -> None:
    tmp = journal / (STATE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, journal / STATE)


def read_state(out_dir: Path) -> dict | None:
    """The journal state of ``out_dir``, or None when its source is not modified in place."""
    path = journal_dir(out_dir) / STATE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def notice(out_dir: Path) -> str | None:
    """One line saying that ``out_dir``'s source is modified in place, or None."""
    state = read_state(out_dir)
    if state is None:
        return None
    how = "completed" if state.get("complete") else "did not complete"
    return (f"the source {state['source']} is modified in place by the run into {out_dir} (the run "
            f"{how}); `hybridkit reset {out_dir}` restores it")


class UndoJournal:
    """Save original bytes of ``source`` before they are overwritten; see the module docstring."""

    def __init__(self, out_dir: Path, source: Path) -> None:
        self.journal = journal_dir(out_dir)
        self.source = Path(source).resolve()
        if (self.journal / STATE).exists():
            raise OutputError(f"output.in_place: {self.source} is still modified in place by an "
                              f"earlier run into {out_dir}: run `hybridkit reset {out_dir}` first")
        self.journal.mkdir(parents=True, exist_ok=True)
        self._hash = hashlib.sha256()  # of (offset, patched bytes) in write order
        _write_state(self.journal, {"source": str(self.source), "bytes": self.source.stat().st_size,
                                    "complete": False})
        self._undo = os.open(self.journal / UNDO, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _fsync_dir(self.journal)

    def save(self, fd: int, offset: int, length: int) -> None:
        """Append the ``length`` bytes at ``offset`` of the source (open as ``fd``) to the undo
        file and make them durable: the caller may overwrite them once this returns."""
        original = os.pread(fd, length, offset)
        if len(original) != length:
            raise OutputError(f"output.in_place: {self.source} ended before byte {offset + length}")
        record = _HEAD.pack(offset, length) + original
        done = 0
        while done < len(record):
            done += os.write(self._undo, record[done:])
        os.fdatasync(self._undo)

    def patched(self, offset: int, data: bytes | memoryview) -> None:
        """Note the bytes written at ``offset`` (for reset's check that the source is unchanged)."""
        self._hash.update(_HEAD.pack(offset, len(data)))
        self._hash.update(data)

    def complete(self, fd: int) -> None:
        """The run wrote everything: make the source durable and record how it looks now."""
        os.fsync(fd)
        os.close(self._undo)
        st = os.stat(self.source)
        _write_state(self.journal, {"source": str(self.source), "bytes": st.st_size, "complete": True,
                                    "mtime_ns": st.st_mtime_ns, "patched_sha256": self._hash.hexdigest()})

    def close(self) -> None:
        """After a failed run: the undo file stays (reset restores what was written)."""
        try:
            os.close(self._undo)
        except OSError:
            pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _records(undo: Path):
    """(offset, original bytes) of each complete record of an undo file, in write order."""
    data = undo.read_bytes() if undo.exists() else b""
    pos = 0
    while pos + _HEAD.size <= len(data):
        offset, length = _HEAD.unpack_from(data, pos)
        if pos + _HEAD.size + length > len(data):
            break  # cut short by a crash: the source write it guarded never happened
        yield offset, data[pos + _HEAD.size : pos + _HEAD.size + length]
        pos += _HEAD.size + length


def reset(out_dir: Path) -> tuple[Path, int]:
    """Restore the source of an in-place run into ``out_dir`` bit for bit; return it and the
    number of bytes written back. Refuses (OutputError) when the source changed since the run."""
    journal = journal_dir(out_dir)
    state = read_state(out_dir)
    if state is None:
        raise OutputError(f"{out_dir}: no in-place journal ({journal}): its source was not "
                          "modified in place, or it was reset already")
    source = Path(state["source"])
    try:
        st = os.stat(source)
    except OSError as exc:
        raise OutputError(f"reset {out_dir}: cannot open the source {source}: {exc.strerror}") from None
    if st.st_size != state["bytes"]:
        raise OutputError(f"reset {out_dir}: the source {source} has {st.st_size} bytes, the run left "
                          f"{state['bytes']}: it changed since; refusing to reset")
    records = list(_records(journal / UNDO))
    fd = os.open(source, os.O_RDWR)
    try:
        if state.get("complete"):
            digest = hashlib.sha256()
            for offset, original in records:
                digest.update(_HEAD.pack(offset, len(original)))
                digest.update(os.pread(fd, len(original), offset))
            if st.st_mtime_ns != state["mtime_ns"] or digest.hexdigest() != state["patched_sha256"]:
                raise OutputError(f"reset {out_dir}: the source {source} changed since the in-place "
                                  "run (modification time or patched bytes differ); refusing to reset")
        restored = 0
        for offset, original in reversed(records):  # the oldest original wins where they overlap
            view = memoryview(original)
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + done)
            restored += len(original)
        os.fsync(fd)
    finally:
        os.close(fd)
    for name in (UNDO, STATE):
        (journal / name).unlink(missing_ok=True)
    journal.rmdir()
    _mark_output_reset(Path(out_dir), source)
    return source, restored


def _mark_output_reset(out_dir: Path, source: Path) -> None:
    """The output no longer has a hybrid: remove its links to the source and say so in its
    manifest (a run killed mid-way left no output folder: nothing to do)."""
    if not out_dir.is_dir():
        return
    for entry in out_dir.iterdir():
        if entry.is_symlink() and entry.resolve() == source.resolve():
            entry.unlink()
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if "source_modified_in_place" in data:
            data["source_modified_in_place"]["restored"] = True
            manifest.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def check_in_place(cfg, recording) -> None:
    """Refuse an ``output.in_place`` run that cannot be undone exactly, naming the field."""
    name = cfg.output.in_place
    files = recording.files
    if not recording.flat_binary or len(files) != 1 or recording.order != "samples":
        raise OutputError(f"output.in_place: {name!r}: only a single samples-major binary file can be "
                          f"patched in place; recording {recording.name} has {len(files)} file(s), "
                          f"order {recording.order!r}")
    if Path(files[0].path).name != name:
        raise OutputError(f"output.in_place: {name!r} is not the source file's name; to patch the "
                          f"source in place, set it to {Path(files[0].path).name!r}")
    if not any(w.type == "legacy" for w in cfg.writers):
        raise OutputError("output.in_place: needs the legacy writer (writers [{\"type\": \"legacy\"}]): "
                          "it is the one that writes the hybrid binary")
