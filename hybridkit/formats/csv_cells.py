"""One way to write a number into the CSV tables a run or a command writes (the selection table,
``score``'s tables): floats as their shortest exact text, so a number read back with ``float()``
is bit for bit the number computed (issue 14: the SNR in ``units.csv`` equals the NWB units
table's), and ``10`` rather than ``10.0``. Missing values (None, NaN) are empty cells; booleans
are ``true``/``false``.

The legacy tables (``plugins/writers/legacy/tables.py``) keep their own fixed formats: their
columns are read by the predecessor's tools.
"""
from __future__ import annotations

import math

import numpy as np


def cell(value) -> str:
    """The CSV text of one value (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        text = repr(float(value))
        return text[:-2] if text.endswith(".0") else text
    return str(value)
