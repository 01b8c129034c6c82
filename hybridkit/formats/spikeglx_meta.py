"""SpikeGLX ``.meta`` files: parsing, rewriting, saved channels, gains to microvolts, geometry.

Used by the ``spikeglx`` source reader (spikeglx.py) and by the legacy writer (the hybrid file's
``.GT.meta``). The pitfalls handled here: imroTbl formats per probe family, fixed NP2 gains,
saved channel subsets, the sync word.
"""
from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np

from hybridkit.errors import SourceError

log = logging.getLogger(__name__)

ITEMSIZE = 2  # SpikeGLX words are int16
#: more channels than any SpikeGLX stream saves (imec: <= 1536 + sync; nidq: a few hundred)
MAX_CHANNELS = 65536

# -- probe families: int16 -> microvolts ------------------------------------------------------------
#: NP2.0 prototypes / first commercial: fixed gain 80, 14-bit (imMaxInt 8192), +-0.5 V
NP2_GAIN80_TYPES = {21, 24}
#: NP2.0 commercial and quad-base (and NP3 family): fixed gain 100, 12-bit (imMaxInt 2048)
NP2_GAIN100_TYPES = {2003, 2004, 2005, 2006, 2013, 2014, 2020, 2021, 3010, 3011, 3020, 3021, 3022}
NP2_GAIN80_PARTS = {"PRB2_1_2_0640_0", "PRB2_4_2_0640_0", "NP2000", "NP2010"}


# ==================================================================================================
# .meta text
# ==================================================================================================
def _key(raw: str) -> str:
    """Normalised key: 2015 files write ``snsChanMap`` where later ones write ``~snsChanMap``."""
    return raw.strip().lstrip("~")


