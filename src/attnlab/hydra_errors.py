"""Hydra's own errors about composing a run, as attnlab's one line.

Hydra prints its composition errors over several lines, with the config search path, and
exits 1. Within :func:`reported` Hydra raises them instead (the documented
``HYDRA_FULL_ERROR`` switch, set for the block only), and those about composing the run
come out as one :class:`~attnlab.errors.ConfigError` that names the override and lists
what would work:

- an unknown option of a group (``backbone=nope``): the group's options;
- an unknown key (``backbone.nope=1``): the settings of the node it would go into, or the
  keys of a plain node, read from the config composed without that override;
- a malformed override (``backbone.dim==``), ``+key`` for a key that exists, ``~key`` for
  one that does not, a comma list outside ``-m``.

Any other exception (a bug in a job, an error of Hydra's that is not about composing)
passes through unchanged, with its traceback.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
    SearchPathException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnlab import config
from attnlab.errors import ConfigError

COMPOSITION_ERRORS = (ConfigCompositionException, OverrideParseException, SearchPathException)

_FULL_ERROR = "HYDRA_FULL_ERROR"


@contextmanager
def reported(config_name: str, argv: Sequence[str]) -> Iterator[None]:
    """Within the block, Hydra's composition errors raise a one-line ``ConfigError``.

    Args:
        config_name: the app's primary config (``train`` or ``eval``).
        argv: the command line's arguments, as Hydra reads them.
    """
    previous = os.environ.get(_FULL_ERROR)
    os.environ[_FULL_ERROR] = "1"
    try:
        yield
    except COMPOSITION_ERRORS as exc:
        raise ConfigError(explain(exc, config_name, argv)) from exc
    finally:
        if previous is None:
            os.environ.pop(_FULL_ERROR, None)
        else:
            os.environ[_FULL_ERROR] = previous


def explain(exc: BaseException, config_name: str, argv: Sequence[str]) -> str:
    """One line for a Hydra composition error: what was asked and what would work."""
    text = str(exc)
    if isinstance(exc, MissingConfigException):
        return _missing_option(exc, text)
    if isinstance(exc, OverrideParseException):
        return _unreadable(text)
    found = re.match(r"Could not override '([^']+)'\.", text)
    if found and "Did you mean" not in text:
        return _unknown_key(found.group(1), config_name, argv)
    found = re.match(r"Could not append to config\. An item is already at '([^']+)'", text)
    if found:
        key = found.group(1)
        typed = _typed(key, argv, prefix="+")
        return f"{typed}: {key} is already in the config; write {typed.lstrip('+')} to change it"
    found = re.match(r"Could not delete from config\. '([^']+)' does not exist", text)
    if found:
        return f"~{found.group(1)}: there is no key {found.group(1)!r} to delete"
    found = re.match(r"Ambiguous value for argument '([^']+)'", text)
    if found:
        key, _, value = found.group(1).partition("=")
        return (
            f"{found.group(1)} lists several values: add -m (--multirun) to run one job per value, "
            f"or write {key}=[{value}] for a list or {key}='{value}' for a string"
        )
    return _generic(exc)


def _missing_option(exc: MissingConfigException, text: str) -> str:
    missing = exc.missing_cfg_file or ""
    group, _, name = missing.rpartition("/")
    source = re.match(r"In '([^']+)':", text)
    if not group:
        return _generic(exc)
    options = list(exc.options or []) or (config.group_options(group) if not group.startswith("hydra") else [])
    listing = f"; choose one of {', '.join(options)}" if options else ""
    where = f" (asked for by {source.group(1)})" if source and "/" in source.group(1) else ""
    return f"{group}={name}: there is no such {group}{where}{listing}"


def _unreadable(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = re.match(r"Error parsing override '(.*)'$", lines[0]) if lines else None
    if not found:
        return _generic_text(text)
    detail = next((line for line in lines[1:] if not line.startswith("See ")), "")
    detail = re.sub(r"\s*expecting\s.*$", "", detail)
    return (
        f"cannot read the override {found.group(1)!r}" + (f" ({detail})" if detail else "") + "; write key=value, "
        "key=[a,b] for a list, key='text' for a string with special characters "
        "(https://hydra.cc/docs/1.2/advanced/override_grammar/basic)"
    )


def _unknown_key(key: str, config_name: str, argv: Sequence[str]) -> str:
    typed = _typed(key, argv)
    cfg = _compose_without(key, config_name, argv)
    if cfg is None:
        return f"{typed}: the config has no key {key!r}; to add a new key write +{typed}"
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices) if "hydra" in cfg else {}
    parts = key.split(".")
    node: Any = cfg
    depth = 0
    while depth < len(parts) - 1 and parts[depth] in node and isinstance(node[parts[depth]], DictConfig):
        followed = _followed(node, parts[depth])
        if followed is not None:  # e.g. data.train_transform: ${augment.example}
            _, _, value = typed.partition("=")
            where = ".".join(parts[: depth + 1])
            instead = ".".join([followed, *parts[depth + 1 :]])
            return f"{typed}: {where} follows ${{{followed}}}; set {instead}={value} instead"
        node, depth = node[parts[depth]], depth + 1
    missing = parts[depth]
    owner = ".".join(parts[:depth])
    chosen = f"{parts[0]}={choices[parts[0]]}" if isinstance(choices, dict) and choices.get(parts[0]) else None
    label = f"{owner} ({chosen})" if chosen and chosen.split("=")[0] != owner else owner
    if missing in node and depth < len(parts) - 1:  # a value where the override expects a group of settings
        inner = ".".join(parts[: depth + 1])
        value = OmegaConf.to_container(node)[missing] if not OmegaConf.is_missing(node, missing) else "???"
        return f"{typed}: {inner} is {_show(value)} in {label or 'the config'}, not a group of settings"
    if owner and "_target_" in node:
        return _no_setting(typed, owner, chosen, node, missing)
    keys = [str(k) for k in node if k != "hydra"]
    name = label or "the config"
    listing = f"; its keys: {', '.join(keys)}" if keys else ""
    return f"{typed}: {name} has no key {missing!r}{_close(missing, keys)}{listing} (to add a new key write +{typed})"


def _followed(node: DictConfig, key: str) -> str | None:
    """The node ``node[key]`` is an interpolation of (``augment.example`` for ``${augment.example}``), if it is one."""
    if not OmegaConf.is_interpolation(node, key):
        return None
    found = re.fullmatch(r"\$\{([\w.]+)\}", str(node._get_node(key)._value()))
    return found.group(1) if found else None


def _no_setting(typed: str, owner: str, chosen: str | None, node: DictConfig, missing: str) -> str:
    from attnlab import validate

    target = str(node._target_)
    label = f"{owner} ({target})" if chosen is None or chosen.split("=")[0] != owner else f"{chosen} ({target})"
    try:
        params, _ = validate.signature(validate.locate(target))
        settings = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (ConfigError, ImportError):
        settings = [str(k) for k in node if not str(k).startswith("_")]
    if missing in settings and typed.split("=")[0].endswith(f"{owner}.{missing}"):
        return f"{typed}: {label} takes {missing} but this config does not set it; write +{typed} to set it"
    if missing in settings:
        return f"{typed}: {label} has no {missing} settings in this config"
    return (
        f"{typed}: {label} has no setting {missing!r}{_close(missing, settings)}; its settings: {', '.join(settings)}"
    )


def _close(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _compose_without(key: str, config_name: str, argv: Sequence[str]) -> DictConfig | None:
    """The config composed from the command line minus the override of ``key`` (and any sweep),
    or None when that cannot be composed either."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides, name = _overrides(argv, config_name)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        kept = [o.input_line for o in parsed if o.key_or_group != key and not o.is_sweep_override()]
        if GlobalHydra.instance().is_initialized():
            return None
        with initialize_config_dir(config_dir=str(config.config_dir()), version_base="1.3"):
            return compose(config_name=name, overrides=kept, return_hydra_config=True)
    except Exception:  # a second problem: the message goes without the listing
        return None


def _overrides(argv: Sequence[str], config_name: str) -> tuple[list[str], str]:
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:
        return [a for a in argv if not a.startswith("-")], config_name
    return list(args.overrides or []), args.config_name or config_name


def _typed(key: str, argv: Sequence[str], prefix: str = "") -> str:
    """The override the user typed for ``key`` (e.g. ``backbone.nope=1``), or the key alone."""
    for arg in argv:
        if arg.lstrip("+~").split("=", 1)[0] == key and arg.startswith(prefix):
            return arg
    return prefix + key


def _show(value: Any) -> str:
    from attnlab.describe import show

    return show(value)


def _generic(exc: BaseException) -> str:
    text = _generic_text(str(exc))
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException):
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        if first and first not in text:
            text = f"{text}: {first}"
    return text


def _generic_text(text: str) -> str:
    kept: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("Config search path", "Set the environment variable")):
            break
        if line and not line.startswith("See https://"):
            kept.append(line.rstrip("."))
    return "; ".join(kept) or "Hydra could not compose the config"
