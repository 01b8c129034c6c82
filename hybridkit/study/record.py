"""study.json: what a study planned and what became of each dataset (read by score and report).

Written atomically (a temporary file renamed over it), so a killed run leaves the previous one.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from hybridkit.errors import StudyError
from hybridkit.formats.atomic_files import AtomicFiles

STUDY_JSON = "study.json"


def write_record(study_dir: Path, doc: dict) -> Path:
    path = study_dir / STUDY_JSON
    doc = {**doc, "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with AtomicFiles() as pending:
        pending.temp(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def read_record(study_dir: str | Path) -> dict:
    """The study.json in ``study_dir`` (StudyError naming the folder when there is none)."""
    path = Path(study_dir) / STUDY_JSON
    if Path(study_dir).is_file():
        path = Path(study_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"STUDY_DIR {study_dir}: no {STUDY_JSON} there; give the study's output "
                         "folder after `hybridkit study run`") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: not a readable {STUDY_JSON} ({exc})") from None
    if not isinstance(doc, dict) or "datasets" not in doc:
        raise StudyError(f"{path}: not a hybridkit {STUDY_JSON} (no 'datasets')")
    return doc
