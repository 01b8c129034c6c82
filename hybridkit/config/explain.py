"""One line from a pydantic ValidationError: the config file, the field, the bad value, what is valid.

pydantic reports locations through plugin unions with tags (a plugin's ``type`` value, validator
names); :func:`explain` drops those, and for an unknown key lists the valid keys of the section it
was found in, resolving which plugin's Options that section is by its ``type``.
"""
from __future__ import annotations

import json

from pydantic import ValidationError

#: plugin names (``type`` values): union tags in pydantic's error locations, not config keys;
#: filled by config.validate_config from the registry
PLUGIN_TAGS: set[str] = set()


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str) and (item.startswith("function-") or "[" in item or item in PLUGIN_TAGS):
            continue  # pydantic's union/validator tags, not config keys
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _unwrap_model(ann):
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in get_args(ann):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def explain(exc: ValidationError, source: str, model, data: dict) -> str:
    """One line from pydantic's first error: file, field, bad value, what is valid."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    field = _loc(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _section_model(model, loc, data)
        valid = sorted(parent.model_fields) if parent is not None else []
        where = _loc(loc[:-1])
        hint = f"; valid keys{' in ' + where if loc[:-1] else ''}: {', '.join(valid)}" if valid else ""
        return f"{source}: unknown key {field!r}{hint}"
    if kind == "missing":
        return f"{source}: missing required field {field}"
    value = err.get("input")
    shown = json.dumps(value) if isinstance(value, (str, int, float, bool, list, type(None))) else repr(value)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{source}: {field} must be an object, got {shown}"
    return f"{source}: {field} = {shown}: {msg}"


def _section_model(model, loc: tuple, data: dict):
    """The model class the error location's parent points to, resolving plugin unions by ``type``."""
    cur, node = model, data
    for item in loc[:-1]:
        if isinstance(node, dict):
            node_next = node.get(item) if not isinstance(item, int) else None
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            node_next = node[item]
        else:
            node_next = None
        if isinstance(item, int):
            node = node_next
            continue
        if item in PLUGIN_TAGS:
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or item not in fields:
            return None
        ann = fields[item].annotation
        cur = _pick_member(ann, node_next) or _unwrap_model(ann)
        node = node_next
    return cur


def _pick_member(ann, node):
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(node, list):
        node = node[0] if node else None
    if not isinstance(node, dict) or "type" not in node:
        return None
    stack = [ann]
    while stack:
        a = stack.pop()
        if isinstance(a, type) and issubclass(a, BaseModel):
            t = a.model_fields.get("type")
            if t is not None and node["type"] in get_args(t.annotation):
                return a
        else:
            stack.extend(get_args(a))
    return None
