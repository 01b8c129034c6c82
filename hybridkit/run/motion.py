"""The ``motion`` config section and readers of motion estimates (Kilosort, SpikeInterface, tables).

Every reader returns an :class:`hybridkit.engine.drift.Motion` in hybridkit's sign convention:
displacement > 0 means units are seen at LARGER probe y (SpikeInterface's convention; Kilosort's
``dshift`` is negated). Times are seconds on the recording's concatenated clock. See docs/drift.md.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import Field, model_validator

from hybridkit.engine.drift import CombinedMotion, Motion, MotionModel, shifted, synthetic_motion
from hybridkit.errors import ConfigError
from hybridkit.formats.npy import read_npy
from hybridkit.options import InputFile, InputFolder, InputPath, StrictModel


class Kilosort4Motion(StrictModel):
    """Kilosort 4's drift estimate: ``dshift`` (batches x blocks) in ops.npy."""

    type: Literal["kilosort4"]
    path: InputPath = Field(description="Kilosort 4's ops.npy, or the results folder holding it.")


class KilosortRezMotion(StrictModel):
    """KiloSort 2.5/3's drift estimate: ``rez.dshift`` (batches x blocks) in rez.mat."""

    type: Literal["kilosort_rez"]
    path: InputPath = Field(description="KiloSort 2.5/3's rez.mat (v5 or v7.3), or its folder.")


class SpikeInterfaceMotion(StrictModel):
    """A SpikeInterface ``Motion`` saved with ``Motion.save(folder)``."""

    type: Literal["spikeinterface"]
    path: InputFolder = Field(description="The folder Motion.save() wrote (spikeinterface_info.json, "
                             "spatial_bins_um.npy, temporal_bins_s_seg<i>.npy, displacement_seg<i>.npy).")
    segment: int | None = Field(None, ge=0, description="Segment to use; default: the only one, or "
                                "segment i for file i when the motion has one segment per recording file.")


class TableMotion(StrictModel):
    """A plain table: times (s), depths (um), displacement (um; > 0 = units at larger y).

    Either ``path`` (a .npz with arrays times_s, depths_um (optional: rigid) and displacement_um
    (n_times, n_depths), or a .csv with columns time_s, displacement_um and optionally depth_um,
    one row per (time, depth)), or the arrays inline.
    """

    type: Literal["table"]
    path: InputFile | None = Field(None, description="A .npz or .csv table (see above).")
    times_s: list[float] | None = Field(None, description="Inline: increasing times, s.")
    depths_um: list[float] | None = Field(None, description="Inline: increasing depths (probe y), "
                                          "um; omit for rigid motion.")
    displacement_um: list[list[float]] | list[float] | None = Field(
        None, description="Inline: displacement, um, one row per time (one value per depth).")
    interpolation: Literal["linear", "previous"] = Field(
        "linear", description="Between times: linear, or previous (each value holds until the next "
        "time: steps).")

    @model_validator(mode="after")
    def _one_form(self):
        inline = self.times_s is not None or self.displacement_um is not None
        if (self.path is None) == (not inline):
            raise ValueError("give either path or times_s + displacement_um")
        if inline and (self.times_s is None or self.displacement_um is None):
            raise ValueError("an inline table needs both times_s and displacement_um")
        return self


MotionSource = Annotated[Union[Kilosort4Motion, KilosortRezMotion, SpikeInterfaceMotion,  # noqa: UP007
                               TableMotion], Field(discriminator="type")]


class SyntheticMotionConfig(StrictModel):
    """A synthetic motion added on top of the source's (stress tests)."""

    kind: Literal["zigzag", "bumps", "random_walk"] = Field(
        description="zigzag: triangle wave 0 -> +A -> -A -> 0 per period; bumps: a smooth "
        "excursion to +A for half of each period; random_walk: seeded Gaussian steps kept in [-A, A].")
    amplitude_um: float = Field(gt=0, description="A: the largest displacement, um.")
    period_s: float = Field(gt=0, description="Period, s.")
    start_s: float = Field(0.0, ge=0, description="Motion starts (from 0) at this time, s.")
    stop_s: float | None = Field(None, gt=0, description="Displacement is held from this time, s; "
                                 "default the end.")
    gradient_per_mm: float = Field(
        0.0, description="Non-rigid: at depth y the displacement is scaled by 1 + gradient_per_mm "
        "x (y - probe centre) / 1000 (clipped at 0); 1/mm. 0 = rigid.")
    sampling_hz: float = Field(10.0, gt=0, description="Time resolution of bumps and random_walk, Hz.")


