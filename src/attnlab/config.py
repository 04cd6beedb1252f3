"""Where configs come from, and the values that flow from data into the model.

- ``CONFIG_DIR``: attnlab's own ``conf/``; each working plugin's config folder is added
  to Hydra's search path by :class:`AttnlabSearchPath`.
- ``${from_data:key}``: a config value taken from the datamodule at build time (number
  of classes, input channels, ...), so nobody types it twice.
- :func:`check_choices`: unknown ``modality=``/``data=`` names fail at once, in one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.types import RunMode
from omegaconf import OmegaConf

from attnlab import plugins
from attnlab.errors import ConfigError


def _find_config_dir() -> Path:
    """attnlab's ``conf/``, wherever this installation keeps it.

    A wheel (or ``pip install .``) has it inside the package: pyproject maps the checkout's
    top-level ``conf/`` to ``attnlab/conf``. An editable install reads the checkout's own.
    """
    package = Path(__file__).resolve().parent
    installed = package / "conf"
    return installed if installed.is_dir() else package.parents[1] / "conf"


CONFIG_DIR = _find_config_dir()


class AttnlabSearchPath(SearchPathPlugin):
    """Adds every working plugin's config folder to Hydra's search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for name, plugin in sorted(plugins.available().items()):
            search_path.append(provider=f"attnlab-plugin-{name}", path=f"file://{Path(plugin.config_dir).resolve()}")


def register_search_path() -> None:
    """Make Hydra use :class:`AttnlabSearchPath` and attnlab's Optuna sweeper (idempotent).

    Hydra also finds them by scanning ``hydra_plugins``; registering explicitly keeps
    editable installs, whose import hooks that scan cannot see, working too.
    """
    from hydra_plugins.attnlab_optuna import register as register_sweeper

    Plugins.instance().register(AttnlabSearchPath)
    register_sweeper()


def config_dir() -> Path:
    """attnlab's ``conf/``, or a one-line error when the installation lacks it."""
    if not (CONFIG_DIR / "train.yaml").is_file():
        raise ConfigError(
            f"attnlab's config folder {CONFIG_DIR} is missing: the installation is incomplete; "
            "reinstall attnlab (pip install <wheel> or pip install <checkout>)"
        )
    return CONFIG_DIR


def group_options(group: str) -> list[str]:
    """Names of the configs in ``group`` across attnlab's and every plugin's folders."""
    names: set[str] = set()
    for root in [CONFIG_DIR, *plugins.config_dirs()]:
        names.update(p.stem for p in (root / group).glob("*.yaml"))
    return sorted(names)


def _chosen(overrides: Sequence[str], group: str) -> Iterator[str]:
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return  # Hydra reports malformed overrides itself
    for o in parsed:
        if o.key_or_group != group or o.package or o.is_delete() or o.is_add():
            continue
        if o.is_sweep_override():
            if o.is_choice_sweep():
                yield from o.sweep_string_iterator()
        elif o.value() is not None:
            yield o.get_value_element_as_str()


def check_choices(overrides: Sequence[str]) -> None:
    """Fail in one line on a ``modality=`` or ``data=`` that names nothing installed."""
    for name in _chosen(overrides, "modality"):
        plugins.get(name)
    chosen = list(_chosen(overrides, "data"))
    known = group_options("data") if chosen else []  # reading every plugin's folders imports the plugins
    for name in chosen:
        if name not in known:
            raise ConfigError(f"unknown dataset data={name}; known datasets: {', '.join(known)}")


# --- values derived from data -------------------------------------------------------

_DATA_INFO: dict[str, Any] | None = None


def _from_data(key: str) -> Any:
    if _DATA_INFO is None:
        raise ConfigError(f"${{from_data:{key}}} was read before the datamodule was set up")
    if key not in _DATA_INFO:
        raise ConfigError(f"${{from_data:{key}}}: the datamodule provides {', '.join(sorted(_DATA_INFO))}, not {key!r}")
    return _DATA_INFO[key]


def data_value(key: str) -> Any:
    """``${from_data:<key>}`` as code reads it, inside a :func:`data_info` scope."""
    return _from_data(key)


def sweep_group() -> str | None:
    """``${sweep_group:}``: a multirun's folder relative to ``outputs/multirun`` (None in a single run)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    sweep = Path(HydraConfig.get().sweep.dir)
    parts = sweep.parts
    return "/".join(parts[parts.index("multirun") + 1 :]) if "multirun" in parts[:-1] else sweep.name


def sweep_dir() -> str | None:
    """``${sweep_dir:}``: a multirun's folder (None in a single run)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return str(HydraConfig.get().sweep.dir)


def job_label() -> str | None:
    """``${job_label:}``: the job's overrides as one string, e.g. ``backbone=small,seed=2``."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().job.override_dirname or None


def mixed_precision() -> str:
    """``${mixed_precision:}``: ``bf16-mixed`` where the GPU supports it, else full precision."""
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def register_resolvers() -> None:
    """Registers ``from_data``, ``sweep_group``, ``sweep_dir``, ``job_label``, ``mixed_precision`` and
    ``objective`` (:func:`attnlab.objective.resolver`) (idempotent)."""
    from attnlab.objective import resolver as objective

    resolvers = {
        "from_data": _from_data,
        "sweep_group": sweep_group,
        "sweep_dir": sweep_dir,
        "job_label": job_label,
        "mixed_precision": mixed_precision,
        "objective": objective,
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


@contextmanager
def data_info(info: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, ``${from_data:key}`` resolves to ``info[key]``."""
    global _DATA_INFO
    previous, _DATA_INFO = _DATA_INFO, dict(info)
    try:
        yield
    finally:
        _DATA_INFO = previous
