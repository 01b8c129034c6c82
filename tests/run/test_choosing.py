"""`hybridkit units --recording CONFIG` previews the run: same table, same units, same places; a
split unit is caught as a duplicate; units are placed best-ranked first."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from hybridkit.config.run_config import UnitsConfig, load_config
from hybridkit.errors import PlacementError
from hybridkit.model import Sorting
from hybridkit.run.pipeline import generate
from hybridkit.run.selection import evaluate

from tests.helpers import main, make_recording

#: the example's unit whose spikes the constructed split unit shares, and the split unit's id
SPLIT_OF, SPLIT = 10, 12


@pytest.fixture(scope="module")
def split_sorting(example):
    """The example's phy folder plus unit 12: 75 % of unit 10's spikes, each moved by up to 3
    samples (inside the 0.4 ms = 11-sample tolerance), labelled good, as a sorter's split."""
    folder = example.parent / "kilosort4_split"
    shutil.copytree(example / "kilosort4", folder)
    times = np.load(folder / "spike_times.npy").astype(np.int64).ravel()
    clusters = np.load(folder / "spike_clusters.npy").ravel()
    rng = np.random.default_rng(7)
    own = times[clusters == SPLIT_OF]
    copy = np.sort(rng.choice(own, size=int(0.75 * own.size), replace=False)) + rng.integers(-3, 4, int(0.75 * own.size))
    all_times = np.concatenate([times, copy])
    order = np.argsort(all_times, kind="stable")
    np.save(folder / "spike_times.npy", all_times[order].astype(np.uint64))
    np.save(folder / "spike_clusters.npy", np.concatenate([clusters, np.full(copy.size, SPLIT)])[order].astype(np.int32))
    for name in ("spike_templates.npy", "amplitudes.npy"):
        extra = np.load(folder / name).ravel()
        fill = SPLIT_OF if name == "spike_templates.npy" else 1.0
        np.save(folder / name, np.concatenate([extra, np.full(copy.size, fill, extra.dtype)])[order])
    for name in ("cluster_group.tsv", "cluster_KSLabel.tsv"):
        path = folder / name
        path.write_text(path.read_text().rstrip("\n") + f"\n{SPLIT}\tgood\n")
    return folder


def _config(example, tmp_path, units, sorting=None, **changes):
    cfg = json.loads((example / "config.json").read_text())
    cfg["recording"]["path"] = str(example / cfg["recording"]["path"])
    cfg["sorting"]["path"] = str(sorting or example / cfg["sorting"]["path"])
    cfg["engine"] = {"progress": False}
    cfg["units"] = units
    cfg["writers"] = [{"type": "legacy"}]
    cfg["output"] = {"directory": str(tmp_path / "out")}
    cfg.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def _preview(capsys, path, tmp_path, sorting):
    code, out, err = main(capsys, "units", sorting, "--recording", path, "--csv", tmp_path / "preview.csv")
    assert code == 0, err
    return out, (tmp_path / "preview.csv").read_text()


def _rows(text: str) -> dict[int, dict[str, str]]:
    return {int(r["unit_id"]): r for r in csv.DictReader(text.splitlines())}


@pytest.mark.parametrize("units", [
    {"ids": [11, 2, 7, 10]},  # explicit ids: only they are candidates, in the run and the preview
    {"label": "good", "min_snr": 4, "max_count": 3, "rank_by": "snr"},
], ids=["ids", "criteria"])
def test_preview_table_is_the_runs(example, tmp_path, capsys, units):
    path = _config(example, tmp_path, units)
    out, preview = _preview(capsys, path, tmp_path, example / "kilosort4")
    result = generate(load_config(path))
    run = (result.output_dir / "units_selection-demo.csv").read_text()
    assert preview == run  # every column of every row, byte for byte
    rows = _rows(run)
    chosen = sorted(u for u, r in rows.items() if r["selected"] == "true")
    assert sorted(u.source_unit_id for u in result.truth.plan.units) == chosen
    # every chosen unit gets its template's numbers (what its injected copy reports)
    assert all(bool(r["template_snr"]) == (u in chosen) for u, r in rows.items())
    if "ids" in units:
        assert list(rows) == units["ids"] and len(chosen) == 4
        # no criterion asks for amplitude/SNR and no two trains coincide: nothing is measured
        assert not any(r["snr"] or r["amplitude_uV"] for r in rows.values())
    else:
        # min_snr asks: measured for every unit that passed the cheaper criteria, blank elsewhere
        assert all(bool(r["snr"]) == (r["failed"] != "label") for r in rows.values())
        assert len(chosen) == 3 and {r["failed"] for r in rows.values()} >= {"label", "max_count"}
    seed = load_config(path).seed
    assert f"{len(chosen)} chosen; the run's selection and placement (seed {seed})" in out.splitlines()[0]


