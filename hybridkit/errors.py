"""One exception tree for everything a user can get wrong.

Every message names the file or config field, the bad value, and what would be valid, in one
line: the CLI prints ``str(error)`` and exits 2 (see :mod:`hybridkit.cli`).
"""
from __future__ import annotations


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


class OutputError(HybridkitError):
    """The output cannot be written (exists, not writable, disk full)."""


class TruthError(HybridkitError):
    """The ground truth cannot be read back from a run's output (score, report)."""


class StudyError(HybridkitError):
    """A study file is invalid, or some of a study's datasets or scores failed (summary line)."""


class PublishError(HybridkitError):
    """A hybrid dataset cannot be published or regenerated (missing metadata, inputs not found,
    the archive refused)."""
