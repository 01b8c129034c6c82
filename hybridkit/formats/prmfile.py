"""Read JRCLUST ``.prm`` parameter files (MATLAB assignments) without evaluating them.

JRCLUST's ``.prm`` is MATLAB code that JRCLUST ``eval``s: lines like ``sampleRate = 30000; % Hz``,
``siteMap = [1, 2, 3];``, ``siteLoc = [0, 0; 0, 20];``, ``rawRecordings = {'a.bin'};``. hybridkit
reads the literal forms: numbers (``Inf``, ``NaN``, ``true``/``false``), strings, cell arrays of
those, and matrices whose entries are numbers or ranges (``1:384``, ``1:2:9``), with ``%`` comments,
``...`` continuations and brackets spanning lines. Anything else (a function call, a variable
reference) is skipped: it is never executed.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from hybridkit.errors import SortingError

log = logging.getLogger(__name__)

#: more values than any JRCLUST parameter holds (site maps have a few thousand at most)
MAX_RANGE_VALUES = 1_000_000
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_WORDS = {"true": 1.0, "false": 0.0, "inf": np.inf, "+inf": np.inf, "-inf": -np.inf, "nan": np.nan}


def _scan(line: str) -> tuple[str, str]:
    """(the line without its % comment, the same with quoted text blanked out).

    A % inside quotes is kept; brackets are counted on the blanked form, so a string such as
    ``'D:\\run[old'`` cannot leave a bracket open and swallow the rest of the file.
    """
    quote = None
    blank = list(line)
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
            else:
                blank[i] = " "
        elif ch in "'\"":
            # a ' right after a name/closing bracket is MATLAB's transpose, not a quote
            prev = line[:i].rstrip()[-1:] if line[:i].strip() else ""
            if ch == "'" and prev and (prev.isalnum() or prev in ")]}_."):
                continue
            quote = ch
        elif ch == "%":
            return line[:i], "".join(blank[:i])
    return line, "".join(blank)


def _statements(text: str) -> list[str]:
    out, buf, depth = [], "", 0
    for raw in text.splitlines():
        line, unquoted = _scan(raw)
        cont = line.rstrip().endswith("...")
        if cont:
            line = line.rstrip()[:-3]
        for ch in unquoted:
            if ch in "[{(":
                depth += 1
            elif ch in "]})":
                depth = max(depth - 1, 0)
        buf += line + ("\n" if depth > 0 and not cont else " ")
        if depth == 0 and not cont:
            for stmt in _split_top(buf, ";"):
                if stmt.strip():
                    out.append(stmt.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside brackets and quotes."""
    parts, cur, depth, quote = [], "", 0, None
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"" and not (ch == "'" and cur.rstrip()[-1:].isalnum()):
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _scalar(token: str) -> float | str | None:
    token = token.strip()
    if not token:
        return None
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1].replace(token[0] * 2, token[0])
    if _NUMBER.match(token):
        return float(token)
    return _WORDS.get(token.lower())


def _range(token: str) -> np.ndarray | None:
    parts = token.split(":")
    if len(parts) not in (2, 3):
        return None
    vals = [_scalar(p) for p in parts]
    if any(not isinstance(v, float) for v in vals):
        return None
    start, step, stop = (vals[0], 1.0, vals[1]) if len(vals) == 2 else vals
    if step == 0:
        return np.zeros(0)
    span = (stop - start) / step
    if not np.isfinite(span):
        return None
    n = int(np.floor(span + 1e-10)) + 1
    if n > MAX_RANGE_VALUES:  # '1:1e12' would allocate terabytes
        raise ValueError(f"the range {token!r} has {n} values (at most {MAX_RANGE_VALUES})")
    return start + step * np.arange(max(n, 0))


def _matrix(body: str) -> np.ndarray | None:
    rows = []
    n_values = 0
    for row in re.split(r"[;\n]", body):
        row = re.sub(r"\s*:\s*", ":", row.strip())
        if not row:
            continue
        values: list[float] = []
        for token in re.split(r"[,\s]+", row):
            if not token:
                continue
            if ":" in token:
                rng = _range(token)
                if rng is None:
                    return None
                values.extend(rng.tolist())
                n_values += rng.size
                if n_values > MAX_RANGE_VALUES:
                    raise ValueError(f"the matrix holds more than {MAX_RANGE_VALUES} values")
                continue
            val = _scalar(token)
            if not isinstance(val, float):
                return None
            values.append(val)
        rows.append(values)
    if not rows:
        return np.zeros((0, 0))
    if len({len(r) for r in rows}) != 1:
        return None
    return np.array(rows, dtype=np.float64)


def _value(text: str):
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return _matrix(text[1:-1])
    if text.startswith("{") and text.endswith("}"):
        items = [_value(t) for t in re.split(r"[,;\n]", text[1:-1]) if t.strip()]
        return None if any(i is None for i in items) else items
    if ":" in text and not text.startswith(("'", '"')):
        rng = _range(re.sub(r"\s", "", text))
        return None if rng is None else rng.reshape(1, -1)
    return _scalar(text)


def parse_prm(path: Path) -> dict:
    """``name -> value`` for the literal assignments of a JRCLUST .prm (later ones win).

    Values: float, str, (rows, cols) float64 arrays for ``[...]`` and ranges, lists for ``{...}``.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SortingError(f"{path}: cannot read the JRCLUST parameter file ({exc.strerror})") from None
    # MATLAB's editor writes UTF-8, Windows editors often UTF-8 with a BOM or UTF-16 ("Unicode"):
    # read as UTF-8 only, a UTF-16 file yields no assignment at all
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16", errors="replace")
    else:
        text = raw.decode("utf-8-sig", errors="replace")
    params: dict = {}
    for stmt in _statements(text):
        name, sep, rhs = stmt.partition("=")
        name = name.strip()
        if not sep or rhs.startswith("=") or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            continue
        try:
            value = _value(rhs)
        except ValueError as exc:
            raise SortingError(f"{path}: {name}: {exc}; expected a JRCLUST parameter value") from None
        if value is None:
            log.debug("%s: skipping %s (not a literal)", path, name)
            continue
        params[name.split(".")[-1]] = value
    return params
