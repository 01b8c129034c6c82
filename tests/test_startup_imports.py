"""Start-up cost: ``hybridkit --help`` and generate's imports load no heavy library they do not use.

Timings are not asserted (the machines are shared; measure with `python -X importtime`); what is asserted is
the cause of slow start-ups: modules that only some runs need (NWB, plotting, HTTP, package
metadata) must not be imported by every run.
"""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pynwb", "h5py", "hdmf", "matplotlib", "requests", "dandi", "spikeinterface", "scipy",
         "phylib", "nwbinspector")


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
