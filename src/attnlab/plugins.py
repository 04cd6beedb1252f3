"""The plugin contract and plugin discovery.

A modality plugin is a package exposing one :class:`Plugin` object, registered under the
entry-point group ``attnlab.plugins``. attnlab's own pyproject registers the built-in
plugins the same way. A plugin that fails to load is recorded as broken with its reason;
it never takes the others down.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from attnlab.errors import ConfigError

GROUP = "attnlab.plugins"

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
"""A plugin name: lowercase, a Python identifier (its package is ``attnlab_<name>``)."""


@dataclass(frozen=True)
class Plugin:
    """What a modality plugin declares about itself.

    Attributes:
        name: the ``modality=`` name; ``<config_dir>/modality/<name>.yaml`` must exist.
        description: one line for ``attnlab-plugins``.
        config_dir: the plugin's Hydra config folder, added to the search path.
        frontends: the front-end classes it provides (produce ``Tokens``).
        sources: the dataset source classes its front-ends read (``attnlab.data.Source``;
            its own and any it reuses from another plugin), used by ``data.source``.
    """

    name: str
    description: str
    config_dir: Path
    frontends: tuple[type, ...] = field(default=())
    sources: tuple[type, ...] = field(default=())


@dataclass(frozen=True)
class PluginRecord:
    """One discovered entry point: the plugin, or why it could not be used."""

    name: str
    source: str
    plugin: Plugin | None = None
    error: str | None = None
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.plugin is not None


def _source(ep: EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return f"{where} ({ep.value})"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def problems(plugin: Plugin) -> list[str]:
    """What is wrong with a plugin's declaration, found without running it."""
    found = []
    if not NAME_PATTERN.fullmatch(plugin.name):
        found.append(f"name {plugin.name!r} is not lowercase letters, digits and '_' starting with a letter")
    modality = Path(plugin.config_dir) / "modality" / f"{plugin.name}.yaml"
    if not modality.is_file():
        found.append(f"missing config {modality}")
    for kind, classes in (("frontends", plugin.frontends), ("sources", plugin.sources)):
        if not isinstance(classes, tuple) or not all(isinstance(c, type) for c in classes):
            found.append(f"{kind} must be a tuple of classes, got {classes!r}")
    return found


def _load(ep: EntryPoint) -> PluginRecord:
    source = _source(ep)
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # a broken plugin must not break discovery
        return PluginRecord(ep.name, source, error=_one_line(f"import failed: {type(exc).__name__}: {exc}"))
    if not isinstance(obj, Plugin):
        return PluginRecord(ep.name, source, error=f"{ep.value} is a {type(obj).__name__}, not an attnlab Plugin")
    if obj.name != ep.name:
        return PluginRecord(ep.name, source, error=f"entry point is named {ep.name!r} but the plugin says {obj.name!r}")
    found = problems(obj)
    if found:
        return PluginRecord(ep.name, source, error=_one_line("; ".join(found)))
    return PluginRecord(ep.name, source, plugin=obj)


def registered() -> dict[str, str]:
    """Names registered under ``attnlab.plugins`` and their sources, without importing any plugin."""
    return {ep.name: _source(ep) for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value))}


@functools.cache
def discover() -> dict[str, PluginRecord]:
    """All plugins registered under ``attnlab.plugins``, by name, broken ones included.

    A name registered by two entry points is marked broken for both: silently picking one
    would make runs depend on install order.
    """
    records: dict[str, PluginRecord] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value, _source(e))):
        record = _load(ep)
        if ep.name in records:
            first = records[ep.name]
            error = f"registered twice: by {first.source} and by {record.source}"
            records[ep.name] = PluginRecord(ep.name, f"{first.source}; {record.source}", error=error, duplicate=True)
            continue
        records[ep.name] = record
    return records


def available() -> dict[str, Plugin]:
    """The plugins that loaded, by name."""
    return {name: r.plugin for name, r in discover().items() if r.plugin is not None}


def get(name: str) -> Plugin:
    """The plugin called ``name``, or a one-line error listing the known ones.

    An unknown name is refused from the entry points alone, without importing any plugin.
    """
    names = registered()
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"unknown modality {name!r}; known modalities: {known} (see `attnlab-plugins`)")
    record = discover()[name]
    if record.plugin is not None:
        return record.plugin
    origin = "" if record.duplicate else f" (from {record.source})"
    raise ConfigError(f"modality plugin {name!r} is broken: {record.error}{origin}")


def config_dirs() -> list[Path]:
    """Config folders of all working plugins, in name order."""
    return [Path(p.config_dir) for _, p in sorted(available().items())]
