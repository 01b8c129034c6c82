"""A JSON document as rows of (JSON pointer, JSON value), and back.

Why rows: NWB tables hold text columns, and nwbinspector flags a text cell that is a serialized
dict (``check_table_values_for_dict``). Flattening every object down to its leaves keeps each cell
a JSON scalar or a list of scalars, and each row says which config field it is (RFC 6901 pointers,
e.g. ``/injection/amplitude/min``).
"""
from __future__ import annotations

import json
from typing import Any


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _has_object(value: Any) -> bool:
    """True when ``value`` holds an object at any depth (then it is walked, not stored whole)."""
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(_has_object(v) for v in value)


def flatten(doc: dict) -> list[tuple[str, str]]:
    """``[(pointer, json_text), ...]`` of every leaf of ``doc``, in document order.

    An empty object is a leaf ``"{}"`` only below the top level (rare: a defaulted mapping)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}/{_escape(k)}", v)
        elif isinstance(value, list) and _has_object(value):
            for i, v in enumerate(value):
                walk(f"{prefix}/{i}", v)
        else:
            rows.append((prefix, json.dumps(value, separators=(",", ":"))))

    walk("", doc)
    return rows


def unflatten(rows: list[tuple[str, str]]) -> dict:
    """The document :func:`flatten` made; numbered keys under a parent become a list again."""
    root: dict = {}
    for pointer, text in rows:
        parts = [_unescape(p) for p in pointer.split("/")[1:]]
        node = root
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = json.loads(text)
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node) and sorted(map(int, node)) == list(range(len(node))):
            return [node[str(i)] for i in range(len(node))]
    return node
