"""The ``dandiset`` metadata section of ``hybridkit publish --create``, checked with dandischema.

A YAML or JSON file with a top-level ``dandiset`` section::

    dandiset:
      name: Hybrid ground truth for spike sorting, mouse CA1 Neuropixels 1.0
      description: Units of a Kilosort 4 sorting injected back at known places and times.
      license: spdx:CC-BY-4.0
      contributors:
        - {name: "Doe, Jane", email: jane@example.org, roles: [ContactPerson, Creator]}
      keywords: [spike sorting benchmark]

It becomes DANDI's dandiset metadata (``dandischema.models.Dandiset``); the description gets a
paragraph saying the data is hybrid ground truth, which source it was made from (a link when the
source is on DANDI) and which hybridkit version made it. Everything is validated with dandischema
before any network call: the fields the archive fills in itself (id, citation, version, ...) are the
only ones allowed to be missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from hybridkit.errors import PublishError
from hybridkit.options import StrictModel

#: web addresses of the known archives (a source on another archive is named by its API URL)
WEB = {"dandi": "https://dandiarchive.org", "dandi-sandbox": "https://sandbox.dandiarchive.org"}
#: filled in by the archive when a dandiset is created or published
SERVER_FILLED = {"id", "identifier", "citation", "assetsSummary", "manifestLocation", "version"}


def dandi_roles() -> list[str]:
    """DANDI's contributor roles (dandischema's RoleType, without the ``dcite:`` prefix)."""
    from dandischema.models import RoleType

    return [r.value.removeprefix("dcite:") for r in RoleType]


class Contributor(StrictModel):
    name: str = Field(description="'Last, First' for a person, or an organization's name.")
    email: str | None = Field(None, description="Required for the contact person.")
    orcid: str | None = Field(None, description="ORCID iD, e.g. '0000-0002-1825-0097'.")
    organization: bool = Field(False, description="True: an organization, not a person.")
    roles: list[str] = Field(default_factory=lambda: ["Author"], description="DANDI roles "
                             "(dcite:), e.g. ContactPerson, Author, DataCurator.")

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        roles = dandi_roles()
        bad = [r for r in v if r.removeprefix("dcite:") not in roles]
        if bad:
            raise ValueError(f"unknown roles {bad}; DANDI's roles are {', '.join(roles)}")
        return [r.removeprefix("dcite:") for r in v]


class DandisetSection(StrictModel):
    name: str = Field(min_length=1, description="Title of the dandiset.")
    description: str = Field(min_length=1, description="What the dataset is; hybridkit adds a "
                             "paragraph on the hybrid ground truth and its source.")
    license: str = Field("spdx:CC-BY-4.0", description="spdx:CC0-1.0 or spdx:CC-BY-4.0.")
    contributors: list[Contributor] = Field(min_length=1, description="At least one with role "
                                            "ContactPerson and an email.")
    keywords: list[str] = Field(default_factory=list)


def load_section(path: Path) -> DandisetSection:
    """The ``dandiset`` section of a YAML/JSON file (one-line errors naming the file and field)."""
    from hybridkit.config.run_config import read_config_file

    data = read_config_file(Path(path))
    if "dandiset" not in data:
        raise PublishError(f"{path}: no 'dandiset' section (name, description, license, contributors)")
    try:
        return DandisetSection.model_validate(data["dandiset"])
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("dandiset", *err["loc"]))
        raise PublishError(f"{path}: {where}: {err['msg']} (got {err.get('input')!r})") from None


def hybrid_paragraph(sources: list[dict[str, Any]], version: str) -> str:
    """What every published hybrid dataset says about itself.

    ``sources``: the ``inputs`` rows naming each file's recording (hybridkit/formats/input_identity.py)."""
    named = []
    for s in sources:
        if s.get("dandiset"):
            web = WEB.get(s.get("dandi_instance") or "dandi", s.get("dandi_instance"))
            link = f"{web}/dandiset/{s['dandiset']}/{s.get('dandiset_version') or 'draft'}"
            named.append(f"DANDI:{s['dandiset']} asset {s.get('asset_path')} ({link})")
        elif s.get("url"):
            named.append(s["url"])
        else:
            named.append(f"{s.get('file_name')} ({s.get('bytes')} bytes, SHA-256 {s.get('sha256')})")
    where = "; ".join(dict.fromkeys(named)) or "a recording named in each file"
    return (f"This is hybrid ground-truth data for spike sorting, made with hybridkit {version}: "
            "templates of well-isolated units were injected at known times and places into a real "
            f"recording ({where}). Each NWB file holds the hybrid traces, the ground truth as its "
            "Units table, and in processing/hybridkit the run config, the inputs by identity, the "
            "injected events and templates, so that it can be regenerated (hybridkit generate "
            "--from-nwb), verified and scored against (hybridkit score).")


def dandiset_metadata(section: DandisetSection, sources: list[dict[str, Any]], version: str) -> dict:
    """DANDI dandiset metadata (JSON) of ``section``, validated with dandischema."""
    people = []
    for c in section.contributors:
        person: dict[str, Any] = {"schemaKey": "Organization" if c.organization else "Person",
                                  "name": c.name, "roleName": [f"dcite:{r}" for r in c.roles],
                                  "includeInCitation": True}
        if c.email:
            person["email"] = c.email
        if c.orcid and not c.organization:
            person["identifier"] = c.orcid
        people.append(person)
    meta = {"schemaKey": "Dandiset", "name": section.name,
            "description": f"{section.description.rstrip()}\n\n{hybrid_paragraph(sources, version)}",
            "license": [section.license], "contributor": people,
            "keywords": list(dict.fromkeys([*section.keywords, "hybrid ground truth", "spike sorting"]))}
    check_metadata(meta)
    return meta


def check_metadata(meta: dict, label: str = "dandiset", hint: str = "") -> None:
    """dandischema's Dandiset model, ignoring only what the archive fills in; every problem in
    one line."""
    from dandischema.models import Dandiset

    try:
        Dandiset.model_validate(meta)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["loc"][0] not in SERVER_FILLED]
        if errors:
            what = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
            raise PublishError(f"{label}: {what} (dandischema {_schema_version()}){hint}") from None


def _schema_version() -> str:
    from dandischema.consts import DANDI_SCHEMA_VERSION

    return DANDI_SCHEMA_VERSION
