"""What the user chose wins: a group named on the command line is used as its file says.

Modalities pick defaults for other groups only through their defaults list, so Hydra
already lets ``backbone=small`` replace a modality's ``backbone: none``. Experiments are
presets that may also set keys of other groups (``trainer.max_epochs: 15``), and Hydra
applies those over any group, even one the user named: ``experiment=cnn_vs_vit_vit
backbone=small`` would train small.yaml at the preset's depth 4. :func:`honour_choices`
undoes exactly that: for each group named on the command line it takes the group's keys
from the same composition without the preset (every other choice pinned), so the group
arrives as its file says, with the user's own ``key=value`` overrides and later presets
(``debug=``) applied as usual; and it says in one line what of the preset was not applied.

``attention_defaults`` (``conf/train.yaml``) holds what the modality suggests to attention
backbones; :func:`check_typed_defaults_read` refuses a value typed there that no config of
the run reads (e.g. ``attention_defaults.window=8`` with ``backbone=lstm``), so nothing the
user typed is silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from attnlab import jobs
from attnlab.errors import ConfigError

log = logging.getLogger(__name__)

PRESET = "experiment"
"""The config group of presets that the user asks for by name."""

DEFAULTS_NODE = "attention_defaults"
"""Top-level node of modality suggestions that attention backbones read by interpolation."""


@dataclass(frozen=True)
class NotApplied:
    """What of a preset gave way to groups the user named.

    Attributes:
        preset: the preset, e.g. ``experiment=cnn_vs_vit_vit``.
        chosen: the user's group choices that won, e.g. ``("backbone=small",)``.
        dropped: the preset's settings not applied, e.g. ``("backbone.depth=4",)``; option
            selections read ``backbone=tiny``, keys ``backbone.depth=4``.
    """

    preset: str
    chosen: tuple[str, ...]
    dropped: tuple[str, ...]

    def message(self) -> str:
        return (
            f"{self.preset}: you chose {', '.join(self.chosen)}, so the preset's "
            f"{', '.join(self.dropped)} {'was' if len(self.dropped) == 1 else 'were'} not applied"
        )


def _parse(overrides: Sequence[str]) -> list[Any]:
    return OverridesParser.create().parse_overrides(list(overrides))


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    return str(value)


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` of every leaf; lists and empty mappings are leaves."""
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _objects(node: Any, prefix: str) -> Iterator[str]:
    """Paths a config file writes, an object (a ``_target_`` mapping) counting as one."""
    if isinstance(node, Mapping) and node and "_target_" not in node:
        for key, value in node.items():
            yield from _objects(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def _is_hydra(group: str) -> bool:
    """Whether a config group configures Hydra itself (``hydra/launcher``, ``hydra/sweeper``)."""
    return group.split("/")[0] == "hydra"


def _under(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + ".")


def _raw(loader: Any, config_path: str) -> dict[str, Any]:
    """The content of one config file (its own keys and defaults list, nothing merged)."""
    for source in loader.get_sources():
        if source.is_config(config_path):
            loaded = source.load_config(config_path).config
            return OmegaConf.to_container(loaded, resolve=False) if loaded is not None else {}  # type: ignore[return-value]
    return {}


def _selections(raw: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    """``(group, option)`` of each ``override /group: option`` in a raw defaults list."""
    for entry in raw.get("defaults") or []:
        if isinstance(entry, Mapping):
            for key, value in entry.items():
                if str(key).startswith("override "):
                    yield str(key).split(None, 1)[1].lstrip("/"), value


def _set(cfg: DictConfig, path: str, value: Any) -> None:
    OmegaConf.update(cfg, path, value, merge=False, force_add=True)


def _delete(cfg: DictConfig, path: str, keep: DictConfig) -> None:
    """Removes ``path`` and then each parent it leaves empty that ``keep`` does not have."""
    while path:
        parent_path, _, key = path.rpartition(".")
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        if isinstance(parent, DictConfig) and key in parent:
            del parent[key]
        if not parent_path or len(parent) or OmegaConf.select(keep, parent_path) is not None:
            return
        path = parent_path


def honour_choices(cfg: DictConfig, config_name: str, overrides: Sequence[str]) -> tuple[DictConfig, NotApplied | None]:
    """``cfg`` with each group named in ``overrides`` as its file says, whatever the preset wrote.

    Args:
        cfg: the composed config (without ``hydra``), as the job received it.
        config_name: the primary config, e.g. ``train``.
        overrides: the job's command-line overrides (a sweep's job: its own values).

    Returns:
        The config (``cfg`` itself, edited) and what of the preset was not applied (None:
        nothing, or no preset chosen).
    """
    parsed = _parse(overrides)
    if not any(o.key_or_group == PRESET and not o.is_delete() for o in parsed):
        return cfg, None  # presets are asked for by name, on the command line
    loader = GlobalHydra.instance().config_loader()
    listed = loader.compute_defaults_list(config_name, list(overrides), RunMode.RUN)
    choices: dict[str, str | None] = dict(listed.overrides.known_choices)
    preset = choices.get(PRESET)
    named = {
        o.key_or_group: str(choices[o.key_or_group])
        for o in parsed
        if o.key_or_group in choices
        and o.key_or_group != PRESET
        and not _is_hydra(o.key_or_group)
        and not o.is_delete()
    }
    if preset is None or not named:
        return cfg, None

    without = _without_preset(loader, config_name, parsed, listed, named, f"{PRESET}={preset}")
    package_of: dict[str, str] = {}
    for d in listed.defaults:
        group = (d.config_path or "").rpartition("/")[0]
        if group and not _is_hydra(group):
            package_of.setdefault(group, d.package or "")
    selects = {
        group: option
        for d in listed.defaults
        if (d.config_path or "").startswith(f"{PRESET}/")
        for group, option in _selections(_raw(loader, d.config_path))
    }
    dropped: list[str] = []
    chosen: list[str] = []
    for group, choice in named.items():
        package = package_of.get(group, group)
        if package:
            owned = [package]
            nested = [p for g, p in package_of.items() if g != group and p and p != package and _under(p, package)]
        else:  # a _global_ group (a modality): the paths its own file writes
            raw = {k: v for k, v in _raw(loader, f"{group}/{choice}").items() if k != "defaults"}
            owned, nested = list(_objects(raw, "")), []
        owned = [path for path in owned if not _under(path, "hydra")]  # Hydra's own settings (launcher=...)
        lost = _restore(cfg, without, owned, nested)
        if group in selects and selects[group] != choice:
            lost.insert(0, f"{group}={_format(selects[group])}")
        if lost:
            chosen.append(f"{group}={choice}")
            dropped.extend(lost)
    return cfg, NotApplied(f"{PRESET}={preset}", tuple(chosen), tuple(dropped)) if dropped else None


def _without_preset(
    loader: Any, config_name: str, parsed: Sequence[Any], listed: Any, named: Mapping[str, str], preset: str
) -> DictConfig:
    """The same composition without the preset: the user's overrides, every other choice pinned.

    A group the preset left at null stays null without it (no override chooses a null
    group), and groups the preset itself brings in are left out.
    """
    parent = {d.config_path: d.parent for d in listed.defaults}

    def in_preset(path: str | None) -> bool:
        while path is not None and path != "<root>":
            if path.startswith(f"{PRESET}/"):
                return True
            path = parent.get(path)
        return False

    pins = [
        f"{group}={choice}"
        for group, choice in listed.overrides.known_choices.items()
        if choice is not None
        and group not in (PRESET, *named)
        and not _is_hydra(group)
        and f"{group}/{choice}" in parent
        and not in_preset(f"{group}/{choice}")
    ]
    kept = [o.input_line for o in parsed if o.key_or_group != PRESET]
    try:
        return loader.load_configuration(config_name, [*kept, f"~{PRESET}", *pins], run_mode=RunMode.RUN)
    except (HydraException, OmegaConfBaseException) as exc:  # e.g. a typed key that only the preset adds
        groups = ", ".join(f"{g}={c}" for g, c in named.items())
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{preset}: you chose {groups}, which replace(s) the preset's settings of those groups, "
            f"and without them your overrides do not compose: {reason}"
        ) from exc


def _restore(cfg: DictConfig, without: DictConfig, owned: Sequence[str], nested: Sequence[str]) -> list[str]:
    """Sets every leaf under ``owned`` (but not under ``nested``) to its value in ``without``.

    Returns:
        ``path=value`` of each leaf whose value in ``cfg`` (the preset's) was replaced.
    """
    lost: list[str] = []
    for prefix in owned:
        ours = dict(_leaves(_container(cfg, prefix), prefix))
        theirs = dict(_leaves(_container(without, prefix), prefix))
        for path in sorted(set(ours) | set(theirs)):
            if any(_under(path, n) for n in nested) or ours.get(path, _ABSENT) == theirs.get(path, _ABSENT):
                continue
            if path in ours:
                lost.append(f"{path}={_format(ours[path])}")
            with open_dict(cfg):
                if path in theirs:
                    _set(cfg, path, theirs[path])
                else:
                    _delete(cfg, path, without)
    return lost


_ABSENT = object()


def _container(cfg: DictConfig, path: str) -> Any:
    node = OmegaConf.select(cfg, path, default=_ABSENT, throw_on_missing=False) if path else cfg
    if node is _ABSENT:
        return {}
    return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node


def check_typed_defaults_read(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Fail in one line on a typed ``attention_defaults.<key>`` that nothing in ``cfg`` reads.

    A modality's suggestion is a default: a recurrent backbone simply does not read it.
    A value the user typed there, though, is a request, and a silently ignored one would be
    a different experiment.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)
    readers = [v for path, v in _leaves(raw, "") if isinstance(v, str) and not _under(path, DEFAULTS_NODE)]
    for o in _parse(overrides):
        key = o.key_or_group
        if not key.startswith(f"{DEFAULTS_NODE}.") or o.is_delete():
            continue
        if not any(f"{key}}}" in v or f"{key}." in v for v in readers):
            backbone = OmegaConf.select(cfg, "backbone._target_", default=None)
            raise ConfigError(
                f"{o.input_line} is read by nothing in this run: the backbone ({backbone}) takes no "
                f"{DEFAULTS_NODE}; set the backbone's own key (backbone.*) or choose one that reads it (backbone=tiny)"
            )


def honour_job_choices(cfg: DictConfig) -> DictConfig:
    """:func:`honour_choices` for the running Hydra job, logging what was not applied."""
    hydra_cfg = HydraConfig.get()
    overrides = jobs.as_strings(hydra_cfg.overrides.task)
    check_typed_defaults_read(cfg, overrides)
    cfg, not_applied = honour_choices(
        cfg, hydra_cfg.job.config_name, [*jobs.as_strings(hydra_cfg.overrides.hydra), *overrides]
    )
    if not_applied is not None:
        log.warning(not_applied.message())
    return cfg
