"""Benchmark ``hybridkit generate`` against ``cp`` and SpikeInterface's hybrid injection.

Run:  python bench/bench_generate.py [--duration 60] [--units 20] [--rate 10] [--repeat 3] [--long 4]

On a 384-channel NP1.0 int16 recording (the example dataset, ``--duration`` seconds) with
``--units`` injected units firing as Poisson trains at ``--rate`` Hz, it times, side by side in one
run (the machines are noisy, so only ratios mean anything):

* ``cp`` of the source .bin (page cache warm, same file system);
* ``hybridkit generate`` as a user runs it (a subprocess: imports, templates, planning, copy,
  injection, tables, manifest), with its peak RSS;
* SpikeInterface's ``InjectTemplatesRecording`` over the same binary with the same templates,
  spike trains and amplitude factors, saved to binary with ``n_jobs=1``;
* cp and generate again on a recording ``--long`` times longer (peak RSS, and the wall-time ratio
  where the output no longer fits under the kernel's dirty-page limit, so both are disk-bound);
* with ``--cold``, cp and generate again, each from an empty page cache (reads from disk, as for a
  recording larger than memory; needs root to drop the cache), and again with only the
  recording's pages dropped (Python and the libraries stay cached, as for a user's second
  command: an emptied cache also makes generate's ~0.2 s of imports a ~0.4 s read of hundreds
  of small files, which cp does not have).
* with ``--xfs``, on an XFS file system with reflink (an image file on a loop device, made and
  mounted here; needs root and ``mkfs.xfs`` from xfsprogs), for the recording and, with
  ``--long``, the longer one: ``cp --reflink=never`` against generate (which clones the source
  with FICLONE there and writes only the changed rows), and the disk space the hybrid file takes
  as a fraction of its size. When it cannot run, the report says why.

Every timed command starts after ``sync`` and a short pause, so neither pays for the previous
command's writeback (without it a 1.4 GB cp took anywhere from 0.35 to 1.9 s). Each ratio is of
the fastest runs; every run is in the report. Datasets in ``--workdir`` are reused when present.

Targets (issue 19, "faster than a copy"): warm <= 2.5 x cp; cold and on the 4 x longer recording
<= 1.5 x cp; >= 3 x faster than SpikeInterface (n_jobs=1); peak RSS <= 600 MB and within +-10 % on
the longer recording; on XFS with reflink, generate <= 0.6 x ``cp --reflink=never`` and the
hybrid's disk blocks <= 0.6 x the file. Prints a JSON report and writes it to
bench/out/generate.json. Needs ``pip install .[bench]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def settle() -> None:
    """Flush dirty pages and let the disk go quiet, outside any timing."""
    os.sync()
    time.sleep(2.0)


#: a source tree of hybridkit to time side by side with the current one (``--baseline``)
BASELINE: Path | None = None


def timed(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of a command, via GNU time, started on a settled machine."""
    settle()
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True,
                         env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return wall, rss


def make_dataset(root: Path, duration: float, n_units: int, rate: float) -> Path:
    from hybridkit.example import write_example

    stamp = root / "bench_dataset.json"
    want = {"duration": duration, "units": n_units, "rate": rate}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return root / "config.json"  # made by an earlier run with the same parameters
    shutil.rmtree(root, ignore_errors=True)
    write_example(root, seed=1, duration_s=duration, n_units=max(n_units + 4, 12))
    cfg = json.loads((root / "config.json").read_text())
    units = sorted(int(u) for u in np.unique(np.load(root / "kilosort4" / "spike_clusters.npy")))
    cfg["units"] = {"ids": units[:n_units]}
    cfg["injection"] = {"placement": {"mode": "random", "min_distance_um": 20, "on_no_place": "skip"},
                        "trains": {"mode": "poisson", "rate_hz": rate},
                        "amplitude": {"min": 0.8, "max": 1.2}}
    cfg["engine"] = {"progress": False}
    cfg["writers"] = [{"type": "legacy"}]
    (root / "config.json").write_text(json.dumps(cfg, indent=2))
    stamp.write_text(json.dumps(want))
    return root / "config.json"


