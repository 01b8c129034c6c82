"""Building blocks for plugin option models.

Every plugin declares a pydantic ``Options`` model deriving from :class:`PluginOptions`, whose
``type`` field is ``Literal[<plugin name>]``. The run config is a discriminated union over these
models, so unknown keys are rejected and a mistyped ``type`` lists the installed names.

Paths in a config are relative to the config file's folder: use :data:`ConfigPath` for them, and
for paths the run reads, :data:`InputFile`, :data:`InputFolder` or :data:`InputPath` (either), which
`hybridkit config check` checks exist and are of that kind (:mod:`hybridkit.config.input_paths`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from hybridkit.errors import SourceError


class StrictModel(BaseModel):
    """A config model that rejects unknown keys (a typo must never be silently ignored).

    Its validator is built on first use, not when the class is defined (``defer_build``): a run
    builds the one RunConfig model of the plugins its config names (config/run_config.py), so
    importing every plugin's Options costs little, and a model nested in another one is not
    compiled once on its own and again inside its parent.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


class PluginOptions(StrictModel):
    """Base of every plugin's ``Options``; subclasses add ``type: Literal["name"]``."""


def _resolve_against_config(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path absolute against the folder of the config file being loaded."""
    value = Path(value).expanduser()
    base = (info.context or {}).get("base_dir") if info.context else None
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


#: A path in a config; relative paths are taken relative to the config file's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve_against_config)]


@dataclass(frozen=True)
class InputKind:
    """Marks a config path the run reads: what must be there (checked by `config check`)."""

    kind: Literal["file", "folder", "file or folder"]


#: A file the run reads (relative to the config file); `config check` checks it is an existing file.
InputFile = Annotated[ConfigPath, InputKind("file")]
#: A folder the run reads; `config check` checks it is an existing folder.
InputFolder = Annotated[ConfigPath, InputKind("folder")]
#: A file or a folder the run reads (e.g. rez.mat or the folder holding it); must exist.
InputPath = Annotated[ConfigPath, InputKind("file or folder")]


def check_min_max(low: float, high: float) -> None:
    """The one [min, max] check of the config (``Range`` and min/max field pairs): ValueError
    (pydantic turns it into a one-line config error) when min > max."""
    if low > high:
        raise ValueError(f"min ({low}) is larger than max ({high}): [min, max] needs min <= max")


def _ordered_range(value: tuple[float, float]) -> tuple[float, float]:
    check_min_max(*value)
    return value


#: A [min, max] pair of floats in a config; min > max is an error.
Range = Annotated[tuple[float, float], AfterValidator(_ordered_range)]


#: default of a source reader's ``min_sampling_rate_hz`` (Hz)
MIN_SAMPLING_RATE_HZ = 10000.0


def min_sampling_rate_field(kind: str = "series"):
    """The ``min_sampling_rate_hz`` option of a source reader (``kind``: what the reader calls a
    signal, "series", "stream"); checked with :func:`check_sampling_rate`."""
    return Field(MIN_SAMPLING_RATE_HZ, ge=0, description=(
        f"Refuse {kind}s sampled below this rate (Hz): spikes last about 1 ms, so an LFP {kind} "
        "(e.g. 2.5 kHz) cannot carry them; lower it to inject anyway."))


def check_sampling_rate(fs: float, minimum: float, what: str, instead: str) -> None:
    """SourceError (one line) when ``what`` is sampled at ``fs`` Hz, below ``minimum``
    (``recording.min_sampling_rate_hz``); ``instead`` says what to read instead."""
    if fs < minimum:
        raise SourceError(
            f"recording: {what} is sampled at {fs:g} Hz, below recording.min_sampling_rate_hz "
            f"{minimum:g} (an LFP series cannot carry spikes); {instead}, or lower min_sampling_rate_hz")
