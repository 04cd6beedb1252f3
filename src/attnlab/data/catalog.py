"""Which modality plugins read a dataset: ``data=<name>`` → the plugins it belongs to.

A dataset config ``data/<name>.yaml`` lives in one plugin's config folder (its *owner*);
other plugins that declare the owner's sources (``Plugin.sources``: the CNN plugin reads
the vision datasets) can train on it too. Used to say which ``modality=`` a dataset needs
when the user forgot it.
"""

from __future__ import annotations

from pathlib import Path

from attnlab import plugins
from attnlab.errors import ConfigError


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


def _declaring(attribute: str, cls: type) -> list[str]:
    """The plugins whose ``attribute`` (``frontends`` or ``sources``) lists ``cls``."""
    return sorted(n for n, p in plugins.available().items() if cls in getattr(p, attribute))


def check_pairing(frontend: type, source: type) -> None:
    """The front-end's modality reads the dataset's source, or a one-line error naming the one that does.

    A run composed without ``modality=`` uses the default modality's front-end: with another
    modality's dataset (``attnlab data=listops``) this says which ``modality=`` to add.
    Classes no plugin declares are not judged.

    Raises:
        ConfigError: no plugin declares both.
    """
    readers = _declaring("frontends", frontend)
    owners = _declaring("sources", source)
    if not readers or not owners or set(readers) & set(owners):
        return
    package = source.__module__.split(".")[0]
    available = plugins.available()
    home = [n for n in owners if any(f.__module__.split(".")[0] == package for f in available[n].frontends)]
    raise ConfigError(
        f"the dataset's source {source.__name__} is read by modality {', '.join(owners)}, but this run's "
        f"front-end {frontend.__name__} is modality {readers[0]}'s; add modality={(home or owners)[0]}"
    )