class MotionConfig(StrictModel):
    """Drift-aware injection: injected units move with the probe's measured (and/or synthetic) motion.

    Absent: units are static. Each event's template is the unit's template moved along the
    probe's y axis by the displacement at the event's time and the unit's depth, rounded to
    grid_um. Sign: displacement > 0 = units seen at larger probe y (SpikeInterface's convention).
    """

    source: MotionSource | None = Field(None, description="The recording's motion estimate.")
    synthetic: list[SyntheticMotionConfig] = Field(
        default_factory=list, description="Synthetic motions added on top of the source's.")
    reference: Literal["zero", "median", "mean"] = Field(
        "median", description="Which displacement of the source is the template's own position: "
        "zero (as the file gives it), or the median / mean over time of each depth bin (a template "
        "averaged over a session sits at the unit's typical position). Synthetic motion starts at 0.")
    grid_um: float = Field(1.0, gt=0, le=20, description="Step of the depth grid templates are "
                           "precomputed on, um; displacements are rounded to it.")
    decay_um: float = Field(30.0, gt=0, description="A footprint moved beyond the probe's last "
                            "contacts fades by e over this distance, um.")

    @model_validator(mode="after")
    def _something(self):
        if self.source is None and not self.synthetic:
            raise ValueError("give a source and/or synthetic motions")
        return self


# -- building ------------------------------------------------------------------------------------
def build_motion(cfg: MotionConfig, recording, rng: np.random.Generator) -> MotionModel:
    """The configured motion for ``recording`` (its duration, file starts and probe depths)."""
    parts: list[MotionModel] = []
    if cfg.source is not None:
        m = read_motion(cfg.source, recording)
        if cfg.reference != "zero":
            ref = (np.median if cfg.reference == "median" else np.mean)(m.displacement_um, axis=0)
            m = shifted(m, ref)
        parts.append(m)
    ys = recording.channel_positions[recording.neural, 1]
    ys = ys[np.isfinite(ys)]
    depth_range = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    for i, s in enumerate(cfg.synthetic):
        if s.stop_s is not None and s.stop_s <= s.start_s:
            raise ConfigError(f"motion.synthetic.{i}.stop_s={s.stop_s}: must be after start_s={s.start_s}")
        parts.append(synthetic_motion(s.kind, recording.duration_s, s.amplitude_um, s.period_s,
                                      s.start_s, s.stop_s, depth_range, s.gradient_per_mm,
                                      s.sampling_hz, rng))
    return parts[0] if len(parts) == 1 else CombinedMotion(parts)


def read_motion(src, recording=None) -> Motion:
    """The Motion a source config describes (recording: to map segments to files, may be None)."""
    if isinstance(src, Kilosort4Motion):
        return read_kilosort4(src.path)
    if isinstance(src, KilosortRezMotion):
        return read_kilosort_rez(src.path)
    if isinstance(src, SpikeInterfaceMotion):
        starts = None
        if recording is not None:
            starts = recording.file_starts[:-1] / recording.sampling_rate
        return read_spikeinterface(src.path, src.segment, starts)
    return read_table(src)


def _motion(where: str, times, depths, disp, interpolation: str = "linear") -> Motion:
    try:
        return Motion(times, depths, disp, interpolation, where)
    except ValueError as exc:
        raise ConfigError(f"motion.source: {exc}") from None


