"""The plugin registry: built-ins via the same path as entry points, duplicates, failures, blocking."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hybridkit.errors import PluginError
from hybridkit.registry import BUILTIN_PLUGINS, build_registry

BUILTIN_NAMES = {
    "source_reader": {"spikeglx", "binary"},
    "sorter_adapter": {"phy"},
    "template_source": {"local"},
    "writer": {"legacy", "phy"},
}


def test_builtins_registered_with_kind_and_version():
    reg = build_registry()
    assert not reg.failures, reg.failures
    for kind, names in BUILTIN_NAMES.items():
        assert names <= set(reg.names(kind)), (kind, reg.names(kind))
    for info in reg.all():
        if info.module.startswith("hybridkit.plugins"):
            assert info.distribution == "hybridkit"
            assert info.version and info.version != "unknown"


def _fake_distribution(site: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]):
    """Install a minimal distribution (dist-info + modules) into ``site`` the way pip lays it out."""
    site.mkdir(parents=True, exist_ok=True)
    for name, code in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    eps = "[hybridkit]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(eps)


GOOD = """
from typing import Literal
from hybridkit import hookimpl, PluginOptions, Writer

class Opts(PluginOptions):
    type: Literal["{name}"] = "{name}"

class W(Writer):
    name = "{name}"
    Options = Opts
    def begin(self, recording, out_dir): pass
    def finish(self, truth, out_dir): return []

@hookimpl
def hybridkit_writers():
    return [W]
