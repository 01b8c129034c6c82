"""The legacy writer's CSV tables: formatted a block of rows at a time, same text as one block."""
import numpy as np

from hybridkit.plugins import legacy_tables


def test_csv_in_blocks_equals_one_block(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 1003  # not a multiple of the block size: a short last block
    cols = [rng.integers(0, 10**12, n), rng.integers(-5, 5, n), rng.normal(size=n)]
    one = legacy_tables._csv(tmp_path / "one.csv", ["a", "b", "c"], cols, ["%d", "%d", "%.6f"])
    monkeypatch.setattr(legacy_tables, "_CSV_BLOCK_ROWS", 100)
    blocks = legacy_tables._csv(tmp_path / "blocks.csv", ["a", "b", "c"], cols, ["%d", "%d", "%.6f"])
    text = blocks.read_text()
    assert text == one.read_text()
    lines = text.splitlines()
    assert lines[0] == "a,b,c" and len(lines) == n + 1
    assert lines[101] == f"{cols[0][100]},{cols[1][100]},{cols[2][100]:.6f}"  # first row of block 2
    assert lines[-1] == f"{cols[0][-1]},{cols[1][-1]},{cols[2][-1]:.6f}"


def test_csv_without_rows_has_only_the_header(tmp_path):
    path = legacy_tables._csv(tmp_path / "e.csv", ["channel", "clipped_samples"],
                              [np.zeros(0, np.int64), np.zeros(0, np.int64)], ["%d", "%d"])
    assert path.read_text() == "channel,clipped_samples\n"