def _batches(where: str, dshift, fs: float, batch: float, t0_s: float, depths,
             stride: int = 1) -> Motion:
    """Kilosort's per-batch dshift -> Motion: row k was measured on samples [k S B, k S B + B)
    after t0 (B = batch samples, S = ``stride``, Kilosort 4's batch_downsampling: only every S-th
    batch is read), and its value sits at the centre of those samples; displacement = -dshift."""
    dshift = np.asarray(dshift, np.float64)
    if dshift.ndim == 1:
        dshift = dshift[:, None]
    depths = np.asarray(depths, np.float64).reshape(-1)
    if depths.size != dshift.shape[1]:
        if dshift.shape[1] != 1:
            raise ConfigError(f"motion.source.path: {where}: dshift has {dshift.shape[1]} blocks but "
                              f"{depths.size} block depths (yblk); expected one depth per block")
        depths = np.array([float(np.mean(depths)) if depths.size else 0.0])
    order = np.argsort(depths, kind="stable")
    times = t0_s + (np.arange(dshift.shape[0]) * stride + 0.5) * batch / fs
    return _motion(where, times, depths[order], -dshift[:, order])


def read_kilosort4(path: Path) -> Motion:
    """Kilosort 4's ops.npy (or its results folder) -> Motion (displacement = -dshift)."""
    path = Path(path)
    if path.is_dir():
        path = path / "ops.npy"
    if not path.is_file():
        raise ConfigError(f"motion.source.path: {path} does not exist; expected Kilosort 4's ops.npy "
                          "or the results folder holding it")
    # a pickled dict of numpy arrays (Kilosort saves tensors as numpy): unpickled by a reader that
    # can only build numpy values and containers, so a crafted file cannot run code
    ops = read_npy(path, ConfigError, "motion.source.path")
    ops = ops.item() if ops.size == 1 else None
    if not isinstance(ops, dict) or ops.get("dshift") is None:
        raise ConfigError(f"motion.source.path: {path} holds no drift estimate (ops['dshift'] is "
                          "missing or None: Kilosort ran with nblocks=0)")
    dshift = np.asarray(ops["dshift"], np.float64)
    n_batches = int(ops.get("Nbatches", dshift.shape[0]))
    if dshift.shape[0] != n_batches:
        raise ConfigError(f"motion.source.path: {path}: dshift has {dshift.shape[0]} rows but "
                          f"Nbatches is {n_batches}")
    tmin = float(ops.get("tmin", 0.0) or 0.0)
    settings = ops.get("settings") if isinstance(ops.get("settings"), dict) else {}
    stride = ops.get("batch_downsampling", settings.get("batch_downsampling", 1))
    if stride is None or int(stride) != stride or int(stride) < 1:
        raise ConfigError(f"motion.source.path: {path}: batch_downsampling is {stride!r}; Kilosort "
                          "uses a whole number of batches, 1 or more")
    return _batches(str(path), dshift, float(ops["fs"]), float(ops["batch_size"]), tmin,
                    ops.get("yblk", []), stride=int(stride))


def read_kilosort_rez(path: Path) -> Motion:
    """KiloSort 2.5/3's rez.mat (or its folder) -> Motion (displacement = -rez.dshift)."""
    from hybridkit.formats.matfile import MatFile, as_scalar

    path = Path(path)
    if path.is_dir():
        path = path / "rez.mat"
    if not path.is_file():
        raise ConfigError(f"motion.source.path: {path} does not exist; expected KiloSort's rez.mat")
    with MatFile(path) as mat:
        rez = mat.top.get("rez")
        if rez is None:
            raise ConfigError(f"motion.source.path: {path} holds no variable 'rez'")
        dshift = rez.get("dshift")
        ops = rez.get("ops")
        if dshift is None or np.size(dshift) == 0 or ops is None:
            raise ConfigError(f"motion.source.path: {path} has no rez.dshift (KiloSort < 2.5, or "
                              "drift correction was off)")
        fs, nt = as_scalar(ops.get("fs"), path, "rez.ops.fs"), as_scalar(ops.get("NT"), path, "rez.ops.NT")
        trange = ops.get("trange")
        yblk = ops.get("yblk")
    t0 = float(np.ceil(float(np.ravel(trange)[0]) * fs) / fs) if trange is not None and np.size(trange) else 0.0
    return _batches(str(path), np.asarray(dshift, np.float64), float(fs), float(nt), t0,
                    [] if yblk is None else np.ravel(yblk))


