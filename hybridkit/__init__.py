"""hybridkit: hybrid ground-truth data for spike sorting.

The public API; everything else is internal. Plugin authors need ``hookimpl``, the base classes
and the data model; users of the library need ``load_config`` and ``generate``.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from hybridkit.errors import HybridkitError
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
    "ConfigPath", "GroundTruth", "HybridkitError", "InputFile", "InputFolder", "InputPath", "Plan", "PlacedUnit", "PluginOptions",
    "Recording", "RunContext", "SorterAdapter", "Sorting", "SourceFile", "SourceReader",
    "Template", "TemplateBank", "TemplateSource", "Writer", "__version__", "generate",
    "hookimpl", "load_config",
]
