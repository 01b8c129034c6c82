"""``hybridkit publish``: hybrid outputs -> a dandiset, with the dandi client's Python API.

Order (nothing is uploaded until every step before it passed):

1. each output's NWB is checked (subject, session, hybridkit provenance) and named
   (hybridkit/publish/organize.py); the ``dandiset`` section of ``--create`` is checked with
   dandischema; the API key is looked up (``DANDI_API_KEY``, ``DANDI_SANDBOX_API_KEY``: the
   variable the dandi client reads for the instance);
2. the dandiset is created (``--create``) or its draft metadata fetched, and written as
   ``dandiset.yaml``; the files are hard-linked (else copied) into the dandiset's layout;
3. ``dandi.validate.validate`` runs on the folder (nwbinspector, layout, metadata); any error stops
   here, printed;
4. each file is uploaded unless the draft already holds an asset at its path with the same
   ``dandi-etag`` digest (so running it again uploads only what changed), with a progress bar.
``dry_run`` does 1-3 (without creating anything) and reports what 4 would send.
"""
from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from hybridkit.errors import PublishError
from hybridkit.publish.organize import HybridNwb, check_outputs, place, write_dandiset_yaml
from hybridkit.run.output_guard import check_not_an_input, output_inputs

log = logging.getLogger(__name__)

#: the variable the dandi client reads for an instance it does not know by name (a custom URL)
CUSTOM_KEY_VAR = "DANDI_API_KEY"


@dataclass
class PublishResult:
    dandiset: str
    dandiset_dir: Path
    instance: str
    planned: list[tuple[str, int]] = field(default_factory=list)  # (asset path, bytes) to send
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    dry_run: bool = False


def key_variable(instance: str) -> str:
    """The environment variable the dandi client reads the API key of ``instance`` from."""
    if instance.lower().startswith(("http://", "https://")):
        return CUSTOM_KEY_VAR
    return f"{instance.upper().replace('-', '_')}_API_KEY"


def _client(instance: str, token: str | None):
    from hybridkit.formats.remote_http import dandi_client

    try:
        return dandi_client(instance, "--instance", token)
    except Exception as exc:  # noqa: BLE001 - SourceError or an HTTP error from /auth/token
        raise PublishError(f"--instance: {instance}: {exc}") from None


def validation_errors(dandiset_dir: Path) -> list[str]:
    """``dandi validate`` on the folder: one line per error (empty when none)."""
    try:  # dandi >= 0.74 keeps the function in a private module (its CLI imports it from there)
        from dandi.validate import Severity
        from dandi.validate._core import validate
    except ImportError:  # older dandi
        from dandi.validate import validate
        from dandi.validate_types import Severity

    lines = []
    for r in validate(dandiset_dir):
        if r.severity is not None and r.severity >= Severity.ERROR:
            where = r.path.relative_to(dandiset_dir) if r.path else "dandiset"
            lines.append(f"{where}: [{r.id}] {r.message}")
    return lines


def _upload_one(ds, target: Path, dandiset_dir: Path, jobs: int, dry_run: bool, bar) -> tuple[str, int]:
    """Upload ``target`` unless the draft holds it already: ("uploaded"|"unchanged"|"planned", bytes)."""
    from dandi.exceptions import NotFoundError
    from dandi.files import dandi_file

    dfile = dandi_file(target, dandiset_dir)
    digest = dfile.get_digest()
    try:
        remote = ds.get_asset_by_path(dfile.path)
    except NotFoundError:
        remote = None
    if remote is not None and remote.get_raw_metadata().get("digest", {}).get(digest.algorithm.value) == digest.value:
        return "unchanged", 0
    size = target.stat().st_size
    if dry_run:
        return "planned", size
    metadata = dfile.get_metadata(digest=digest).model_dump(mode="json", exclude_none=True)
    metadata["path"] = dfile.path
    done = 0
    for status in dfile.iter_upload(ds, metadata, jobs=jobs, replacing=remote):
        if status.get("status") == "uploading":
            bar.update(int(status["current"]) - done)
            done = int(status["current"])
    bar.update(size - done)
    return "uploaded", size


