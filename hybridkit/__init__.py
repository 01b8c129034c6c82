"""hybridkit: hybrid ground-truth data for spike sorting.

The public API; everything else is internal. Plugin authors need ``hookimpl``, the base classes,
the data model and the error classes (raise the subclass of :class:`HybridkitError` that names
what is wrong: the CLI prints its message in one line and exits 2); users of the library need
``load_config`` and ``generate``.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from hybridkit.errors import (
    ConfigError,
    HybridkitError,
    OutputError,
    PlacementError,
    PlanError,
    PluginError,
    SortingError,
    SourceError,
    TemplateError,
    TruthError,
    UnitSelectionError,
)
from hybridkit.hookspecs import RunContext, SorterAdapter, SourceReader, TemplateSource, Writer, hookimpl
from hybridkit.model import (
    GroundTruth,
    Plan,
    PlacedUnit,
    Recording,
    SourceFile,
    Sorting,
    Template,
    TemplateBank,
)
from hybridkit.options import ConfigPath, InputFile, InputFolder, InputPath, PluginOptions

try:
    __version__ = _version("hybridkit")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"


def load_config(path):
    """Load and validate a run config (JSON or YAML); see :func:`hybridkit.config.run_config.load_config`."""
    from hybridkit.config.run_config import load_config as _load

    return _load(path)


def generate(config):
    """Run ``generate`` for a loaded config; see :func:`hybridkit.run.pipeline.generate`."""
    from hybridkit.run.pipeline import generate as _generate

    return _generate(config)


__all__ = [
    "ConfigError", "ConfigPath", "GroundTruth", "HybridkitError", "InputFile", "InputFolder",
    "InputPath", "OutputError", "Plan", "PlacedUnit", "PlacementError", "PlanError", "PluginError",
    "PluginOptions", "Recording", "RunContext", "SorterAdapter", "Sorting", "SortingError",
    "SourceError", "SourceFile", "SourceReader", "Template", "TemplateBank", "TemplateError",
    "TemplateSource", "TruthError", "UnitSelectionError", "Writer", "__version__", "generate",
    "hookimpl", "load_config",
]
