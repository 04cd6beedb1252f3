"""Which modality plugins read a dataset: ``data=<name>`` → the plugins it belongs to.

A dataset config ``data/<name>.yaml`` lives in one plugin's config folder (its *owner*);
other plugins that declare the owner's sources (``Plugin.sources``: the CNN plugin reads
the vision datasets) can train on it too. Used to say which ``modality=`` a dataset needs
when the user forgot it.
"""

from __future__ import annotations

from pathlib import Path

from attnlab import plugins


def owner(dataset: str) -> str | None:
    """The plugin whose ``conf/data/`` holds ``<dataset>.yaml``, or None."""
    for name, plugin in sorted(plugins.available().items()):
        if (Path(plugin.config_dir) / "data" / f"{dataset}.yaml").is_file():
            return name
    return None


def dataset_modalities(dataset: str) -> list[str]:
    """The modalities that can train on ``data=<dataset>``: its owner first, then the others
    that declare one of the owner's source classes; empty for a dataset no plugin has."""
    first = owner(dataset)
    if first is None:
        return []
    available = plugins.available()
    sources = set(available[first].sources)
    others = sorted(n for n, p in available.items() if n != first and sources & set(p.sources))
    return [first, *others]


def datasets() -> dict[str, str]:
    """Every plugin dataset config name and its owner."""
    found: dict[str, str] = {}
    for name, plugin in sorted(plugins.available().items()):
        for path in sorted((Path(plugin.config_dir) / "data").glob("*.yaml")):
            found.setdefault(path.stem, name)
    return found