def read_meta(path: str | Path) -> dict[str, str]:
    """Parse a SpikeGLX ``.meta`` into ``{key: value}`` (both str, whitespace-stripped).

    Keys lose their leading ``~`` (``meta["imroTbl"]`` works for every SpikeGLX era); CRLF/LF line
    endings, trailing tabs and empty values are accepted; lines without ``=`` are ignored.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise SourceError(f"cannot read SpikeGLX meta {path}: {exc.strerror or exc}") from None
    meta: dict[str, str] = {}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        if _key(key):
            meta[_key(key)] = value.strip()
    return meta


def rewrite_meta(
    src_meta: str | Path, dst_meta: str | Path, updates: dict[str, str | None]
) -> Path:
    """Copy ``src_meta`` to ``dst_meta`` with some values replaced.

    Key order, every other line and each line's ending (CRLF or LF) are kept byte for byte.
    ``updates`` maps a key (with or without ``~``) to its new value, or to None to delete the key;
    keys absent from the source are appended (with the file's usual line ending).
    Returns ``dst_meta`` as a Path.
    """
    src_meta, dst_meta = Path(src_meta), Path(dst_meta)
    try:
        raw = src_meta.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read SpikeGLX meta {src_meta}: {exc.strerror or exc}") from None
    # surrogateescape: bytes that are not UTF-8 (e.g. in userNotes) survive the round trip
    lines = raw.decode("utf-8", errors="surrogateescape").splitlines(keepends=True)
    pending = {_key(k): v for k, v in updates.items()}
    crlf = sum(line.endswith("\r\n") for line in lines)
    default_end = "\r\n" if crlf * 2 > len(lines) else "\n"
    out: list[str] = []
    for line in lines:
        body = line.rstrip("\r\n")
        end = line[len(body):]
        if "=" in body:
            key = body.split("=", 1)[0]
            if _key(key) in pending:
                value = pending.pop(_key(key))
                if value is not None:
                    out.append(f"{key}={value}{end or default_end}")
                continue
        out.append(line)
    if out and not out[-1].endswith(("\n", "\r")):
        out[-1] += default_end
    for key, value in pending.items():
        if value is not None:
            out.append(f"{key}={value}{default_end}")
    dst_meta.write_bytes("".join(out).encode("utf-8", errors="surrogateescape"))
    return dst_meta


def meta_int(meta: dict, key: str, meta_path: Path, minimum: int | None = None,
             maximum: int | None = None) -> int:
    """``meta[key]`` as an int; values outside [minimum, maximum] are errors naming the .meta."""
    try:
        value = int(meta[key])
    except KeyError:
        raise SourceError(f"SpikeGLX meta {meta_path}: required key {key!r} is missing") from None
    except ValueError:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: {key}={meta[key]!r} is not an integer"
        ) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        valid = (f"between {minimum} and {maximum}" if minimum is not None and maximum is not None
                 else f">= {minimum}" if minimum is not None else f"<= {maximum}")
        raise SourceError(f"SpikeGLX meta {meta_path}: {key}={meta[key]!r:.40}; expected an integer "
                          f"{valid}")
    return value


def meta_float(meta: dict, key: str, meta_path: Path, default: float | None = None,
               positive: bool = False) -> float:
    """``meta[key]`` as a finite float (``default`` when absent or empty); with ``positive``,
    values <= 0 are errors naming the .meta (a rate or gain of 0 breaks every later division)."""
    if key not in meta or meta[key] == "":
        if default is not None:
            return default
        raise SourceError(f"SpikeGLX meta {meta_path}: required key {key!r} is missing")
    try:
        value = float(meta[key])
    except ValueError:
        raise SourceError(f"SpikeGLX meta {meta_path}: {key}={meta[key]!r} is not a number") from None
    if not np.isfinite(value) or (positive and value <= 0):
        kind = "a positive number" if positive else "a finite number"
        raise SourceError(f"SpikeGLX meta {meta_path}: {key}={meta[key]!r}; expected {kind}")
    return value


def parse_channel_subset(text: str, n_saved: int) -> np.ndarray:
    """(n,) int64 acquisition ids of ``snsSaveChanSubset`` (``all``, or ``0:383,768`` inclusive).

    Raises ValueError for text that is not such a list, or that lists more than ``n_saved`` ids
    (checked while parsing: a corrupt ``0:99999999999`` must not build a list that large).
    """
    text = text.strip()
    if text in ("", "all"):
        return np.arange(n_saved, dtype=np.int64)
    ids: list[int] = []
    for part in text.split(","):
        if ":" in part:
            lo, hi = (int(v) for v in part.split(":", 1))
            if lo < 0 or hi < lo:
                raise ValueError(f"range {part.strip()!r} is not 'first:last' with 0 <= first <= last")
            if hi - lo + 1 > n_saved - len(ids):
                raise ValueError(f"lists more than nSavedChans={n_saved} channels")
            ids.extend(range(lo, hi + 1))
        elif part.strip():
            ids.append(int(part))
    if any(not 0 <= i < MAX_CHANNELS for i in ids):
        raise ValueError(f"holds a channel id outside 0..{MAX_CHANNELS - 1}")
    return np.asarray(ids, dtype=np.int64)


def stream_kind(meta: dict, meta_path: Path) -> str:
    """``imec``, ``nidq`` or ``obx`` (pre-2016 metas lack typeThis: guess from niSampRate/name)."""
    kind = meta.get("typeThis", "")
    if kind:
        return kind
    if "imSampRate" in meta:
        return "imec"
    if "niSampRate" in meta or ".nidq." in meta_path.name:
        return "nidq"
    return "unknown"


# ==================================================================================================
# gains
# ==================================================================================================
def _parse_imro(text: str) -> tuple[list[str], list[list[int]]]:
    groups = re.findall(r"\(([^)]*)\)", text)
    if not groups:
        return [], []
    header = [h.strip() for h in groups[0].split(",")]
    entries = [[int(v) for v in g.split()] for g in groups[1:] if g.strip()]
    return header, entries


def _probe_type(meta: dict, header: list[str]) -> int | str:
    """Numeric probe type; ``"3A"`` for phase 3A (imroTbl header ``(serial,opt,n)``)."""
    if "imProbeOpt" in meta or len(header) == 3:
        return "3A"
    for raw in (meta.get("imDatPrb_type", ""), header[0] if header else ""):
        digits = raw.upper().removeprefix("NP")
        if digits.isdigit():
            return int(digits)
    return "unknown"


def channel_layout(meta: dict, meta_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per file column: acquisition id, band (``"ap"``, ``"lf"``, ``"sy"``), imroTbl channel.

    Acquisition ids are AP ``0..nAP-1``, then LF, then SY (counts from ``acqApLfSy``); the imroTbl
    channel of an LF column is its id minus the AP count (-1 for sync words).
    """
    n_saved = meta_int(meta, "nSavedChans", meta_path, minimum=1, maximum=MAX_CHANNELS)
    try:
        ids = parse_channel_subset(meta.get("snsSaveChanSubset", "all"), n_saved)
    except ValueError as exc:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: snsSaveChanSubset={meta['snsSaveChanSubset']!r:.80} is not a "
            f"channel list like 0:383,768 ({exc})"
        ) from None
    if ids.size != n_saved:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: snsSaveChanSubset lists {ids.size} channels but "
            f"nSavedChans={n_saved}"
        )
    counts = meta.get("acqApLfSy") or meta.get("snsApLfSy") or ""
    try:
        n_ap, n_lf, _ = (int(c) for c in counts.split(","))
    except ValueError:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: acqApLfSy={counts!r} is not 'AP,LF,SY' counts"
        ) from None
    band = np.where(ids < n_ap, "ap", np.where(ids < n_ap + n_lf, "lf", "sy"))
    imro_chan = np.where(band == "ap", ids, np.where(band == "lf", ids - n_ap, -1))
    return ids, band, imro_chan


