"""Never lose data: an output folder that is, holds or lies inside an input is refused before any
work, and ``overwrite`` replaces only a folder hybridkit wrote (issue 13).

Every refusal is checked the same way: exit 2, one line naming the output and the input, no
staging folder left, and the SHA-256 of every input file unchanged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hybridkit.example import write_example
from tests.helpers import main

REC = "demo_g0/demo_g0_t0.imec0.ap.bin"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The example dataset (source, sorting, config in one folder), shared: refusals write nothing."""
    root = tmp_path_factory.mktemp("guard")
    write_example(root / "demo", seed=3, duration_s=4.0)
    return root / "demo"


def checksums(*folders: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def config(demo: Path, name: str, output: dict, **changes) -> Path:
    """A copy of the example's config, in the example's folder (paths relative to it)."""
    cfg = json.loads((demo / "config.json").read_text())
    cfg["output"] = output
    cfg["engine"] = {"progress": False}
    cfg.update(changes)
    path = demo / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def refused(capsys, demo: Path, cfg: Path, *needles: str, command=("generate",),
            also: tuple[Path, ...] = ()) -> str:
    before = checksums(demo, *also)
    code, out, err = main(capsys, *command, cfg)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hybridkit: error: output.directory"), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert checksums(demo, *also) == before
    assert not [p for p in demo.parent.rglob(".*partial-*")]
    return err


@pytest.mark.parametrize("command", [("generate",), ("config", "check")])
def test_output_is_the_folder_of_the_source_recording(demo, capsys, command):
    cfg = config(demo, "same_as_source", {"directory": "demo_g0", "overwrite": True})
    err = refused(capsys, demo, cfg, f"{demo / 'demo_g0'} holds recording", str(demo / REC),
                  command=command)
    assert "lies inside" not in err


def test_output_is_the_sorting_folder(demo, capsys):
    cfg = config(demo, "same_as_sorting", {"directory": "kilosort4", "overwrite": True})
    refused(capsys, demo, cfg, f"{demo / 'kilosort4'} is sorting.path {demo / 'kilosort4'}")


def test_output_is_the_config_folder(demo, capsys):
    """"." holds source, sorting and the config itself: the first input found is named."""
    cfg = config(demo, "dot", {"directory": ".", "overwrite": True})
    refused(capsys, demo, cfg, f"output.directory: {demo} holds recording.path {demo / REC}")


def test_output_is_a_parent_of_the_source(demo, capsys):
    cfg = config(demo, "parent", {"directory": "..", "overwrite": True})
    refused(capsys, demo, cfg, f"{demo.parent} holds recording.path")


def test_output_inside_the_sorting_folder(demo, capsys):
    cfg = config(demo, "inside", {"directory": "kilosort4/hybrid", "overwrite": False})
    refused(capsys, demo, cfg, f"{demo / 'kilosort4' / 'hybrid'} lies inside sorting.path")
    assert not (demo / "kilosort4" / "hybrid").exists()


def test_symlinks_and_dotdot_are_resolved(demo, capsys, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(demo / "demo_g0", target_is_directory=True)
    cfg = config(demo, "symlink", {"directory": str(link), "overwrite": True})
    refused(capsys, demo, cfg, "holds recording")
    assert link.is_symlink() and (demo / REC).is_file()
    cfg = config(demo, "dotdot", {"directory": "kilosort4/../demo_g0", "overwrite": True})
    refused(capsys, demo, cfg, "holds recording")


def test_output_is_the_config_file_itself(demo, capsys):
    cfg = config(demo, "itself", {"directory": "itself.json", "overwrite": True})
    refused(capsys, demo, cfg, f"{demo / 'itself.json'} is the config file")


def test_glob_source_and_meta_files(demo, capsys):
    """Every file a multi-file pattern matches counts, and the .meta beside each .bin."""
    cfg = config(demo, "glob", {"directory": "demo_g0/demo_g0_t0.imec0.ap.meta", "overwrite": True},
                 recording={"type": "spikeglx", "path": "demo_g0/demo_g0_t*.imec0.ap.bin"})
    refused(capsys, demo, cfg, "is recording meta file")


def test_motion_file_and_template_cache(demo, capsys, tmp_path):
    motion = tmp_path / "motion"
    motion.mkdir()
    (motion / "m.csv").write_text("time_s,displacement_um\n0,0\n4,1\n")
    cfg = config(demo, "motion", {"directory": str(motion), "overwrite": True},
                 motion={"source": {"type": "table", "path": str(motion / "m.csv")}})
    refused(capsys, demo, cfg, f"holds motion.source.path {motion / 'm.csv'}", also=(motion,))
    cache = tmp_path / "cache"
    cfg = config(demo, "cache", {"directory": str(cache / "out")},
                 templates={"type": "template_database", "base_url": "http://127.0.0.1:9",
                            "cache_dir": str(cache)},
                 injection={"trains": {"mode": "poisson", "rate_hz": 5}})
    refused(capsys, demo, cfg, f"lies inside templates.cache_dir {cache}", command=("config", "check"))


def test_default_template_cache(demo, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDKIT_TEMPLATE_CACHE", str(tmp_path / "c"))
    cfg = config(demo, "defcache", {"directory": str(tmp_path)},
                 templates={"type": "template_database", "base_url": "http://127.0.0.1:9"},
                 injection={"trains": {"mode": "poisson", "rate_hz": 5}})
    refused(capsys, demo, cfg, f"holds the template cache {tmp_path / 'c'}", command=("config", "check"))


def test_folder_of_unrelated_files(demo, capsys, tmp_path):
    other = tmp_path / "thesis"
    other.mkdir()
    for name in ("chapter1.tex", "chapter2.tex", "figures.zip", "notes.md"):
        (other / name).write_text(name)
    for overwrite in (True, False):
        cfg = config(demo, "unrelated", {"directory": str(other), "overwrite": overwrite})
        err = refused(capsys, demo, cfg, str(other), "chapter1.tex, chapter2.tex, figures.zip, ...",
                      "(4 entries)", also=(other,))
        assert ("not a hybridkit output" in err) == overwrite
    assert sorted(p.name for p in other.iterdir()) == ["chapter1.tex", "chapter2.tex",
                                                       "figures.zip", "notes.md"]


def test_a_manifest_json_of_another_tool_is_not_ours(demo, capsys, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"tool": "kilosort", "files": []}))
    cfg = config(demo, "fake", {"directory": str(other), "overwrite": True})
    refused(capsys, demo, cfg, "holds manifest.json and is not a hybridkit output", also=(other,))


def test_previous_output_is_replaced_only_with_overwrite(demo, capsys, tmp_path):
    out = tmp_path / "out"
    cfg = config(demo, "previous", {"directory": str(out)})
    code, _, err = main(capsys, "generate", cfg)
    assert code == 0, err
    first = checksums(out)
    err = refused(capsys, demo, cfg, "already exists (a hybridkit output)", also=(out,))
    assert checksums(out) == first
    # hybridkit's own output, plus what score/report write into it, is replaced
    (out / "report.html").write_text("<html></html>")
    cfg = config(demo, "previous", {"directory": str(out), "overwrite": True}, seed=7)
    code, _, err = main(capsys, "generate", cfg)
    assert code == 0, err
    assert json.loads((out / "manifest.json").read_text())["seed"] == 7
    assert not (out / "report.html").exists()
    assert not list(tmp_path.glob(".out.*"))  # neither staging nor the renamed old output remain
    # ...but not when it also holds files hybridkit did not write (a sorter run on the hybrid data)
    (out / "ks4_on_hybrid").mkdir()
    (out / "ks4_on_hybrid" / "spike_times.npy").write_bytes(b"precious")
    refused(capsys, demo, cfg, "is a hybridkit output but also holds ks4_on_hybrid", also=(out,))
    assert (out / "ks4_on_hybrid" / "spike_times.npy").read_bytes() == b"precious"


def test_empty_folder_is_used_with_overwrite(demo, capsys, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    cfg = config(demo, "empty", {"directory": str(out)})
    refused(capsys, demo, cfg, "already exists (empty)")
    cfg = config(demo, "empty", {"directory": str(out), "overwrite": True})
    code, _, err = main(capsys, "config", "check", cfg)
    assert code == 0, err


def test_library_generate_is_guarded_too(demo):
    from hybridkit.config.run_config import load_config
    from hybridkit.errors import OutputError
    from hybridkit.run.pipeline import generate

    cfg = load_config(config(demo, "lib", {"directory": "kilosort4", "overwrite": True}))
    before = checksums(demo)
    with pytest.raises(OutputError, match="is sorting.path"):
        generate(cfg)
    assert checksums(demo) == before
