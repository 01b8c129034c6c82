"""Benchmark hybridkit's start-up: ``--help``, ``import hybridkit.cli`` and generate up to its first work.

Run:  python bench/bench_startup.py [--repeat 15] [--baseline SOURCE_TREE] [--workdir DIR]

Every measurement is a fresh interpreter (``sys.executable``), repeated ``--repeat`` times; the
current tree and, with ``--baseline``, another hybridkit source tree (e.g. ``git archive main``
unpacked somewhere) run alternately in each round, so both see the same machine load. Medians are
reported (the machines are shared and noisy), with every run and the load average. Bytecode is
compiled once into a cache under the work folder (``PYTHONPYCACHEPREFIX``), as an installed
package has it, whatever ``PYTHONDONTWRITEBYTECODE`` says.

(a) ``python -c "import hybridkit.cli"`` and ``python -m hybridkit --help``, wall seconds, next to
    ``python -c pass`` (the interpreter's own start-up);
(b) generate up to its first real work, on the example dataset (``hybridkit example``): a fresh
    interpreter runs ``hybridkit.cli.main(["generate", CONFIG])`` until it calls
    ``run.pipeline.generate`` (the CLI's imports, ``load_config``: the registry (pluggy, entry
    points, every built-in plugin module) and pydantic validation). Reported: wall seconds from
    spawning the interpreter until that call (median and minimum), the main thread's CPU time at
    that call (less disturbed by other processes than wall time; OpenBLAS's worker threads, which
    spin at numpy's import, are left out), and the in-process split (imports, registry,
    validation);
(c) ``python -X importtime`` of a whole ``generate`` run of the example: milliseconds of top-level
    imports before its first work and during the run (modules the run imports lazily), and the
    costliest top-level imports. importtime inflates times by ~20-30 % and does not list modules
    imported through ``importlib.import_module`` (the registry's plugin modules; what they import
    is listed), so compare runs with runs and trust (b) for totals.

Targets (issue 19 item 3): ``hybridkit --help`` <= 0.25 s; generate's imports <= 0.2 s (b's
"start_to_work_s"). Prints a JSON report and writes it to bench/out/startup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: ``hybridkit generate CONFIG`` through the command line's own code (``hybridkit.cli.main``) up to
#: the call of ``run.pipeline.generate``: an import hook wraps, as their modules load,
#: ``registry.build_registry`` and ``run_config.load_config`` (timed) and ``generate`` (prints the
#: wall clock and the split as JSON; then, with ``--run``, marks stderr and runs the real generate,
#: else ends the process)
TO_FIRST_WORK = """\
import json, os, sys, time
from importlib.machinery import PathFinder
t0 = time.perf_counter()
spent = {"registry_s": 0.0, "load_config_s": 0.0}


def timed(fn, key):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - start
    return wrapper


def at_first_work(generate):
    def wrapper(cfg, *args, **kwargs):
        at_work = time.time()
        total = time.perf_counter() - t0
        print(json.dumps({"at_work": at_work, "cpu_s": time.thread_time(),
                          "imports_s": total - spent["load_config_s"],
                          "registry_s": spent["registry_s"],
                          "load_config_s": spent["load_config_s"] - spent["registry_s"]}),
              flush=True)
        if "--run" not in sys.argv:
            os._exit(0)
        print("##first-work", file=sys.stderr, flush=True)
        return generate(cfg, *args, **kwargs)
    return wrapper


PATCHES = {"hybridkit.registry": ("build_registry", lambda f: timed(f, "registry_s")),
           "hybridkit.config.run_config": ("load_config", lambda f: timed(f, "load_config_s")),
           "hybridkit.run.pipeline": ("generate", at_first_work)}


