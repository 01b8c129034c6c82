"""Run nwbinspector with DANDI's configuration on a written NWB file (the ``nwb`` writer's gate).

DANDI fails an upload on CRITICAL issues; hybridkit holds its own files to a stricter bar and also
reports BEST_PRACTICE_VIOLATIONs (see docs/nwb.md).
"""
from __future__ import annotations

import logging
from pathlib import Path

from hybridkit.errors import OutputError

log = logging.getLogger(__name__)


def inspect_issues(path: Path) -> list:
    """nwbinspector messages of importance BEST_PRACTICE_VIOLATION or above, with the DANDI config."""
    try:
        from nwbinspector import Importance, inspect_nwbfile, load_config
    except ImportError:  # pragma: no cover - nwbinspector comes with dandi
        log.warning("nwbinspector is not installed; %s was not inspected", path)
        return []
    return [m for m in inspect_nwbfile(nwbfile_path=str(path), config=load_config("dandi"),
                                       importance_threshold=Importance.BEST_PRACTICE_VIOLATION)
            if m is not None]


def inspect_file(path: Path, fail: bool = False) -> list:
    """Log each issue; with ``fail``, raise OutputError naming the first one."""
    issues = inspect_issues(path)
    for m in issues:
        log.warning("nwbinspector %s %s at %s: %s", m.importance.name, m.check_function_name,
                    m.location, m.message)
    if issues and fail:
        m = issues[0]
        raise OutputError(f"nwb writer: {path.name} fails nwbinspector --config dandi: "
                          f"{m.importance.name} {m.check_function_name} at {m.location}: {m.message} "
                          f"({len(issues)} issue(s); set inspect: warn to keep the file)")
    return issues
