"""Which units a run injects and where: the one code path behind `generate` and the preview.

``hybridkit units SORTING --recording CONFIG`` calls :func:`choose_and_place` with the config's
``units`` (ids included), its seed, its template source (and so its high-pass band) and its
placement, exactly as ``generate`` does, so the preview prints the run's selection table: the
same metrics, the same chosen units, and the units the run could not place.

The run's one noise estimate (:func:`hybridkit.engine.noise.recording_noise_uV`, in the template
source's band) is made here, once, and handed to the selection, to the template source
(``RunContext.noise_uV``) and, through :class:`Choice`, to the writers and the plan file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridkit.engine.noise import recording_noise_uV, snr
from hybridkit.errors import HybridkitError
from hybridkit.model import Recording, Sorting, TemplateBank
from hybridkit.run.planning import place_units
from hybridkit.run.selection import SelectionRow, choose_units, evaluate, ranked


@dataclass
class Choice:
    """The chosen ground-truth units, their templates and places, and the selection table."""

    unit_ids: list[int]  # the chosen units, in selection order (explicit ids keep theirs)
    rows: list[SelectionRow]  # the selection table (empty when the template source chooses)
    bank: TemplateBank
    placement: tuple[dict[int, np.ndarray], dict[int, str]]  # (shift um per placed unit, why not)
    #: the run's noise estimate: (n_channels,) float64 uV per file column, NaN off the neural
    #: channels, in the template source's band
    noise_uV: np.ndarray | None = None
    #: not strict: the error that would stop the run while choosing (templates, placement)
    stopped: str = ""


def choose_and_place(cfg, recording: Recording, sorting: Sorting | None, source,
                     rngs: dict[str, np.random.Generator], seed: int, strict: bool = True) -> Choice:
    """Choose the units (``cfg.units``), build their templates (``source``) and place them.

    ``rngs`` are the run's stage generators (:func:`hybridkit.run.planning.stage_rngs`);
    ``source`` the run's template source (with its own stream, RunContext.for_plugin). The run's
    noise estimate is made first and handed to the selection and the source. Units are placed
    best-ranked first (``units.rank_by``; ``snr`` and ``amplitude_uV`` rank by the templates, which
    are what is placed); a unit without a place gets ``failed = "no_place"`` in the table
    with the reason. ``on_no_place`` is not applied here (the run applies it when planning).
    ``strict``: raise UnitSelectionError when no unit passes (the run); the preview instead gets
    the table with nothing chosen, and no templates.
    """
    noise = recording_noise_uV(recording, source.highpass_hz)
    if source.context is not None:
        source.context.noise_uV = noise
    if source.uses_sorting_units:
        if strict:
            unit_ids, rows = choose_units(sorting, cfg.units, recording, seed,
                                          highpass_hz=source.highpass_hz, noise_uV=noise)
        else:
            rows = evaluate(sorting, cfg.units, fs=recording.sampling_rate,
                            n_samples=recording.n_samples, recording=recording, seed=seed,
                            highpass_hz=source.highpass_hz, noise_uV=noise)
            unit_ids = [r.unit_id for r in rows if r.selected]
            if not unit_ids:
                return Choice([], rows, TemplateBank({}, recording.sampling_rate), ({}, {}), noise)
        try:
            bank = source.build(recording, sorting, unit_ids)
        except HybridkitError as exc:
            if strict:
                raise
            return Choice(unit_ids, rows, TemplateBank({}, recording.sampling_rate), ({}, {}), noise,
                          str(exc))
        for r in rows:  # the template each chosen unit injects, at its source place, scale 1
            t = bank.templates.get(r.unit_id)
            if t is not None:
                r.template_amplitude_uV = t.peak_amplitude_uV
                r.template_snr = snr(t.peak_amplitude_uV, noise[t.peak_channel])
        order = [r.unit_id for r in ranked([r for r in rows if r.selected], cfg.units.rank_by,
                                           templates=True)]
    else:  # the source chooses its own templates; their ids are the injected units' sources
        bank = source.build(recording, sorting, [])
        unit_ids, rows, order = list(bank.templates), [], None
    placed, unplaced = place_units(bank, unit_ids, recording, cfg.injection, rngs["placement"], order)
    by_id = {r.unit_id: r for r in rows}
    for uid, why in unplaced.items():
        if uid in by_id:
            r = by_id[uid]
            rank = order.index(uid) + 1
            r.selected, r.failed = False, "no_place"
            what = (f"template {cfg.units.rank_by}" if cfg.units.rank_by in ("snr", "amplitude_uV")
                    else cfg.units.rank_by)
            r.detail = f"rank {rank} by {what}; no place on the probe: {why}"
    return Choice(unit_ids, rows, bank, (placed, unplaced), noise)
