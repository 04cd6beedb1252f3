"""hydra-optuna-sweeper with failure-tolerant trials (``hydra/sweeper=attnlab_optuna``).

hydra-optuna-sweeper re-raises when a job fails or returns NaN, so one diverging trial
ends the whole study (1.3.0 still does: a NaN return makes it tell Optuna ``FAIL`` *with*
the NaN value, which Optuna refuses, and a study whose trials all failed ends in a
traceback asking for its best trial). Here such a trial is ``FAIL`` with its error as a
user attribute, and the study goes on; see :mod:`hydra_plugins.attnlab_optuna._impl`.

Hydra's plugin scan imports this module on every command, so it stays light: Optuna and
the sweep loop load in :class:`AttnlabOptunaSweeper`'s constructor, when a sweep starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class AttnlabOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's sweeper, running the failure-tolerant ask → launch → tell loop."""

    def __init__(self, **kwargs: Any) -> None:  # the arguments of hydra-optuna-sweeper
        from hydra_plugins.attnlab_optuna._impl import TolerantImpl

        self.sweeper = TolerantImpl(**kwargs)


@dataclass
class AttnlabOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.attnlab_optuna.sweeper.AttnlabOptunaSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="attnlab_optuna", node=AttnlabOptunaSweeperConf, provider="attnlab"
)


def register() -> None:
    """Makes the sweeper class known to Hydra (idempotent).

    Hydra finds plugins by scanning ``hydra_plugins``, which cannot see editable installs,
    so attnlab's command line registers this one explicitly.
    """
    Plugins.instance().register(AttnlabOptunaSweeper)