"""


def _plugins_json(site: Path, env_extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-m", "hybridkit", "plugins", "--json", "--failures"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_third_party_failure_is_reported_and_does_not_break_others(tmp_path):
    site = tmp_path / "site"
    _fake_distribution(site, "hk-broken", {"hk_broken": "raise ImportError('needs libfoo')"},
                       {"broken": "hk_broken"})
    _fake_distribution(site, "hk-good", {"hk_good": GOOD.format(name="mywriter")}, {"good": "hk_good"})
    result = _plugins_json(site)
    names = {(p["name"], p["kind"], p["distribution"], p["version"]) for p in result["plugins"]}
    assert ("mywriter", "writer", "hk-good", "1.2.3") in names
    assert any(n == "spikeglx" and d == "hybridkit" for n, _, d, _ in names)
    [fail] = result["failures"]
    assert fail["distribution"] == "hk-broken" and "libfoo" in fail["error"]


def test_blocking_plugins_by_name(tmp_path):
    site = tmp_path / "site"
    _fake_distribution(site, "hk-good", {"hk_good": GOOD.format(name="mywriter")}, {"good": "hk_good"})
    result = _plugins_json(site, {"HYBRIDKIT_BLOCK_PLUGINS": "mywriter, binary"})
    names = {p["name"] for p in result["plugins"]}
    assert "mywriter" not in names and "binary" not in names and "spikeglx" in names


def test_duplicate_name_within_a_kind_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "dup_legacy.py").write_text(GOOD.format(name="legacy"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="duplicate writer name 'legacy'"):
        build_registry(extra_modules=("dup_legacy",))


def test_same_name_in_different_kinds_is_fine():
    reg = build_registry()
    assert "phy" in reg.names("writer") and "phy" in reg.names("sorter_adapter")


def test_builtins_are_listed_in_one_tuple():
    assert all(m.startswith("hybridkit.plugins.") for m in BUILTIN_PLUGINS)


# -- the registry goes through pluggy: validated hooks, isolated failures ----------------------------
def _module(tmp_path: Path, monkeypatch, name: str, code: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _failure_of(reg, plugin: str) -> str:
    [fail] = [f for f in reg.failures if f["plugin"] == plugin]
    assert fail["distribution"] == "hybridkit"
    return fail["error"]


def test_misspelt_hook_is_a_failure_naming_the_plugin_and_the_valid_hooks(tmp_path, monkeypatch, caplog):
    bad = _module(tmp_path, monkeypatch, "hk_misspelt", GOOD.format(name="typo").replace(
        "def hybridkit_writers():", "def hybridkit_writer():"))
    good = _module(tmp_path, monkeypatch, "hk_fine", GOOD.format(name="fine"))
    reg = build_registry(extra_modules=(bad, good), entry_points_too=False)
    error = _failure_of(reg, "hk_misspelt")
    assert "'hybridkit_writer' is not a hybridkit hook" in error
    for hook in ("hybridkit_source_readers", "hybridkit_sorter_adapters",
                 "hybridkit_template_sources", "hybridkit_writers"):
        assert hook in error
    assert "typo" not in reg.names("writer") and "fine" in reg.names("writer")
    assert any("hk_misspelt" in r.getMessage() and "hybridkit" in r.getMessage() for r in caplog.records)


def test_a_function_without_hookimpl_registers_nothing(tmp_path, monkeypatch):
    plain = _module(tmp_path, monkeypatch, "hk_plain", GOOD.format(name="unmarked").replace("@hookimpl\n", ""))
    reg = build_registry(extra_modules=(plain,), entry_points_too=False)
    assert "unmarked" not in reg.names("writer")
    assert not reg.failures


def test_a_hook_that_raises_is_logged_with_its_distribution(tmp_path, monkeypatch, caplog):
    boom = _module(tmp_path, monkeypatch, "hk_boom", """
        from hybridkit import hookimpl

        @hookimpl
        def hybridkit_writers():
            raise RuntimeError("no licence server")
        """)
    reg = build_registry(extra_modules=(boom,), entry_points_too=False)
    assert "no licence server" in _failure_of(reg, "hk_boom")
    [record] = [r for r in caplog.records if "hk_boom" in r.getMessage()]
    assert record.levelname == "WARNING" and "distribution hybridkit" in record.getMessage()
    assert "legacy" in reg.names("writer")


@pytest.mark.parametrize("returned", ["[42]", "[W, 'not a class']", "W"])
def test_a_bad_return_fails_that_plugin_only(tmp_path, monkeypatch, returned):
    bad = _module(tmp_path, monkeypatch, "hk_bad_return", GOOD.format(name="badret").replace(
        "return [W]", f"return {returned}"))
    good = _module(tmp_path, monkeypatch, "hk_after", GOOD.format(name="after"))
    reg = build_registry(extra_modules=(bad, good), entry_points_too=False)
    assert "hybridkit_writers returned" in _failure_of(reg, "hk_bad_return")
    names = reg.names("writer")
    assert "badret" not in names and "after" in names and "legacy" in names
    assert {"spikeglx", "binary"} <= set(reg.names("source_reader"))


# -- the public API ------------------------------------------------------------------------------------
def test_public_api_names_are_importable_and_export_every_error_class():
    import inspect

    import hybridkit
    from hybridkit import errors

    for name in hybridkit.__all__:
        assert hasattr(hybridkit, name), name
    tree = {name for name, obj in vars(errors).items()
            if inspect.isclass(obj) and issubclass(obj, errors.HybridkitError)}
    assert len(tree) >= 10
    assert tree <= set(hybridkit.__all__), tree - set(hybridkit.__all__)
    for name in tree:
        assert getattr(hybridkit, name) is getattr(errors, name)
    assert len(hybridkit.__all__) == len(set(hybridkit.__all__))


def test_every_error_class_is_documented_for_plugin_authors():
    import inspect

    from hybridkit import errors

    doc = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    for name, obj in vars(errors).items():
        if inspect.isclass(obj) and issubclass(obj, errors.HybridkitError):
            assert f"| `{name}` |" in doc, name


# -- every hook of the contract: documented, and a plugin implementing it is registered --------------
def _spec_hooks() -> list[str]:
    from hybridkit.hookspecs import HybridkitSpec

    return sorted(name for name in vars(HybridkitSpec) if name.startswith("hybridkit_"))


def test_hook_table_matches_the_specification():
    from hybridkit.hookspecs import HOOKS

    assert sorted(HOOKS) == _spec_hooks()


@pytest.mark.parametrize("hook", _spec_hooks())
def test_every_hook_is_documented_for_plugin_authors(hook):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    assert f"`{hook}`" in doc


@pytest.mark.parametrize("hook", _spec_hooks())
def test_every_hook_registers_its_kind(tmp_path, monkeypatch, hook):
    from hybridkit.hookspecs import HOOKS

    kind, base = HOOKS[hook]
    module = _module(tmp_path, monkeypatch, f"hk_each_{kind}", f"""
        from typing import Literal
        from hybridkit import hookimpl, PluginOptions, {base.__name__}

        class Opts(PluginOptions):
            type: Literal["probe_{kind}"] = "probe_{kind}"

        class P({base.__name__}):
            name = "probe_{kind}"
            Options = Opts

        @hookimpl
        def {hook}():
            return [P]
        """)
    reg = build_registry(extra_modules=(module,), entry_points_too=False)
    assert not reg.failures, reg.failures
    info = reg.plugins[kind][f"probe_{kind}"]
    assert info.kind == kind and issubclass(info.cls, base) and info.module == module
    others = [k for k in reg.plugins if k != kind]
    assert all(f"probe_{kind}" not in reg.plugins[k] for k in others)
