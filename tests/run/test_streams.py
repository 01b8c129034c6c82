"""One random stream per consumer, derived from the run seed by the consumer's name."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridkit.hookspecs import RunContext, named_stream
from hybridkit.run.pipeline import RNG_STREAMS


def _draws(rng: np.random.Generator) -> list[int]:
    return rng.integers(0, 2**31, size=4).tolist()


def test_a_stream_depends_on_the_seed_and_its_name_only():
    assert _draws(named_stream(7, "trains")) == _draws(named_stream(7, "trains"))
    assert _draws(named_stream(7, "trains")) != _draws(named_stream(8, "trains"))
    names = [*RNG_STREAMS, "selection:unit:1", "selection:unit:2", "template_source:local"]
    firsts = {tuple(_draws(named_stream(7, n))) for n in names}
    assert len(firsts) == len(names)  # no two consumers share numbers


def test_each_plugin_gets_its_own_stream_of_the_run_seed():
    ctx = RunContext.for_plugin(Path("."), 7, "s", "template_source", "local")
    other = RunContext.for_plugin(Path("."), 7, "s", "writer", "nwb")
    assert ctx.seed == 7 and ctx.session == "s"
    assert _draws(ctx.rng) == _draws(named_stream(7, "template_source:local"))
    assert _draws(other.rng) == _draws(named_stream(7, "writer:nwb"))
    assert _draws(ctx.stream("extra")) == _draws(named_stream(7, "extra"))


def test_generate_hands_each_plugin_its_own_stream(tmp_path, monkeypatch):
    from hybridkit import generate, load_config
    from hybridkit.example import write_example
    from tests.helpers import config_with

    write_example(tmp_path / "demo", seed=3, duration_s=4.0)

    seen = []
    real = RunContext.for_plugin.__func__

    def spy(cls, base_dir, seed, session, kind, name, **kw):
        seen.append((kind, name, seed))
        return real(cls, base_dir, seed, session, kind, name, **kw)

    monkeypatch.setattr(RunContext, "for_plugin", classmethod(spy))
    cfg = load_config(config_with(tmp_path / "demo", tmp_path, output={"directory": str(tmp_path / "out")}))
    generate(cfg)
    kinds = {(k, n) for k, n, _ in seen}
    assert {("source_reader", "spikeglx"), ("sorter_adapter", "phy"), ("template_source", "local"),
            ("writer", "legacy")} <= kinds
    assert {s for _, _, s in seen} == {cfg.seed}
