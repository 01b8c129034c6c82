"""Sorter adapter ``spikeinterface``: a save() folder, an NPZ sorting, an extractor and its
arguments (MountainSort's firings.mda); unit ids kept; several segments on the recording's clock;
``hybridkit score`` takes them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybridkit.errors import SortingError
from hybridkit.hookspecs import RunContext
from hybridkit.model import Recording, SourceFile
from hybridkit.plugins.sorters.spikeinterface import SpikeInterfaceAdapter
from hybridkit.results.truth import load_truth
from tests.helpers import DELTA, main, read_csv

FS = 30000.0
#: non-contiguous ids, as a curated sorting shows them
IDS = [3, 17, 42]


def numpy_sorting(times: dict[int, np.ndarray], fs: float = FS, segments: int = 1):
    import spikeinterface.core as si

    per_seg = [({u: t for u, t in times.items()}) for _ in range(segments)]
    return si.NumpySorting.from_unit_dict(per_seg, sampling_frequency=fs)


def trains(seed: int = 0, n: int = 90000) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {u: np.sort(rng.choice(n, 50 + 10 * i, replace=False)).astype(np.int64) for i, u in enumerate(IDS)}


def load(section: dict, base: Path, recording: Recording | None = None):
    options = SpikeInterfaceAdapter.Options.model_validate(section, context={"base_dir": base})
    return SpikeInterfaceAdapter(options, RunContext(base, np.random.default_rng(0), 0)).load(recording)


def check(sorting, times: dict[int, np.ndarray]) -> None:
    assert sorting.unit_ids.tolist() == IDS
    assert np.all(np.diff(sorting.spike_times) >= 0)
    for u, t in times.items():
        assert np.array_equal(sorting.times_of(u), t)


def test_saved_folder_and_npz_keep_ids_and_times(tmp_path):
    times = trains()
    srt = numpy_sorting(times)
    srt.set_property("quality", np.array(["good", "mua", "good"]))
    srt.save(folder=tmp_path / "saved")
    got = load({"type": "spikeinterface", "path": "saved"}, tmp_path)
    check(got, times)
    assert got.labels == {3: "good", 17: "mua", 42: "good"} and got.sampling_rate == FS
    from spikeinterface.core import NpzSortingExtractor

    NpzSortingExtractor.write_sorting(srt, tmp_path / "s.npz")
    check(load({"type": "spikeinterface", "path": "s.npz"}, tmp_path), times)
    assert SpikeInterfaceAdapter.detect(tmp_path / "saved") and SpikeInterfaceAdapter.detect(tmp_path / "s.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    assert not SpikeInterfaceAdapter.detect(tmp_path / "other.npz")
    assert not SpikeInterfaceAdapter.detect(tmp_path)


def test_extractor_and_arguments(tmp_path):
    from spikeinterface.extractors.mdaextractors import MdaSortingExtractor

    times = trains(1)
    MdaSortingExtractor.write_sorting(numpy_sorting(times), tmp_path / "firings.mda")
    got = load({"type": "spikeinterface", "extractor": "mda", "file_path": "firings.mda",
                "sampling_frequency": FS}, tmp_path)
    check(got, times)


def test_segments_go_onto_the_recordings_files(tmp_path):
    times = {u: t[t < 40000] for u, t in trains(2).items()}
    numpy_sorting(times, segments=2).save(folder=tmp_path / "two")
    files = [SourceFile(tmp_path / "a.bin", 40000), SourceFile(tmp_path / "b.bin", 50000)]
    rec = Recording(files=files, dtype=np.int16, n_channels=2, sampling_rate=FS, gain_to_uV=np.ones(2),
                    offset_to_uV=np.zeros(2), channel_positions=np.zeros((2, 2)), neural=np.ones(2, bool))
    got = load({"type": "spikeinterface", "path": "two"}, tmp_path, rec)
    for u, t in times.items():  # segment 1 starts at sample 40000 of the run
        assert np.array_equal(got.times_of(u), np.sort(np.concatenate([t, t + 40000])))
    with pytest.raises(SortingError, match="2 segments but there is no recording"):
        load({"type": "spikeinterface", "path": "two"}, tmp_path)


def test_bad_inputs_are_one_line(tmp_path):
    import spikeinterface.core as si

    srt = si.NumpySorting.from_unit_dict([{"a": np.array([1, 2])}], FS)
    srt.save(folder=tmp_path / "named")
    with pytest.raises(SortingError, match=r"unit ids \['a'\] are not integers"):
        load({"type": "spikeinterface", "path": "named"}, tmp_path)
    with pytest.raises(Exception, match="'kilosort' is refused: its reader runs params.py"):
        load({"type": "spikeinterface", "extractor": "kilosort", "folder_path": "."}, tmp_path)
    with pytest.raises(Exception, match="'intan' is not a SpikeInterface sorting extractor"):
        load({"type": "spikeinterface", "extractor": "intan", "file_path": "x"}, tmp_path)
    with pytest.raises(SortingError, match="not a folder saved by SpikeInterface"):
        load({"type": "spikeinterface", "path": "."}, tmp_path)


# -- hybridkit score -----------------------------------------------------------------------------------
def test_score_takes_a_saved_folder_and_an_extractor_file(generated, tmp_path, capsys):
    """The perfect sorting of the truth, as a save() folder (detected) and as firings.mda named by
    a sorting section in a .json file; scores are 1 for every unit, sorted ids kept."""
    from spikeinterface.extractors.mdaextractors import MdaSortingExtractor

    truth = load_truth(generated)
    times = {u + 1000: truth.times_of(u) for u in truth.unit_ids.tolist()}  # ids a sorter chose
    srt = numpy_sorting(times, fs=truth.sampling_rate)
    srt.save(folder=tmp_path / "si_sorting")
    code, out, err = main(capsys, "score", generated, tmp_path / "si_sorting", "-o", tmp_path / "s1")
    assert code == 0, err
    rows = read_csv(tmp_path / "s1" / "units.csv")
    for u in truth.unit_ids.tolist():
        assert rows[str(u)]["matched_unit"] == str(u + 1000) and float(rows[str(u)]["accuracy"]) == 1.0

    MdaSortingExtractor.write_sorting(srt, tmp_path / "firings.mda")
    spec = tmp_path / "mda_sorting.json"
    spec.write_text(json.dumps({"type": "spikeinterface", "extractor": "mda", "file_path": "firings.mda",
                                "sampling_frequency": truth.sampling_rate}))
    code, out, err = main(capsys, "score", generated, spec, "-o", tmp_path / "s2")
    assert code == 0, err
    assert read_csv(tmp_path / "s2" / "units.csv") == rows
    # shifted by more than the tolerance: nothing matches, which the numbers above could not hide
    late = numpy_sorting({u: t + DELTA + 1 for u, t in times.items()}, fs=truth.sampling_rate)
    late.save(folder=tmp_path / "late")
    assert main(capsys, "score", generated, tmp_path / "late", "-o", tmp_path / "s3")[0] == 0
    assert all(float(r["accuracy"]) == 0.0 for r in read_csv(tmp_path / "s3" / "units.csv").values())


def test_a_saved_recording_is_not_a_sorting_and_a_saved_sorting_not_a_recording(tmp_path):
    """Both plugins open their SpikeInterface object through one helper
    (formats/si_objects.open_configured); each refuses the other kind, naming what it got."""
    import spikeinterface.core as si

    from hybridkit.errors import SourceError
    from hybridkit.plugins.sources.spikeinterface import SpikeInterfaceReader

    numpy_sorting(trains()).save(folder=tmp_path / "a_sorting")
    rec = si.NumpyRecording([np.zeros((100, 2), np.int16)], sampling_frequency=FS)
    rec.set_channel_gains(1.0)
    rec.set_channel_offsets(0.0)
    rec.save(folder=tmp_path / "a_recording", format="binary", verbose=False)
    with pytest.raises(SortingError, match=r"^sorting: \S*a_recording is a \w+, not a sorting$"):
        load({"type": "spikeinterface", "path": "a_recording"}, tmp_path)
    options = SpikeInterfaceReader.Options.model_validate({"type": "spikeinterface", "folder": "a_sorting"},
                                                          context={"base_dir": tmp_path})
    with pytest.raises(SourceError, match=r"^recording: \S*a_sorting is a \w+, not a recording$"):
        SpikeInterfaceReader(options, RunContext(tmp_path, np.random.default_rng(0), 0)).open()
