"""``augment(cfg)``: the training set of a run config's ``augment`` section, as one HDF5 file.

The recording, sorting, template source and placement are built exactly as ``generate`` builds
them (the registry's plugins, :func:`hybridkit.run.choosing.choose_and_place` with the run's
stage generators), so a training set and a hybrid run of one config use the same templates.
Snippets are made and written ``augment.batch`` at a time (memory bounded by one batch); the file
is written under a temporary name beside the output and renamed when complete.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from hybridkit.augment import h5layout
from hybridkit.augment.compose import Composer
from hybridkit.augment.neighbourhoods import neighbourhoods
from hybridkit.augment.noise import NoiseSupply, measure_model
from hybridkit.config.augment_config import CLASSES
from hybridkit.engine.placement import shift_template
from hybridkit.errors import ConfigError, OutputError
from hybridkit.formats.atomic_files import AtomicFiles
from hybridkit.config.sections import plugin_from_section
from hybridkit.hookspecs import RunContext
from hybridkit.registry import Registry, get_registry
from hybridkit.run.choosing import choose_and_place
from hybridkit.run.output_guard import check_not_an_input, config_inputs
from hybridkit.run.planning import RNG_STREAMS, stage_rngs

log = logging.getLogger(__name__)


@dataclass
class AugmentResult:
    path: Path
    counts: dict[str, int]
    n_templates: int
    noise_model: Path | None


def augment_rng(seed: int) -> np.random.Generator:
    """The augment stream: the next child of the run's SeedSequence after the run's stages, so it
    shifts none of them (templates and placement draw exactly as in ``generate``)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(len(RNG_STREAMS) + 1)[-1])


def augment(cfg, reg: Registry | None = None) -> AugmentResult:
    """Write the training set described by ``cfg.augment``; return what was written."""
    aug = cfg.augment
    if aug is None:
        raise ConfigError(f"{cfg.source}: missing required field augment (what `hybridkit augment` "
                          "makes: counts, amplitude_uV, ...; see docs/augment.md)")
    reg = reg or get_registry()
    out = Path(aug.output)
    inputs = [(label, p) for label, p in config_inputs(cfg, reg) if label != "augment.output"]
    try:
        check_not_an_input(out, inputs)
    except OutputError as exc:  # the same check as a run's output folder, named as this field
        raise OutputError(str(exc).replace("output.directory:", "augment.output:", 1)) from None
    if out.exists() and not aug.overwrite:
        raise OutputError(f"augment.output: {out} exists; set augment.overwrite true to replace it")
    seed = cfg.seed if cfg.seed is not None else secrets.randbits(32)
    rngs = stage_rngs(seed)
    session = cfg.session or f"hybrid-{seed}"

    def plugin(kind: str, section):  # each plugin draws from its own stream, as in generate
        ctx = RunContext.for_plugin(cfg.base_dir, seed, session, kind, section.type)
        return plugin_from_section(reg, kind, section, cfg.base_dir, ctx)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ExitStack() as files_open:
        recording = plugin("source_reader", cfg.recording).open()
        files_open.enter_context(recording.opened())
        sorting = (plugin("sorter_adapter", cfg.sorting).load(recording)
                   if cfg.sorting is not None else None)
        source = plugin("template_source", cfg.templates)
        choice = choose_and_place(cfg, recording, sorting, source, rngs, seed)
        placed_shift, _ = choice.placement
        templates = {uid: shift_template(choice.bank.templates[uid], placed_shift[uid],
                                         recording.channel_positions, recording.neural)
                     for uid in choice.unit_ids if uid in placed_shift}
        if not templates:
            raise ConfigError(f"{cfg.source}: no template could be placed on the recording; "
                              "see `hybridkit units` and injection.placement")
        return _write(cfg, aug, out, recording, sorting, source, templates, seed)


def _write(cfg, aug, out: Path, recording, sorting, source, templates, seed: int) -> AugmentResult:
    fs = recording.sampling_rate
    n_before = int(round(aug.ms_before * fs / 1000))
    n_times = n_before + int(round(aug.ms_after * fs / 1000))
    margin = int(round(aug.quiet_margin_ms * fs / 1000))
    rng = augment_rng(seed)
    nbhd_of = neighbourhoods(recording.channel_positions, recording.neural, aug.n_channels)

    model = model_path = None
    if aug.noise == "model":
        model = measure_model(recording, sorting, aug.noise_snippets, n_times, margin, rng)
        model_path = out.with_name(out.stem + ".noise.npz")
    supply = NoiseSupply(recording, sorting, n_times, margin, model)
    composer = Composer(templates, recording, aug, n_before, n_times)
    counts = aug.counts.model_dump()
    total = sum(counts.values())
    attrs = {"label_names": list(CLASSES), "sampling_rate": float(fs), "n_before": n_before,
             "seed": int(seed), "noise": aug.noise, "template_source": cfg.templates.type,
             "config": cfg.model_copy(update={"seed": seed}).model_dump(mode="json")}

    import h5py

    # the file and its noise model appear together, whole, or not at all
    with AtomicFiles() as pending:
        with h5py.File(pending.temp(out), "w", libver=("earliest", "v110")) as h5:
            h5layout.create(h5, total, n_times, aug.n_channels, aug.batch, aug.store_noise, attrs)
            row = 0
            for label in CLASSES:
                for start in range(0, counts[label], aug.batch):
                    n = min(aug.batch, counts[label] - start)
                    b = composer.draw(rng, label, n)
                    nbhds = np.stack([nbhd_of[int(c)] for c in b.centres])
                    noise, starts = supply.draw(rng, nbhds)
                    main = [p[0] for p in b.placed]
                    h5layout.write(h5, row, {
                        "waveforms": composer.snippets(b, noise, nbhds),
                        "noise": noise,
                        "labels": np.full(n, b.label, np.int8),
                        "amplitudes": np.array([0.0 if t is None else g * t.peak_amplitude_uV
                                                for t, g in zip(main, b.gains[:, 0])], np.float32),
                        "gains": b.gains, "time_shifts": b.time_shifts,
                        "space_shifts_um": b.space_shifts_um, "template_ids": b.template_ids,
                        "unit_ids": b.template_ids if source.uses_sorting_units
                        else np.full_like(b.template_ids, -1),
                        "centre_channels": b.centres, "channels": nbhds,
                        "positions": recording.channel_positions[nbhds].astype(np.float32),
                        "noise_starts": starts,
                    })
                    row += n
        if model is not None:
            _write_model(model, recording, pending.temp(model_path))
    log.info("augment: %d snippets of %d x %d into %s", total, n_times, aug.n_channels, out)
    return AugmentResult(out, counts, len(templates), model_path)


def _write_model(model, recording, path: Path) -> None:
    """The measured covariance as .npz: spatial (uV^2, neural channels, in file-column order),
    temporal (mean diagonal 1) and the channels; the synthetic source reads 'spatial'."""
    with open(path, "wb") as f:  # a file object: np.savez adds no suffix
        np.savez(f, spatial=model.spatial, temporal=model.temporal,
                 channels=recording.neural_channels)