def test_a_units_sample_does_not_depend_on_the_other_units(tmp_path):
    """Each unit's spikes are drawn from its own stream (seed, unit id): measuring a unit alone or
    among others gives the same amplitude and SNR (the old shared stream shifted every draw)."""
    rng = np.random.default_rng(0)
    n, fs = 60_000, 30_000.0
    data = rng.normal(0, 20, (n, 4))
    trains = {u: np.sort(rng.choice(np.arange(100, n - 100), 400, replace=False)) for u in (1, 2, 3)}
    for u, t in trains.items():  # spikes of varied size, so which 100 are averaged matters
        data[t, u] -= rng.uniform(50, 400, t.size)
    rec = make_recording(tmp_path, data.astype(np.int16), fs=fs, gain=1.0)
    sorting = Sorting(spike_times=np.concatenate(list(trains.values())),
                      spike_units=np.repeat(list(trains), 400), unit_ids=np.array([1, 2, 3]))
    kw = dict(fs=fs, n_samples=n, recording=rec, seed=5)
    every = {r.unit_id: r.metrics for r in evaluate(sorting, UnitsConfig(min_firing_rate_hz=0), **kw)}
    for uid in (1, 2, 3):
        [alone] = evaluate(sorting, UnitsConfig(ids=[uid]), **kw)
        assert (alone.metrics.amplitude_uV, alone.metrics.snr) == (every[uid].amplitude_uV, every[uid].snr)
    [two, three] = evaluate(sorting, UnitsConfig(ids=[2, 3]), **kw)
    assert (two.metrics.amplitude_uV, three.metrics.amplitude_uV) == (every[2].amplitude_uV, every[3].amplitude_uV)
    # the sample is a real draw: another seed averages other spikes
    other = {r.unit_id: r.metrics for r in evaluate(sorting, UnitsConfig(min_firing_rate_hz=0), **{**kw, "seed": 6})}
    assert all(other[u].amplitude_uV != every[u].amplitude_uV for u in (1, 2, 3))


def test_split_unit_is_dropped_as_a_duplicate(example, split_sorting, tmp_path, capsys):
    path = _config(example, tmp_path, {"label": "good", "min_firing_rate_hz": 5}, sorting=split_sorting)
    out, preview = _preview(capsys, path, tmp_path, split_sorting)
    rows = _rows(preview)
    pair = sorted((SPLIT, SPLIT_OF), key=lambda u: (-float(rows[u]["snr"]), u))
    kept, dropped = pair
    assert rows[kept]["selected"] == "true"
    assert rows[dropped]["failed"] == "duplicate"
    assert rows[dropped]["detail"].startswith(f"duplicate of unit {kept} (ranked higher by snr): ")
    # no other unit of the example is a duplicate of anything
    assert [u for u, r in rows.items() if r["failed"] == "duplicate"] == [dropped]
    result = generate(load_config(path))
    assert (result.output_dir / "units_selection-demo.csv").read_text() == preview
    assert dropped not in {u.source_unit_id for u in result.truth.plan.units}

    keep = _config(example, tmp_path, {"label": "good", "min_firing_rate_hz": 5, "keep_duplicates": True},
                   sorting=split_sorting)
    rows = _rows(_preview(capsys, keep, tmp_path, split_sorting)[1])
    assert rows[dropped]["selected"] == "true" and rows[dropped]["failed"] == ""
    assert rows[dropped]["detail"].startswith(f"kept although duplicate of unit {kept}")


def test_units_are_placed_best_ranked_first_and_the_drop_is_predicted(example, tmp_path, capsys):
    """A probe with room for fewer units than chosen: the lowest ranked go without a place, the
    preview marks them as the run skips them, and with on_no_place "error" both say why."""
    units = {"label": "good", "min_firing_rate_hz": 5, "rank_by": "snr"}
    placement = {"mode": "random", "min_distance_um": 1200, "on_no_place": "skip"}
    path = _config(example, tmp_path, units, injection={"placement": placement})
    out, preview = _preview(capsys, path, tmp_path, example / "kilosort4")
    rows = _rows(preview)
    result = generate(load_config(path))
    assert (result.output_dir / "units_selection-demo.csv").read_text() == preview
    unplaced = [u for u, r in rows.items() if r["failed"] == "no_place"]
    assert unplaced and sorted(unplaced) == sorted(result.truth.skipped_units)
    candidates = [u for u, r in rows.items() if r["selected"] == "true" or r["failed"] == "no_place"]
    # placement places templates: ranked by the templates' SNR
    by_rank = sorted(candidates, key=lambda u: (-float(rows[u]["template_snr"]), u))
    placed = sorted({u.source_unit_id for u in result.truth.plan.units})
    assert len(placed) + len(unplaced) == len(candidates)
    # greedy in rank order: the best-ranked unit is always placed
    assert by_rank[0] in placed
    # here the probe has room for exactly the three best (placing by id would start with unit 0)
    assert placed == sorted(by_rank[:3]) and len(unplaced) == len(candidates) - 3
    for u in unplaced:
        rank = by_rank.index(u) + 1
        assert rows[u]["detail"].startswith(f"rank {rank} by template snr; no place on the probe: "
                                            "each of the ")
        assert "closer than 1200 um to its source unit or to a unit placed before it" in rows[u]["detail"]

    (tmp_path / "strict").mkdir()
    strict = _config(example, tmp_path / "strict", units,
                     injection={"placement": {**placement, "on_no_place": "error"}})
    out, _ = _preview(capsys, strict, tmp_path, example / "kilosort4")
    first = next(u for u in by_rank if u in unplaced)
    note = out.splitlines()[-1]
    assert note.startswith(f"# note: generate would stop: unit {first} has no place on the probe: each of the ")
    with pytest.raises(PlacementError) as err:
        generate(load_config(strict))
    assert note.endswith(str(err.value))
    assert "injection.placement.on_no_place to \"skip\"" in str(err.value)
