"""Building blocks for plugin option models.

Every plugin declares a pydantic ``Options`` model deriving from :class:`PluginOptions`, whose
``type`` field is ``Literal[<plugin name>]``. The run config is a discriminated union over these
models, so unknown keys are rejected and a mistyped ``type`` lists the installed names.

Paths in a config are relative to the config file's folder: use :data:`ConfigPath` for them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """A config model that rejects unknown keys (a typo must never be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


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
