"""gather_snippets: exact slices of a recording, across file boundaries, any order, in batches."""
import numpy as np
import pytest

from hybridkit.engine.snippets import gather_snippets
from hybridkit.model import Recording, SourceFile

N_CH = 9


def _recording(tmp_path, lengths=(1000, 700), order="samples"):
    """A multi-file int16 recording whose values are all distinct, plus its full traces."""
    rng = np.random.default_rng(1)
    files, parts = [], []
    for k, n in enumerate(lengths):
        data = rng.integers(-30000, 30000, size=(n, N_CH)).astype(np.int16)
        path = tmp_path / f"f{k}.bin"
        (data if order == "samples" else data.T).tofile(path)
        files.append(SourceFile(path=path, n_samples=n))
        parts.append(data)
    pos = np.column_stack([np.zeros(N_CH), 20.0 * np.arange(N_CH)])
    rec = Recording(files=files, dtype=np.int16, n_channels=N_CH, sampling_rate=30000.0,
                    gain_to_uV=np.full(N_CH, 2.5), offset_to_uV=np.zeros(N_CH),
                    channel_positions=pos, neural=np.ones(N_CH, bool), order=order)
    return rec, np.concatenate(parts)


@pytest.mark.parametrize("order", ["samples", "channels"])
def test_snippets_equal_slices_in_input_order(tmp_path, order):
    rec, full = _recording(tmp_path, order=order)
    # unsorted, with one window straddling the file boundary (1000) and windows at both ends
    times = np.array([500, 10, 998, 1003, 1690, 10, 1000])
    snips = gather_snippets(rec, times, 10, 10)
    assert snips.shape == (7, 20, N_CH) and snips.dtype == np.float32
    for i, t in enumerate(times):
        np.testing.assert_array_equal(snips[i], full[t - 10 : t + 10].astype(np.float32))


@pytest.mark.parametrize("order", ["samples", "channels"])
def test_snippets_after_a_header(tmp_path, order):
    """A file whose data starts at an odd byte offset (a header), either layout."""
    rng = np.random.default_rng(2)
    data = rng.integers(-30000, 30000, size=(5000, N_CH)).astype(np.int16)
    path = tmp_path / "h.bin"
    path.write_bytes(b"x" * 4099 + (data if order == "samples" else data.T).tobytes())
    rec = Recording(files=[SourceFile(path=path, n_samples=5000, offset_bytes=4099)], dtype=np.int16,
                    n_channels=N_CH, sampling_rate=30000.0, gain_to_uV=np.ones(N_CH),
                    offset_to_uV=np.zeros(N_CH), channel_positions=np.zeros((N_CH, 2)),
                    neural=np.ones(N_CH, bool), order=order)
    times = rng.integers(5, 4990, size=60)
    chans = np.array([7, 0, 3])
    snips = gather_snippets(rec, times, 5, 9, chans)
    for i, t in enumerate(times):
        np.testing.assert_array_equal(snips[i], data[t - 5 : t + 9][:, chans])


def test_snippets_channel_subset_keeps_order(tmp_path):
    rec, full = _recording(tmp_path)
    chans = np.array([5, 1, 8])
    snips = gather_snippets(rec, np.array([300, 999]), 3, 5, chans)
    np.testing.assert_array_equal(snips[0], full[297:305][:, chans])
    np.testing.assert_array_equal(snips[1], full[996:1004][:, chans])
    contiguous = gather_snippets(rec, np.array([42]), 2, 2, np.arange(2, 6))
    np.testing.assert_array_equal(contiguous[0], full[40:44, 2:6])


def test_snippet_window_edges(tmp_path):
    rec, full = _recording(tmp_path)
    n = rec.n_samples
    # first and last windows that fit
    snips = gather_snippets(rec, np.array([4, n - 6]), 4, 6)
    np.testing.assert_array_equal(snips[0], full[0:10])
    np.testing.assert_array_equal(snips[1], full[n - 10 : n])
    with pytest.raises(ValueError, match="leave the recording"):
        gather_snippets(rec, np.array([100, 3]), 4, 6)
    with pytest.raises(ValueError, match="leave the recording"):
        gather_snippets(rec, np.array([n - 5]), 4, 6)
    assert gather_snippets(rec, np.zeros(0, np.int64), 4, 6).shape == (0, 10, N_CH)


