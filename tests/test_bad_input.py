"""Bad input and faults, as a user meets them: one table of cases over the categories recording,
sorting, templates, config, output, faults and security.

Every case starts from the example dataset (SpikeGLX NP1.0 + a Kilosort-style phy folder +
config.json), breaks one thing, runs the command line in-process and asserts what a user must
see: exit status 2, at most 3 lines on stderr, no traceback, the file or field named, nothing new
left beside the inputs (no output folder, no manifest.json, no staging folder), and every input
file unchanged (SHA-256).

To add a case: write a function ``f(case_dir, env) -> argv or None`` that breaks the inputs in
``case_dir`` (through :func:`replace_file`, :func:`edit_config` or :func:`edit_meta`: the case's
files are hard links to one shared copy, so a file is never written in place) and add a
``Case`` to :data:`CASES`. A case that plants a marker file (code that would run) is checked by
"nothing new beside the inputs". ``env`` holds the shared servers and pytest's monkeypatch; the default
argv is ``generate config.json``.
"""
from __future__ import annotations

import errno
import mmap
import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from tests.helpers import main
from tests.plugins.nwb_testutil import Server

SPIKEGLX = "demo_g0/demo_g0_t0.imec0.ap"  # + .bin / .meta
KS = "kilosort4"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """The example dataset (1 s), written once; cases link to it and must never change it."""
    from hybridkit.example import write_example

    root = tmp_path_factory.mktemp("bad-input") / "pristine"
    write_example(root, duration_s=1.0, seed=5)
    cfg = json.loads((root / "config.json").read_text())
    cfg["engine"] = {"progress": False}
    # 1 s of example holds ~10 spikes per unit: let templates build, so later stages are reached
    cfg["templates"] = {"type": "local", "min_spikes": 5}
    (root / "config.json").write_text(json.dumps(cfg, indent=2))
    return root


@pytest.fixture(scope="module")
def pristine_sums(pristine) -> dict[str, str]:
    return _checksums(pristine)


class _NoRangeHandler(SimpleHTTPRequestHandler):
    """http.server's plain file handler: it ignores Range and sends whole files (200)."""

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers(pristine):
    with Server(pristine, handler=_NoRangeHandler) as no_range:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
        sock.close()  # nothing listens there now: connections are refused
        yield {"no_range_url": no_range.url, "closed_port": closed_port}


# -- writing into a case (never in place: the files are hard links to the pristine copy) -----------
def replace_file(path: Path, data: bytes | str | np.ndarray) -> None:
    path.unlink(missing_ok=True)
    if isinstance(data, np.ndarray):
        np.save(path, data)
    elif isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def edit_config(d: Path, fn: Callable[[dict], object]) -> None:
    cfg = json.loads((d / "config.json").read_text())
    fn(cfg)
    replace_file(d / "config.json", json.dumps(cfg, indent=2))


def edit_meta(d: Path, key: str, value: str | None) -> None:
    path = d / f"{SPIKEGLX}.meta"
    lines = path.read_text().splitlines()
    lines = [line for line in lines if line.split("=", 1)[0].lstrip("~") != key]
    if value is not None:
        lines.append(f"{key}={value}")
    replace_file(path, "\n".join(lines) + "\n")


def meta(key, value):
    return lambda d, env: edit_meta(d, key, value)


def config(fn):
    return lambda d, env: edit_config(d, fn)


def config_check(fn):
    """The same config error through `config check` (nothing is read but the config)."""
    def run(d, env):
        edit_config(d, fn)
        return ["config", "check", d / "config.json"]
    return run


def set_in(*keys_value):
    *keys, value = keys_value

    def fn(cfg):
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return fn


def npy(name, array):
    return lambda d, env: replace_file(d / KS / name, array)


# -- cases that need more than one edit ---------------------------------------------------------------
def corrupt_npy_header(d, env):
    path = d / KS / "spike_times.npy"
    raw = bytearray(path.read_bytes())
    raw[20:30] = b"{'((((((("  # numpy's header parser meets an unclosed bracket: TokenError
    replace_file(path, bytes(raw))


