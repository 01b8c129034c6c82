"""The plugin registry: built-ins first, then the ``hybridkit`` entry points, into name tables.

Built-in plugins go through exactly the path third-party plugins take: each is a module with hook
implementations, loaded by :func:`_load_module_plugin` from :data:`BUILTIN_PLUGINS` the way an entry
point is loaded from its distribution. A plugin that fails to import is recorded (with its
distribution's name) and skipped, so one broken package never breaks the others.

Users can block plugins by name with ``HYBRIDKIT_BLOCK_PLUGINS="name1,name2"``: a blocked name is
either a plugin module/entry-point name or a plugin class name (``type`` value) of any kind.
"""
from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points, version as dist_version

import pluggy

from hybridkit.errors import PluginError
from hybridkit.hookspecs import HOOKS, PROJECT, HybridkitSpec, Plugin

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hybridkit"
BLOCK_ENV = "HYBRIDKIT_BLOCK_PLUGINS"

#: the built-in plugin modules, registered like entry points of the ``hybridkit`` distribution
BUILTIN_PLUGINS: tuple[str, ...] = (
    "hybridkit.plugins.sources.spikeglx",
    "hybridkit.plugins.sources.binary",
    "hybridkit.plugins.sources.synthetic",
    "hybridkit.plugins.sorters.phy",
    "hybridkit.plugins.sorters.kilosort",
    "hybridkit.plugins.sorters.jrclust",
    "hybridkit.plugins.sorters.yass",
    "hybridkit.plugins.templates.local",
    "hybridkit.plugins.templates.database.source",
    "hybridkit.plugins.templates.synthetic",
    "hybridkit.plugins.writers.legacy.writer",
    "hybridkit.plugins.writers.phy",
    "hybridkit.plugins.sources.nwb.reader",
    "hybridkit.plugins.writers.nwb.writer",
    "hybridkit.plugins.sources.spikeinterface",
    "hybridkit.plugins.sorters.spikeinterface",
)

KINDS = tuple(kind for kind, _ in HOOKS.values())


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin class and where it came from."""

    name: str
    kind: str
    cls: type[Plugin]
    distribution: str
    version: str
    module: str

    def as_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "distribution": self.distribution,
            "version": self.version, "module": self.module,
        }


@dataclass
class Registry:
    """Plugin tables by kind, and the failures met while loading."""

    plugins: dict[str, dict[str, PluginInfo]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    failures: list[dict] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)

    def table(self, kind: str) -> dict[str, type[Plugin]]:
        """name -> plugin class for one kind."""
        return {name: info.cls for name, info in self.plugins[kind].items()}

    def names(self, kind: str) -> list[str]:
        return sorted(self.plugins[kind])

    def get(self, kind: str, name: str) -> type[Plugin]:
        try:
            return self.plugins[kind][name].cls
        except KeyError:
            label = kind.replace("_", " ")
            raise PluginError(
                f"no {label} named {name!r}; installed: {', '.join(self.names(kind)) or '(none)'}"
            ) from None

    def all(self) -> list[PluginInfo]:
        return [info for kind in KINDS for _, info in sorted(self.plugins[kind].items())]


def _blocked_names() -> set[str]:
    raw = os.environ.get(BLOCK_ENV, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _load_module_plugin(pm: pluggy.PluginManager, module_name: str, registered_as: str):
    module = importlib.import_module(module_name)
    pm.register(module, name=registered_as)
    return module


def _register_classes(
    reg: Registry, pm: pluggy.PluginManager, plugin_obj, registered_as: str, dist: str, ver: str
) -> None:
    """Ask one registered plugin object for its classes and file them under their kind."""
    for hook_name, (kind, base) in HOOKS.items():
        impl = getattr(plugin_obj, hook_name, None)
        if impl is None:
            continue
        try:
            classes = impl() or []
        except Exception as exc:  # a plugin's own bug must not break the others
            reg.failures.append({"plugin": registered_as, "distribution": dist, "error": repr(exc)})
            continue
        for cls in classes:
            name = getattr(cls, "name", None)
            if not (isinstance(cls, type) and issubclass(cls, base)) or not isinstance(name, str):
                raise PluginError(
                    f"plugin {registered_as!r} from {dist}: {hook_name} returned {cls!r}, "
                    f"which is not a {base.__name__} subclass with a str name"
                )
            if name in reg.blocked:
                log.info("plugin %s %r blocked by %s", kind, name, BLOCK_ENV)
                continue
            existing = reg.plugins[kind].get(name)
            if existing is not None:
                raise PluginError(
                    f"duplicate {kind.replace('_', ' ')} name {name!r}: from {dist} "
                    f"({cls.__module__}) and from {existing.distribution} ({existing.module})"
                )
            reg.plugins[kind][name] = PluginInfo(name, kind, cls, dist, ver, cls.__module__)


def build_registry(extra_modules: tuple[str, ...] = (), entry_points_too: bool = True) -> Registry:
    """Load built-ins, then ``extra_modules`` (for tests), then entry points, into a Registry.

    ``entry_points_too=False`` gives the built-ins alone (e.g. for the generated reference docs).
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(HybridkitSpec)
    reg = Registry(blocked=_blocked_names())

    try:
        own_version = dist_version("hybridkit")
    except Exception:  # source tree, not installed
        own_version = "0.0.0+unknown"

    sources: list[tuple[str, str, str, object]] = []  # (registered_as, dist, version, loader)
    for mod in BUILTIN_PLUGINS + tuple(extra_modules):
        sources.append((mod, "hybridkit", own_version, mod))
    for ep in entry_points(group=ENTRY_POINT_GROUP) if entry_points_too else ():
        dist = ep.dist.name if ep.dist is not None else "unknown"
        ver = ep.dist.version if ep.dist is not None else "unknown"
        sources.append((ep.name, dist, ver, ep))

    for registered_as, dist, ver, loader in sources:
        if registered_as in reg.blocked:
            log.info("plugin module %r blocked by %s", registered_as, BLOCK_ENV)
            continue
        try:
            if isinstance(loader, str):
                obj = _load_module_plugin(pm, loader, registered_as)
            else:
                obj = loader.load()
                pm.register(obj, name=f"{dist}:{registered_as}")
        except Exception as exc:
            log.warning("plugin %r from distribution %s failed to load: %s", registered_as, dist, exc)
            reg.failures.append({"plugin": registered_as, "distribution": dist, "error": repr(exc)})
            continue
        _register_classes(reg, pm, obj, registered_as, dist, ver)
    return reg


@lru_cache(maxsize=1)
def _cached() -> Registry:
    return build_registry()


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built once; ``refresh`` rebuilds it, e.g. after installs)."""
    if refresh:
        _cached.cache_clear()
    return _cached()
