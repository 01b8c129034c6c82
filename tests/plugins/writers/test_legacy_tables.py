"""The legacy writer's CSV tables: formatted a block of rows at a time, same text as one block."""
import numpy as np

from hybridkit.plugins.writers.legacy import tables as legacy_tables


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


def test_annotations_merge_equals_a_stable_sort_of_both_lists():
    """Sorting spikes (unsorted, with repeats) and hybrid events (sorted, some at the very same
    samples): block by block, the rows a stable argsort of the concatenation gives."""
    rng = np.random.default_rng(3)
    a_t = rng.integers(0, 500, 997)
    a_u = rng.integers(0, 40, a_t.size)
    b_t = np.sort(np.r_[rng.integers(0, 520, 203), a_t[:5], [0, 0, 519]])
    b_u = rng.integers(100, 110, b_t.size)
    t, u = np.r_[a_t, b_t], np.r_[a_u, b_u]
    order = np.argsort(t, kind="stable")
    for block in (1, 7, 100, 5000):
        got = list(legacy_tables.merged_by_time(a_t, a_u, b_t, b_u, block))
        assert all(len(g[0]) == block for g in got[:-1])
        np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), t[order])
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), u[order])
    # sorted input is not copied, and empty lists on either side work
    s_t = np.sort(a_t)
    [(tt, uu)] = legacy_tables.merged_by_time(s_t, a_u, np.zeros(0, np.int64), np.zeros(0, np.int64), 10**6)
    assert np.array_equal(tt, s_t) and np.array_equal(uu, a_u)
    [(tt, uu)] = legacy_tables.merged_by_time(np.zeros(0, np.int64), np.zeros(0, np.int64), b_t, b_u, 10**6)
    assert np.array_equal(tt, b_t) and np.array_equal(uu, b_u)
    assert list(legacy_tables.merged_by_time(np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
                                             np.zeros(0, np.int64), 10)) == []


def test_metadata_table_names_the_source_files_without_this_machines_paths(generated):
    """metadata-<session>.csv travels with the output: each source file by its name (as the NWB
    writer's source.files), with its samples and first sample, in the run's file order."""
    import csv
    import json
    from pathlib import Path

    sources = json.loads((generated / "manifest.json").read_text())["sources"]
    text = (generated / "metadata-demo.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["filename"] for r in rows] == [Path(s["path"]).name for s in sources]
    assert [r["filename"] for r in rows] == ["demo_g0_t0.imec0.ap.bin"]
    assert [int(r["samples"]) for r in rows] == [s["n_samples"] for s in sources]
    assert [int(r["start_time"]) for r in rows] == [s["first_sample"] for s in sources]
    assert str(Path(sources[0]["path"]).parent) not in text
