"""Studies end to end on a LocalCluster of 2 worker processes (one cluster for the module).

The example dataset (4 s) is the one source that works; a second source whose sorting has spikes
past the end of the recording makes every dataset of it fail at run time, among the good ones.
Two fake sorters are scored: the ground truth's own phy folder (accuracy 1) and a sorting that
drops every 4th spike of each unit (accuracy known exactly); one of its outputs is missing.
Resuming is tested with a stale staging folder and a worker process killed while it generates.
"""
from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hybridkit.example import BIN_REL, write_example
from hybridkit.results.truth import load_truth
from tests.helpers import main, read_csv, write_phy

distributed = pytest.importorskip("distributed", reason="studies need dask.distributed (test extra)")

SEEDS = [1, 2]
AMP_MAX = {"low": 1.2, "high": 2.0}
GOOD = [f"demo_seed-{s}_max-{a}" for s in SEEDS for a in AMP_MAX]
BROKEN = [f"broken_seed-{s}_max-{a}" for s in SEEDS for a in AMP_MAX]


@pytest.fixture(scope="module")
def client():
    from hybridkit.study.cluster import study_client

    with study_client(workers=2, memory_limit_mb=2048) as c:  # the cluster `study run` starts
        yield c


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    write_example(root / "demo", duration_s=4.0, seed=3)
    # a sorting of the same recording with a spike past its end: loading it fails at run time
    write_phy(root / "broken_sorting", np.array([100, 200, 10**9]), np.array([1, 1, 1]), 29999.9712)
    study = {
        "name": "demo-study",
        "base": "demo/config.json",
        "sources": {
            "demo": {"recording": {"type": "spikeglx", "path": f"demo/{BIN_REL.as_posix()}"},
                     "sorting": {"type": "phy", "path": "demo/kilosort4"}},
            "broken": {"recording": {"type": "spikeglx", "path": f"demo/{BIN_REL.as_posix()}"},
                       "sorting": {"type": "phy", "path": "broken_sorting"}},
        },
        "grid": {"seed": SEEDS, "injection.amplitude.max": AMP_MAX},
        "output": "out",
        "sorters": {"truth": "out/datasets/{dataset}/phy",
                    "dropped": {"path": "sorted/{dataset}/dropped", "type": "phy"}},
    }
    (root / "study.json").write_text(json.dumps(study, indent=1))
    return root


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def cli(*args) -> tuple[int, str, str]:
    """The command line in-process, its output captured (usable in module-scoped fixtures, where
    pytest's capsys is not): exit code, stdout, stderr."""
    from hybridkit.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ran(root, client):
    """`hybridkit study run` through the CLI, on the module's cluster (--scheduler)."""
    src = root / "demo" / BIN_REL
    before = _sha1(src)
    code, out, err = cli("study", "run", root / "study.json", "--scheduler", client.scheduler.address)
    assert _sha1(src) == before  # the source is never modified
    return code, out, err




def test_check_lists_the_datasets(root, capsys):
    code, out, err = main(capsys, "study", "check", root / "study.json")
    assert code == 0, err
    assert "8 dataset(s)" in out and "4 input path(s)" in out
    for name in GOOD + BROKEN:
        assert f"  {name}  (source " in out
    assert "seed=1, injection.amplitude.max=low" in out