def gains_to_uV(meta: dict, meta_path: Path) -> np.ndarray:
    """(nSavedChans,) float64 microvolts per int16 unit of each file column; 0 for sync words.

    ``uV = raw * imAiRangeMax / imMaxInt / gain * 1e6`` with the per-channel gain of the imroTbl
    (NP1 family, 3A, NHP, Ultra; NP1110 from the header) or the fixed NP2 gain (80 for types 21/24,
    100 for 2003/2013/2014/2020/2021; ``imChan0apGain`` preferred when present).
    """
    _, band, imro_chan = channel_layout(meta, meta_path)
    try:
        header, entries = _parse_imro(meta.get("imroTbl", ""))
    except ValueError:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: imroTbl is not a table of '(header)(int int ...)' entries"
        ) from None
    ptype = _probe_type(meta, header)
    part = meta.get("imDatPrb_pn", "")
    ap = np.full(band.size, np.nan)
    lf = np.full(band.size, np.nan)
    if ptype == "3A" or (entries and len(entries[0]) == 6):
        # NP1-style entries: chan bank refid apgain lfgain [hpflt]; index by entry's own channel
        table = {e[0]: (e[3], e[4]) for e in entries if len(e) >= 5}
        for col, chan in enumerate(imro_chan):
            if band[col] != "sy":
                if chan not in table:
                    raise SourceError(
                        f"SpikeGLX meta {meta_path}: imroTbl has no entry for saved channel {chan}"
                    )
                ap[col], lf[col] = table[chan]
        default_range, default_maxint = 0.6, 512
    elif len(header) == 6:
        # NP1110 (UHD2): (type,colMode,refid,apGain,lfGain,hpFlt), gains shared by all channels
        ap[:], lf[:] = float(header[3]), float(header[4])
        default_range, default_maxint = 0.6, 512
    elif ptype in NP2_GAIN80_TYPES or part in NP2_GAIN80_PARTS:
        ap[:] = meta_float(meta, "imChan0apGain", meta_path, 80.0, positive=True)
        default_range, default_maxint = 0.5, 8192
    elif ptype in NP2_GAIN100_TYPES:
        ap[:] = meta_float(meta, "imChan0apGain", meta_path, 100.0, positive=True)
        default_range, default_maxint = 0.62, 2048
    elif "imChan0apGain" in meta and "imMaxInt" in meta and "imAiRangeMax" in meta:
        ap[:] = meta_float(meta, "imChan0apGain", meta_path, positive=True)
        lf[:] = meta_float(meta, "imChan0lfGain", meta_path, 1.0, positive=True)
        default_range, default_maxint = 0.0, 0
    else:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: cannot determine gains for probe type {ptype!r} "
            f"(imDatPrb_pn={part!r}); known: 3A, NP1.0 family, NP2.0 types 21/24/20xx"
        )
    rng = meta_float(meta, "imAiRangeMax", meta_path, default_range or None, positive=True)
    maxint = meta_float(meta, "imMaxInt", meta_path, float(default_maxint) or None, positive=True)
    gain = np.where(band == "ap", ap, np.where(band == "lf", lf, np.nan))
    if np.any(np.isnan(gain[band == "lf"])):
        raise SourceError(
            f"SpikeGLX meta {meta_path}: LF channels saved but probe type {ptype!r} has no LF band"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = rng / maxint / gain * 1e6
    bad = np.flatnonzero((band != "sy") & ~(np.isfinite(uv) & (uv > 0)))
    if bad.size:
        raise SourceError(f"SpikeGLX meta {meta_path}: file column {int(bad[0])} has gain "
                          f"{gain[bad[0]]:g} (imroTbl / imChan0apGain); expected a positive gain")
    return np.where(band == "sy", 0.0, uv)


# ==================================================================================================
# geometry
# ==================================================================================================
def spikeglx_probe(meta_path: Path, meta: dict):
    """(probe, positions): the probeinterface Probe wired to file columns, and (n_cols, 2) um.

    probeinterface reads AP metas only (it drops ids >= n contacts, i.e. every LF id); for an LF
    file it reads a temporary copy whose subset is shifted to the matching AP ids (same contacts).
    """
    from hybridkit.formats.geometry import probeinterface

    pi = probeinterface()

    ids, band, imro_chan = channel_layout(meta, meta_path)
    columns = np.flatnonzero(band != "sy")
    read_path = meta_path
    with tempfile.TemporaryDirectory(prefix="hybridkit-sglx-") as tmp:
        if np.any(band == "lf"):
            if np.any(band == "ap"):
                raise SourceError(
                    f"SpikeGLX meta {meta_path}: file mixes AP and LF channels; save them separately"
                )
            subset = ",".join(str(c) for c in imro_chan[columns]) + "".join(
                f",{i}" for i in ids[band == "sy"]
            )
            read_path = rewrite_meta(meta_path, Path(tmp) / meta_path.name, {"snsSaveChanSubset": subset})
        try:
            probe = pi.read_spikeglx(read_path)
        except Exception as exc:  # probeinterface asserts / KeyErrors on what it cannot read
            raise SourceError(
                f"SpikeGLX meta {meta_path}: probeinterface cannot read its geometry "
                f"({type(exc).__name__}: {exc}); use the 'binary' reader with a geometry file"
            ) from None
    # contacts -> acquisition (imro) channel -> file column
    chan_of_contact = probe.contact_annotations.get("channel_ids")
    if chan_of_contact is None or len(chan_of_contact) != probe.get_contact_count():
        chan_of_contact = np.sort(imro_chan[columns])[: probe.get_contact_count()]
    col_of_chan = {int(c): int(col) for col, c in zip(columns, imro_chan[columns])}
    try:
        wiring = np.array([col_of_chan[int(c)] for c in chan_of_contact], dtype=np.int64)
    except KeyError as exc:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: probeinterface lists channel {exc.args[0]}, which is not "
            "saved in the file"
        ) from None
    if wiring.size != columns.size:
        raise SourceError(
            f"SpikeGLX meta {meta_path}: probeinterface found {wiring.size} contacts for "
            f"{columns.size} saved neural channels"
        )
    probe.set_device_channel_indices(wiring)
    positions = np.full((band.size, 2), np.nan)
    positions[wiring] = probe.contact_positions[:, :2]
    return probe, positions


# ==================================================================================================
# the reader
# ==================================================================================================
