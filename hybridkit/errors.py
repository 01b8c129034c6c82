"""One exception tree for everything a user can get wrong.

Every message names the file or config field, the bad value, and what would be valid, in one
line: the CLI prints ``str(error)`` and exits 2 (see :mod:`hybridkit.cli`).
"""
from __future__ import annotations

import errno
from contextlib import contextmanager


class HybridkitError(Exception):
    """Root of every error hybridkit raises on purpose."""

    #: exit code the CLI uses; 2 means "the user's input is wrong"
    exit_code = 2


class ConfigError(HybridkitError):
    """The run config is invalid (unknown key, wrong type, missing field, unknown plugin)."""


class PluginError(HybridkitError):
    """A plugin could not be loaded or registered (import failure, duplicate name, bad class)."""


class SourceError(HybridkitError):
    """The source recording cannot be read as described (size, meta, dtype, geometry)."""


class SortingError(HybridkitError):
    """The sorter output is unreadable or inconsistent (missing files, times past the end)."""


class UnitSelectionError(HybridkitError):
    """A ground-truth unit selection names units that do not exist or selects none."""


class TemplateError(HybridkitError):
    """A template could not be built or is invalid (NaN, too few spikes, no signal)."""


class PlacementError(HybridkitError):
    """An injected unit has no valid place on the probe."""


class PlanError(HybridkitError):
    """Nothing can be injected as configured (no event falls inside the recording)."""


class OutputError(HybridkitError):
    """The output cannot be written (exists, not writable, disk full)."""


class TruthError(HybridkitError):
    """The ground truth cannot be read back from a run's output (score, report)."""


class StudyError(HybridkitError):
    """A study file is invalid, or some of a study's datasets or scores failed (summary line)."""


class PublishError(HybridkitError):
    """A hybrid dataset cannot be published or regenerated (missing metadata, inputs not found,
    the archive refused)."""


#: what to do about an OS error while writing output, by errno
_WRITE_HINTS = {
    errno.ENOSPC: "no space left on the device: free space or choose another {where}",
    errno.EDQUOT: "disk quota exceeded: free space or choose another {where}",
    errno.EFBIG: "the file is too large for this file system: choose another {where}",
    errno.EROFS: "the file system is read-only: choose another {where}",
    errno.EACCES: "permission denied: choose a writable {where}",
}


#: errno values that only writing can raise: wherever they surface, the output cannot be written
WRITE_ONLY_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def output_write_error(path, exc: OSError, where: str = "output.directory") -> OutputError:
    """One OutputError line for an OSError raised while writing output file ``path``; ``where``
    is what the hint asks to change (the config field, or "path" for a command's own file)."""
    hint = _WRITE_HINTS.get(exc.errno)
    why = hint.format(where=where) if hint else (exc.strerror or str(exc))
    return OutputError(f"{path}: cannot write ({why})")


@contextmanager
def writing(path):
    """Turn an OSError raised while writing output file ``path`` (disk full, quota, read-only)
    into one OutputError line naming the file; the pipeline then removes the staging folder."""
    try:
        yield
    except OSError as exc:
        raise output_write_error(path, exc) from None
