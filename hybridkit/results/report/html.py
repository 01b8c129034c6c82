"""Assembly of the report page: sections, figures (base64 PNG), tables; one HTML string.

The page has no external resource (no script, font or style sheet from the network), so it opens
offline and can be mailed or archived as one file. A small inline script reports an image that
fails to decode on the browser console.
"""
from __future__ import annotations

import html
import math
from datetime import datetime, timezone

from hybridkit.results.report import figures as F

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
p.note{background:#fff8e1;padding:.5em;border-left:3px solid #f0c040}
div.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.8em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}dt{font-weight:600}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var figs = document.querySelectorAll('figure img');
  var bad = 0;
  figs.forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) {
      bad += 1;
      console.error('hybridkit report: figure ' + img.parentNode.id + ' did not render');
    }
  });
  document.body.setAttribute('data-figures-rendered', String(figs.length - bad));
  // > 0: something is wider than the window and the page scrolls sideways
  var root = document.documentElement;
  document.body.setAttribute('data-overflow-x', String(root.scrollWidth - root.clientWidth));
});
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


class Page:
    """An HTML page built section by section."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.figure_ids: list[str] = []

    def intro(self, truth, has_traces: bool, duration_s: float) -> None:
        from hybridkit import __version__

        items = [
            ("output", str(truth.path)), ("format", truth.format), ("session", truth.session or "-"),
            ("sampling rate", f"{truth.sampling_rate:.4f} Hz"), ("duration", f"{duration_s:.3f} s"),
            ("injected units", str(truth.unit_ids.size)), ("injected events", str(truth.times.size)),
            ("hybrid traces", "read" if has_traces else "not available"),
            ("written", f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} by hybridkit {__version__}"),
        ]
        rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
        self.parts.append(f"<dl>{rows}</dl>")

    def heading(self, text: str, lead: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        if lead:
            self.parts.append(f"<p>{html.escape(lead)}</p>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def figure(self, fig_id: str, fig, caption: str) -> None:
        """Embed a matplotlib Figure as a base64 PNG (no pyplot: the Figure is freed with its last
        reference; clearing it first would only build fresh empty axes)."""
        data = F.to_png_b64(fig)
        self.figure_ids.append(fig_id)
        self.parts.append(
            f'<figure id="{html.escape(fig_id)}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')

    def table(self, table_id: str, columns: list[str], rows: list[dict],
              titles: dict[str, str] | None = None) -> None:
        """A table; ``titles``: column -> hover text of its header. It scrolls inside its own box
        when wider than the page, so the page itself never scrolls sideways."""
        titles = titles or {}
        head = "".join(f'<th title="{html.escape(titles[c])}">{html.escape(c)}</th>' if c in titles
                       else f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>"
                       for r in rows)
        self.parts.append(f'<div class="table"><table id="{html.escape(table_id)}"><thead><tr>{head}'
                          f"</tr></thead><tbody>{body}</tbody></table></div>")

    def render(self) -> str:
        body = "\n".join(self.parts)
        ids = " ".join(self.figure_ids)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
                f'<body data-figures="{html.escape(ids)}"><h1>{html.escape(self.title)}</h1>\n{body}\n'
                f"<script>{_SCRIPT}</script></body></html>\n")
