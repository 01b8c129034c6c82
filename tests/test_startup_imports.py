"""Start-up cost: ``hybridkit --help`` and generate's imports load no heavy library they do not use.

Timings are not asserted (the machines are shared; measure with `python -X importtime`); what is asserted is
the cause of slow start-ups: modules that only some runs need (NWB, plotting, HTTP, package
metadata) must not be imported by every run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import config_with

HEAVY = ("pynwb", "h5py", "hdmf", "matplotlib", "requests", "dandi", "spikeinterface", "scipy",
         "phylib", "nwbinspector")
#: what a generate run of the example (a JSON config, SpikeGLX + phy, local templates, legacy and
#: phy writers, no progress bar) never uses: the above, and YAML, tqdm and its multiprocessing
#: lock, the template database's HTTP/zarr stack, dataframes, compilers, Dask. ``requests`` is
#: left out: reading SpikeGLX geometry puts a stand-in for it in sys.modules (urllib3 shows the
#: real import).
RUN_HEAVY = tuple(m for m in HEAVY if m != "requests") + (
    "urllib3", "charset_normalizer", "yaml", "tqdm", "multiprocessing", "zarr", "fsspec",
    "numcodecs", "pandas", "numba", "dask", "distributed")


def _loaded(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_loads_no_heavy_module_nor_package_metadata():
    loaded = _loaded("import contextlib, io\nfrom hybridkit.cli import main\n"
                     "with contextlib.redirect_stdout(io.StringIO()):\n"
                     "    try:\n        main(['--help'])\n    except SystemExit:\n        pass")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "numpy" not in loaded and "pydantic" not in loaded
    assert "importlib.metadata" not in _loaded_full("from hybridkit.cli import build_parser; build_parser()")


def _loaded_full(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_generate_imports_no_heavy_module():
    loaded = _loaded("from hybridkit.run.pipeline import generate\n"
                     "from hybridkit.registry import get_registry\nget_registry()")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_reading_a_spikeglx_geometry_defers_requests_until_used():
    """probeinterface imports requests (for downloads a run never makes): reading a SpikeGLX
    meta's geometry does not pay for it, and requests still works for whoever uses it after."""
    meta = "tests/data/spikeglx/ibl-neuropixel/sampleNP2.1_g0_t0.imec.ap.meta"
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from hybridkit.formats.spikeglx_meta import read_meta, spikeglx_probe\n"
        f"probe, pos = spikeglx_probe(Path({meta!r}), read_meta({meta!r}))\n"
        "before = sorted(m for m in ('urllib3', 'charset_normalizer') if m in sys.modules)\n"
        "import requests\n"
        "from requests.exceptions import HTTPError\n"
        "ok = callable(requests.get) and issubclass(HTTPError, Exception)\n"
        "print(json.dumps([before, pos.shape[0], ok, 'urllib3' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, n_contacts, ok, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [] and n_contacts > 0
    assert ok and after


def _example_config(example: Path, root: Path) -> Path:
    return config_with(example, root, writers=[{"type": "legacy"}, {"type": "phy"}],
                       output={"directory": str(root / "out")})


def test_generate_up_to_its_first_work_loads_only_what_it_needs(example, tmp_path):
    """What `hybridkit generate CONFIG` runs before generate opens the recording (the CLI, the
    run's modules, the registry with every plugin module, load_config) imports none of the
    above, nor probeinterface and its HTTP stack (imported where geometry is read)."""
    config = _example_config(example, tmp_path)
    loaded = _loaded("import hybridkit.cli\n"
                     "from hybridkit.config.run_config import load_config\n"
                     "from hybridkit.run.pipeline import generate\n"
                     f"load_config({str(config)!r})")
    assert not loaded & set(RUN_HEAVY + ("probeinterface", "ssl", "http")), loaded
    assert "hybridkit" in loaded and "pydantic" in loaded
    # a config without motion or augment sections imports neither's models (nor the drift engine)
    modules = _loaded_full(f"from hybridkit.config.run_config import load_config\nload_config({str(config)!r})")
    assert not modules & {"hybridkit.run.motion", "hybridkit.engine.drift",
                          "hybridkit.config.augment_config"}


def test_a_generate_run_loads_nothing_it_does_not_use(example, tmp_path):
    config = _example_config(example, tmp_path)
    loaded = _loaded("import contextlib, io\nfrom hybridkit.cli import main\n"
                     "with contextlib.redirect_stdout(io.StringIO()):\n"
                     f"    assert main(['generate', {str(config)!r}]) == 0")
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert not loaded & set(RUN_HEAVY), loaded & set(RUN_HEAVY)
    assert "probeinterface" in loaded  # SpikeGLX geometry is read with it


def test_registering_the_plugins_builds_no_options_validator():
    """Registering a plugin defines its Options class but does not build its validator
    (``defer_build``): a run builds the one model of the plugins its config names."""
    code = ("import json\nfrom hybridkit.registry import get_registry\n"
            "reg = get_registry()\n"
            "print(json.dumps([len(reg.all()), sorted(i.name for i in reg.all() "
            "if i.cls.Options.__pydantic_complete__)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_plugins, built = json.loads(out.stdout.strip().splitlines()[-1])
    assert n_plugins >= 16 and built == []
