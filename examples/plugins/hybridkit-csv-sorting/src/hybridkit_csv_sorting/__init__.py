"""hybridkit plugin ``csv``: read a sorting from a CSV spike table.

hybridkit finds this module through the ``hybridkit`` entry point declared in pyproject.toml and
calls the hook below to learn which plugin classes it provides.
"""
from hybridkit import hookimpl

from .adapter import CsvSorting, CsvSortingError

__all__ = ["CsvSorting", "CsvSortingError", "hybridkit_sorter_adapters"]


@hookimpl
def hybridkit_sorter_adapters():
    """The sorter adapters this package provides."""
    return [CsvSorting]
