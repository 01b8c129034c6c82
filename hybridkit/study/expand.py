"""A study's grid -> its datasets: one validated run config per (source, grid combination).

Each dataset is named from its parameters (``<source>_<field>-<value>_...``, the field being the
grid key's last part), runs with that name as its session, and writes into
``<study output>/datasets/<name>/``. Its identity for resuming is :func:`config_hash` of the
resolved config: the same fields that ``generate`` writes to config.resolved.json, less those that
do not change the data (``engine``: block size, threads, progress; ``output.overwrite``).
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridkit.errors import ConfigError, StudyError

#: resolved-config fields left out of the hash: they change how a dataset is computed, not its data
#: (a test compares block sizes and worker counts bit for bit)
HASH_EXCLUDED = (("engine",), ("output", "overwrite"))
DATASETS_DIR = "datasets"


@dataclass
class Dataset:
    """One hybrid dataset of a study.

    Attributes:
        name: folder name and session, from the source and the grid values.
        source: the source's name.
        params: grid key -> the value used (JSON-able), in grid order.
        labels: grid key -> the value's label in ``name``.
        config: the resolved run config as a JSON-able dict (absolute paths, seed, session).
        output_dir: where `generate` writes it.
        config_hash: :func:`config_hash` of ``config``.
    """

    name: str
    source: str
    params: dict[str, Any]
    labels: dict[str, str]
    config: dict
    output_dir: Path
    config_hash: str
    base_dir: Path = field(repr=False, default=Path("."))

    def as_json(self) -> dict:
        return {"name": self.name, "source": self.source, "params": self.params,
                "labels": self.labels, "output_dir": str(self.output_dir),
                "config_hash": self.config_hash}


def _label(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return re.sub(r"[^A-Za-z0-9.-]+", "-", value).strip("-") or "empty"
    if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
        return "-".join(_label(v) for v in value) or "empty"
    # an object (a motion section, a template source): a short digest names it; a mapping
    # name -> value in the grid gives it a readable name instead
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
    return digest[:6]


def value_labels(values: list | dict) -> list[str]:
    """The labels of one grid key's values, in order (a mapping's names, else from the values)."""
    if isinstance(values, dict):
        return list(values)
    return [_label(v) for v in values]


def _key_labels(keys: list[str]) -> dict[str, str]:
    """Each grid key's label in dataset names: its last part, or the whole key if that is ambiguous."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def config_hash(config: dict) -> str:
    """SHA-256 of a resolved run config (as config.resolved.json holds it) less HASH_EXCLUDED."""
    data = copy.deepcopy(config)
    for path in HASH_EXCLUDED:
        node = data
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _set(config: dict, key: str, value: Any) -> None:
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def _base_config(spec, study_dir: Path) -> tuple[dict, Path]:
    """The base config as a dict, and the folder its relative paths are relative to."""
    from hybridkit.config.run_config import load_config

    if isinstance(spec.base, dict):
        return copy.deepcopy(spec.base), study_dir
    path = Path(spec.base).expanduser()
    path = path if path.is_absolute() else study_dir / path
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise StudyError(f"base: {exc}") from None
    # dumped, every path is absolute: the dict can be validated again from any folder
    return cfg.model_dump(mode="json"), study_dir


def expand(spec, study_dir: Path, source_label: str = "study") -> list[Dataset]:
    """Every dataset of ``spec`` (sources x grid), validated; StudyError names the first bad one."""
    from hybridkit.config.run_config import validate_config

    base, base_dir = _base_config(spec, study_dir)
    if spec.sources is None:
        sources = {_label(base.get("session") or "base"): None}
    else:
        sources = spec.sources
    keys = list(spec.grid)
    klabels = _key_labels(keys)
    grids = [list(zip(value_labels(spec.grid[k]),
                      spec.grid[k].values() if isinstance(spec.grid[k], dict) else spec.grid[k]))
             for k in keys]
    root = Path(spec.output).resolve() / DATASETS_DIR
    datasets: list[Dataset] = []
    seen: dict[str, str] = {}
    for source_name, source in sources.items():
        for combo in itertools.product(*grids):
            name = "_".join([source_name] + [f"{klabels[k]}-{lab}" for k, (lab, _) in zip(keys, combo)])
            where = f"{source_label}: dataset {name}"
            data = copy.deepcopy(base)
            if source is not None:
                data["recording"] = copy.deepcopy(source.recording)
                if source.sorting is None:
                    data.pop("sorting", None)
                else:
                    data["sorting"] = copy.deepcopy(source.sorting)
            for k, (_, value) in zip(keys, combo):
                _set(data, k, value)
            data["session"] = name
            data["output"] = {**(data.get("output") or {}), "directory": str(root / name),
                              "overwrite": True}
            data["engine"] = {**(data.get("engine") or {}), "progress": False}
            try:
                cfg = validate_config(data, base_dir, where)
            except ConfigError as exc:
                raise StudyError(str(exc)) from None
            if cfg.seed is None:
                raise StudyError(f"{where}: seed is not set; give seed in the base config or the "
                                 "grid (a study's datasets must be reproducible to be resumable)")
            if name in seen:
                raise StudyError(f"{where}: two datasets have this name ({seen[name]} and this "
                                 "one); give grid values as a mapping name -> value")
            seen[name] = where
            resolved = cfg.model_dump(mode="json")
            datasets.append(Dataset(
                name=name, source=source_name,
                params={k: value for k, (_, value) in zip(keys, combo)},
                labels={k: lab for k, (lab, _) in zip(keys, combo)},
                config=resolved, output_dir=root / name, config_hash=config_hash(resolved),
                base_dir=base_dir))
    return datasets
