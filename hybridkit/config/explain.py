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


def _is_tag(item, node) -> bool:
    """Whether ``item`` of an error location is pydantic's tag for the plugin union member it
    chose, not a config key: a plugin name that is not a key of the config object there (``node``,
    None when unknown). Plugin names can also be keys: motion's ``synthetic`` list is one, and the
    ``synthetic`` source reader another."""
    if not isinstance(item, str):
        return False
    if item.startswith("function-") or "[" in item:
        return True  # validator tags
    return item in PLUGIN_TAGS and not (isinstance(node, dict) and item in node)


def _child(node, item):
    """The config value at ``item`` of ``node`` (None when there is none)."""
    if isinstance(node, dict) and not isinstance(item, int):
        return node.get(item)
    if isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
        return node[item]
    return None


def _loc(loc: tuple, data=None) -> str:
    """The config path of an error location, e.g. ``writers[1].subject.age`` (union and validator
    tags dropped; ``data``, the config dict, tells tags from keys of the same name)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if _is_tag(item, node):
            continue
        parts.append(f"[{item}]" if isinstance(item, int) else ("." if parts else "") + str(item))
        node = _child(node, item)
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
    field = _loc(loc, data)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _section_model(model, loc, data)
        valid = sorted(parent.model_fields) if parent is not None else []
        where = _loc(loc[:-1], data)
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
        if _is_tag(item, node):
            continue
        node_next = _child(node, item)
        if isinstance(item, int):
            node = node_next
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