def publish(outputs: list[Path], dandiset: str | None, instance: str = "dandi",
            create: Path | None = None, dandiset_dir: Path | None = None, dry_run: bool = False,
            jobs: int = 4, progress: bool = True) -> PublishResult:
    """Publish the hybrid NWB of each output folder to a dandiset (see the module docstring)."""
    from tqdm import tqdm

    from hybridkit import __version__
    from hybridkit.publish.dandiset import check_metadata, dandiset_metadata, load_section

    if (dandiset is None) == (create is None):
        raise PublishError("publish: give --dandiset ID (an existing dandiset) or --create METADATA.yaml")
    infos: list[HybridNwb] = check_outputs(outputs)
    folder = Path(dandiset_dir or Path.cwd() / (dandiset or "new-dandiset")).absolute()
    # the dandiset folder gets new files and is validated whole: never an output folder, its
    # source recording, or a folder holding one of them (before any work, and before the archive)
    inputs = [("the output", Path(o).absolute()) for o in outputs if Path(o).is_dir()]
    inputs += [(what, p) for o in outputs for what, p in output_inputs(Path(o))
               if what == "the output's source recording"]
    check_not_an_input(folder, inputs, "--dandiset-dir")
    meta = None
    if create is not None:
        sources = [s for info in infos for s in info.sources]
        meta = dandiset_metadata(load_section(create), sources, __version__)
    var = key_variable(instance)
    token = os.environ.get(var)
    if not token and not dry_run:
        raise PublishError(f"publish: no DANDI API key: set the environment variable {var} (the dandi "
                           f"client's variable for instance {instance!r}; your key is on the archive's "
                           "web page under your name)")
    # a dry run of --create needs no archive at all
    client = None if meta is not None and dry_run else _client(instance, token)
    with client or nullcontext():
        ds = None
        if meta is not None:  # checked locally first: nothing is created for files that would fail
            raw = {"identifier": "DANDI:000000", **meta}
        else:
            from dandi.exceptions import NotFoundError

            try:
                ds = client.get_dandiset(dandiset, "draft", lazy=False)
            except NotFoundError:
                raise PublishError(f"--dandiset: no dandiset {dandiset} on {instance} (or no access "
                                   "with this key); create it with --create METADATA.yaml") from None
            raw = ds.get_raw_metadata()
            check_metadata(raw, f"dandiset {dandiset} on {instance}", "; fill it in on the archive's "
                           "web page (or create a new dandiset with --create METADATA.yaml)")
        write_dandiset_yaml(folder, raw)
        targets = [place(info, folder) for info in infos]
        result = PublishResult(dandiset=dandiset or "(new)", dandiset_dir=folder, instance=instance,
                               dry_run=dry_run)
        result.validation = validation_errors(folder)
        if result.validation:
            import sys

            for line in result.validation:
                print(f"  {line}", file=sys.stderr)
            raise PublishError(f"dandi validate found {len(result.validation)} error(s) in {folder} "
                               "(printed above); nothing was uploaded")
        if meta is not None:
            if dry_run:  # nothing exists remotely yet: everything would be sent
                result.planned = [(t.relative_to(folder).as_posix(), t.stat().st_size) for t in targets]
                return result
            ds = client.create_dandiset(meta["name"], meta)
            result.dandiset = ds.identifier
            write_dandiset_yaml(folder, ds.get_raw_metadata())
            print(f"created draft dandiset {ds.identifier} on {instance}")
        total = sum(t.stat().st_size for t in targets)
        with tqdm(total=total, unit="B", unit_scale=True, desc="uploading", disable=not progress or dry_run) as bar:
            for t in targets:
                what, size = _upload_one(ds, t, folder, jobs, dry_run, bar)
                path = t.relative_to(folder).as_posix()
                if what == "unchanged":
                    result.unchanged.append(path)
                    bar.update(t.stat().st_size)
                elif what == "planned":
                    result.planned.append((path, size))
                else:
                    result.uploaded.append(path)
    return result
