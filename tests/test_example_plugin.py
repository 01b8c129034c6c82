"""The example third-party plugin package examples/plugins/hybridkit-csv-sorting, installed for real.

pip builds and installs the package into a temporary ``--target`` folder (offline, no build
isolation, nothing added to the running environment); each check runs in a subprocess whose
PYTHONPATH starts with that folder, as if the package were installed beside hybridkit.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "hybridkit-csv-sorting"
VERSION = re.search(r'^version = "([^"]+)"', (PACKAGE / "pyproject.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The folder pip installed the plugin into (once per module)."""
    root = tmp_path_factory.mktemp("csv_plugin")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    src = root / "src"
    shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(
            "pip could not build the example plugin (building without isolation needs setuptools "
            f"with wheel, or setuptools >= 70.1, installed):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return target


def _run(site: Path, code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("HYBRIDKIT_BLOCK_PLUGINS", None)
    cmd = [sys.executable, "-c", textwrap.dedent(code), *args] if code else [sys.executable, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def _json(site: Path, code: str, *args: str, cwd: Path | None = None):
    proc = _run(site, code, *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_installed_files_and_entry_point(site):
    assert (site / "hybridkit_csv_sorting" / "adapter.py").is_file()
    assert (site / f"hybridkit_csv_sorting-{VERSION}.dist-info").is_dir()
    eps = _json(site, """
        import json
        from importlib.metadata import entry_points
        print(json.dumps([[e.name, e.value, e.dist.name, e.dist.version]
                          for e in entry_points(group="hybridkit")]))
    """)
    assert ["csv", "hybridkit_csv_sorting", "hybridkit-csv-sorting", VERSION] in eps


def test_registry_lists_csv_with_its_distribution(site):
    info = _json(site, """
        import json
        from hybridkit.registry import build_registry
        reg = build_registry()
        print(json.dumps({"csv": reg.plugins["sorter_adapter"]["csv"].as_dict(),
                          "failures": reg.failures}))
    """)
    assert info["csv"] == {
        "name": "csv", "kind": "sorter_adapter", "distribution": "hybridkit-csv-sorting",
        "version": VERSION, "module": "hybridkit_csv_sorting.adapter",
    }
    assert not [f for f in info["failures"] if f["distribution"] == "hybridkit-csv-sorting"]


LOAD = """
    import json, sys
    from pathlib import Path
    import numpy as np
    from hybridkit import HybridkitError, Recording, SourceFile
    from hybridkit.registry import build_registry

    cls = build_registry().get("sorter_adapter", "csv")
    out = {}
    for case, options, n_samples in json.loads(sys.argv[1]):
        recording = None
        if n_samples is not None:
            recording = Recording(files=[SourceFile(Path("none.bin"), n_samples)], dtype="int16",
                                  n_channels=2, sampling_rate=20000.0, gain_to_uV=[1, 1],
                                  offset_to_uV=[0, 0], channel_positions=[[0, 0], [0, 20]],
                                  neural=[True, True], name="rec")
        try:
            opts = cls.Options.model_validate(options, context={"base_dir": Path.cwd()})
            s = cls(opts, None).load(recording)
            out[case] = {"times": s.spike_times.tolist(), "units": s.spike_units.tolist(),
                         "unit_ids": s.unit_ids.tolist(), "rate": s.sampling_rate,
                         "dtypes": [str(s.spike_times.dtype), str(s.spike_units.dtype)],
                         "path": str(s.path), "format": s.format}
        except HybridkitError as exc:
            out[case] = {"error": [type(exc).__name__, str(exc)]}
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def loaded(site, tmp_path_factory):
    """Load a set of CSV files written here through the installed plugin, in one subprocess."""
    d = tmp_path_factory.mktemp("csv_tables")
    (d / "samples.csv").write_text("time,unit,amplitude\n300,4,1.5\n100,2,2.0\n\n200,4,0.5\n100,7,9\n")
    (d / "seconds.tsv").write_text(
        "cluster\tt_s\n5\t0.5\n1\t0.0000251\n5\t1.00004\n1\t2.5e-5\n")
    (d / "bad_unit.csv").write_text("time,unit\n10,1\n20,1.5\n")
    (d / "negative.csv").write_text("time,unit\n10,1\n-3,1\n")
    (d / "fraction.csv").write_text("time,unit\n10.5,1\n")
    (d / "late.csv").write_text("time,unit\n10,1\n1000,2\n")
    (d / "header_only.csv").write_text("time,unit\n")
    cases = [
        ["samples", {"type": "csv", "path": "samples.csv"}, None],
        ["seconds", {"type": "csv", "path": "seconds.tsv", "time_column": "t_s",
                     "unit_column": "cluster", "time_unit": "seconds", "sampling_rate": 30000.0,
                     "delimiter": "\t"}, None],
        ["seconds_rate_from_recording", {"type": "csv", "path": "seconds.tsv", "time_column": "t_s",
                                         "unit_column": "cluster", "time_unit": "seconds",
                                         "delimiter": "\t"}, 100000],
        ["seconds_without_rate", {"type": "csv", "path": "seconds.tsv", "time_column": "t_s",
                                  "unit_column": "cluster", "time_unit": "seconds",
                                  "delimiter": "\t"}, None],
        ["unknown_column", {"type": "csv", "path": "samples.csv", "unit_column": "cluster"}, None],
        ["bad_unit", {"type": "csv", "path": "bad_unit.csv"}, None],
        ["negative", {"type": "csv", "path": "negative.csv"}, None],
        ["fraction", {"type": "csv", "path": "fraction.csv"}, None],
        ["late", {"type": "csv", "path": "late.csv"}, 1000],
        ["in_range", {"type": "csv", "path": "late.csv"}, 1001],
        ["missing", {"type": "csv", "path": "nope.csv"}, None],
        ["header_only", {"type": "csv", "path": "header_only.csv"}, None],
    ]
    return d, _json(site, LOAD, json.dumps(cases), cwd=d)


def test_adapter_loads_samples_exactly(loaded):
    d, out = loaded
    assert out["samples"] == {
        "times": [100, 100, 200, 300], "units": [2, 7, 4, 4], "unit_ids": [2, 4, 7], "rate": None,
        "dtypes": ["int64", "int64"], "path": str(d / "samples.csv"), "format": "csv",
    }


def test_adapter_converts_seconds_with_round(loaded):
    _, out = loaded
    # 0.0000251 s * 30 kHz = 0.753 -> 1; 2.5e-5 * 30000 = 0.75 -> 1; 1.00004 * 30000 = 30001.2 -> 30001
    assert out["seconds"]["times"] == [1, 1, 15000, 30001]
    assert out["seconds"]["units"] == [1, 1, 5, 5] and out["seconds"]["rate"] == 30000.0
    # with the recording's 20 kHz: 0.502 -> 1, 0.5 -> 0 (round half to even), 10000, 20000.8 -> 20001
    assert out["seconds_rate_from_recording"]["times"] == [0, 1, 10000, 20001]
    assert out["seconds_rate_from_recording"]["units"] == [1, 1, 5, 5]
    assert out["seconds_rate_from_recording"]["rate"] == 20000.0


@pytest.mark.parametrize("case, pieces", [
    ("seconds_without_rate", ["sorting.sampling_rate", "seconds.tsv"]),
    ("unknown_column", ["sorting.unit_column", "'cluster'", "'time', 'unit', 'amplitude'"]),
    ("bad_unit", ["bad_unit.csv", "line 3", "'1.5'", "not an integer"]),
    ("negative", ["negative.csv", "line 3", "'-3'", "negative"]),
    ("fraction", ["fraction.csv", "line 2", "'10.5'", "whole number", "seconds"]),
    ("late", ["late.csv", "1000", "past the end", "rec", "< 1000"]),
    ("missing", ["sorting.path", "nope.csv", "does not exist"]),
    ("header_only", ["header_only.csv", "no spike rows"]),
])
def test_adapter_errors_are_hybridkit_errors_that_say_what_is_wrong(loaded, case, pieces):
    _, out = loaded
    assert "error" in out[case], out[case]
    name, message = out[case]["error"]
    assert name == "CsvSortingError"
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, (piece, message)


def test_in_range_times_pass_the_recording_check(loaded):
    assert loaded[1]["in_range"]["times"] == [10, 1000]


def test_detect_recognises_csv_tables(site, loaded):
    d, _ = loaded
    (d / "other.csv").write_text("t,cluster\n1,2\n")
    (d / "table.txt").write_text("time,unit\n1,2\n")
    found = _json(site, """
        import json, sys
        from hybridkit_csv_sorting import CsvSorting
        print(json.dumps([CsvSorting.detect(p) for p in sys.argv[1:]]))
    """, str(d / "samples.csv"), str(d / "other.csv"), str(d / "table.txt"), str(d))
    assert found == [True, False, False, False]


def test_blocking_the_plugin_by_name(site):
    env_code = """
        import json, os
        os.environ["HYBRIDKIT_BLOCK_PLUGINS"] = "phy, csv"
        from hybridkit.registry import build_registry
        print(json.dumps(sorted(build_registry().plugins["sorter_adapter"])))
    """
    names = _json(site, env_code)
    assert "csv" not in names and "phy" not in names


def test_cli_plugins_json_lists_the_plugin(site):
    proc = _run(site, "", "-m", "hybridkit", "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    csv_rows = [r for r in rows if r["name"] == "csv"]
    assert len(csv_rows) == 1
    assert {k: csv_rows[0][k] for k in ("name", "kind", "distribution", "version")} == {
        "name": "csv", "kind": "sorter_adapter", "distribution": "hybridkit-csv-sorting",
        "version": VERSION}


def test_config_using_the_plugin_validates_and_runs(site, tmp_path):
    """A user's config with the third-party adapter: `config check` and `generate` both succeed."""
    import numpy as np

    from hybridkit.example import write_example

    demo = tmp_path / "demo"
    write_example(demo, seed=2, duration_s=3.0)
    times = np.load(demo / "kilosort4" / "spike_times.npy")
    units = np.load(demo / "kilosort4" / "spike_clusters.npy")
    rows = "\n".join(f"{t},{u}" for t, u in zip(times, units))
    (demo / "spikes.csv").write_text("time,unit\n" + rows + "\n")
    cfg = json.loads((demo / "config.json").read_text())
    cfg["sorting"] = {"type": "csv", "path": "spikes.csv"}
    cfg["templates"] = {"type": "local", "min_spikes": 5}  # 3 s of a slow unit is few spikes
    cfg["writers"] = [{"type": "legacy"}]
    cfg["engine"] = {"progress": False}
    (demo / "csv_config.json").write_text(json.dumps(cfg))

    check = _run(site, "", "-m", "hybridkit", "config", "check", str(demo / "csv_config.json"))
    assert check.returncode == 0, check.stderr
    assert "sorting: csv" in check.stdout
    gen = _run(site, "", "-m", "hybridkit", "generate", str(demo / "csv_config.json"))
    assert gen.returncode == 0, gen.stderr
    firings = np.load(demo / "hybrid" / "firings_true.npy")
    assert set(firings[2].tolist()) == set(cfg["units"]["ids"])
