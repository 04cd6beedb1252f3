"""attnlab's Optuna sweeper: hydra-optuna-sweeper, with failed trials that do not end the study."""

from hydra_plugins.attnlab_optuna.sweeper import AttnlabOptunaSweeper, AttnlabOptunaSweeperConf, register

__all__ = ["AttnlabOptunaSweeper", "AttnlabOptunaSweeperConf", "register"]
