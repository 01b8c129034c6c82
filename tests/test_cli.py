"""The command line: version, exit codes, one-line errors without tracebacks, schema, plugins."""
from __future__ import annotations

import json
import subprocess
import sys

import jsonschema

from hybridkit import __version__
from tests.conftest import write_config


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hybridkit", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, check=False)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"hybridkit {__version__}"


def test_schema_is_json_schema():
    out = run("config", "schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "recording" in schema["required"]
    # sorting and units are required only through other choices (checked after validation)
    assert {"sorting", "units"} <= set(schema["properties"]) - set(schema["required"])


def test_check_valid_and_invalid(tmp_path, minimal_config):
    (tmp_path / "rec.bin").write_bytes(b"\0" * 64)  # `config check` checks the inputs exist
    (tmp_path / "ks").mkdir()
    good = write_config(tmp_path / "good.json", minimal_config)
    out = run("config", "check", good)
    assert out.returncode == 0, out.stderr
    assert "valid, 3 input path(s) found" in out.stdout  # recording.path, .geometry, sorting.path

    minimal_config["recording"]["type"] = "spikeglks"
    bad = write_config(tmp_path / "bad.json", minimal_config)
    out = run("config", "check", bad)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "recording.type" in lines[0] and "'spikeglks'" in lines[0] and "binary, nwb, spikeglx" in lines[0]


def test_debug_shows_traceback(tmp_path, minimal_config):
    minimal_config["bogus"] = 1
    bad = write_config(tmp_path / "bad.json", minimal_config)
    out = run("--debug", "config", "check", bad)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_plugins_table_and_json():
    table = run("plugins")
    assert table.returncode == 0
    header = table.stdout.splitlines()[0].split()
    assert header == ["name", "kind", "distribution", "version"]
    rows = json.loads(run("plugins", "--json").stdout)
    assert {"name", "kind", "distribution", "version"} <= set(rows[0])
    assert {(r["name"], r["kind"]) for r in rows} >= {("spikeglx", "source_reader"), ("phy", "writer")}


def test_usage_error_exit_code():
    out = run("generate")
    assert out.returncode == 2 and "usage" in out.stderr
