"""Who owns a staging folder, and removing the ones whose run is gone.

A run writes into ``.<name>.partial-XXXX`` beside its output and renames it into place at the end
(:func:`hybridkit.run.provenance.commit_staging`: a whole folder, which
:mod:`hybridkit.formats.atomic_files`, replacing files, cannot do; the owner record, one file, is
written through it).
A run killed with SIGKILL (or a machine that lost power) cannot remove its staging folder, and it
may hold hundreds of MB. So each staging folder records its owner (pid, host, the process's start
time) in :data:`OWNER_FILE`; the next run into the same output removes the staging folders whose
owner is no longer alive on this host, refuses to start while one is alive (two runs cannot both
write one output), and leaves alone what it cannot judge (another host's, or one without a record).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path

from hybridkit.errors import OutputError
from hybridkit.formats.atomic_files import AtomicFiles

log = logging.getLogger(__name__)

#: inside each staging folder; removed just before the folder is renamed into place
OWNER_FILE = ".hybridkit-staging.json"


def staging_prefix(out_dir: Path) -> str:
    """Name prefix of the staging folders (in ``out_dir.parent``) of runs into ``out_dir``."""
    return f".{out_dir.name}.partial-"


def old_prefix(out_dir: Path) -> str:
    """Name prefix of a replaced output while ``overwrite`` deletes it."""
    return f".{out_dir.name}.old-"


def staging_folders(out_dir: Path, prefix: str | None = None) -> list[Path]:
    """The staging folders of runs into ``out_dir`` that exist now (no glob: names may hold '['),
    or the folders with another ``prefix`` beside it."""
    prefix = prefix or staging_prefix(out_dir)
    try:
        return sorted(p for p in out_dir.parent.iterdir()
                      if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink())
    except OSError:  # no parent yet: no staging folders
        return []


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (Linux), or None where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and ')'


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None  # field 22 of proc(5)


def write_owner(staging: Path) -> None:
    """Record this process as the owner of ``staging``."""
    pid = os.getpid()
    owner = {"pid": pid, "host": socket.gethostname(), "process_start": _process_start(pid),
             "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    # Written whole or not at all: a run killed mid-write must not leave an empty record.
    with AtomicFiles() as pending:
        pending.temp(staging / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")


def read_owner(staging: Path) -> dict | None:
    try:
        owner = json.loads((staging / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) \
            or not isinstance(owner.get("host"), str):
        return None
    return owner


def pid_alive(pid: int, process_start: int | None = None) -> bool:
    """Whether process ``pid`` runs on this host (and, when known, is the one started then)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent: gone
        return False
    if process_start is not None:
        now = _process_start(pid)
        if now is not None and now != process_start:
            return False  # the pid was reused by a later process
    return True


def release(staging: Path) -> None:
    """Drop the owner record: the folder is about to become the output."""
    (staging / OWNER_FILE).unlink(missing_ok=True)


def sweep(out_dir: Path) -> None:
    """Before a run into ``out_dir``: remove stale staging folders of runs into it.

    Removed (one warning line each): the owner ran on this host and is gone; and a replaced
    output (``.<name>.old-*``) whose deletion was cut short, once ``out_dir`` exists. Left, with
    a warning: another host's, or without an owner record (nothing tells whether a run still
    writes there).

    Raises:
        OutputError: a run that is alive on this host is writing into ``out_dir``.
    """
    here = socket.gethostname()
    for staging in staging_folders(out_dir):
        owner = read_owner(staging)
        if owner is None:
            log.warning("left %s: it has no owner record (an older hybridkit, or a run killed as "
                        "it started); remove it if no run is writing there", staging)
        elif owner["host"] != here:
            log.warning("left %s: it belongs to a run on host %s (pid %d), which cannot be "
                        "checked from %s; remove it if that run has ended",
                        staging, owner["host"], owner["pid"], here)
        elif pid_alive(owner["pid"], owner.get("process_start")):
            raise OutputError(f"output.directory: {out_dir} is being written by another run "
                              f"(pid {owner['pid']} on {here}, started {owner.get('started')}, "
                              f"staging in {staging.name}); wait for it to end or choose "
                              "another folder")
        else:
            shutil.rmtree(staging, ignore_errors=True)
            log.warning("removed %s, left by a run that is no longer running (pid %d on %s, "
                        "started %s)", staging, owner["pid"], here, owner.get("started"))
    # a replaced output whose deletion was cut short: garbage once its successor is in place
    for old in staging_folders(out_dir, old_prefix(out_dir)):
        if out_dir.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            log.warning("removed %s, an output replaced by %s whose deletion was interrupted",
                        old, out_dir)
        else:
            log.warning("left %s: an output being replaced when a run was interrupted; rename it "
                        "to %s to keep it, or remove it", old, out_dir.name)
