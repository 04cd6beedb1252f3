"""Checks a run makes once Hydra has composed it, before anything is read or written.

Hydra calls :class:`Preflight` (``hydra.callbacks.preflight`` in ``conf/hydra/default.yaml``)
with the composed config, before it creates the run folder. It checks

- every value against what it configures and the run's top-level settings against
  :class:`~attnlab.build.RunSettings` (:mod:`attnlab.validate`);
- that a dataset chosen without ``modality=`` belongs to the default modality, naming the
  modality it does belong to otherwise;
- that the run folder (``hydra.run.dir``; a sweep's ``hydra.sweep.dir``) can be created
  and written, without creating it.

A failed check ends the command in one line, exit 2, and nothing is written. In a sweep
each job has its own values, so :func:`checked` checks a job's config as the job starts:
a job that fails there is recorded as failed before it reads any data, and the sweep
goes on.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from attnlab import jobs, validate
from attnlab.errors import AttnlabError, ConfigError, fail

T = TypeVar("T")


class Preflight(Callback):
    """A Hydra callback: the checks above, before Hydra writes anything.

    Hydra turns a callback's exceptions into warnings, so a failed check ends the
    command here: one line for the user's error, the traceback for a bug.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _or_exit(lambda: check_run(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _or_exit(lambda: check_folder(config, "hydra.sweep.dir"))


def _or_exit(check: Callable[[], None]) -> None:
    try:
        check()
    except AttnlabError as exc:
        fail(str(exc))
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None


def check_run(config: DictConfig) -> None:
    """All checks of a single run, on its composed config (the ``hydra`` node included).

    The values checked are the job's: the groups named on the command line as their files
    say, whatever a preset wrote (:func:`attnlab.compose.honour_choices`), as the job gets them.
    """
    from attnlab import compose

    job = OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"])
    overrides = jobs.as_strings(config.hydra.overrides.task)
    compose.check_typed_defaults_read(job, overrides)
    job, _ = compose.honour_choices(
        job, config.hydra.job.config_name, [*jobs.as_strings(config.hydra.overrides.hydra), *overrides]
    )
    check_job(job, config.hydra.runtime.choices, overrides)
    check_folder(config, "hydra.run.dir")


def check_job(cfg: DictConfig, choices: Mapping[str, Any], overrides: Sequence[str]) -> None:
    """The checks of one job's config: its values, and its dataset's modality.

    Args:
        cfg: the job's config (a ``hydra`` node in it is left out).
        choices: the option chosen in each config group (``hydra.runtime.choices``).
        overrides: the job's command-line overrides (``hydra.overrides.task``).
    """
    from attnlab.build import COMPONENTS, RunSettings

    validate.check_settings(cfg, RunSettings, components=COMPONENTS)
    validate.check_config(cfg, skip=("hydra",))
    check_dataset_modality(choices, overrides)


def checked(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """``task``, checking its job's config first when the job is one of a sweep's
    (a single run was checked by :class:`Preflight` already)."""
    from hydra.core.hydra_config import HydraConfig

    def run(cfg: DictConfig) -> T:
        if jobs.is_multirun():
            hydra = HydraConfig.get()
            check_job(cfg, hydra.runtime.choices, jobs.as_strings(hydra.overrides.task))
        return task(cfg)

    return run


def check_dataset_modality(choices: Mapping[str, Any], overrides: Sequence[str]) -> None:
    """``data=<name>`` typed without ``modality=`` must name a dataset of the default modality.

    A modality may read another plugin's datasets (``modality=cnn`` reads the image
    datasets), so only a dataset chosen with the modality left to its default is checked.
    """
    data, modality = choices.get("data"), choices.get("modality")
    typed = _typed_keys(overrides)
    if data is None or modality is None or "data" not in typed or "modality" in typed or choices.get("experiment"):
        return
    from attnlab.data.catalog import dataset_modalities  # its owner first, then modalities reading its sources

    homes = dataset_modalities(str(data))
    if homes and modality not in homes:
        raise ConfigError(
            f"data={data} is a dataset of modality {' or '.join(homes)}, not of the default modality={modality}; "
            f"pass modality={homes[0]} data={data}"
        )


def _typed_keys(overrides: Sequence[str]) -> set[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))}


def check_folder(config: DictConfig, key: str) -> None:
    """The folder at ``key`` (e.g. ``hydra.run.dir``) can be created and written (see
    :func:`attnlab.validate.check_writable`); nothing is created."""
    parent, _, name = key.rpartition(".")
    try:
        folder = validate.read(OmegaConf.select(config, parent), name, key)
    except validate.Later:
        return  # resolves only once the job starts: Hydra reports it then
    validate.check_writable(key, Path(str(folder)))