def truncated_npy(d, env):
    path = d / KS / "spike_times.npy"
    replace_file(path, path.read_bytes()[:-7])


def huge_npy_shape(d, env):
    # a header promising 10**12 int64 values: must be refused before anything is allocated
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += " " * (118 - len(header)) + "\n"
    replace_file(d / KS / "spike_times.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                 + header.encode() + b"\0" * 64)


def pickled_npy(d, env):
    # an object array is a pickle: loading it could run code; it must be refused unread
    marker = d / "PWNED"
    arr = np.empty(2, dtype=object)
    arr[0] = _Marker(str(marker))
    path = d / KS / "spike_times.npy"
    path.unlink()
    np.save(path, arr, allow_pickle=True)


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def big_cluster_ids(d, env):
    ids = np.load(d / KS / "spike_clusters.npy").astype(np.int64)
    ids[ids == ids.max()] = 2**33
    replace_file(d / KS / "spike_clusters.npy", ids)


def times_past_end(d, env):
    t = np.load(d / KS / "spike_times.npy")
    t[-1] = 10**9
    replace_file(d / KS / "spike_times.npy", t)


def times_decreasing(d, env):
    t = np.load(d / KS / "spike_times.npy")
    t[5], t[6] = t[6] + 1, t[5]
    replace_file(d / KS / "spike_times.npy", t)


def clusters_short(d, env):
    replace_file(d / KS / "spike_clusters.npy", np.load(d / KS / "spike_clusters.npy")[:-3])


def no_clusters(d, env):
    (d / KS / "spike_clusters.npy").unlink()
    (d / KS / "spike_templates.npy").unlink()


def bin_truncated(d, env):
    path = d / f"{SPIKEGLX}.bin"
    size = path.stat().st_size
    path.unlink()
    with open(path, "wb") as fh:
        fh.truncate(size - 1)
    edit_meta(d, "fileSizeBytes", None)


def all_zero_recording(d, env):
    path = d / f"{SPIKEGLX}.bin"
    size = path.stat().st_size
    path.unlink()
    with open(path, "wb") as fh:  # a sparse file of zeros, same size: a blank recording
        fh.truncate(size)
    edit_config(d, set_in("units", "ids", [0, 1]))  # unit 0 has 18 spikes in the seed-5 example


def meta_missing(d, env):
    (d / f"{SPIKEGLX}.meta").unlink()


def nwb_url(url):
    def run(d, env):
        edit_config(d, set_in("recording", {"type": "nwb", "url": url.format(**env)}))
    return run


def jrclust_prm_unreadable(d, env):
    from tests.plugins.sorters.sorter_files import write_jrclust_v4

    write_jrclust_v4(d / "jr", "sess", np.array([10, 40]), np.array([1, 1]), np.array([0, 0]),
                     fs=30000.0, n_chans=385, site_map0=[0, 1], site_loc=[[0, 0], [0, 20]])
    replace_file(d / "jr" / "sess.prm", "% sorted with JRCLUST\nthis file holds no assignment\n")
    edit_config(d, set_in("sorting", {"type": "jrclust", "path": "jr/sess_res.mat"}))


def binary_with_geometry(geometry: bytes):
    """The example's .bin read by the 'binary' reader, with ``geometry`` as its geometry .npy."""
    def run(d, env):
        replace_file(d / "geom.npy", geometry)
        edit_config(d, set_in("recording", {"type": "binary", "path": f"{SPIKEGLX}.bin", "dtype": "int16",
                                            "n_channels": 385, "sampling_rate": 30000.0,
                                            "geometry": "geom.npy"}))
    return run


def motion_file(name: str, content: bytes, source: dict):
    def run(d, env):
        target = d / name
        target.parent.mkdir(exist_ok=True)
        replace_file(target, content)
        edit_config(d, set_in("motion", {"source": source}))
    return run


def damaged_output(name: str, content: bytes, command: str):
    """A finished run whose output file ``name`` is then damaged; ``command`` reads it back."""
    def run(d, env):
        from hybridkit.cli import main as cli_main

        assert cli_main(["generate", str(d / "config.json")]) == 0
        replace_file(d / "hybrid" / name, content)
        return [command, d / "hybrid"] + ([d / KS, "--no-signal", "-o", d / "hybrid" / "scores"]
                                          if command == "score" else ["-o", d / "hybrid" / "report.html"])
    return run


def after_a_run(*argv):
    """A finished run in the case folder, then a command whose output path (``-o``, ``--csv``,
    ``example --force``) is, holds or lies inside an input; each ``argv`` item may be f(d)."""
    def run(d, env):
        from hybridkit.cli import main as cli_main

        assert cli_main(["generate", str(d / "config.json")]) == 0
        return [a(d) if callable(a) else a for a in argv]
    return run


def users_folder_with_a_config(d, env):
    """``example --force`` into a folder that is not an example but holds a config.json of its own."""
    (d / "mine").mkdir()
    replace_file(d / "mine" / "config.json", '{"a user": "config"}')
    return ["example", d / "mine", "--force", "--duration", "1"]


def prb_with_code(d, env):
    # probeinterface's read_prb exec()s the file; hybridkit parses it and runs nothing
    replace_file(d / "g.prb", f"import os\nos.system('touch {d}/PWNED')\n"
                 "channel_groups = {0: {'channels': [0, 1], 'geometry': {0: (0, 0), 1: (0, 20)}}}\n")
    replace_file(d / "r.bin", b"\0" * 8000)
    edit_config(d, set_in("recording", {"type": "binary", "path": "r.bin", "dtype": "int16", "n_channels": 2,
                                        "sampling_rate": 30000.0, "geometry": "g.prb"}))


def crafted_ops(d, env):
    # Kilosort 4 pickles ops.npy; a crafted one must be refused by the numpy-only unpickler
    arr = np.empty((), dtype=object)
    arr[()] = {"dshift": _Marker(str(d / "PWNED"))}
    np.save(d / "ops.npy", arr, allow_pickle=True)
    edit_config(d, set_in("motion", {"source": {"type": "kilosort4", "path": "ops.npy"}}))


def yaml_config(text):
    def run(d, env):
        replace_file(d / "config.yaml", text)
        return ["generate", d / "config.yaml"]
    return run


def output_exists(d, env):
    (d / "hybrid").mkdir()
    replace_file(d / "hybrid" / "mine.txt", "a user's file")


def output_under_a_file(d, env):
    replace_file(d / "afile", "x")
    edit_config(d, set_in("output", "directory", "afile/out"))


def disk_full_tables(d, env):
    import hybridkit.plugins.writers.legacy.tables as tables

    real_open = open

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    env["monkeypatch"].setattr(tables, "open", lambda *a, **k: FullDisk(real_open(*a, **k)),
                               raising=False)


def disk_full_blocks(d, env):
    import hybridkit.plugins.writers.legacy.writer as writer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    env["monkeypatch"].setattr(writer, "write_block", full)
    env["monkeypatch"].setattr(writer, "write_row_runs", full)  # the changed rows of a block

    class NoSpaceForPages(mmap.mmap):  # a full disk refuses to fault a mapped block's pages in
        def madvise(self, *args):
            raise OSError(errno.EFAULT, os.strerror(errno.EFAULT))

    env["monkeypatch"].setattr(mmap, "mmap", NoSpaceForPages)


def disk_full_manifest(d, env):
    import hybridkit.run.provenance as provenance

    def full(staging, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(staging / "manifest.json"))

    env["monkeypatch"].setattr(provenance, "write_manifest", full)


def yaml_code_tag(d, env):
    # PyYAML's unsafe loader would run this; the config loader must refuse it, running nothing
    return yaml_config(f"session: demo\nseed: !!python/object/apply:os.system ['touch {d}/PWNED']\n")(d, env)


def huge_motion(cfg):
    cfg["motion"] = {"synthetic": [{"kind": "zigzag", "amplitude_um": 100000, "period_s": 1}]}


# -- the table ----------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    category: str
    break_inputs: Callable
    #: substrings the one-line message must hold: the file or field, and the bad value
    expect: list[str] = field(default_factory=list)


META = f"{Path(SPIKEGLX).name}.meta"
CASES = [
    # recording
    Case("imSampRate-nan", "recording", meta("imSampRate", "nan"), [META, "imSampRate='nan'", "positive number"]),
    Case("imSampRate-zero", "recording", meta("imSampRate", "0"), [META, "imSampRate='0'"]),
    Case("imSampRate-negative", "recording", meta("imSampRate", "-30000"), [META, "imSampRate='-30000'"]),
    Case("imSampRate-text", "recording", meta("imSampRate", "fast"), [META, "imSampRate='fast' is not a number"]),
    Case("nSavedChans-zero", "recording", meta("nSavedChans", "0"), [META, "nSavedChans='0'", "between 1 and 65536"]),
    Case("nSavedChans-text", "recording", meta("nSavedChans", "all"), [META, "nSavedChans='all' is not an integer"]),
    Case("nSavedChans-missing", "recording", meta("nSavedChans", None), [META, "'nSavedChans' is missing"]),
    Case("meta-missing", "recording", meta_missing, [META, "is missing"]),
    Case("bin-truncated", "recording", bin_truncated, [f"{Path(SPIKEGLX).name}.bin", "not a multiple of nSavedChans"]),
    Case("fileSizeBytes-wrong", "recording", meta("fileSizeBytes", "12"), [f"{Path(SPIKEGLX).name}.bin", "fileSizeBytes=12"]),
    Case("subset-garbage", "recording", meta("snsSaveChanSubset", "0:x"), [META, "snsSaveChanSubset='0:x'"]),
    Case("imAiRangeMax-zero", "recording", meta("imAiRangeMax", "0"), [META, "imAiRangeMax='0'"]),
    Case("nidq-stream", "recording", meta("typeThis", "nidq"), [META, "nidq stream has no probe"]),
    Case("recording-path-missing", "recording", config(set_in("recording", "path", "nope/x.ap.bin")),
         ["recording.path", "x.ap.bin does not exist"]),
    Case("recording-glob-empty", "recording", config(set_in("recording", "path", "demo_g0/*.lf.bin")),
         ["recording.path", "no file matches", "*.lf.bin"]),
    Case("geometry-npy-corrupt", "recording",
         binary_with_geometry(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8',((\n"), ["geom.npy", "header is corrupt"]),
    Case("motion-csv-text", "recording", motion_file("m.csv", b"time_s,displacement_um\n0,up\n", {"type": "table", "path": "m.csv"}),
         ["motion.source.path", "m.csv", "'up'"]),
    Case("motion-npz-not-zip", "recording", motion_file("m.npz", b"PK\x03\x04not a zip", {"type": "table", "path": "m.npz"}),
         ["motion.source.path", "m.npz", "not a readable .npz"]),
    Case("motion-si-json", "recording", motion_file("si/spikeinterface_info.json", b"{'object': 'Motion'}",
                                                    {"type": "spikeinterface", "path": "si"}),
         ["motion.source.path", "spikeinterface_info.json is not valid JSON"]),
    # sorting
    Case("npy-unknown-version", "sorting", lambda d, env: replace_file(d / KS / "spike_times.npy", b"\x93NUMPY\x07\x00" + b" " * 100),
         ["spike_times.npy", "unknown .npy format version 7.0"]),
    Case("units-command-corrupt-npy", "sorting", lambda d, env: (corrupt_npy_header(d, env), ["units", d / KS])[1],
         ["spike_times.npy", "header is corrupt"]),
    Case("npy-corrupt-header", "sorting", corrupt_npy_header, ["spike_times.npy", "header is corrupt", "TokenError"]),
    Case("npy-truncated", "sorting", truncated_npy, ["spike_times.npy", "truncated"]),
    Case("times-not-integers", "sorting", npy("spike_times.npy", np.linspace(0.5, 9.5, 10)),
         ["spike_times.npy", "non-integer"]),
    Case("times-decreasing", "sorting", times_decreasing, ["spike_times.npy", "non-decreasing"]),
    Case("times-past-end", "sorting", times_past_end, ["spike_times.npy", "sample 1000000000", "past the end"]),
    Case("clusters-length", "sorting", clusters_short, ["spike_clusters.npy", "entries but spike_times.npy"]),
    Case("clusters-missing", "sorting", no_clusters, ["kilosort4", "neither spike_clusters.npy nor spike_templates.npy"]),
    Case("cluster-ids-beyond-int32", "sorting", big_cluster_ids, ["spike_clusters.npy", "cluster id 8589934592", "2147483647"]),
    Case("params-syntax", "sorting", lambda d, env: replace_file(d / KS / "params.py", "sample_rate = (30000\n"),
         ["params.py", "not a valid params.py"]),
    Case("params-rate-text", "sorting", lambda d, env: replace_file(d / KS / "params.py", "sample_rate = 'fast'\n"),
         ["params.py", "sample_rate = 'fast'", "positive number"]),
    Case("params-rate-mismatch", "sorting", lambda d, env: replace_file(d / KS / "params.py", "sample_rate = 20000.0\n"),
         ["params.py sample_rate", "20000 Hz"]),
    Case("cluster-tsv-header", "sorting", lambda d, env: replace_file(d / KS / "cluster_group.tsv", "id\tgroup\n1\tgood\n"),
         ["cluster_group.tsv", "no 'cluster_id' column"]),
    Case("channel-map-out-of-range", "sorting", npy("channel_map.npy", np.arange(384, dtype=np.int32) + 10),
         ["channel_map.npy", "sorter channel 375 maps to file column 385", "columns 0..384"]),
    Case("unit-ids-absent", "sorting", config(set_in("units", "ids", [1, 999])), ["999"]),
    Case("jrclust-prm-unreadable", "sorting", jrclust_prm_unreadable, ["sess.prm", "no parameter could be read"]),
    # templates
    Case("all-zero-recording", "templates", all_zero_recording, ["unit 0:", "zero on every channel"]),
    Case("too-few-spikes", "templates", config(set_in("templates", "min_spikes", 500)),
         ["spikes with a full window", "min_spikes is 500"]),
    Case("window-too-short", "templates", config(set_in("templates", "ms_before", 0.001)),
         ["ms_before=0.001", "at least 1 sample"]),
    Case("template-type-unknown", "templates", config(set_in("templates", {"type": "average"})),
         ["templates.type", "'average'", "local"]),
    # config
    Case("config-not-utf8", "config", lambda d, env: replace_file(d / "config.json", b'{"session": "d\xe9mo"}'),
         ["config.json", "not UTF-8", "0xe9"]),
    Case("config-json-syntax", "config", lambda d, env: replace_file(d / "config.json", '{"session": "demo",\n}'),
         ["config.json", "line 2 column 1: not valid JSON"]),
    Case("config-yaml-syntax", "config", yaml_config("session: demo\nrecording:\n  type: spikeglx\n  path: [a\n"),
         ["config.yaml:5:1: not valid YAML"]),
    Case("config-yaml-date", "config", yaml_config("session: 2024-03-05\n"), ["config.yaml", "quote dates"]),
    Case("type-is-a-list", "config", config_check(set_in("recording", "type", ["spikeglx"])),
         ['recording.type = ["spikeglx"]', "spikeglx"]),
    Case("unknown-key", "config", config(set_in("injection", "amplitud", {})), ["'injection.amplitud'", "amplitude"]),
    Case("seed-negative", "config", config(set_in("seed", -1)), ["seed = -1"]),
    Case("amplitude-reversed", "config", config(set_in("injection", "amplitude", {"min": 2, "max": 1})),
         ["injection.amplitude", "larger than max"]),
    Case("motion-amplitude-memory", "config", config_check(huge_motion),
         ["motion.synthetic[0].amplitude_um = 100000", "engine.max_memory_mb = 512"]),
    # `synthetic` is also a source reader's name: a key of that name is still named in the path
    Case("motion-entry-negative", "config", config_check(set_in("motion", {"synthetic": [
        {"kind": "zigzag", "amplitude_um": -5, "period_s": 1}]})),
         ["motion.synthetic[0].amplitude_um = -5", "greater than 0"]),
    Case("motion-entry-unknown-key", "config", config_check(set_in("motion", {"synthetic": [
        {"kind": "zigzag", "amplitude_um": 5, "period_s": 1, "bogus": 1}]})),
         ["'motion.synthetic[0].bogus'", "valid keys in motion.synthetic[0]: amplitude_um"]),
    Case("plugin-option-unknown-key", "config", config_check(set_in("writers", [{"type": "legacy", "bogus": 1}])),
         ["'writers[0].bogus'", "valid keys in writers[0]: type"]),
    Case("config-missing", "config", lambda d, env: ["generate", d / "nope.json"], ["nope.json", "not found"]),
    # output
    Case("output-exists", "output", output_exists, ["output.directory", "hybrid already exists"]),
    Case("output-under-a-file", "output", output_under_a_file, ["output.directory", "afile is a file"]),
    Case("phy-folder-outside", "output", config(set_in("writers", [{"type": "legacy"}, {"type": "phy", "folder": "../up"}])),
         ["writers[1].folder", "../up"]),
    Case("report-damaged-manifest", "output", damaged_output("manifest.json", b"[1, 2]", "report"),
         ["manifest.json", "holds a JSON list"]),
    Case("score-damaged-units-table", "output", damaged_output("hybrid_units-demo.csv", b"\xff\xfe\x00n", "score"),
         ["hybrid_units-demo.csv", "not a readable UTF-8 CSV"]),
    Case("score-damaged-templates", "output", damaged_output("templates-demo.npz", b"not a zip", "score"),
         ["templates-demo.npz", "never does"]),
    Case("output-is-the-recording-folder", "output",
         config(set_in("output", {"directory": "demo_g0", "overwrite": True})),
         ["output.directory", "demo_g0 holds recording.path"]),
    Case("output-is-the-sorting", "output", config_check(set_in("output", {"directory": KS, "overwrite": True})),
         ["output.directory", "kilosort4 is sorting.path"]),
    # output paths of the commands that write beside a run: the same guard as output.directory
    Case("score-out-is-the-output", "output",
         after_a_run("score", lambda d: d / "hybrid", lambda d: d / KS, "--no-signal", "-o", lambda d: d / "hybrid"),
         ["score --out", "hybrid holds the output's manifest.json"]),
    Case("score-out-is-the-sorting", "output",
         after_a_run("score", lambda d: d / "hybrid", lambda d: d / KS, "--no-signal", "-o", lambda d: d / KS),
         ["score --out", "kilosort4 is the sorting"]),
    Case("score-out-holds-the-source", "output",
         after_a_run("score", lambda d: d / "hybrid", lambda d: d / KS, "--no-signal", "-o", lambda d: d / "demo_g0"),
         ["score --out", "demo_g0 holds the output's source recording"]),
    Case("report-out-is-the-source", "output",
         after_a_run("report", lambda d: d / "hybrid", "-o", lambda d: d / f"{SPIKEGLX}.bin"),
         ["report --out", "ap.bin is the output's source recording"]),
    Case("report-out-is-an-output-file", "output",
         after_a_run("report", lambda d: d / "hybrid", "-o", lambda d: d / "hybrid" / "firings_true.npy"),
         ["report --out", "firings_true.npy is the output's file"]),
    Case("units-csv-is-the-meta", "output",
         lambda d, env: ["units", d / KS, "--recording", d / f"{SPIKEGLX}.bin", "--csv", d / f"{SPIKEGLX}.meta"],
         ["units --csv", "ap.meta is --recording"]),
    Case("units-csv-inside-the-sorting", "output",
         lambda d, env: ["units", d / KS, "--csv", d / KS / "spike_times.npy"],
         ["units --csv", "spike_times.npy lies inside SORTING"]),
    Case("units-csv-is-the-config", "output",
         lambda d, env: ["units", d / KS, "--recording", d / "config.json", "--csv", d / "config.json"],
         ["units --csv", "config.json is the config file"]),
    Case("example-force-over-a-runs-source", "output",
         after_a_run("example", lambda d: d, "--force", "--duration", "1"),
         ["example --force", "ap.bin is the output's source recording"]),
    Case("example-force-into-a-users-folder", "output", users_folder_with_a_config,
         ["example --force", "holds config.json but is not a hybridkit example"]),
    # faults
    Case("disk-full-tables", "faults", disk_full_tables, ["artificial_units-demo.csv", "no space left on the device"]),
    Case("disk-full-blocks", "faults", disk_full_blocks, [".GT.bin", "no space left on the device"]),
    Case("disk-full-manifest", "faults", disk_full_manifest, ["manifest.json", "no space left on the device"]),
    Case("nwb-url-refused", "faults", nwb_url("http://127.0.0.1:{closed_port}/rec.nwb"),
         ["recording.url", "cannot be reached", "connection refused"]),
    Case("nwb-url-no-range", "faults", nwb_url("{no_range_url}/" + SPIKEGLX + ".meta"),
         ["recording.url", "does not support HTTP Range requests"]),
    # security
    Case("session-parent", "security", config_check(set_in("session", "../x")), ['session = "../x"', "file-name part"]),
    Case("session-slash", "security", config_check(set_in("session", "a/b")), ['session = "a/b"', "file-name part"]),
    Case("session-300-chars", "security", config_check(set_in("session", "s" * 300)), ["session = ", "at most 100 characters"]),
    Case("session-newline", "security", config(set_in("session", "a\nb")), ["session = ", "file-name part"]),
    Case("npy-pickle", "security", pickled_npy, ["spike_times.npy", "not a .npy file hybridkit can read safely",
                                                 "io.open"]),
    Case("npy-huge-shape", "security", huge_npy_shape, ["spike_times.npy", "(1000000000000,)"]),
    Case("meta-subset-memory-bomb", "security", meta("snsSaveChanSubset", "0:99999999999"),
         [META, "lists more than nSavedChans=385"]),
    Case("yaml-python-tag", "security", yaml_code_tag, ["config.yaml", "not valid YAML"]),
    Case("prb-with-code", "security", prb_with_code, ["recording.geometry", "g.prb line 1", "without running them"]),
    Case("ops-npy-crafted-pickle", "security", crafted_ops, ["motion.source.path", "ops.npy", "io.open"]),
    Case("yaml-alias-bomb", "security", yaml_config("a: &a [1, 2]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(10))),
        ["config.yaml", "expands to more than 1000000 values"]),
    Case("yaml-deep-nesting", "security", yaml_config("a: " + "[" * 5000 + "]" * 5000 + "\n"),
         ["config.yaml", "nested too deeply"]),
]


def _checksums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _link_copy(src: Path, dst: Path) -> None:
    """The pristine dataset as hard links (40+ cases x 25 MB of copies avoided); a plain copy
    where the file system has no hard links."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
    shutil.copytree(src, dst, copy_function=link)


def test_the_table_covers_every_category():
    categories = {"recording", "sorting", "templates", "config", "output", "faults", "security"}
    assert {c.category for c in CASES} == categories
    assert len({c.id for c in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}-{c.id}" for c in CASES])
def test_bad_input_is_one_line_and_exit_2(case, pristine, pristine_sums, servers, tmp_path, capsys,
                                         monkeypatch):
    d = tmp_path / "case"
    _link_copy(pristine, d)
    argv = case.break_inputs(d, {**servers, "monkeypatch": monkeypatch}) or ["generate", d / "config.json"]
    inputs = _checksums(d)

    code, out, err = main(capsys, *argv)

    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert 1 <= len(lines) <= 3, err
    assert "Traceback" not in err and "internal error" not in err, err
    message = lines[-1]
    assert message.startswith("hybridkit: error: "), err
    for want in case.expect:
        assert want in message, f"{want!r} not in {message!r}"
    # nothing new beside the inputs (no output, manifest or staging folder), inputs unchanged
    after = _checksums(d)
    assert sorted(after) == sorted(inputs), f"left behind: {sorted(set(after) - set(inputs))}"
    changed = [name for name in inputs if after[name] != inputs[name]]
    assert not changed, f"inputs changed: {changed}"
    new_manifests = [m for m in d.rglob("manifest.json") if m.relative_to(d).as_posix() not in inputs]
    assert not new_manifests and not list(d.glob(".*partial*"))


def test_the_shared_copy_is_untouched(pristine, pristine_sums):
    """After every case: the files all cases link to are as the example wrote them."""
    assert _checksums(pristine) == pristine_sums
