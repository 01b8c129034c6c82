"""Session and subject metadata of the ``nwb`` writer: config models checked for DANDI, NWBFile skeleton.

DANDI's inspector (``nwbinspector --config dandi``) makes these CRITICAL: a Subject with a
``subject_id`` (no ``/``), a ``species`` as a Latin binomial or an NCBITaxon IRI, a ``sex`` in
M/F/U/O, an ISO-8601 ``age`` or a ``date_of_birth``; a ``session_id`` without ``/``. They are
validated here, when the config is loaded, so a bad value fails in a second, not after the traces
are written.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import AwareDatetime, Field, field_validator

from hybridkit.formats.nwb_layout import session_id_for
from hybridkit.options import StrictModel

SPECIES_RE = re.compile(r"^[A-Z][a-z]+ [a-z]+( [a-z]+)?$")
NCBI_RE = re.compile(r"^http://purl\.obolibrary\.org/obo/NCBITaxon_\d+$")
DURATION_RE = re.compile(r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                         r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$")
WEIGHT_RE = re.compile(r"^\d+(\.\d+)? ?(kg|g|mg)$")
MOUSE = {"Mus musculus", "Mouse", "mouse", "http://purl.obolibrary.org/obo/NCBITaxon_10090"}
SEXES = ("M", "F", "U", "O")
OLDEST = datetime(1980, 1, 1, tzinfo=timezone.utc)


class NwbSubject(StrictModel):
    """The animal the source recording came from (NWB ``Subject``; DANDI requires the first four)."""

    subject_id: str = Field(description="Subject identifier, no '/'; it names the DANDI folder sub-<id>.")
    species: str = Field(description="Latin binomial, e.g. 'Mus musculus', 'Rattus norvegicus', "
                         "'Homo sapiens', or an NCBITaxon IRI (http://purl.obolibrary.org/obo/NCBITaxon_10090).")
    sex: str = Field(description="M, F, U (unknown) or O (other).")
    age: str | None = Field(None, description="ISO-8601 duration at the session start, e.g. 'P90D', "
                            "'P12W', or a range 'P60D/P90D'; give age or date_of_birth.")
    date_of_birth: AwareDatetime | None = Field(None, description="Date of birth with a time zone, "
                                                "e.g. '2024-01-31T00:00:00+00:00'; give age or date_of_birth.")
    description: str | None = Field(None, description="Free text about the subject.")
    strain: str | None = Field(None, description="Strain, e.g. 'C57BL/6J'.")
    genotype: str | None = Field(None, description="Genotype.")
    weight: str | None = Field(None, description="Weight with its unit, e.g. '25 g' or '0.025 kg'.")

    @field_validator("subject_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not v.strip() or "/" in v:
            raise ValueError("a subject_id is a non-empty name without '/' (DANDI makes it sub-<id>)")
        return v

    @field_validator("species")
    @classmethod
    def _species(cls, v: str) -> str:
        if not (SPECIES_RE.match(v) or NCBI_RE.match(v)):
            raise ValueError("DANDI needs a Latin binomial such as 'Mus musculus' (capital genus, "
                             "lower-case species) or an NCBITaxon IRI")
        return v

    @field_validator("sex")
    @classmethod
    def _sex(cls, v: str) -> str:
        if v not in SEXES:
            raise ValueError(f"DANDI needs one of {', '.join(SEXES)} (M male, F female, U unknown, O other)")
        return v

    @field_validator("age")
    @classmethod
    def _age(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = v.split("/")
        if len(parts) > 2 or not all(DURATION_RE.match(p) for p in parts if p) or not parts[0]:
            raise ValueError("an age is an ISO-8601 duration such as 'P90D' (90 days), 'P12W', "
                             "'P1Y2M', or a range 'P60D/P90D'")
        return v

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: str | None) -> str | None:
        if v is not None and not WEIGHT_RE.match(v.strip()):
            raise ValueError("a weight is a number and a unit, e.g. '25 g' or '0.025 kg'")
        return v

    @field_validator("date_of_birth")
    @classmethod
    def _dob(cls, v, info):
        if v is None and info.data.get("age") is None:
            raise ValueError("DANDI needs the subject's age (ISO-8601, e.g. 'P90D') or date_of_birth")
        return v


def check_session_start(v: datetime | None, dandi: bool) -> datetime | None:
    if v is None:
        if dandi:
            raise ValueError("required for DANDI: the real start of the source recording with a time "
                             "zone, e.g. '2024-05-01T13:45:00+02:00' (or set dandi: false)")
        return v
    if v <= OLDEST or v > datetime.now(timezone.utc):
        raise ValueError("a session start time must be after 1980-01-01 and not in the future")
    return v


def check_subject(v: NwbSubject | None, dandi: bool) -> NwbSubject | None:
    if v is None and dandi:
        raise ValueError("required for DANDI: give subject_id, species, sex and age or date_of_birth "
                         "(or set dandi: false)")
    return v


def check_location(v: str | None, subject: NwbSubject | None) -> str | None:
    """Mouse electrodes need an Allen CCF term (nwbinspector's check_electrodes_location_allen_ccf)."""
    if subject is None or subject.species not in MOUSE:
        return v
    if v is None:
        raise ValueError("required when species is mouse: an Allen CCF acronym or name such as "
                         "'CA1', 'VISp' or 'root' (DANDI's inspector checks it)")
    terms = allen_ccf_terms()
    if terms and v not in terms:
        raise ValueError("not an Allen Mouse Brain CCF term; use an acronym or name such as 'CA1', "
                         "'VISp', 'MOs' or 'root'")
    return v


def allen_ccf_terms() -> frozenset[str]:
    """Allen CCF acronyms and names, from the list nwbinspector ships (read without importing
    nwbinspector, which would cost seconds at config time); empty when it cannot be found."""
    from importlib.util import find_spec

    try:
        spec = find_spec("nwbinspector")
        root = Path(next(iter(spec.submodule_search_locations)))
        data = json.loads((root / "_internal_configs" / "allen_ccf_structure_names.json").read_text())
        return frozenset(data["acronyms"] + data["names"])
    except Exception:  # layout changed: skip the early check, the inspector still runs after writing
        return frozenset()


def resolve_metadata(opt, recording):
    """The writer's options with ``session_start_time``, ``subject`` and ``electrode_location``
    taken from an NWB source where the config leaves them out (the config overrides the source);
    then DANDI's requirements (``dandi: true``) are checked on the result.

    Raises OutputError (one line naming the field and where it came from) when a required value
    is in neither, or the source's value is not valid for DANDI.
    """
    from pydantic import ValidationError

    from hybridkit.errors import OutputError

    source = recording.meta.get("nwb") or {}
    label = f"source NWB {Path(str(source.get('source', recording.name))).name}"
    updates: dict[str, Any] = {}
    if opt.session_start_time is None and source.get("session_start_time"):
        try:
            updates["session_start_time"] = datetime.fromisoformat(str(source["session_start_time"]))
        except ValueError:
            pass  # unreadable: as if absent
    if opt.subject is None and source.get("subject"):
        try:
            updates["subject"] = NwbSubject.model_validate(source["subject"])
        except ValidationError as exc:
            if opt.dandi:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"]) or "subject"
                raise OutputError(
                    f"writers nwb: the {label} has subject.{where} = {err.get('input')!r}, not "
                    f"valid for DANDI ({err['msg'].removeprefix('Value error, ')}); give subject in "
                    "the nwb writer's config (it overrides the source) or set dandi: false") from None
    locations = [v for v in (source.get("locations") or []) if v]
    if opt.electrode_location is None and locations and len(set(locations)) == 1:
        updates["electrode_location"] = locations[0]  # one area for all: keep it; else per channel
    resolved = opt.model_copy(update=updates)
    if not opt.dandi:
        return resolved
    checks = [("session_start_time", lambda: check_session_start(resolved.session_start_time, True)),
              ("subject", lambda: check_subject(resolved.subject, True)),
              ("electrode_location", lambda: check_location(
                  resolved.electrode_location or (locations[0] if locations else None), resolved.subject))]
    for name, check in checks:
        try:
            check()
        except ValueError as exc:
            raise OutputError(f"writers nwb: {name}: {exc} (neither the config nor the {label} "
                              "gives a valid one)") from None
    return resolved


def _probe_device(nwbfile, recording):
    probe = recording.probe
    model_name = (getattr(probe, "model_name", "") or "").strip() if probe is not None else ""
    maker = (getattr(probe, "manufacturer", "") or "").strip() if probe is not None else ""
    model = None
    if model_name and maker and hasattr(nwbfile, "add_device_model"):  # NWB >= 2.9 (pynwb >= 3.1)
        from pynwb.device import DeviceModel

        model = DeviceModel(name=model_name, manufacturer=maker,
                            description=f"{maker} {model_name} (from probeinterface)")
        nwbfile.add_device_model(model)
    desc = f"Probe of the source recording {recording.name}" + (f": {model_name}" if model_name else "")
    kwargs = {"model": model} if model is not None else {}
    return nwbfile.create_device(name="probe0", description=desc, **kwargs)


def new_nwbfile(opt, recording, session: str, seed: int, notes: dict[str, Any]):
    """An NWBFile with the session, subject, device and electrodes table (one row per neural channel).

    Returns ``(nwbfile, electrodes_region_over_all_rows)``. Electrode row ``i`` is neural channel
    ``recording.neural_channels[i]`` (a file column); ``channel_name`` keeps the source's names.
    """
    from importlib.metadata import version

    from pynwb import NWBFile
    from pynwb.file import Subject

    subject = None
    if opt.subject is not None:
        s = opt.subject
        subject = Subject(subject_id=s.subject_id, species=s.species, sex=s.sex, age=s.age,
                          date_of_birth=s.date_of_birth, description=s.description or
                          f"Subject of the source recording {recording.name}",
                          strain=s.strain, genotype=s.genotype, weight=s.weight)
    keywords = list(dict.fromkeys([*opt.keywords, "ground truth", "hybrid", "spike sorting"]))
    generated = [["hybridkit", distribution_version("hybridkit")], ["pynwb", version("pynwb")]]
    nwbfile = NWBFile(
        session_description=opt.session_description,
        identifier=opt.identifier or str(uuid.uuid4()),
        session_start_time=opt.session_start_time or datetime.now(timezone.utc),
        session_id=opt.session_id or session_id_for(session),
        experimenter=opt.experimenter or None, institution=opt.institution, lab=opt.lab,
        experiment_description=opt.experiment_description or (
            f"Hybrid ground-truth data for spike sorting: units injected by hybridkit (seed {seed}) "
            f"into the recording {recording.name}."),
        keywords=keywords, subject=subject, was_generated_by=generated,
        source_script=command_line(),
        source_script_file_name="hybridkit", notes=json.dumps(notes, default=str),
    )
    device = _probe_device(nwbfile, recording)
    neural = recording.neural_channels
    names = _source_list(recording, "channel_names")
    locations = _source_list(recording, "locations")
    group = nwbfile.create_electrode_group(
        name="shank0", description=f"Contacts of {device.name}", device=device,
        location=opt.electrode_location or (locations[int(neural[0])] if locations and neural.size else "unknown"))
    nwbfile.add_electrode_column(name="channel_name", description="Channel name in the source "
                                 "recording (SpikeInterface uses it as channel id)")
    nwbfile.add_electrode_column(name="file_column", description="Column of the channel in the "
                                 "source recording's file (hybridkit's channel index)")
    pos = recording.channel_positions
    for col in neural.tolist():
        loc = opt.electrode_location or (locations[col] if locations else "unknown")
        nwbfile.add_electrode(group=group, location=loc, rel_x=float(pos[col, 0]), rel_y=float(pos[col, 1]),
                              channel_name=names[col] if names else str(col), file_column=int(col))
    region = nwbfile.create_electrode_table_region(list(range(neural.size)), "all neural channels")
    return nwbfile, region


def command_line() -> str:
    """The command that wrote the file, with every path argument reduced to its base name: a
    published file must not carry the paths of the machine that wrote it."""
    import sys

    words = [Path(w).name if ("/" in w or "\\" in w) and not w.startswith(("http://", "https://", "dandi://"))
             else w for w in sys.argv[1:]]
    return " ".join(["hybridkit", *words])


def _source_list(recording, key: str) -> list[str] | None:
    values = (recording.meta.get("nwb") or {}).get(key)
    return list(values) if values is not None and len(values) == recording.n_channels else None


def distribution_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or ``0.0.0+unknown``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "0.0.0+unknown"


def conversion_for(recording) -> tuple[float, np.ndarray | None, float]:
    """(conversion V/unit, channel_conversion or None, offset V) of the neural channels' raw data."""
    neural = recording.neural_channels
    gains = recording.gain_to_uV[neural]
    offsets = recording.offset_to_uV[neural]
    offset = float(np.median(offsets)) * 1e-6 if offsets.size else 0.0
    if gains.size and np.allclose(gains, gains[0], rtol=1e-12, atol=0):
        return float(gains[0]) * 1e-6, None, offset
    return 1e-6, gains.astype(np.float32), offset