def test_the_documented_study_is_valid(root, capsys):
    """docs/studies.md's study file, beside the example dataset, expands as the page says."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "studies.md").read_text()
    yaml_text = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (root / "documented.yaml").write_text(yaml_text)
    code, out, err = main(capsys, "study", "check", root / "documented.yaml")
    assert code == 0, err
    shown = doc.split("$ hybridkit study check study.yaml\n", 1)[1].split("$ ", 1)[0].splitlines()[1:]
    assert out.splitlines()[1:] == shown


def test_run_generates_every_good_dataset_and_reports_the_failing(root, ran):
    code, out, err = ran
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hybridkit: error: study demo-study: 4 of 8 datasets failed")
    assert "past the end" in lines[0]
    assert "4 generated, 0 skipped, 4 failed of 8" in out
    rec = json.loads((root / "out" / "study.json").read_text())
    by_name = {d["name"]: d for d in rec["datasets"]}
    assert sorted(by_name) == sorted(GOOD + BROKEN)
    workers = {d["worker"] for d in rec["datasets"]}
    assert len(workers) == 2 and all(not w.endswith(f":{os.getpid()}") for w in workers)
    for name in BROKEN:
        assert by_name[name]["status"] == "failed"
        assert "broken_sorting" in by_name[name]["error"] and "past the end" in by_name[name]["error"]
        assert not (root / "out" / "datasets" / name).exists()
    for s in SEEDS:
        for label, amp in AMP_MAX.items():
            name = f"demo_seed-{s}_max-{label}"
            d = by_name[name]
            assert d["status"] == "done" and d["params"] == {"seed": s, "injection.amplitude.max": amp}
            folder = root / "out" / "datasets" / name
            resolved = json.loads((folder / "config.resolved.json").read_text())
            assert (resolved["seed"], resolved["session"]) == (s, name)
            assert resolved["injection"]["amplitude"]["max"] == amp
            assert (folder / "manifest.json").is_file()
            gains = load_truth(folder).gains
            assert gains.max() <= amp and gains.max() > 1.0
    assert not list((root / "out" / "datasets").glob(".*"))  # no staging folder left
    # the seed changes the injected trains; the amplitude range alone does not
    t = {n: np.load(root / "out" / "datasets" / n / "firings_true.npy") for n in GOOD}
    assert np.array_equal(t[GOOD[0]], t[GOOD[1]]) and not np.array_equal(t[GOOD[0]][1], t[GOOD[2]][1])


@pytest.fixture(scope="module")
def dropped(root, ran):
    """The 'dropped' sorter's outputs: every 4th spike of each ground-truth unit removed, for the
    first three good datasets (the fourth is missing). Returns dataset -> {gt unit: (tp, n)}."""
    expected = {}
    for name in GOOD[:3]:
        truth = load_truth(root / "out" / "datasets" / name)
        times, units, exp = [], [], {}
        for u in truth.unit_ids.tolist():
            t = truth.times_of(u)
            keep = np.arange(t.size) % 4 != 0
            times.append(t[keep])
            units.append(np.full(keep.sum(), u))
            exp[u] = (int(keep.sum()), int(t.size))
        write_phy(root / "sorted" / name / "dropped", np.concatenate(times), np.concatenate(units),
                  truth.sampling_rate)
        expected[name] = exp
    return expected


@pytest.fixture(scope="module")
def scored(root, client, dropped):
    return cli("study", "score", root / "out", "--scheduler", client.scheduler.address)


def test_score_two_sorters_into_one_tidy_table(root, dropped, scored):
    code, out, err = scored
    assert code == 0, err
    assert "7 scored, 1 missing, 0 failed" in out
    with open(root / "out" / "scores" / "units.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7 * 4  # (4 truth + 3 dropped) x 4 ground-truth units
    assert list(rows[0])[:5] == ["dataset", "source", "sorter", "seed", "injection.amplitude.max"]
    for r in rows:
        s, label = r["dataset"].split("_seed-")[1].split("_max-")
        assert (r["seed"], float(r["injection.amplitude.max"])) == (s, AMP_MAX[label])
        assert r["source"] == "demo" and r["dataset"] in GOOD
        if r["sorter"] == "truth":
            assert (r["accuracy"], r["fn"], r["fp"]) == ("1", "0", "0")
        else:
            tp, n = dropped[r["dataset"]][int(r["gt_unit"])]
            assert (int(r["tp"]), int(r["fn"]), int(r["fp"])) == (tp, n - tp, 0)
            assert float(r["accuracy"]) == pytest.approx(tp / n, abs=5e-7)
        assert float(r["snr"]) > 0
    summary = read_csv(root / "out" / "scores" / "sorters.csv")  # keyed by dataset (last row wins)
    assert summary[GOOD[3]]["status"] == "missing" and summary[GOOD[3]]["sorter"] == "dropped"
    # the per-pair tables of `hybridkit score` are there too
    assert (root / "out" / "scores" / GOOD[0] / "dropped" / "score.json").is_file()

    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(root / "out" / "scores" / "units.parquet")
    assert table.num_rows == len(rows)
    assert str(table.schema.field("seed").type) == "int64"
    assert str(table.schema.field("accuracy").type) == "double"
    assert table.column("dataset").to_pylist() == [r["dataset"] for r in rows]
    sorters = pq.read_table(root / "out" / "scores" / "sorters.parquet").to_pylist()
    assert [(r["sorter"], r["status"]) for r in sorters if r["dataset"] == GOOD[3]] == \
        [("truth", "scored"), ("dropped", "missing")]
    well = {(r["dataset"], r["sorter"]): r["n_well_detected"] for r in sorters}
    assert well[(GOOD[0], "truth")] == 4
    # dropping 1 in 4 spikes leaves agreement ~0.75 < 0.8: not well detected
    assert well[(GOOD[0], "dropped")] == 0


def test_report_compares_the_sorters(root, scored, capsys):
    code, out, err = main(capsys, "study", "report", root / "out")
    assert code == 0, err
    html = (root / "out" / "report.html").read_text()
    figs = ["fig-accuracy-snr", "fig-param-seed", "fig-param-injection.amplitude.max", "fig-counts"]
    for fig in figs:
        assert f'<figure id="{fig}">' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<link" not in html
    pngs = [part.split('"')[0] for part in html.split("data:image/png;base64,")[1:]]
    assert len(pngs) == len(figs)
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    table = html.split('id="table-sorters"')[1].split("</table>")[0]
    assert "<td>truth</td><td>4</td><td>0</td><td>0</td><td>16</td><td>1.000</td><td>16</td>" in table
    assert "<td>dropped</td><td>3</td><td>1</td><td>0</td><td>12</td>" in table


def _names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@pytest.mark.parametrize("target, said", [
    (lambda r: r / "out" / "datasets" / GOOD[0] / "firings_true.npy", "is the output's file"),
    (lambda r: r / "out" / "datasets" / GOOD[0], "holds the output's manifest.json"),
    (lambda r: r / "out" / "scores" / "units.csv", "lies inside the study's scores"),
    (lambda r: r / "out" / "study.json", "is the study's study.json"),
    (lambda r: r / "study.json", "is the study file"),
    (lambda r: r / "sorted" / GOOD[0] / "dropped" / "report.html", "lies inside sorter dropped's output"),
    (lambda r: r / "demo" / BIN_REL, "is the output's source recording"),
], ids=["dataset-file", "dataset-folder", "scores-table", "record", "study-file", "sorter-output", "source"])
def test_report_out_never_lands_on_an_input(root, scored, capsys, target, said):
    """`study report -o` on an input: exit 2, one line naming the option and the path, nothing
    written anywhere in the study's tree, the input byte for byte what it was."""
    out = target(root)
    names, before = _names(root), _sha256(out)
    code, _, err = main(capsys, "study", "report", root / "out", "-o", out)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "study report --out" in lines[0] and str(out) in lines[0], err
    assert said in lines[0], err
    assert _names(root) == names and _sha256(out) == before


