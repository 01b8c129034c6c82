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
