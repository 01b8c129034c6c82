"""Shared test helpers: small recordings and configs built inside the tests (offline, no ../shared)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(json.dumps(cfg, indent=2))
    return path


@pytest.fixture
def minimal_config(tmp_path) -> dict:
    """A structurally valid config (files need not exist for validation)."""
    geom = tmp_path / "geom.npy"
    np.save(geom, np.c_[np.zeros(4), np.arange(4) * 20.0])
    return {
        "seed": 1,
        "recording": {"type": "binary", "path": "rec.bin", "dtype": "int16", "n_channels": 4,
                      "sampling_rate": 30000, "geometry": "geom.npy"},
        "sorting": {"type": "phy", "path": "ks"},
        "units": {"ids": [1, 2]},
    }
