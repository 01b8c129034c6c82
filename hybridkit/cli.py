"""The ``hybridkit`` command: argument parsing and printing only; each command calls one function.

Exit codes: 0 success, 2 user error (a HybridkitError: bad config, bad input files), 1 internal
error (a bug: run with --debug for the traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import HybridkitError

log = logging.getLogger("hybridkit")


def _cmd_generate(args) -> int:
    from .config import load_config
    from .pipeline import generate

    cfg = load_config(args.config)
    result = generate(cfg)
    truth = result.truth
    print(f"wrote {result.output_dir}")
    print(f"  session {truth.session}, seed {truth.seed}: {len(truth.plan.units)} units injected, "
          f"{truth.plan.n_events} events, {truth.clipped_samples} samples clipped")
    for unit, why in truth.skipped_units.items():
        print(f"  skipped unit {unit}: {why}")
    return 0


def _cmd_config_schema(args) -> int:
    from .config import json_schema

    if args.markdown:
        from .config_reference import render_markdown
        from .registry import build_registry

        print(render_markdown(json_schema(build_registry(entry_points_too=False))), end="")
    else:
        print(json.dumps(json_schema(), indent=2))
    return 0


def _cmd_config_check(args) -> int:
    from .config import load_config

    cfg = load_config(args.config)
    print(f"{args.config}: valid (recording: {cfg.recording.type}, sorting: {cfg.sorting.type if cfg.sorting else 'none'}, "
          f"templates: {cfg.templates.type}, writers: {', '.join(w.type for w in cfg.writers)})")
    return 0


def _cmd_plugins(args) -> int:
    from .registry import get_registry

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
    from .example import write_example

    config = write_example(Path(args.dir), seed=args.seed, duration_s=args.duration, force=args.force)
    print(f"wrote the example dataset to {args.dir}; run: hybridkit generate {config}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridkit",
        description="Hybrid ground-truth data for spike sorting: inject known units into a real "
                    "recording and write the hybrid recording with its exact ground truth.",
    )
    parser.add_argument("--version", action="version", version=f"hybridkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("generate", help="write a hybrid recording and its ground truth")
    p.add_argument("config", type=Path, help="run config (JSON or YAML)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("config", help="print the config schema or check a config")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True
    c = csub.add_parser("schema", help="print the JSON Schema of a run config")
    c.add_argument("--markdown", action="store_true",
                   help="print the configuration reference (built-in plugins) as Markdown instead")
    c.set_defaults(func=_cmd_config_schema)
    c = csub.add_parser("check", help="validate a config without doing any work")
    c.add_argument("config", type=Path)
    c.set_defaults(func=_cmd_config_check)

    p = sub.add_parser("plugins", help="list installed plugins")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--failures", action="store_true",
                   help="with --json: also list plugins that failed to load")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("example", help="write a small SpikeGLX + Kilosort example dataset")
    p.add_argument("dir", help="folder to write (must be empty or absent unless --force)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of recording (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite the example's files in DIR")
    p.set_defaults(func=_cmd_example)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except HybridkitError as exc:
        if args.debug:
            raise
        print(f"hybridkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hybridkit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, and how to see it
        if args.debug:
            raise
        print(f"hybridkit: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
              "traceback and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
