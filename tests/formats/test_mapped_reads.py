"""formats/mapped_reads.py: a samples-major file's samples behind any header, read-only; nothing to
map is None; a file shorter than its samples is one line naming it."""
from __future__ import annotations

import numpy as np
import pytest

from hybridkit.errors import SourceError
from hybridkit.formats.mapped_reads import map_samples


def test_maps_the_samples_after_an_odd_header(tmp_path):
    data = np.arange(5 * 3, dtype=np.int16).reshape(5, 3)
    path = tmp_path / "rec.bin"
    path.write_bytes(b"HEADER!" + data.tobytes() + b"\x01")  # 7-byte header, a stray trailing byte
    mapped = map_samples(path, np.int16, 3, 5, offset_bytes=7)
    assert mapped.shape == (5, 3) and type(mapped) is np.ndarray
    assert np.array_equal(mapped, data) and mapped[0, 0] == 0 and mapped[4, 2] == 14
    assert not mapped.flags.writeable
    with pytest.raises(ValueError):
        mapped[0, 0] = 1
    assert path.read_bytes()[7:9] == b"\x00\x00"


def test_nothing_to_map_and_a_short_file(tmp_path):
    path = tmp_path / "rec.bin"
    path.write_bytes(np.zeros((4, 3), np.int16).tobytes())
    assert map_samples(path, np.int16, 3, 0) is None
    with pytest.raises(SourceError, match=r"rec\.bin: cannot map 5 samples x 3 channels of int16 \(30 bytes") as err:
        map_samples(path, np.int16, 3, 5)
    assert "\n" not in str(err.value)
    with pytest.raises(SourceError, match="missing.bin: cannot map"):
        map_samples(tmp_path / "missing.bin", np.int16, 3, 5)
