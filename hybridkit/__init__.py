"""hybridkit: hybrid ground-truth data for spike sorting.

The public API; everything else is internal. Plugin authors need ``hookimpl``, the base classes,
the data model and the error classes (raise the subclass of :class:`HybridkitError` that names
what is wrong: the CLI prints its message in one line and exits 2); users of the library need
``load_config`` and ``generate``.
"""
from importlib import import_module
from typing import TYPE_CHECKING

# The public names (and __version__) are resolved on first use (PEP 562): ``import hybridkit.cli``
# then loads no numpy, pydantic or package metadata, so the command line catches a Ctrl-C or
# SIGTERM from its very start.
_LAZY = {
    **{name: "hybridkit.errors" for name in (
        "ConfigError", "HybridkitError", "OutputError", "PlacementError", "PlanError", "PluginError",
        "PublishError", "SortingError", "SourceError", "StudyError", "TemplateError", "TruthError",
        "UnitSelectionError")},
    **{name: "hybridkit.hookspecs" for name in (
        "RunContext", "SorterAdapter", "SourceReader", "TemplateSource", "Writer", "hookimpl")},
    **{name: "hybridkit.model" for name in (
        "GroundTruth", "Plan", "PlacedUnit", "Recording", "SourceFile", "Sorting", "Template",
        "TemplateBank")},
    **{name: "hybridkit.options" for name in (
        "ConfigPath", "InputFile", "InputFolder", "InputPath", "PluginOptions")},
}

if TYPE_CHECKING:  # pragma: no cover
    from hybridkit.errors import (
        ConfigError,
        HybridkitError,
        OutputError,
        PlacementError,
        PlanError,
        PluginError,
        PublishError,
        SortingError,
        SourceError,
        StudyError,
        TemplateError,
        TruthError,
        UnitSelectionError,
    )
    from hybridkit.hookspecs import (
        RunContext,
        SorterAdapter,
        SourceReader,
        TemplateSource,
        Writer,
        hookimpl,
    )
    from hybridkit.model import (
        GroundTruth,
        PlacedUnit,
        Plan,
        Recording,
        Sorting,
        SourceFile,
        Template,
        TemplateBank,
    )
    from hybridkit.options import ConfigPath, InputFile, InputFolder, InputPath, PluginOptions


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("hybridkit")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":  # importlib.metadata takes ~50 ms: only when asked
        globals()[name] = value = _package_version()
        return value
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hybridkit' has no attribute {name!r}")


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
    "PluginOptions", "PublishError", "Recording", "RunContext", "SorterAdapter", "Sorting", "SortingError",
    "SourceError", "SourceFile", "StudyError", "SourceReader", "Template", "TemplateBank", "TemplateError",
    "TemplateSource", "TruthError", "UnitSelectionError", "Writer", "__version__", "generate",
    "hookimpl", "load_config",
]