def test_report_interrupted_while_writing_leaves_the_previous_page(root, scored, tmp_path, capsys,
                                                                   monkeypatch):
    """Interrupted after the page went to its temporary name, before the rename (os.replace
    raises): the previous page is byte for byte what it was, and no partial file is left."""
    out = tmp_path / "pages" / "study.html"
    code, _, err = main(capsys, "study", "report", root / "out", "-o", out)
    assert code == 0, err
    before = {p.name: _sha256(p) for p in out.parent.iterdir()}
    assert list(before) == ["study.html"] and out.read_text().startswith("<!DOCTYPE html>")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    code, _, err = main(capsys, "study", "report", root / "out", "-o", out)
    assert code == 130 and "interrupted" in err, (code, err)
    assert {p.name: _sha256(p) for p in out.parent.iterdir()} == before
    # a new page into a folder that did not exist: neither the page nor the folder is left
    code, _, err = main(capsys, "study", "report", root / "out", "-o", tmp_path / "new" / "r.html")
    assert code == 130 and not (tmp_path / "new").exists()


def test_score_interrupted_while_writing_leaves_the_previous_tables(root, client, scored, capsys,
                                                                    monkeypatch):
    """`study score` interrupted after its tables went to their temporary names, before the
    renames (os.replace raises in this process, where the tables are written): the study's
    units/sorters tables (CSV and Parquet) are byte for byte the previous ones, no partial file."""
    scores = root / "out" / "scores"
    before = {p.name: _sha256(p) for p in scores.iterdir() if p.is_file()}
    assert {"units.csv", "sorters.csv"} <= set(before)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    code, _, err = main(capsys, "study", "score", root / "out", "--scheduler", client.scheduler.address)
    assert code == 130 and "interrupted" in err, (code, err)
    assert {p.name: _sha256(p) for p in scores.iterdir() if p.is_file()} == before


