"""Hybrid NWB files checked for publishing and laid out as a dandiset.

Names follow DANDI's layout (what ``dandi organize`` writes and ``dandi validate`` checks):
``sub-<subject_id>/sub-<subject_id>_ses-<session_id>[_desc-<run session>]_ecephys.nwb``. The nwb
writer's ``session_id`` defaults to the hybrid run's session name, so variants of one source
recording made by different runs get distinct, readable names; when ``session_id`` was set to the
source's session, the run's session name is added as ``desc-`` to tell the variants apart (instead
of ``dandi organize``'s opaque ``obj-<hash>``).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridkit.errors import PublishError
from hybridkit.formats.atomic_files import AtomicFiles

#: characters DANDI does not allow in a name label (dandi.organize.LABELREGEX), and '-' runs
_BAD_LABEL = re.compile(r"[_*\\/<>:|\"'?%@;.\s]+")


def label(text: str) -> str:
    return _BAD_LABEL.sub("-", str(text)).strip("-")


@dataclass
class HybridNwb:
    """What publishing needs to know about one hybrid NWB file."""

    path: Path
    subject_id: str = ""
    session_id: str = ""
    run_session: str = ""
    missing: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    has_traces: bool = False

    @property
    def asset_path(self) -> str:
        sub, ses, run = label(self.subject_id), label(self.session_id), label(self.run_session)
        desc = f"_desc-{run}" if run and run != ses else ""
        return f"sub-{sub}/sub-{sub}_ses-{ses}{desc}_ecephys.nwb"


def find_nwb(output: Path) -> Path:
    """The hybrid NWB of an output folder of ``generate`` (or the file itself)."""
    output = Path(output)
    if output.is_file() and output.suffix == ".nwb":
        return output
    if not output.is_dir():
        raise PublishError(f"{output}: not an output folder of hybridkit generate or an .nwb file")
    nwbs = sorted(p for p in output.glob("*.nwb") if p.is_file())
    if len(nwbs) != 1:
        what = f"{len(nwbs)} .nwb files ({', '.join(p.name for p in nwbs)})" if nwbs else "no .nwb file"
        raise PublishError(f"{output}: holds {what}; publishing needs exactly one per output "
                           "(add {\"type\": \"nwb\"} to writers, or give the .nwb file)")
    return nwbs[0]


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def describe(path: Path) -> HybridNwb:
    """Read the fields DANDI and regeneration need; ``missing`` lists what is absent."""
    import h5py

    from hybridkit.publish.from_nwb import MODULE, records, table_columns

    info = HybridNwb(path=path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise PublishError(f"{path}: not an NWB (HDF5) file ({exc})") from None
    with f:
        subj = f.get("general/subject")
        for key in ("subject_id", "species", "sex"):
            if subj is None or key not in subj:
                info.missing.append(f"subject.{key}")
        if subj is not None and "age" not in subj and "date_of_birth" not in subj:
            info.missing.append("subject.age")
        info.subject_id = _text(subj["subject_id"][()]) if subj is not None and "subject_id" in subj else ""
        if "general/session_id" in f:
            info.session_id = _text(f["general/session_id"][()])
        else:
            info.missing.append("session_id")
        if f"{MODULE}/run_config" not in f:
            info.missing.append(f"{MODULE}/run_config (written by hybridkit's nwb writer)")
        else:
            cfg = table_columns(f, "run_config")
            if "/session" in cfg["field"]:
                info.run_session = json.loads(cfg["value"][cfg["field"].index("/session")]) or ""
            info.sources = [r for r in records(table_columns(f, "inputs")) if r["field"].startswith("/recording/")]
        info.has_traces = "acquisition/ElectricalSeries" in f
    return info


def check_outputs(outputs: list[Path]) -> list[HybridNwb]:
    """Each output's hybrid NWB, described; one line naming what is missing, or duplicate names."""
    infos = [describe(find_nwb(o)) for o in outputs]
    for info in infos:
        if info.missing:
            raise PublishError(f"{info.path}: missing {', '.join(info.missing)}; set them in the nwb "
                               "writer's section (docs/nwb.md) and generate again")
    seen: dict[str, Path] = {}
    for info in infos:
        other = seen.setdefault(info.asset_path, info.path)
        if other != info.path:
            raise PublishError(f"{other} and {info.path} would both be {info.asset_path}; give their "
                               "runs distinct session names (or their nwb writers distinct session_id)")
    return infos


def place(info: HybridNwb, dandiset_dir: Path) -> Path:
    """Hard-link (else copy) the file to its place in the dandiset folder; an identical file
    already there is kept. The outputs themselves are never moved or changed."""
    target = dandiset_dir / info.asset_path
    if target.exists() and os.path.samefile(target, info.path):
        return target
    # a partial copy a killed publish left beside the target (GBs of NWB) goes first
    for stale in target.parent.glob(f".{glob.escape(target.name)}.partial*"):
        stale.unlink(missing_ok=True)
    with AtomicFiles() as pending:
        tmp = pending.temp(target)
        try:
            os.link(info.path, tmp)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copyfile(info.path, tmp)
    return target


def write_dandiset_yaml(dandiset_dir: Path, metadata: dict) -> Path:
    """``dandiset.yaml`` as ``dandi download`` writes it: the dandiset's metadata."""
    import yaml

    path = dandiset_dir / "dandiset.yaml"
    with AtomicFiles() as pending:  # an interrupted publish never leaves a truncated one
        pending.temp(path).write_text(yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True),
                                      encoding="utf-8")
    return path
