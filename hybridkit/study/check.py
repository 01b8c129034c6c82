"""`hybridkit study check`: the study file is valid, every dataset's config too, inputs exist."""
from __future__ import annotations

from pathlib import Path

from hybridkit.errors import ConfigError, HybridkitError, StudyError
from hybridkit.study.expand import Dataset, expand
from hybridkit.study.spec import StudySpec, load_study


def check_study(path: str | Path) -> tuple[StudySpec, list[Dataset], int]:
    """Validate ``path`` and expand it; check every dataset's input paths exist (each once).

    Returns the spec, the datasets and how many input paths were checked (those of each
    distinct recording + sorting pair).
    """
    from hybridkit.config.input_paths import check_input_paths
    from hybridkit.config.run_config import validate_config
    from hybridkit.run.output_guard import check_output

    spec, study_dir = load_study(path)
    datasets = expand(spec, study_dir, str(path))
    checked: set[tuple[str, str]] = set()
    n_paths = 0
    for d in datasets:
        cfg = validate_config(d.config, d.base_dir, f"{path}: dataset {d.name}")
        try:  # the dataset's folder is never an input, and replaced only if hybridkit wrote it
            check_output(cfg)
        except HybridkitError as exc:
            raise StudyError(f"{path}: dataset {d.name}: {exc}") from None
        key = (json_key(d.config.get("recording")), json_key(d.config.get("sorting")))
        if key in checked:  # the same inputs as an earlier dataset: checked already
            continue
        try:
            n_paths += check_input_paths(cfg, f"{path}: dataset {d.name}")
        except ConfigError as exc:
            raise StudyError(str(exc)) from None
        checked.add(key)
    return spec, datasets, n_paths


def json_key(section) -> str:
    import json

    return json.dumps(section, sort_keys=True)