def test_study_file_errors_are_one_line(root, tmp_path, capsys):
    good = json.loads((root / "study.json").read_text())
    good["base"] = str(root / "demo" / "config.json")
    for src in good["sources"].values():
        for section in src.values():
            section["path"] = str(root / section["path"])
    cases = [
        ({"grd": {}}, "unknown key 'grd'; valid keys: base, cluster, grid, name, output, score, sorters, sources"),
        ({"grid": {"injection.amplitude.maxx": [1.0]}},
         "dataset demo_maxx-1: unknown key 'injection.amplitude.maxx'; valid keys in injection.amplitude: max, min"),
        ({"grid": {"recording.path": ["a.bin"]}}, "grid key 'recording.path': recording is set by the study"),
        ({"grid": {"injection.amplitude.max": [0.5]}},
         "dataset demo_max-0.5: injection.amplitude = {'min': 0.8, 'max': 0.5}: min (0.8) is larger than max (0.5)"),
        ({"sorters": {"ks": "sorted/ks"}}, "sorters.ks.path = \"sorted/ks\": the pattern must hold {dataset}"),
        ({"grid": {"seed": [1, 1.0]}}, "values ['1'] name two datasets alike"),
    ]
    for change, message in cases:
        data = {**good, **change}
        data["sources"] = {"demo": good["sources"]["demo"]}
        if "grd" in change:
            data.pop("grid")
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(data))
        code, out, err = main(capsys, "study", "check", path)
        assert code == 2, (change, out)
        assert len(err.strip().splitlines()) == 1 and message in err, (change, err)
    # no seed anywhere: a study must be reproducible to be resumable
    base = json.loads((root / "demo" / "config.json").read_text())
    base.pop("seed")
    for key in ("recording", "sorting"):
        base[key]["path"] = str(root / "demo" / base[key]["path"])
    data = {"base": base, "output": "o"}
    (tmp_path / "noseed.yaml").write_text(json.dumps(data))
    code, out, err = main(capsys, "study", "check", tmp_path / "noseed.yaml")
    assert code == 2 and "dataset demo: seed is not set" in err
    code, out, err = main(capsys, "study", "score", tmp_path)
    assert code == 2 and f"STUDY_DIR {tmp_path}: no study.json there" in err


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_resume_skips_completed_and_survives_a_killed_worker(root, client, ran, scored):
    """A stale staging folder (a run killed earlier) and a worker killed mid-dataset: the rerun
    skips the complete datasets untouched, removes the stale folder, and the dataset whose worker
    died is run again by another worker and completes."""
    from hybridkit.study.runner import run_study

    datasets = root / "out" / "datasets"
    victim = GOOD[1]
    kept = [n for n in GOOD if n != victim]
    stamps = {n: (datasets / n / "manifest.json").stat().st_mtime_ns for n in kept}
    old_truth = np.load(datasets / victim / "firings_true.npy")
    shutil.rmtree(datasets / victim)
    # a changed resolved config in a complete folder is not "the same dataset": generated again
    changed = datasets / kept[0] / "config.resolved.json"
    cfg = json.loads(changed.read_text())
    cfg["injection"]["trains"]["jitter_ms"] = 2.0
    changed.write_text(json.dumps(cfg))
    # a staging folder whose owner (a process on this host) is gone, as a killed run leaves it
    from hybridkit.run.staging import OWNER_FILE

    stale = datasets / f".{victim}.partial-deadbeef"
    stale.mkdir()
    (stale / "demo_g0_t0.imec0.ap.GT.bin").write_bytes(b"half written")
    gone = _dead_pid()
    (stale / OWNER_FILE).write_text(json.dumps({"pid": gone, "host": socket.gethostname()}))

    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(run=run_study(root / "study.json",
                                                                      client=client, progress=False)))
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while thread.is_alive() and killed is None and time.monotonic() < deadline:
        live = [p for p in datasets.glob(f".{victim}.partial-*")
                if p.name != stale.name and (p / OWNER_FILE).is_file()]
        if live:  # generate is writing (its owner record is down): kill the worker running it
            for addr, keys in client.processing().items():
                if any(str(k).startswith(f"generate-{victim}-") for k in keys):
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)
                    killed = pid
        time.sleep(0.05)
    thread.join(timeout=180)
    assert killed is not None, "the victim dataset finished before its worker could be killed"
    run = box["run"]
    res = run.results
    assert res[victim]["status"] == "done" and res[victim]["worker"] != f"{socket.gethostname()}:{killed}"
    assert res[victim]["stale_staging_removed"]  # the killed worker's staging, or the planted one
    assert res[kept[0]]["status"] == "done" and res[kept[0]]["replaced"]
    assert json.loads(changed.read_text())["injection"]["trains"]["jitter_ms"] == 1.0
    assert all(res[n]["status"] == "skipped" for n in kept[1:])
    assert all(res[n]["status"] == "failed" for n in BROKEN)
    assert {n: (datasets / n / "manifest.json").stat().st_mtime_ns for n in kept[1:]} == \
        {n: stamps[n] for n in kept[1:]}
    assert not list(datasets.glob(".*"))
    assert np.array_equal(np.load(datasets / victim / "firings_true.npy"), old_truth)