def test_snippets_in_many_batches(tmp_path, monkeypatch):
    """Batches of a few windows (the read buffer is bounded): same values, input order kept,
    also for windows around the file boundary that the batched path hands back."""
    import hybridkit.engine.snippets as snippets

    monkeypatch.setattr(snippets, "_BATCH_BYTES", 3 * 12 * N_CH * 2)  # 3 windows of 12 rows
    rec, full = _recording(tmp_path)
    times = np.random.default_rng(3).permutation(np.arange(6, 1694, 37))
    times = np.concatenate([times, [995, 1000, 1004]])  # across and right after the boundary
    for chans in (None, np.array([8, 2, 5]), np.arange(3, 7)):
        snips = gather_snippets(rec, times, 6, 6, chans)
        cols = np.arange(N_CH) if chans is None else chans
        for i, t in enumerate(times):
            np.testing.assert_array_equal(snips[i], full[t - 6 : t + 6][:, cols])


def test_windows_inside_matches_what_the_gathers_accept(tmp_path):
    """windows_inside keeps exactly the times whose (padded) window gather_band_snippets can read."""
    from hybridkit.engine.filtering import Highpass
    from hybridkit.engine.snippets import gather_band_snippets, windows_inside

    rec, _ = _recording(tmp_path)
    n = rec.n_samples
    band = Highpass.for_recording(300.0, rec.sampling_rate)
    assert band.pad < 400
    times = np.array([4, 5, n - 6, n - 5, band.pad + 4, band.pad + 5, n - 6 - band.pad, n - 5 - band.pad])
    assert windows_inside(times, 5, 6, n).tolist() == [False, True, True, False, True, True, True, True]
    inside = windows_inside(times, 5, 6, n, band)
    assert inside.tolist() == [False, False, False, False, False, True, True, False]
    gather_band_snippets(rec, times[inside], 5, 6, None, band)  # reads, no error
    for t in times[~inside]:
        with pytest.raises(ValueError, match="leave the recording"):
            gather_band_snippets(rec, np.array([t]), 5, 6, None, band)


def test_chunked_nwb_is_read_in_chunk_order_each_chunk_once(tmp_path):
    """A neuroconv-like series (chunked, gzip + shuffle): several requests of windows that cross
    chunk rows and column chunks are served in one pass, each touched chunk read and
    decompressed once, only the column chunks holding requested channels; values exact."""
    from hybridkit.engine.filtering import Highpass
    from hybridkit.engine.snippets import gather_band_snippets, gather_many
    from hybridkit.plugins.sources.nwb.reader import NwbReader
    from tests.helpers import make_recording
    from tests.plugins.nwb_testutil import write_nwb

    data = (np.random.default_rng(0).normal(size=(9000, 40)) * 50).astype(np.int16)
    path = write_nwb(tmp_path / "c.nwb", data, chunks=(1000, 16), compression="gzip", shuffle=True)
    rec = NwbReader(NwbReader.Options(type="nwb", path=path)).open()
    assert rec.chunk_shape == (1000, 16)
    a = np.array([990, 25, 4500, 8960, 1000, 999])  # across rows 0/1, the first and last samples
    b = np.array([3010, 2999, 6000])
    cols_a, cols_b = np.array([3, 17, 39]), np.array([1, 2])  # column chunks {0, 1, 2} and {0}
    out_a, out_b = gather_many(rec, [(a, cols_a), (b, cols_b)], 20, 30)
    np.testing.assert_array_equal(out_a, np.stack([data[t - 20:t + 30][:, cols_a] for t in a]))
    np.testing.assert_array_equal(out_b, np.stack([data[t - 20:t + 30][:, cols_b] for t in b]))
    # rows touched: 0, 1, 4, 8 (request a, 3 column chunks) and 2, 3, 5, 6 (request b, 1 column
    # chunk: its windows [2990, 3040), [2979, 3029) and [5980, 6030) cross rows)
    assert set(rec.chunks_touched) == ({(r, c) for r in (0, 1, 4, 8) for c in (0, 1, 2)}
                                       | {(r, 0) for r in (2, 3, 5, 6)})
    assert rec._chunks.reads == len(rec.chunks_touched)  # each once
    # high-passed: the same as the flat gather of the same samples, padded windows included
    band = Highpass.for_recording(300.0, 30000.0)
    times = np.array([band.pad + 30, 5000, 9000 - band.pad - 40])
    flat = make_recording(tmp_path, data)
    np.testing.assert_allclose(gather_band_snippets(rec, times, 20, 30, cols_a, band),
                               gather_band_snippets(flat, times, 20, 30, cols_a, band), rtol=0, atol=1e-4)
    rec.close()