class Hook:
    @staticmethod
    def find_spec(name, path, target=None):
        if name not in PATCHES:
            return None
        spec = PathFinder.find_spec(name, path, target)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            attr, wrap = PATCHES[name]
            setattr(module, attr, wrap(getattr(module, attr)))

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, Hook)
from hybridkit.cli import main
sys.exit(main(["generate", sys.argv[1]]))
"""

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def environment(code: Path, pycache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(code)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def wall(cmd: list[str], env: dict) -> float:
    """Wall seconds of one command (output discarded)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def to_first_work(config: Path, env: dict) -> dict:
    """One fresh interpreter up to generate's first work: seconds from spawn, and the split."""
    spawned = time.time()
    out = subprocess.run([sys.executable, "-c", TO_FIRST_WORK, str(config)], env=env, check=True,
                         capture_output=True, text=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["start_to_work_s"] = row.pop("at_work") - spawned
    return row


def import_times(config: Path, env: dict) -> dict:
    """``-X importtime`` of a whole generate run: top-level import ms before its first work and
    during the run, and every top-level module's cumulative ms."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", TO_FIRST_WORK, str(config), "--run"],
                         env=env, check=True, capture_output=True, text=True)
    before, during, modules, phase = 0, 0, {}, "before"
    for line in out.stderr.splitlines():
        if line.startswith("##first-work"):
            phase = "during"
            continue
        m = IMPORT_LINE.match(line)
        if not m or len(m[3]) != 1:  # one space of indent: a top-level import
            continue
        cumulative_us = int(m[2])
        if phase == "before":
            before += cumulative_us
        else:
            during += cumulative_us
        modules[m[4]] = cumulative_us / 1e3
    return {"before_first_work_ms": before / 1e3, "during_run_ms": during / 1e3, "modules": modules}


def make_config(work: Path, env: dict) -> Path:
    """The example dataset, and its config writing to a folder it may replace, without a bar."""
    data = work / "example"
    if not (data / "config.json").exists():
        subprocess.run([sys.executable, "-m", "hybridkit", "example", str(data)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    cfg = json.loads((data / "config.json").read_text())
    cfg["output"] = {"directory": "bench_output", "overwrite": True}
    cfg["engine"] = {**cfg.get("engine", {}), "progress": False}
    path = data / "bench_config.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def measure(trees: dict[str, Path], work: Path, repeat: int, importtime_repeat: int) -> dict:
    envs = {name: environment(code, work / f"pycache-{name}") for name, code in trees.items()}
    config = make_config(work, envs["current"])
    floor: list[float] = []
    runs: dict[str, dict[str, list]] = {name: {"import_cli_s": [], "help_s": [], "to_first_work": [],
                                               "importtime": []} for name in trees}
    for name, env in envs.items():  # compile the bytecode caches, untimed
        to_first_work(config, env)
        subprocess.run([sys.executable, "-c", TO_FIRST_WORK, str(config), "--run"], env=env,
                       check=True, capture_output=True)
    for i in range(repeat):
        floor.append(wall([sys.executable, "-c", "pass"], envs["current"]))
        for name, env in envs.items():
            r = runs[name]
            r["import_cli_s"].append(wall([sys.executable, "-c", "import hybridkit.cli"], env))
            r["help_s"].append(wall([sys.executable, "-m", "hybridkit", "--help"], env))
            r["to_first_work"].append(to_first_work(config, env))
            if i < importtime_repeat:
                r["importtime"].append(import_times(config, env))
    report: dict = {"repeat": repeat, "python_pass_s": statistics.median(floor),
                    "python_pass_min_s": min(floor)}
    for name, r in runs.items():
        it = r["importtime"]
        typical = sorted(it, key=lambda x: x["before_first_work_ms"])[len(it) // 2]
        report[name] = {
            "import_cli_s": statistics.median(r["import_cli_s"]),
            "help_s": statistics.median(r["help_s"]),
            "start_to_work_s": median(r["to_first_work"], "start_to_work_s"),
            "minimum_s": {"import_cli_s": min(r["import_cli_s"]), "help_s": min(r["help_s"]),
                          "start_to_work_s": min(x["start_to_work_s"] for x in r["to_first_work"])},
            "in_process_s": {k: median(r["to_first_work"], k)
                             for k in ("imports_s", "registry_s", "load_config_s")},
            "main_thread_cpu_to_work_s": {"median": median(r["to_first_work"], "cpu_s"),
                              "minimum": min(x["cpu_s"] for x in r["to_first_work"])},
            "importtime_ms": {
                "before_first_work": statistics.median(x["before_first_work_ms"] for x in it),
                "during_run": statistics.median(x["during_run_ms"] for x in it),
                "top_modules_of_median_run": dict(sorted(typical["modules"].items(),
                                                         key=lambda kv: -kv[1])[:15]),
            },
            "runs": {"import_cli_s": [round(t, 3) for t in r["import_cli_s"]],
                     "help_s": [round(t, 3) for t in r["help_s"]],
                     "start_to_work_s": [round(x["start_to_work_s"], 3) for x in r["to_first_work"]]},
        }
    if "baseline" in runs:
        report["current_over_baseline"] = {
            k: report["current"][k] / report["baseline"][k]
            for k in ("import_cli_s", "help_s", "start_to_work_s")}
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15, help="fresh interpreters per measurement")
    ap.add_argument("--importtime-repeat", type=int, default=5,
                    help="whole generate runs under -X importtime (of the --repeat rounds)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a hybridkit source tree timed alternately with this one")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    trees = {"current": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hk-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    # ``python -c`` puts the current folder first on sys.path: from a source tree's root every
    # interpreter would import that tree's hybridkit, whatever PYTHONPATH says
    os.chdir(work)
    try:
        load_before = os.getloadavg()
        report = {"load_average_at_start": load_before,
                  **measure(trees, work, args.repeat, min(args.importtime_repeat, args.repeat)),
                  "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count()}
        print(json.dumps(report, indent=2))
        (HERE / "out").mkdir(exist_ok=True)
        (HERE / "out" / "startup.json").write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
