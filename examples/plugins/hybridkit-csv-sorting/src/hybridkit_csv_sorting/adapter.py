"""The ``csv`` sorter adapter: one spike per row of a CSV table with a header.

Example file (``time`` in samples, 0-based, on the recording's clock; ``unit`` an integer id)::

    time,unit
    1200,3
    1875,7

Columns are found by their header names (``time_column``, ``unit_column``); other columns are
ignored. With ``time_unit: "seconds"`` times are converted to samples as ``round(t * rate)``.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field

from hybridkit import ConfigPath, HybridkitError, PluginOptions, SorterAdapter, Sorting

if TYPE_CHECKING:
    from hybridkit import Recording


class CsvSortingError(HybridkitError):
    """The CSV spike table is missing, malformed, or does not fit the recording."""


class CsvSorting(SorterAdapter):
    """Reads spike times and unit ids from a CSV table into a :class:`hybridkit.Sorting`."""

    name: ClassVar[str] = "csv"

    class Options(PluginOptions):
        type: Literal["csv"]
        path: ConfigPath = Field(
            description="The CSV spike table: a header row, then one spike per row; relative "
            "paths are taken from the config file's folder.")
        time_column: str = Field(
            "time", description="Header of the column with spike times (samples or seconds, "
            "see time_unit).")
        unit_column: str = Field(
            "unit", description="Header of the column with integer unit ids.")
        time_unit: Literal["samples", "seconds"] = Field(
            "samples", description="Unit of the time column: 0-based samples on the recording's "
            "clock, or seconds from the recording's first sample.")
        sampling_rate: float | None = Field(
            None, gt=0, description="Sampling rate in Hz used to convert seconds to samples "
            "(round(t * rate)). Defaults to the recording's rate; required when time_unit is "
            "seconds and the sorting is loaded without a recording.")
        delimiter: str = Field(
            ",", min_length=1, max_length=1, description="Field separator, one character "
            "(e.g. ',' or a tab).")

    # ------------------------------------------------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> bool:
        """True for a ``.csv`` file whose header has the default ``time`` and ``unit`` columns."""
        path = Path(path)
        if path.suffix.lower() != ".csv" or not path.is_file():
            return False
        fields = cls.Options.model_fields
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            return False
        names = {h.strip() for h in header}
        return {fields["time_column"].default, fields["unit_column"].default} <= names

    def load(self, recording: "Recording | None" = None) -> Sorting:
        """Read the table; spikes are returned sorted by time (stable, so ties keep file order).

        Returns a Sorting with ``spike_times`` int64 samples, ``spike_units`` int64 ids,
        ``unit_ids`` the sorted unique ids, and ``sampling_rate`` in Hz when one is known.
        With ``recording``, every time must fall inside it (``0 <= t < n_samples``).
        """
        opts = self.options
        path = Path(opts.path)
        rate = opts.sampling_rate
        if rate is None and recording is not None:
            rate = float(recording.sampling_rate)
        if opts.time_unit == "seconds" and rate is None:
            raise CsvSortingError(
                f"sorting.sampling_rate: {path} has times in seconds but no sampling rate is "
                "known; set sorting.sampling_rate (Hz) or load it with its recording")
        raw_times, units = self._read(path)
        times = self._to_samples(path, raw_times, rate)

        order = np.argsort(times, kind="stable")
        times, units = times[order], units[order]
        if recording is not None and times.size and times[-1] >= recording.n_samples:
            raise CsvSortingError(
                f"{path}: spike time {int(times[-1])} samples is past the end of recording "
                f"{recording.name} ({recording.n_samples} samples); expected times < "
                f"{recording.n_samples}")
        return Sorting(spike_times=times, spike_units=units, unit_ids=np.unique(units),
                       sampling_rate=rate, path=path, format="csv")

    # ------------------------------------------------------------------------------------------
    def _read(self, path: Path) -> tuple[list[tuple[int, str]], np.ndarray]:
        """The (line number, time text) of every spike row, and the unit ids as int64."""
        opts = self.options
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f, delimiter=opts.delimiter))
        except FileNotFoundError:
            raise CsvSortingError(f"sorting.path: CSV spike table {path} does not exist") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise CsvSortingError(f"sorting.path: cannot read {path} as CSV ({exc})") from None
        if not rows:
            raise CsvSortingError(
                f"{path}: the file is empty; expected a header row such as "
                f"'{opts.time_column}{opts.delimiter}{opts.unit_column}'")
        header = [h.strip() for h in rows[0]]
        columns = {}
        for field, name in (("time_column", opts.time_column), ("unit_column", opts.unit_column)):
            if name not in header:
                raise CsvSortingError(
                    f"sorting.{field}: {path} has no column {name!r}; its columns are: "
                    f"{', '.join(repr(h) for h in header)}")
            columns[field] = header.index(name)
        t_col, u_col = columns["time_column"], columns["unit_column"]

        times: list[tuple[int, str]] = []
        units: list[int] = []
        for lineno, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue  # blank line
            if len(row) <= max(t_col, u_col):
                raise CsvSortingError(
                    f"{path}: line {lineno} has {len(row)} fields, expected at least "
                    f"{max(t_col, u_col) + 1} (header: {', '.join(header)})")
            cell = row[u_col].strip()
            try:
                units.append(int(cell))
            except ValueError:
                raise CsvSortingError(
                    f"{path}: line {lineno}: unit {cell!r} in column {opts.unit_column!r} is not "
                    "an integer unit id") from None
            times.append((lineno, row[t_col].strip()))
        if not units:
            raise CsvSortingError(f"{path}: the table has a header but no spike rows")
        return times, np.array(units, dtype=np.int64)

    def _to_samples(self, path: Path, raw: list[tuple[int, str]], rate: float | None) -> np.ndarray:
        """int64 samples from the time cells: exact integers, or seconds * rate rounded."""
        opts = self.options
        out = np.empty(len(raw), dtype=np.int64)
        for i, (lineno, cell) in enumerate(raw):
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise CsvSortingError(
                    f"{path}: line {lineno}: time {cell!r} in column {opts.time_column!r} is not "
                    f"a number ({opts.time_unit})")
            if value < 0:
                raise CsvSortingError(
                    f"{path}: line {lineno}: time {cell!r} is negative; expected {opts.time_unit} "
                    ">= 0 from the recording's first sample")
            if opts.time_unit == "seconds":
                out[i] = round(value * rate)
            elif value != int(value):
                raise CsvSortingError(
                    f"{path}: line {lineno}: time {cell!r} is not a whole number of samples; "
                    "set sorting.time_unit to \"seconds\" if the column holds seconds")
            else:
                # parse the text, not the float, so large sample counts stay exact
                out[i] = int(cell) if cell.lstrip("+").isdigit() else int(value)
        return out
