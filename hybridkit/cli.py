"""The ``hybridkit`` command: argument parsing and printing only; each command calls one function.

Exit codes: 0 success, 1 ``verify`` found discrepancies, 2 user error (a HybridkitError: bad config, bad input files), 1 internal
error (a bug: run with --debug for the traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hybridkit.errors import WRITE_ONLY_ERRNOS, HybridkitError, output_write_error
from hybridkit.run import interrupts

log = logging.getLogger("hybridkit")


def _cmd_generate(args) -> int:
    from hybridkit.config.run_config import load_config
    from hybridkit.formats.checksums import FileDigests
    from hybridkit.run.pipeline import generate

    digests = FileDigests()  # the inputs --from-nwb checks are not read again by the run
    if args.from_nwb is not None:
        from hybridkit.config.run_config import validate_config
        from hybridkit.publish.from_nwb import config_from_nwb

        data = config_from_nwb(args.from_nwb, args.inputs or [Path.cwd()], args.output, digests)
        cfg = validate_config(data, Path.cwd(), f"{args.from_nwb} (run_config)")
        print(f"regenerating session {cfg.session} (seed {cfg.seed}) from {args.from_nwb}")
    else:
        cfg = load_config(args.config)
    result = generate(cfg, digests=digests)
    print("\n".join(result.summary()))
    if cfg.output.in_place is not None:
        _warn_in_place(result.output_dir)
    return 0


def _cmd_config_schema(args) -> int:
    from hybridkit.config.run_config import json_schema

    if args.markdown:
        from hybridkit.config.reference import render_markdown
        from hybridkit.registry import build_registry

        print(render_markdown(json_schema(build_registry(entry_points_too=False))), end="")
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0


def _cmd_config_check(args) -> int:
    from hybridkit.config.input_paths import check_input_paths
    from hybridkit.config.run_config import load_config
    from hybridkit.run.output_guard import check_output

    cfg = load_config(args.config)
    check_output(cfg)  # the output folder is never an input, and replaced only if ours
    n_paths = check_input_paths(cfg, str(args.config))
    print(f"{args.config}: valid, {n_paths} input path(s) found (recording: {cfg.recording.type}, sorting: {cfg.sorting.type if cfg.sorting else 'none'}, "
          f"templates: {cfg.templates.type}, writers: {', '.join(w.type for w in cfg.writers)})")
    return 0


def _cmd_plugins(args) -> int:
    from hybridkit.registry import get_registry

    reg = get_registry()
    rows = [info.as_dict() for info in reg.all()]
    if args.json:
        print(json.dumps({"plugins": rows, "failures": reg.failures}, indent=2)
              if args.failures else json.dumps(rows, indent=2))
        return 0
    headers = ("name", "kind", "distribution", "version")
    table = [headers] + [tuple(str(r[h]) for h in headers) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0  # load failures were already logged as warnings by the registry


def _cmd_example(args) -> int:
    from hybridkit.example import write_example

    config = write_example(Path(args.dir), seed=args.seed, duration_s=args.duration, force=args.force)
    print(f"wrote the example dataset to {args.dir}; run: hybridkit generate {config}")
    return 0


def _units_inputs(args) -> list[tuple[str, Path]]:
    """What ``units`` reads, which ``--csv`` must never overwrite: the sorting, and the recording
    (a .bin with its .meta; a run config with every input it names)."""
    from hybridkit.run.output_guard import config_inputs

    inputs = [("SORTING", args.sorting.absolute())]
    rec = args.recording
    if rec is not None:
        if rec.suffix.lower() in (".json", ".yaml", ".yml") and rec.is_file():
            from hybridkit.config.run_config import load_config

            inputs += config_inputs(load_config(rec))
        else:
            inputs += [("--recording", rec.absolute())] + [
                ("--recording", rec.with_suffix(s).absolute()) for s in (".bin", ".meta") if s != rec.suffix]
    return inputs


def _cmd_units(args) -> int:
    from hybridkit.formats.atomic_files import AtomicFiles
    from hybridkit.results.injected_units import is_output
    from hybridkit.run.output_guard import check_output_file
    from hybridkit.run.selection import format_table, units_report, write_table

    if args.csv:  # before any work: the table must never land on an input
        check_output_file("units --csv", args.csv, _units_inputs(args))
    if is_output(args.sorting):  # a finished run: its injected units, as the run stored them
        return _injected_units(args)

    criteria = {"label": args.label, "min_firing_rate_hz": args.min_rate,
                "max_contamination": args.max_contamination, "min_presence_ratio": args.min_presence,
                "min_amplitude_uV": args.min_amplitude, "min_snr": args.min_snr,
                "max_count": args.max_count, "rank_by": args.rank_by,
                "refractory_ms": args.refractory_ms, "censored_ms": args.censored_ms,
                "presence_bin_s": args.presence_bin_s, "keep_duplicates": args.keep_duplicates}
    report = units_report(args.sorting, args.type, args.recording, args.sampling_rate, criteria,
                          highpass_hz=args.highpass_hz)
    n_sel = sum(r.selected for r in report.rows)
    band = f"; amplitude/SNR high-passed at {report.highpass_hz:g} Hz" if report.highpass_hz else ""
    run = (f"; the run's selection and placement (seed {report.run_seed})"
           if report.run_seed is not None else "")
    print(f"# {report.sorting.path} ({report.sorting_type}): {len(report.rows)} units, "
          f"{report.fs:.10g} Hz, {report.n_samples / report.fs:.3f} s (duration from the "
          f"{report.duration_from}); {n_sel} {'chosen' if run else 'pass'}{run}{band}")
    print(format_table(report.rows))
    for note in report.notes:
        print(f"# note: {note}")
    if args.csv:
        with AtomicFiles() as pending:
            write_table(report.rows, pending.temp(args.csv))
    return 0


def _injected_units(args) -> int:
    from hybridkit.formats.atomic_files import AtomicFiles
    from hybridkit.results.injected_units import format_rows, injected_units, write_csv

    truth, rows = injected_units(args.sorting)
    print(f"# {args.sorting}: {len(rows)} injected units (session {truth.session or '-'}); snr = "
          "amplitude_uV x mean_scale / noise_uV, the run's noise estimate (docs/snr.md)")
    print(format_rows(rows))
    if args.csv:
        with AtomicFiles() as pending:
            write_csv(rows, pending.temp(args.csv))
    return 0


def _cmd_templates_list(args) -> int:
    from hybridkit.registry import get_registry

    # the database's own catalogue, reached through the registry (a blocked plugin is an error)
    database = get_registry().get("template_source", "template_database")
    rows = database.list_templates(brain_areas=args.brain_area, probes=args.probe, datasets=args.dataset,
                          depth_um=args.depth, amplitude_uV=args.amplitude, snr=args.snr,
                          min_spikes=args.min_spikes, base_url=args.base_url,
                          cache_dir=args.cache_dir, offline=args.offline)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("row", "probe", "brain_area", "depth_um", "amplitude_uV", "snr", "spikes",
               "template_index", "dataset")
    keys = ("row", "probe", "brain_area", "depth_along_probe", "amplitude_uv",
            "signal_to_noise_ratio", "spikes_per_unit", "template_index", "dataset")
    table = [headers] + [tuple("" if r[k] is None else f"{r[k]:.1f}" if isinstance(r[k], float)
                               else str(r[k]) for k in keys) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"{len(rows)} templates match", file=sys.stderr)
    return 0


def _cmd_score(args) -> int:
    from hybridkit.results.scoring import ScoreSettings, score, summary_text

    settings = ScoreSettings(tolerance_ms=args.tolerance_ms, match_score=args.match_score,
                             well_detected_score=args.well_detected_score,
                             exclude_source_units=args.exclude_source_units)
    result = score(args.output_dir, args.sorting, args.type, settings, out_dir=args.out,
                   signal_metrics=not args.no_signal)
    print(summary_text(result))
    t = result.truth
    if t.remote is not None:
        print(f"streamed {t.remote}: fetched {t.bytes_fetched:,} of {t.file_bytes:,} bytes "
              f"({100 * t.bytes_fetched / max(t.file_bytes, 1):.2f} %): the ground-truth units only")
    print(f"wrote {', '.join(str(f) for f in result.files)}")
    return 0


def _cmd_publish(args) -> int:
    from hybridkit.publish.upload import publish

    r = publish(args.outputs, args.dandiset, args.instance, create=args.create,
                dandiset_dir=args.dandiset_dir, dry_run=args.dry_run, jobs=args.jobs)
    print(f"dandiset {r.dandiset} on {r.instance}: organized in {r.dandiset_dir}; dandi validate: no errors")
    for path, size in r.planned:
        print(f"  would upload {path} ({size} bytes)")
    for path in r.uploaded:
        print(f"  uploaded {path}")
    for path in r.unchanged:
        print(f"  unchanged {path} (the draft holds the same bytes)")
    if r.dry_run:
        print("dry run: nothing was created or uploaded")
    return 0


def _cmd_reset(args) -> int:
    from hybridkit.formats.in_place import reset

    source, restored = reset(args.output_dir)
    print(f"restored {restored:,} bytes of {source}: it is the original recording again")
    return 0


def _warn_in_place(output_dir: Path) -> None:
    """Commands reading an output say, while it lasts, that its source is modified in place."""
    from hybridkit.formats.in_place import notice

    text = notice(output_dir)
    if text:
        print(f"hybridkit: note: {text}", file=sys.stderr)


def _cmd_report(args) -> int:
    from hybridkit.results.report import write_report

    path = write_report(args.output_dir, score=args.score, out=args.out)
    print(f"wrote {path}")
    return 0


def _cmd_verify(args) -> int:
    from hybridkit.results.verify import verify

    result = verify(args.output_dir, source=args.source)
    print(result.summary())
    for d in result.findings.listed:
        print(f"  {d.line()}")
    return 0 if result.ok else 1


def _cmd_study_check(args) -> int:
    from hybridkit.study.check import check_study

    spec, datasets, n_paths = check_study(args.study)
    print(f"{args.study}: valid; study {spec.name}: {len(datasets)} dataset(s) into "
          f"{spec.output}, {n_paths} input path(s) found, sorters: "
          f"{', '.join(spec.sorters) or 'none'}")
    for d in datasets:
        params = ", ".join(f"{k}={v}" for k, v in d.labels.items())
        print(f"  {d.name}  (source {d.source}{', ' + params if params else ''})")
    return 0


def _cmd_study_run(args) -> int:
    from hybridkit.errors import StudyError
    from hybridkit.study.runner import run_study

    run = run_study(args.study, workers=args.workers, scheduler=args.scheduler)
    for d in run.datasets:
        r = run.results[d.name]
        how = {"done": f"generated in {r.get('seconds', 0):.1f} s ({r.get('units')} units, "
                       f"{r.get('events')} events, {r.get('clipped_samples')} samples clipped)",
               "skipped": "skipped: its output exists with the same resolved config",
               "failed": f"FAILED: {r.get('error')}"}[r["status"]]
        print(f"  {d.name}: {how}")
    print(f"study {run.name}: {run.count('done')} generated, {run.count('skipped')} skipped, "
          f"{run.count('failed')} failed of {len(run.datasets)} in {run.wall_seconds:.1f} s; "
          f"{run.study_dir / 'study.json'}")
    if run.failed:
        raise StudyError(f"study {run.name}: {len(run.failed)} of {len(run.datasets)} datasets "
                         f"failed (first: {run.failed[0]['name']}: {run.failed[0]['error']})")
    return 0


def _cmd_study_score(args) -> int:
    from hybridkit.errors import StudyError
    from hybridkit.study.scoring import score_study

    res = score_study(args.study_dir, workers=args.workers, scheduler=args.scheduler)
    for r in res.summaries:
        what = (f"mean accuracy {r['mean_accuracy']:.3f}, {r['n_well_detected']}/{r['n_gt_units']} "
                "well detected" if r["status"] == "scored" else f"{r['status']}: {r['error']}")
        print(f"  {r['dataset']} x {r['sorter']}: {what}")
    print(f"{res.count('scored')} scored, {res.count('missing')} missing, {res.count('failed')} "
          f"failed; wrote {', '.join(str(f) for f in res.files)}")
    failed = [r for r in res.summaries if r["status"] == "failed"]
    if failed:
        raise StudyError(f"{len(failed)} sorter output(s) could not be scored (first: "
                         f"{failed[0]['dataset']} x {failed[0]['sorter']}: {failed[0]['error']})")
    if not res.count("scored"):
        raise StudyError(f"{args.study_dir}: no sorter output found at the study's sorter paths "
                         f"(first looked for: {res.summaries[0]['sorting_path'] if res.summaries else '-'})")
    return 0


def _cmd_study_report(args) -> int:
    from hybridkit.study.report import write_study_report

    print(f"wrote {write_study_report(args.study_dir, args.out)}")
    return 0


def _cmd_augment(args) -> int:
    from hybridkit.augment.build import augment
    from hybridkit.config.run_config import load_config

    result = augment(load_config(args.config))
    counts = ", ".join(f"{n} {label}" for label, n in result.counts.items())
    print(f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB): {counts}; "
          f"{result.n_templates} templates")
    if result.noise_model is not None:
        print(f"wrote {result.noise_model} (the measured noise covariance)")
    return 0


class _VersionAction(argparse.Action):
    """``--version``: the package version is looked up only when asked for (reading package
    metadata costs ~0.1 s, a third of ``hybridkit --help``'s budget)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from hybridkit import __version__

        print(f"hybridkit {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridkit",
        description="Hybrid ground-truth data for spike sorting: inject known units into a real "
                    "recording and write the hybrid recording with its exact ground truth.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("generate", help="write a hybrid recording and its ground truth")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("config", type=Path, nargs="?", help="run config (JSON or YAML)")
    what.add_argument("--from-nwb", metavar="HYBRID", help="instead of a config: rebuild the run from "
                   "a hybrid NWB written by hybridkit (a path, an http(s) URL, or "
                   "dandi://INSTANCE/DANDISET[@VERSION]/PATH) and make the same ground truth again")
    p.add_argument("--inputs", type=Path, action="append", metavar="DIR",
                   help="with --from-nwb: a folder holding the run's local inputs (source recording, "
                   "sorting), checked by size and SHA-256; repeat for several (default: the current folder)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="with --from-nwb: output folder (default ./<session>-regenerated)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("config", help="print the config schema or check a config")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True
    c = csub.add_parser("schema", help="print the JSON Schema of a run config")
    c.add_argument("--markdown", action="store_true",
                   help="print the configuration reference (built-in plugins) as Markdown instead")
    c.set_defaults(func=_cmd_config_schema)
    c = csub.add_parser("check", help="validate a config and check that its input files and "
                        "folders exist, without doing any work")
    c.add_argument("config", type=Path)
    c.set_defaults(func=_cmd_config_check)

    p = sub.add_parser("plugins", help="list installed plugins")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--failures", action="store_true",
                   help="with --json: also list plugins that failed to load")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("units", help="print every sorted unit's quality metrics, to choose "
                       "ground-truth units (what units.* criteria would select); given a "
                       "generate output folder, its injected units with their stored SNR")
    p.add_argument("sorting", type=Path, help="the sorter's output (phy folder, rez.mat, "
                   "*_res.mat, YASS folder, ...), or the output folder of a generate run")
    p.add_argument("--type", help="sorter adapter (default: detected from the path)")
    p.add_argument("--recording", type=Path, metavar="CONFIG_OR_BIN",
                   help="a run config (with its own sorting: the table and placement generate "
                   "will produce, from its units, seed and templates) or a SpikeGLX .bin; needed "
                   "for amplitude/SNR, duplicates and the true duration")
    p.add_argument("--sampling-rate", type=float, metavar="HZ",
                   help="for formats that do not state it, when no --recording is given")
    p.add_argument("--label", nargs="+", help="keep units with this sorter label (e.g. good)")
    p.add_argument("--min-rate", type=float, metavar="HZ", help="minimum firing rate")
    p.add_argument("--max-contamination", type=float, metavar="F",
                   help="maximum ISI contamination fraction (Hill et al. 2011), 0-1")
    p.add_argument("--min-presence", type=float, metavar="F", help="minimum presence ratio, 0-1")
    p.add_argument("--min-amplitude", type=float, metavar="UV", help="minimum amplitude (uV)")
    p.add_argument("--min-snr", type=float, help="minimum SNR")
    p.add_argument("--max-count", type=int, help="keep at most this many, best by --rank-by")
    p.add_argument("--rank-by", choices=["snr", "amplitude_uV", "firing_rate_hz", "presence_ratio",
                                         "contamination"])
    p.add_argument("--keep-duplicates", action="store_true", default=None,
                   help="keep both units of a duplicate pair (units.keep_duplicates)")
    p.add_argument("--refractory-ms", type=float, help="refractory period (default 1.5 ms)")
    p.add_argument("--censored-ms", type=float, help="censored period (default 0 ms)")
    p.add_argument("--presence-bin-s", type=float, help="presence-ratio bin (default 60 s)")
    p.add_argument("--highpass-hz", type=float, metavar="HZ",
                   help="measure amplitude/SNR high-passed at this corner, for wideband recordings "
                   "(default: the run config's templates.highpass_hz, else unfiltered)")
    p.add_argument("--csv", type=Path, help="also write the table as CSV to this file")
    p.set_defaults(func=_cmd_units)

    p = sub.add_parser("templates", help="query the public template database")
    tsub = p.add_subparsers(dest="templates_command", metavar="SUBCOMMAND")
    tsub.required = True
    t = tsub.add_parser("list", help="print the database templates matching the filters")
    t.add_argument("--brain-area", action="append", default=[], metavar="AREA",
                   help="Allen acronym or pattern ('VISp*'); repeat for several")
    t.add_argument("--probe", action="append", default=[], help="probe model, e.g. 'Neuropixels 1.0'")
    t.add_argument("--dataset", action="append", default=[], help="dataset name or pattern")
    t.add_argument("--depth", nargs=2, type=float, metavar=("MIN", "MAX"), help="depth range, um")
    t.add_argument("--amplitude", nargs=2, type=float, metavar=("MIN", "MAX"),
                   help="peak-to-peak amplitude range, uV")
    t.add_argument("--snr", nargs=2, type=float, metavar=("MIN", "MAX"), help="SNR range")
    t.add_argument("--min-spikes", type=int, default=0, help="at least this many spikes")
    t.add_argument("--base-url", help="database root URL (default: the public bucket)")
    t.add_argument("--cache-dir", type=Path, help="cache folder (default: the user cache)")
    t.add_argument("--offline", action="store_true", help="use only the cache")
    t.add_argument("--json", action="store_true", help="print JSON instead of a table")
    t.set_defaults(func=_cmd_templates_list)

    p = sub.add_parser("score", help="score a sorter's output on the hybrid recording against the "
                       "ground truth (CSV + JSON and a printed summary)")
    p.add_argument("output_dir", metavar="HYBRID",
                   help="the output of generate (folder, its phy folder, or its .nwb file), or a "
                   "hybrid NWB at an http(s) URL or dandi://INSTANCE/DANDISET[@VERSION]/PATH (streamed)")
    p.add_argument("sorting", type=Path, metavar="SORTING", help="the sorter's output on the hybrid data")
    p.add_argument("--type", help="sorter adapter (default: detected from the path)")
    p.add_argument("--tolerance-ms", type=float, default=0.4,
                   help="spikes match within this many ms (default 0.4, as SpikeInterface)")
    p.add_argument("--match-score", type=float, default=0.5,
                   help="minimum agreement for a ground-truth unit to be matched (default 0.5)")
    p.add_argument("--well-detected-score", type=float, default=0.8,
                   help="agreement above which a unit is well detected (default 0.8)")
    p.add_argument("--exclude-source-units", action="store_true",
                   help="do not count the sorted units that are the injected units' own source "
                   "neurons as redundant or false positive (docs/scoring.md)")
    p.add_argument("--no-signal", action="store_true",
                   help="skip template similarity (it reads the hybrid recording)")
    p.add_argument("-o", "--out", type=Path,
                   help="folder for the tables (default OUTPUT_DIR/scores/<sorting name>)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("publish", help="check, organize, validate and upload hybrid NWB files to "
                       "a DANDI dandiset (docs/publishing.md)")
    p.add_argument("outputs", type=Path, nargs="+", metavar="OUTPUT_DIR",
                   help="output folders of generate (each with one .nwb), or .nwb files")
    p.add_argument("--dandiset", metavar="ID", help="an existing dandiset, e.g. 000123")
    p.add_argument("--create", type=Path, metavar="METADATA",
                   help="instead of --dandiset: create a draft dandiset from the 'dandiset' section "
                   "of this YAML/JSON file (name, description, license, contributors)")
    p.add_argument("--instance", default="dandi",
                   help="dandi, dandi-sandbox, or an API URL (default dandi; try dandi-sandbox first)")
    p.add_argument("--dandiset-dir", type=Path, metavar="DIR",
                   help="local dandiset folder to organize into (default ./<ID>)")
    p.add_argument("--dry-run", action="store_true",
                   help="check, organize and validate, print what would be uploaded; create and upload nothing")
    p.add_argument("--jobs", type=int, default=4, help="parallel part uploads per file (default 4)")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("report", help="write a self-contained HTML report of the injected units")
    p.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR",
                   help="the output of generate (folder, its phy folder, or its .nwb file)")
    p.add_argument("--score", type=Path, metavar="SCORE",
                   help="a score.json from `hybridkit score` (or its folder) to add the accuracy "
                   "table, agreement matrix and accuracy against SNR")
    p.add_argument("-o", "--out", type=Path, help="HTML file to write (default OUTPUT_DIR/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("verify", help="prove an output from its files and the source: hybrid - "
                       "source = the recorded templates x gains, every table agrees, checksums "
                       "match (exit 0), else list the first discrepancies (exit 1)")
    p.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="the output folder of generate")
    p.add_argument("--source", type=Path, metavar="PATH",
                   help="the source recording, where it is now (a file or glob pattern, as "
                   "recording.path takes; default: the path in config.resolved.json)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("reset", help="restore the source of an in-place run (output.in_place) "
                       "bit for bit from its undo journal (docs/in_place.md)")
    p.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="the output of the in-place run")
    p.set_defaults(func=_cmd_reset)

    p = sub.add_parser("study", help="many hybrid datasets (a grid) and many sorters, on Dask "
                       "(docs/studies.md)")
    ssub = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND")
    ssub.required = True
    s = ssub.add_parser("check", help="validate a study file and print the datasets it expands to")
    s.add_argument("study", type=Path, metavar="STUDY", help="study file (YAML or JSON)")
    s.set_defaults(func=_cmd_study_check)
    s = ssub.add_parser("run", help="generate every dataset of a study, one Dask task each; "
                        "skips datasets already generated with the same config")
    s.add_argument("study", type=Path, metavar="STUDY", help="study file (YAML or JSON)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of the local cluster (default: cluster.workers)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use the Dask scheduler at ADDRESS (e.g. tcp://10.0.0.5:8786) instead")
    s.set_defaults(func=_cmd_study_run)
    s = ssub.add_parser("score", help="score every sorter output of every dataset into one tidy "
                        "table (CSV and Parquet)")
    s.add_argument("study_dir", type=Path, metavar="STUDY_DIR", help="the study's output folder")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="worker processes of the local cluster")
    where.add_argument("--scheduler", metavar="ADDRESS", help="use the Dask scheduler at ADDRESS")
    s.set_defaults(func=_cmd_study_score)
    s = ssub.add_parser("report", help="one self-contained HTML page comparing the study's sorters")
    s.add_argument("study_dir", type=Path, metavar="STUDY_DIR", help="the study's output folder")
    s.add_argument("-o", "--out", type=Path, help="HTML file (default STUDY_DIR/report.html)")
    s.set_defaults(func=_cmd_study_report)

    p = sub.add_parser("augment", help="write a training set of spike snippets (clean, collided, "
                       "misaligned, noise) over the recording's noise as HDF5 (docs/augment.md)")
    p.add_argument("config", type=Path, metavar="CONFIG", help="a run config with an augment section")
    p.set_defaults(func=_cmd_augment)

    p = sub.add_parser("example", help="write a small SpikeGLX + Kilosort example dataset")
    p.add_argument("dir", help="folder to write (must be empty or absent unless --force)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of recording (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite the example's files in DIR")
    p.set_defaults(func=_cmd_example)
    return parser


def main(argv: list[str] | None = None) -> int:
    restore = None
    try:
        # SIGTERM (a scheduler's or `kill`'s stop) ends a run like Ctrl-C: the staging folder is
        # removed and the exit code is 130, also when the first interrupt was swallowed
        restore = interrupts.install()
        return _run(argv)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, whenever it comes: one line, no traceback
        print("hybridkit: interrupted", file=sys.stderr)
        return 130
    finally:
        if restore is not None:
            restore()


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.func in (_cmd_score, _cmd_report) and Path(args.output_dir).is_dir():
            _warn_in_place(Path(args.output_dir))
        return args.func(args)
    except HybridkitError as exc:
        if args.debug:
            raise
        print(f"hybridkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so, and how to see it
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.errno in WRITE_ONLY_ERRNOS:
            # a full disk where no writer named its file (the manifest, an HDF5 library): still
            # the user's to fix, in one line; the run has removed its staging folder by now
            err = output_write_error(exc.filename or "output", exc)
            print(f"hybridkit: error: {err}", file=sys.stderr)
            return err.exit_code
        print(f"hybridkit: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
              "traceback and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
