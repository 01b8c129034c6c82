"""formats/json_pointers: JSON documents as (JSON pointer, JSON value) rows and back."""
from __future__ import annotations

from hybridkit.formats.json_pointers import flatten, unflatten


def test_pointers_round_trip():
    doc = {"a": {"b~/c": [1, 2], "d": [{"type": "x", "n": None}, {"type": "y"}], "e": {}},
           "f": "s", "g": [[1.5, 2.0]]}
    rows = flatten(doc)
    assert ("/a/b~0~1c", "[1,2]") in rows and ("/a/d/1/type", '"y"') in rows
    assert unflatten(rows) == doc