def run_generate(config: Path, out: Path, code: Path | None = None) -> tuple[float, int]:
    # like the cp runs, each run writes a new file: removing the previous run's 1.4 GB output is
    # not part of the timing (cp's copies are removed outside its timing too)
    shutil.rmtree(out, ignore_errors=True)
    (out.parent / "copy.bin").unlink(missing_ok=True)
    cfg = json.loads(config.read_text())
    cfg["output"] = {"directory": str(out), "overwrite": True}
    path = config.with_name("bench_config.json")
    path.write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # as installed: compiled bytecode (kept under the work folder, not in the source trees)
    env["PYTHONPYCACHEPREFIX"] = str(out.parent / "pycache")
    # the tree timed: this one, or --baseline's. Run from the work folder: ``python -m`` puts the
    # current folder first on sys.path, so started from a source tree it would time that tree's
    # hybridkit whatever PYTHONPATH says (earlier --baseline runs from the repository root timed
    # the same code twice)
    env["PYTHONPATH"] = str(code if code is not None else HERE.parent)
    return timed([sys.executable, "-m", "hybridkit", "generate", str(path)], env, cwd=out.parent)


def run_cp(src: Path, work: Path, cp_args: tuple[str, ...] = ()) -> float:
    """Wall seconds of ``cp src`` into ``work`` (a new file each time, as generate writes)."""
    dst = work / "copy.bin"
    dst.unlink(missing_ok=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    settle()
    t0 = time.perf_counter()
    subprocess.run(["cp", *cp_args, str(src), str(dst)], check=True)
    wall = time.perf_counter() - t0
    dst.unlink()
    return wall


def side_by_side(src: Path, config: Path, work: Path, repeat: int, cp_args: tuple[str, ...] = ()) -> dict:
    """cp and generate, alternating, ``repeat`` times each; every run and the ratio of the fastest."""
    cp_t, gen_t, gen_rss, base_t = [], [], [], []
    for _ in range(repeat):
        cp_t.append(run_cp(src, work, cp_args))
        wall, rss = run_generate(config, work / "out")
        gen_t.append(wall)
        gen_rss.append(rss)
        if BASELINE is not None:
            base_t.append(run_generate(config, work / "out", BASELINE)[0])
    res = {"cp_s": min(cp_t), "generate_s": min(gen_t), "generate_over_cp": min(gen_t) / min(cp_t),
           "generate_peak_rss_mb": max(gen_rss) / 1024,
           "runs": {"cp_s": [round(t, 3) for t in cp_t], "generate_s": [round(t, 3) for t in gen_t]}}
    if BASELINE is not None:
        res["baseline_generate_s"] = min(base_t)
        res["baseline_over_cp"] = min(base_t) / min(cp_t)
        res["runs"]["baseline_generate_s"] = [round(t, 3) for t in base_t]
    return res


def run_spikeinterface(src: Path, out_dir: Path, fs: float, n_channels: int) -> float:
    """SpikeInterface's injection of the same plan (from hybridkit's outputs) saved to binary."""
    import spikeinterface.core as sc
    from spikeinterface.core.generate import InjectTemplatesRecording

    ft = np.load(out_dir / "firings_true.npy").astype(np.int64)
    templates_npz = np.load(next(out_dir.glob("templates-*.npz")))
    events = np.genfromtxt(next(out_dir.glob("hybrid_events-*.csv")), delimiter=",", names=True)
    new_ids = sorted({int(m.group(1)) for k in templates_npz.files if (m := re.match(r"unit(\d+)_", k))})
    n_times = max(templates_npz[f"unit{u}_waveform_uV"].shape[0] for u in new_ids)
    before = max(int(templates_npz[f"unit{u}_peak_index"]) for u in new_ids)
    dense = np.zeros((len(new_ids), n_times + before, n_channels), np.float32)
    for i, u in enumerate(new_ids):
        wf = templates_npz[f"unit{u}_waveform_uV"] / 2.34375  # raw units, as hybridkit adds
        pk = int(templates_npz[f"unit{u}_peak_index"])
        dense[i, before - pk:before - pk + wf.shape[0]][:, templates_npz[f"unit{u}_channels"]] = wf
    rec = sc.read_binary(src, sampling_frequency=fs, dtype="int16", num_channels=n_channels)
    labels = events["new_unit"].astype(np.int64)
    sorting = sc.NumpySorting.from_samples_and_labels([ft[1]], [labels], fs)
    sorting = sorting.select_units(new_ids)
    amp = events["gain"].astype(np.float32)
    settle()
    t0 = time.perf_counter()
    hyb = InjectTemplatesRecording(sorting, dense, nbefore=before, amplitude_factor=amp, parent_recording=rec)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        hyb.save(folder=Path(tmp) / "si", format="binary", n_jobs=1, progress_bar=False,
                 dtype="int16", chunk_duration="1s")
    return time.perf_counter() - t0


def drop_page_cache() -> bool:
    """Empty the page cache (Linux, root): the next reads come from the disk, as they do for a
    recording far larger than memory. False where that is not permitted."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def evict_file(path: Path) -> bool:
    """Drop one file's pages from the page cache (written back first): its next reads come from
    the disk while everything else (Python, hybridkit, the libraries) stays cached."""
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    time.sleep(2.0)
    return True


def time_cold(src: Path, config: Path, work: Path, repeat: int, only_recording: bool = False) -> dict | None:
    """cp and generate each started with an empty page cache (``only_recording``: with only the
    source recording's pages dropped, as for a recording larger than memory read by a warm
    install); None when it cannot be emptied."""
    cp_t, gen_t = [], []
    cold = (lambda: evict_file(src)) if only_recording else drop_page_cache
    for _ in range(repeat):
        dst = work / "copy.bin"
        if not cold():
            return None
        t0 = time.perf_counter()
        subprocess.run(["cp", str(src), str(dst)], check=True)
        cp_t.append(time.perf_counter() - t0)
        dst.unlink()
        shutil.rmtree(work / "out", ignore_errors=True)
        cold()
        gen_t.append(run_generate(config, work / "out")[0])
    return {"cp_s": min(cp_t), "generate_s": min(gen_t), "generate_over_cp": min(gen_t) / min(cp_t),
            "runs": {"cp_s": [round(t, 3) for t in cp_t], "generate_s": [round(t, 3) for t in gen_t]}}


def used_bytes(mount: Path) -> int:
    """Bytes allocated on the file system at ``mount`` (after writeback)."""
    os.sync()
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def unshared_bytes(path: Path) -> int | None:
    """Bytes of ``path``'s extents not shared with another file (``xfs_io -c "fiemap -v"``, flag
    0x2000 = shared); None without xfs_io."""
    if shutil.which("xfs_io") is None:
        return None
    out = subprocess.run(["xfs_io", "-r", "-c", "fiemap -v", str(path)], capture_output=True,
                         text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()  # EXT: FILE-OFFSET BLOCK-RANGE TOTAL FLAGS (TOTAL in 512 B units)
        if len(parts) == 5 and parts[0][:-1].isdigit() and parts[2] != "hole":
            if not int(parts[4], 16) & 0x2000:
                total += int(parts[3]) * 512
    return total


def time_xfs(data: Path, work: Path, repeat: int) -> dict | str:
    """On an XFS image with reflink: ``cp --reflink=never`` against generate (a clone patched
    where events are), and the disk space of generate's hybrid file; a reason when it cannot run."""
    if os.geteuid() != 0:
        return "unavailable: needs root to mount a loop device"
    if shutil.which("mkfs.xfs") is None:
        return "unavailable: mkfs.xfs not found (apt-get install xfsprogs)"
    src_bytes = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    image, mount = work / "xfs.img", work / "xfs_mnt"
    with open(image, "wb") as fh:  # sparse: room for the dataset, one copy and one hybrid, and slack
        fh.truncate(3 * src_bytes + 512 * 1024 * 1024)
    mount.mkdir(exist_ok=True)
    try:
        subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image)], check=True,
                       capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        image.unlink(missing_ok=True)
        return f"unavailable: {' '.join(exc.cmd[:2])} failed: {exc.stderr.decode().strip()[:200]}"
    try:
        shutil.copytree(data, mount / "data")
        config = mount / "data" / "config.json"
        src = mount / "data" / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
        # disk space first, on the fresh file system: XFS frees a removed file's blocks in the
        # background, so growth measured right after removing an earlier output comes out low
        before = used_bytes(mount)
        run_generate(config, mount / "out")
        hybrid = mount / "out" / "demo_g0_t0.imec0.ap.GT.bin"
        disk = used_bytes(mount) - before
        own = unshared_bytes(hybrid)
        res = side_by_side(src, config, mount, repeat, ("--reflink=never",))
        res["hybrid_disk_bytes"] = disk
        res["hybrid_disk_over_file"] = disk / src.stat().st_size
        if own is not None:
            res["hybrid_unshared_over_file"] = own / src.stat().st_size
        res["note"] = ("generate_over_cp is against cp --reflink=never; hybrid_disk_bytes is the "
                       "file system's growth from one generate run (its hybrid file, tables, plan); "
                       "hybrid_unshared is the hybrid's extents not shared with the source (FIEMAP)")
        return res
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        image.unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", type=float, default=4.0, help="factor for the memory check (0 to skip)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cold", action="store_true",
                    help="also time cp and generate from an empty page cache (needs root)")
    ap.add_argument("--xfs", action="store_true",
                    help="also time cp --reflink=never and generate on an XFS image with reflink "
                         "(needs root and mkfs.xfs)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a hybridkit source tree (e.g. a worktree of main) whose generate is "
                         "timed alternately with this one's")
    ap.add_argument("--skip-si", action="store_true", help="do not time SpikeInterface")
    args = ap.parse_args()
    global BASELINE
    BASELINE = args.baseline

    work = Path(args.workdir or tempfile.mkdtemp(prefix="hk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        config = make_dataset(work / "data", args.duration, args.units, args.rate)
        src = work / "data" / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
        fs = 29999.9712
        subprocess.run(["cp", str(src), str(work / "warm.bin")], check=True)  # warm the page cache
        (work / "warm.bin").unlink()
        short = side_by_side(src, config, work, args.repeat)
        report = {
            "recording": {"duration_s": args.duration, "channels": 385, "bytes": src.stat().st_size},
            "injected": json.loads((work / "out" / "manifest.json").read_text())["injected_events"],
            "load_average_at_start": os.getloadavg(),
            **short,
        }
        if not args.skip_si:
            si_t = run_spikeinterface(src, work / "out", fs, 385)
            report["spikeinterface_s"] = si_t
            report["spikeinterface_over_generate"] = si_t / short["generate_s"]
        if args.xfs:
            report["xfs_reflink"] = time_xfs(work / "data", work, args.repeat)
        if args.cold:
            report["cold_cache"] = (time_cold(src, config, work, args.repeat)
                                or "unavailable: cannot write /proc/sys/vm/drop_caches (needs root "
                                   "and a writable /proc/sys, which containers often lack)")
            report["cold_recording_warm_install"] = time_cold(src, config, work, args.repeat,
                                                              only_recording=True)
        if args.long > 0:
            long_cfg = make_dataset(work / "long", args.duration * args.long, args.units, args.rate)
            long_src = work / "long" / "demo_g0" / "demo_g0_t0.imec0.ap.bin"
            long = side_by_side(long_src, long_cfg, work, args.repeat)
            shutil.rmtree(work / "out", ignore_errors=True)
            report["long"] = {"duration_s": args.duration * args.long,
                              "bytes": long_src.stat().st_size, **long}
            report["rss_long_over_short"] = long["generate_peak_rss_mb"] / short["generate_peak_rss_mb"]
            if args.xfs:  # a clone's fixed costs weigh less against a longer copy
                report["long"]["xfs_reflink"] = time_xfs(work / "long", work, args.repeat)
        print(json.dumps(report, indent=2))
        (HERE / "out").mkdir(exist_ok=True)
        (HERE / "out" / "generate.json").write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
