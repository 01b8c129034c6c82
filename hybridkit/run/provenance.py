"""Atomic output folders, the resolved config and the manifest.

Outputs are written into a hidden staging folder beside the target and renamed into place only
when every writer has finished, so an interrupted or failed run never leaves a complete-looking
output folder. The manifest records versions, the seed, the sources and the files written (with
SHA-256 checksums according to ``output.checksums``).
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
import uuid
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from hybridkit.errors import OutputError
from hybridkit.formats.checksums import SIDECAR_MAX_BYTES, FileDigests
from hybridkit.run import interrupts
from hybridkit.run import staging as staging_owner
from hybridkit.run.output_guard import MANIFEST, replace_refusal

RESOLVED_CONFIG = "config.resolved.json"


def open_staging(out_dir: Path, overwrite: bool) -> Path:
    """Create the staging folder for ``out_dir``, owned by this process; fail early if the target
    cannot be written or another live run writes into it. Stale staging folders of runs into
    ``out_dir`` that are gone are removed first (:func:`hybridkit.run.staging.sweep`).

    The caller has checked the target itself (:func:`hybridkit.run.output_guard.check_output`).
    """
    for parent in out_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"output.directory: {out_dir} cannot be created: {parent} is a file, "
                              "not a folder; choose a writable folder")
    staging_owner.sweep(out_dir)
    staging = out_dir.parent / f"{staging_owner.staging_prefix(out_dir)}{uuid.uuid4().hex[:8]}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        staging_owner.write_owner(staging)
    except OSError as exc:
        discard_staging(staging)
        raise OutputError(f"output.directory: cannot write in {out_dir.parent} "
                          f"({exc.strerror or exc}); choose a writable folder") from None
    except BaseException:  # interrupted between the two: not a folder without an owner record
        discard_staging(staging)
        raise
    return staging


def discard_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def commit_staging(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Rename the finished staging folder to ``out_dir`` (replacing it when ``overwrite``).

    ``out_dir`` was checked before the run; if it appeared or changed meanwhile (another run, a
    user), it is checked again and left as it is when it may not be replaced: the caller then
    discards this run's staging folder, as the message says.
    """
    # Not formats/atomic_files: that replaces files with os.replace, which cannot put a folder
    # over an existing non-empty one. A whole folder is committed with two renames (the old
    # output aside, the staging folder into place), the old one restored if interrupted between.
    # a run stopped by Ctrl-C or SIGTERM is never committed, even if the KeyboardInterrupt its
    # signal raised was lost (see run/interrupts.py)
    interrupts.raise_if_interrupted()
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        reason = replace_refusal(out_dir, overwrite)
        if reason is not None:
            raise OutputError(f"output.directory: {out_dir} was written by someone else while this "
                              f"run was writing (another run?) and is left as it is: it {reason}; "
                              "this run's output was discarded")
        old = out_dir.parent / f"{staging_owner.old_prefix(out_dir)}{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
    try:
        staging_owner.release(staging)
        staging.rename(out_dir)
    except BaseException:  # interrupted between the two renames: put the previous output back
        if old is not None and not out_dir.exists():
            old.rename(out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_resolved_config(cfg, staging: Path) -> Path:
    """The config with every default filled in and the seed used, as JSON."""
    path = staging / RESOLVED_CONFIG
    path.write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return path


def _versions(reg) -> dict[str, str]:
    names = ["hybridkit", "numpy", "scipy", "pydantic", "pluggy", "probeinterface"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    for info in reg.all():  # third-party plugin distributions too
        out.setdefault(info.distribution, info.version)
    return out


def write_manifest(staging: Path, cfg, recording, truth, files: list[Path], checksums: str, reg,
                   digests: FileDigests | None = None) -> Path:
    """Write manifest.json: versions, seed, sources and outputs (sizes, checksums), totals.

    ``digests`` is the run's (a file a plugin hashed already, e.g. the source for the NWB
    provenance, is not read again; a hard link is read once)."""
    digests = digests if digests is not None else FileDigests()

    def hashed(size: int) -> bool:
        return checksums == "all" or (checksums == "sidecars" and size <= SIDECAR_MAX_BYTES)

    def entry(p: Path) -> dict:
        st = p.stat()
        item = {"path": p.relative_to(staging).as_posix(), "bytes": st.st_size}
        if hashed(st.st_size):
            item["sha256"] = digests.sha256(p)
        return item

    def source(f) -> dict:
        # remote sources (URL, DANDI asset) have no local file to measure; local ones get a
        # SHA-256 by the same rule as the outputs, so `hybridkit verify` can prove them unchanged
        size = f.path.stat().st_size if f.path.is_file() else None
        item = {"path": str(f.path), "bytes": size, "n_samples": f.n_samples,
                "first_sample": f.first_sample}
        if size is not None and hashed(size):
            item["sha256"] = digests.sha256(f.path)
        return item

    manifest = {
        "tool": "hybridkit",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "versions": _versions(reg),
        "session": truth.session,
        "seed": truth.seed,
        "sampling_rate_hz": recording.sampling_rate,
        "dtype": recording.dtype.str,
        "n_channels": recording.n_channels,
        "sources": [source(f) for f in recording.files],
        "injected_units": len(truth.plan.units),
        "injected_events": truth.plan.n_events,
        "clipped_samples": truth.clipped_samples,
        "skipped_units": {str(k): v for k, v in truth.skipped_units.items()},
        "checksums": checksums,
        "files": [entry(p) for p in sorted(set(files))],
    }
    if getattr(cfg.output, "in_place", None):
        # the run's one exception to "the source is never modified": say so where users look
        out_name = staging.name[1:].rsplit(".partial-", 1)[0]  # see staging.staging_prefix
        manifest["source_modified_in_place"] = {
            "source": str(recording.files[0].path),
            "journal": f"../.{out_name}.in-place (beside this folder; see hybridkit.formats.in_place)",
            "reset": "hybridkit reset OUTPUT_DIR restores the source bit for bit",
        }
    path = staging / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path