def read_spikeinterface(folder: Path, segment: int | None = None,
                        file_starts_s: np.ndarray | None = None) -> Motion:
    """A folder written by SpikeInterface's ``Motion.save`` -> Motion (same sign; numpy only).

    With several segments and no ``segment``, segment i is placed at the start of recording file i
    (``file_starts_s``, s on the concatenated clock) when the counts match.
    """
    folder = Path(folder)
    info_path = folder / "spikeinterface_info.json"
    if not info_path.is_file():
        raise ConfigError(f"motion.source.path: {folder} is not a SpikeInterface Motion folder "
                          "(no spikeinterface_info.json)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("object") not in (None, "Motion"):
        raise ConfigError(f"motion.source.path: {info_path} describes a {info.get('object')!r}, not a Motion")
    direction = info.get("direction", "y")
    if direction != "y":
        raise ConfigError(f"motion.source.path: {info_path}: direction {direction!r}; only 'y' (along "
                          "the probe's depth) is supported")
    n_seg = int(info.get("num_segments", 1))
    depths = np.load(folder / "spatial_bins_um.npy", allow_pickle=False)

    def seg(i: int):
        return (np.load(folder / f"temporal_bins_s_seg{i}.npy", allow_pickle=False),
                np.load(folder / f"displacement_seg{i}.npy", allow_pickle=False))

    if segment is not None or n_seg == 1:
        i = 0 if segment is None else segment
        if i >= n_seg:
            raise ConfigError(f"motion.source.segment={i}: the motion has {n_seg} segments (0..{n_seg - 1})")
        t, d = seg(i)
        return _motion(str(folder), t, depths, d, info.get("interpolation", "linear")
                       if info.get("interpolation") in ("linear", "previous") else "linear")
    if file_starts_s is None or len(file_starts_s) != n_seg:
        raise ConfigError(f"motion.source: {folder} has {n_seg} segments but the recording has "
                          f"{0 if file_starts_s is None else len(file_starts_s)} files; set motion.source.segment")
    ts, ds = zip(*(seg(i) for i in range(n_seg)))
    times = np.concatenate([t + s for t, s in zip(ts, file_starts_s)])
    return _motion(str(folder), times, depths, np.concatenate(ds, axis=0))


def read_table(src: TableMotion) -> Motion:
    """A TableMotion (inline arrays, .npz or .csv) -> Motion."""
    if src.path is None:
        disp = np.asarray(src.displacement_um, np.float64)
        return _motion("motion.source", src.times_s, src.depths_um or [0.0], disp, src.interpolation)
    path = Path(src.path)
    if not path.is_file():
        raise ConfigError(f"motion.source.path: {path} does not exist; expected a .npz or .csv table")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = {"times_s", "displacement_um"} - set(z.files)
            if missing:
                raise ConfigError(f"motion.source.path: {path} lacks arrays {sorted(missing)}; "
                                  f"it has {sorted(z.files)}")
            depths = z["depths_um"] if "depths_um" in z.files else [0.0]
            return _motion(str(path), z["times_s"], depths, z["displacement_um"], src.interpolation)
    if path.suffix.lower() != ".csv":
        raise ConfigError(f"motion.source.path: {path}: unknown table format {path.suffix!r}; use .npz or .csv")
    names = path.read_text(encoding="utf-8").splitlines()[0].strip().split(",")
    need = {"time_s", "displacement_um"}
    if not need <= set(names):
        raise ConfigError(f"motion.source.path: {path}: columns {names}; need time_s, "
                          "displacement_um and optionally depth_um")
    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    col = {n: rows[:, names.index(n)] for n in names}
    times = np.unique(col["time_s"])
    depths = np.unique(col["depth_um"]) if "depth_um" in col else np.array([0.0])
    grid = np.full((times.size, depths.size), np.nan)
    ti = np.searchsorted(times, col["time_s"])
    di = np.searchsorted(depths, col["depth_um"]) if "depth_um" in col else np.zeros(ti.size, int)
    grid[ti, di] = col["displacement_um"]
    if np.isnan(grid).any():
        raise ConfigError(f"motion.source.path: {path}: every (time_s, depth_um) pair needs a row; "
                          f"{int(np.isnan(grid).sum())} are missing")
    return _motion(str(path), times, depths, grid, src.interpolation)
