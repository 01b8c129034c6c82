"""One small hybrid run with the NWB writer, shared by the publishing tests (written once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

from hybridkit.config.run_config import load_config
from hybridkit.example import write_example
from hybridkit.run.pipeline import generate
from tests.helpers import config_with

NWB_META = {"session_start_time": "2024-03-04T12:00:00+00:00", "experimenter": ["Doe, Jane"],
            "institution": "Test University", "electrode_location": "CA1", "compression_level": 1,
            "subject": {"subject_id": "mouse01", "species": "Mus musculus", "sex": "U", "age": "P90D"},
            # the suite's dandi check (tests/dandi_check.py) runs dandi validate, nwbinspector included
            "inspect": "off"}


@pytest.fixture(scope="session")
def pub_example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pub_example")
    write_example(root / "demo", seed=3, duration_s=2.0)
    return root / "demo"


@pytest.fixture(scope="session")
def pub_run(pub_example, tmp_path_factory):
    """legacy + nwb (traces, DANDI metadata) on the example; session 'demo'."""
    out = tmp_path_factory.mktemp("pub_run")
    cfg = config_with(pub_example, out, writers=[{"type": "legacy"}, {"type": "nwb", **NWB_META}],
                      engine={"chunk_duration_s": 0.5, "progress": False},
                      templates={"type": "local", "min_spikes": 5},
                      output={"directory": str(out / "hybrid")})
    return generate(load_config(cfg))
