"""Writer ``phy``: a phy folder over the hybrid binary, with the injected units as clusters.

The folder sits in the output folder (``<out>/<folder>/``) and points at the hybrid binaries that
the ``legacy`` writer puts in ``<out>/`` through relative ``dat_path`` entries, so the output folder
can be moved as a whole. phylib's ``load_model`` opens it headless; in phy, each injected unit is a
cluster (id = its ``new_unit_id``, group ``good``) whose template is the placed template in uV.

Files (phy's names and dtypes): params.py, spike_times.npy int64, spike_clusters.npy and
spike_templates.npy int32, amplitudes.npy float32 (the per-event gain), templates.npy float32
(n_units, n_times, n_neural) dense over the neural channels, channel_map.npy int32 (neural file
columns), channel_positions.npy float32 (um), similar_templates.npy, whitening_mat(_inv).npy
(identity: the templates are not whitened), cluster_group.tsv, cluster_source_unit.tsv.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from hybridkit.errors import OutputError
from hybridkit.formats.phy_layout import dense_templates
from hybridkit.hookspecs import Writer, hookimpl
from hybridkit.model import GroundTruth, Recording
from hybridkit.options import PluginOptions

log = logging.getLogger(__name__)

#: extensions phylib memory-maps as flat binaries; others give a phy folder without traces
PHY_RAW_EXTENSIONS = (".dat", ".bin", ".raw", ".mda")


def _dtype_name(dtype: np.dtype) -> str:
    """A dtype string that phylib's ``np.dtype(params['dtype'])`` reads back identically."""
    dtype = np.dtype(dtype)
    return dtype.name if dtype.isnative or dtype.itemsize == 1 else dtype.str


class PhyWriterOptions(PluginOptions):
    type: Literal["phy"]
    folder: str = Field(
        "phy",
        description="Subfolder of the output folder that receives the phy files; its params.py "
        "points at the legacy writer's hybrid binaries through relative paths.",
    )

    @field_validator("folder")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        p = PurePosixPath(value.replace("\\", "/"))
        if not value.strip() or p.is_absolute() or ".." in p.parts or str(p) == ".":
            raise ValueError(
                f"folder {value!r} must be a relative subfolder of the output folder, e.g. 'phy'"
            )
        return value


class PhyWriter(Writer):
    """Writes ``<out>/<folder>/`` so that ``phy template-gui <folder>/params.py`` shows the truth."""

    name: ClassVar[str] = "phy"
    requires: ClassVar[tuple[str, ...]] = ("legacy",)
    #: phy's spike_clusters.npy holds int32 cluster ids
    max_unit_id: ClassVar[int | None] = int(np.iinfo(np.int32).max)

    Options: ClassVar[type[PluginOptions]] = PhyWriterOptions

    def __init__(self, options, context=None) -> None:
        super().__init__(options, context)
        self.recording: Recording | None = None

    # ------------------------------------------------------------------------------------------
    def begin(self, recording: Recording, out_dir: Path) -> None:
        """Check phy can read the hybrid binaries (one offset, samples-major) and remember them."""
        if recording.order != "samples":
            raise OutputError(
                f"phy writer: recording {recording.name} is channels-major (order='channels'); phy "
                "reads only samples-major (time x channel) binaries; remove the phy writer"
            )
        offsets = sorted({f.offset_bytes for f in recording.files})
        if len(offsets) > 1:
            raise OutputError(
                f"phy writer: the files of recording {recording.name} have different header offsets "
                f"{offsets} bytes; phy's params.py takes one offset for all files"
            )
        from hybridkit.formats.hybrid_binary import hybrid_file_names

        odd = [n for n in hybrid_file_names(recording) if Path(n).suffix.lower() not in PHY_RAW_EXTENSIONS]
        if odd:
            log.warning(
                "phy writer: %s do(es) not end in %s; phy will open the folder without traces",
                ", ".join(odd), "/".join(PHY_RAW_EXTENSIONS),
            )
        self.recording = recording

    def finish(self, truth: GroundTruth, out_dir: Path) -> list[Path]:
        """Write the phy folder for ``truth.plan``; return the files written."""
        from hybridkit.formats.hybrid_binary import hybrid_file_names

        recording = self.recording if self.recording is not None else truth.recording
        plan = truth.plan
        out_dir = Path(out_dir)
        folder = out_dir / self.options.folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"phy writer: cannot create {folder} ({exc.strerror})") from None

        ids = [int(u.new_unit_id) for u in plan.units]
        if len(set(ids)) != len(ids) or any(not 0 <= i <= self.max_unit_id for i in ids):
            raise OutputError(
                f"phy writer: injected unit ids {ids} must be distinct and in 0..{self.max_unit_id} "
                "to be phy cluster ids (int32)"
            )
        if plan.n_events == 0:
            log.warning("phy writer: no injected events; phy cannot open a folder without spikes")

        dat_paths = []
        for name in hybrid_file_names(recording):
            hybrid = out_dir / name
            if not hybrid.exists():
                log.warning("phy writer: hybrid binary %s not found (is the legacy writer enabled?)", hybrid)
            dat_paths.append(Path(os.path.relpath(hybrid, folder)).as_posix())

        neural = recording.neural_channels
        templates, _ = dense_templates(plan.units, neural)
        n_units, n_neural = len(plan.units), int(neural.size)
        unit_index = plan.unit_index.astype(np.int32)
        arrays = {
            "spike_times": plan.times.astype(np.int64),
            "spike_templates": unit_index,
            "spike_clusters": np.asarray(ids, dtype=np.int32)[unit_index]
            if n_units else np.zeros(0, np.int32),
            "amplitudes": plan.gains.astype(np.float32),
            "templates": templates,
            "channel_map": neural.astype(np.int32),
            "channel_positions": recording.channel_positions[neural].astype(np.float32),
            "similar_templates": np.zeros((n_units, n_units), np.float32),
            "whitening_mat": np.eye(n_neural, dtype=np.float32),
            "whitening_mat_inv": np.eye(n_neural, dtype=np.float32),
        }
        written: list[Path] = []
        try:
            for stem, arr in arrays.items():
                path = folder / f"{stem}.npy"
                np.save(path, np.ascontiguousarray(arr))
                written.append(path)
            written.append(self._write_params(folder, recording, dat_paths))
            written.append(self._write_tsv(
                folder / "cluster_group.tsv", "group", [(i, "good") for i in ids]))
            written.append(self._write_tsv(
                folder / "cluster_source_unit.tsv", "source_unit",
                [(u.new_unit_id, int(u.source_unit_id)) for u in plan.units]))
        except OSError as exc:
            raise OutputError(f"phy writer: cannot write into {folder} ({exc.strerror})") from None
        return written

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _write_params(folder: Path, recording: Recording, dat_paths: list[str]) -> Path:
        lines = [
            f"dat_path = {dat_paths!r}",
            f"n_channels_dat = {int(recording.n_channels)}",
            f"dtype = {_dtype_name(recording.dtype)!r}",
            f"offset = {int(recording.files[0].offset_bytes) if recording.files else 0}",
            f"sample_rate = {float(recording.sampling_rate)!r}",
            "hp_filtered = False",
        ]
        path = folder / "params.py"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def _write_tsv(path: Path, column: str, rows: list[tuple[int, object]]) -> Path:
        body = "".join(f"{int(cid)}\t{value}\n" for cid, value in rows)
        path.write_text(f"cluster_id\t{column}\n{body}", encoding="utf-8")
        return path


@hookimpl
def hybridkit_writers():
    return [PhyWriter]
