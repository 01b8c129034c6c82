"""The run config: plugin unions, unknown keys, one-line errors, schema, path resolution."""
from __future__ import annotations

import json

import jsonschema
import pytest

from hybridkit.config.run_config import json_schema, load_config, validate_config
from hybridkit.errors import ConfigError
from tests.conftest import write_config


def test_valid_config_fills_defaults_and_resolves_paths(tmp_path, minimal_config):
    cfg = load_config(write_config(tmp_path / "c.json", minimal_config))
    assert cfg.recording.type == "binary"
    assert cfg.recording.path == tmp_path / "rec.bin"  # relative to the config's folder
    assert cfg.templates.type == "local"  # default plugin
    assert [w.type for w in cfg.writers] == ["legacy"]
    assert cfg.injection.trains.refractory_ms == 1.5
    assert cfg.engine.max_memory_mb == 512
    assert cfg.base_dir == tmp_path


def test_yaml_config(tmp_path, minimal_config):
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(minimal_config))
    assert load_config(p).units.ids == [1, 2]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["recording"].update(type="spikeglks"),
         "recording.type: no source reader named 'spikeglks'; installed: binary, nwb, spikeglx"),
        (lambda c: c.update(sessoin="x"), "unknown key 'sessoin'; valid keys: "),
        (lambda c: c["recording"].update(n_chanels=4), "unknown key 'recording.n_chanels'; valid keys in recording: "),
        (lambda c: c.setdefault("injection", {}).setdefault("trains", {}).update(jitter="1"),
         "unknown key 'injection.trains.jitter'; valid keys in injection.trains: jitter_ms, mode, rate_hz, refractory_ms"),
        (lambda c: c["recording"].update(n_channels="four"), "recording.n_channels = \"four\": "),
        (lambda c: c.pop("units"), "missing required field units (template source 'local'"),
        (lambda c: c.pop("sorting"), "missing required field sorting (template source 'local'"),
        (lambda c: c["recording"].pop("sampling_rate"), "missing required field recording.sampling_rate"),
        (lambda c: c.update(writers=[{"type": "phy"}]), "writer 'phy' needs writer 'legacy'"),
        (lambda c: c.update(writers=[{"type": "nwbx"}]), "writers[0].type: no writer named 'nwbx'; installed: legacy, nwb, phy"),
        (lambda c: c.update(injection={"trains": {"mode": "poisson"}}), "needs rate_hz"),
        (lambda c: c.update(injection={"amplitude": {"min": 2, "max": 1}}), "min (2.0) is larger than max (1.0)"),
        (lambda c: c["units"].update(ids=[]), "units.ids = []"),
        (lambda c: c.update(units={}), "units = {}: give ids or at least one criterion: label, "),
        (lambda c: c.update(units={"label": "good", "max_contamination": 2}), "units.max_contamination = 2: "),
        (lambda c: c.update(units={"min_snr": 3, "censored_ms": 2}), "censored_ms (2.0) must be below refractory_ms (1.5)"),
    ],
)
def test_bad_configs_give_one_line(tmp_path, minimal_config, mutate, expected):
    mutate(minimal_config)
    path = write_config(tmp_path / "bad.json", minimal_config)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert expected in msg


def test_invalid_json_names_line(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"seed": 1,\n "units": }')
    with pytest.raises(ConfigError, match=r"line 2 column \d+: not valid JSON"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.json")


def test_schema_validates_config_and_rejects_typos(tmp_path, minimal_config):
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(minimal_config, schema)
    bad = json.loads(json.dumps(minimal_config))
    bad["recording"]["dtyp"] = "int16"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_sorting_type_detected_from_folder(tmp_path, minimal_config):
    ks = tmp_path / "ks"
    ks.mkdir()
    import numpy as np

    np.save(ks / "spike_times.npy", np.arange(3))
    np.save(ks / "spike_clusters.npy", np.zeros(3, np.int32))
    (ks / "params.py").write_text("sample_rate = 30000.0\ndtype = 'int16'\n")
    del minimal_config["sorting"]["type"]
    cfg = validate_config(minimal_config, tmp_path, "c.json")
    assert cfg.sorting.type == "phy"


def test_sorting_type_undetectable(tmp_path, minimal_config):
    del minimal_config["sorting"]["type"]
    (tmp_path / "ks").mkdir()  # there, but in no sorter's format (a missing path says so instead)
    with pytest.raises(ConfigError, match="no sorter adapter recognises"):
        validate_config(minimal_config, tmp_path, "c.json")


def test_poisson_rate_beyond_refractory_limit_is_a_config_error(tmp_path, minimal_config):
    minimal_config["injection"] = {"trains": {"mode": "poisson", "rate_hz": 700, "refractory_ms": 1.5}}
    with pytest.raises(ConfigError, match=r"injection.trains.*must be below 666.667 Hz"):
        load_config(write_config(tmp_path / "c.json", minimal_config))


def _plugin_models(cfg_model) -> set[str]:
    """Names of the models a RunConfig model's validator was built from."""
    return set(cfg_model.model_json_schema()["$defs"])


def test_a_config_is_validated_by_the_models_of_what_it_holds(tmp_path, minimal_config):
    """Only the plugins a config names (and the default local/legacy it leaves implicit) are
    built into the model that validates it, and motion/augment only when present: the other
    plugins' Options cost nothing at load_config; the schema still holds every plugin."""
    from hybridkit.registry import get_registry

    reg = get_registry()
    options = {(kind, name): info.cls.Options.__name__
               for kind in ("source_reader", "sorter_adapter", "template_source", "writer")
               for name, info in reg.plugins[kind].items()}
    named = {options[k] for k in [("source_reader", "binary"), ("sorter_adapter", "phy"),
                                  ("template_source", "local"), ("writer", "legacy")]}
    built = _plugin_models(type(validate_config(minimal_config, tmp_path)))
    assert built & set(options.values()) == named
    assert "MotionConfig" not in built and "AugmentConfig" not in built

    with_more = {**minimal_config, "writers": [{"type": "legacy"}, {"type": "phy"}],
                 "motion": {"synthetic": [{"kind": "zigzag", "amplitude_um": 10, "period_s": 5}]}}
    built = _plugin_models(type(validate_config(with_more, tmp_path)))
    assert built & set(options.values()) == named | {options[("writer", "phy")]}
    assert "MotionConfig" in built and "AugmentConfig" not in built

    full = set(json_schema()["$defs"])
    assert built < full and {"MotionConfig", "AugmentConfig"} <= full
