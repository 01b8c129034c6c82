"""``hybridkit report``: the HTML page, opened in headless Chromium.

End to end: example -> generate -> perturbed sorting -> score -> report --score; the page must
render in a real browser with every figure decoded and no console message. Chromium is Debian's
``chromium`` package (.ci/run installs it); where it cannot be found the browser test skips and
says so.
"""
from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import pytest

from hybridkit.results.report import build_report
from tests.helpers import main

SCORE_FIGURES = ["fig-accuracy", "fig-matched", "fig-fate", "fig-agreement", "fig-snr"]


def chromium() -> str | None:
    for name in (os.environ.get("HYBRIDKIT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def figures_in(html: str) -> dict[str, bytes]:
    """figure id -> decoded PNG bytes."""
    found = re.findall(r'<figure id="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    return {fid: base64.b64decode(data) for fid, data in found}


def expected_figures(unit_ids, with_score: bool) -> list[str]:
    # no sample clips in the example run: a note, not an empty fig-clipped panel
    ids = ["fig-probe"] + [f for u in unit_ids for f in (f"fig-template-{u}", f"fig-unit-{u}")] + \
          ["fig-traces", "fig-raster", "fig-gains"]
    return ids + (SCORE_FIGURES if with_score else [])


@pytest.fixture(scope="module")
def report(generated, scored, tmp_path_factory):  # noqa: F811
    out, _, _ = scored
    page = tmp_path_factory.mktemp("report") / "report.html"
    from hybridkit.cli import main as cli_main

    assert cli_main(["report", str(generated), "--score", str(out / "score.json"), "-o", str(page)]) == 0
    return page


def test_report_is_self_contained_with_every_figure(report, generated):  # noqa: F811
    from PIL import Image

    from hybridkit.results.truth import load_truth

    html = report.read_text()
    units = load_truth(generated).unit_ids.tolist()
    figs = figures_in(html)
    assert list(figs) == expected_figures(units, with_score=True)
    for fid, png in figs.items():
        img = Image.open(io.BytesIO(png))
        img.load()
        assert img.format == "PNG" and img.width > 200 and img.height > 100, fid
    # nothing is fetched: no external URL in any src/href, one inline script only
    assert not re.search(r'(src|href)="(https?:|//)', html)
    assert html.count("<script") == 1
    # the unit table and the score table: a header row and one row per unit each
    assert '<table id="table-units">' in html and '<table id="table-accuracy">' in html
    assert html.count("<tr>") == 2 * (len(units) + 1)
    assert "No sample clipped" in html and 'id="fig-clipped"' not in html


def test_report_renders_in_headless_chromium(report, generated, tmp_path):  # noqa: F811
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium not found (install Debian's 'chromium' package, as .ci/run does, or "
                    "set HYBRIDKIT_CHROMIUM); the report's browser test cannot run here")
    from hybridkit.results.truth import load_truth

    res = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom",
         report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console                       # no error, warning or log from the page
    wanted = expected_figures(load_truth(generated).unit_ids.tolist(), with_score=True)
    for fid in wanted:
        assert f'id="{fid}"' in dom, fid
    # the page's own load handler counts the images that decoded (naturalWidth > 0)
    assert f'data-figures-rendered="{len(wanted)}"' in dom
    # at 1280 px nothing is wider than the window (the score table used to cut off its columns)
    assert 'data-overflow-x="0"' in dom, re.search(r'data-overflow-x="[^"]*"', dom)


def test_where_the_spikes_of_missed_split_and_merged_units_went(generated, scored):  # noqa: F811
    from hybridkit.results.report.sections_score import fate_rows, load_scored_sorting
    from hybridkit.results.scoring import load_score
    from hybridkit.results.truth import load_truth

    out, e, _ = scored
    score = load_score(out / "score.json")
    rows = {r["gt_unit"]: r for r in fate_rows(load_truth(generated), load_scored_sorting(score), score)}
    assert sorted(rows) == sorted([e["a"], e["b"], e["c"], e["d"]])  # none is well detected
    # b split 70/30 at its exact times: both parts whole, nothing left
    assert rows[e["b"]]["parts"] == [(600, e["b_first"]), (601, e["b_n"] - e["b_first"])]
    assert rows[e["b"]]["other"] == 0 and rows[e["b"]]["unmatched"] == 0
    # c and d merged into 700
    assert rows[e["c"]]["parts"] == [(700, e["nc"])] and rows[e["d"]]["parts"] == [(700, e["nd"])]
    # a: 500 took its true positives (those shifted by one sample more than the tolerance are not)
    a = rows[e["a"]]
    assert a["parts"][0] == (500, e["a_tp"])
    assert sum(m for _, m in a["parts"]) + a["other"] + a["unmatched"] == a["n_gt_spikes"]


def test_report_without_score_and_from_nwb(generated, tmp_path, capsys, monkeypatch):  # noqa: F811
    import hybridkit.results.report as report_mod
    from hybridkit.results.report import unit_measures
    from hybridkit.results.truth import load_truth

    # as on a long run: fewer events drawn than injected, and the page says so
    monkeypatch.setattr(report_mod, "MAX_RASTER_EVENTS", 50)
    monkeypatch.setattr(unit_measures, "MAX_AMPLITUDE_EVENTS", 20)
    code, out, err = main(capsys, "report", generated)
    assert code == 0, err
    page = generated / "report.html"
    assert out.strip() == f"wrote {page}"
    units = load_truth(generated).unit_ids.tolist()
    text = page.read_text()
    assert list(figures_in(text)) == expected_figures(units, with_score=False)
    assert "the raster and the gain scatter draw 50 of" in text
    assert "Amplitudes and waveforms use at most 20 events per unit" in text
    # the NWB file alone (written without traces): no trace figure, and the page says why
    html = build_report(next(generated.glob("*.nwb")))
    figs = figures_in(html)
    assert "fig-traces" not in figs and "fig-raster" in figs and "fig-probe" in figs
    assert "could not be opened" in html
