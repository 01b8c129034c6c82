"""Documentation that is generated or promised stays true."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from hybridkit.config.run_config import json_schema
from hybridkit.config.reference import render_markdown
from hybridkit.registry import build_registry

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_current():
    expected = render_markdown(json_schema(build_registry(entry_points_too=False)))
    actual = (ROOT / "docs" / "configuration.md").read_text()
    assert actual == expected, "docs/configuration.md is stale: run `hybridkit config schema --markdown > docs/configuration.md`"


def test_schema_validates_the_example_config(tmp_path):
    from hybridkit.example import write_example

    config = write_example(tmp_path / "demo", duration_s=1.0)
    jsonschema.validate(json.loads(config.read_text()), json_schema())


def test_readme_quickstart_commands_are_the_ci_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install . && hybridkit example demo && hybridkit generate demo/config.json" in readme
    test_cmd = 'pip install ".[test]" && python -m pytest'
    assert test_cmd in readme and test_cmd in ci
