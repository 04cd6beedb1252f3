"""One metric, one direction: heads declare their metrics, everything that ranks reads the objective."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

from attnlab import config
from attnlab.callbacks import TrackObjective
from attnlab.errors import ConfigError
from attnlab.objective import Objective, known_metrics, resolve
from attnlab.tasks import AUTO

HEADS = sorted(
    {yaml.safe_load(p.read_text())["_target_"] for p in (config.CONFIG_DIR / "head").glob("*.yaml")} - {AUTO}
)  # head=auto becomes one of them when the data is set up


@pytest.mark.parametrize("target", HEADS)
def test_a_head_builds_exactly_the_metrics_it_declares_and_their_objects_give_the_direction(target):
    head_class = get_class(target)
    head = head_class(dim=4, num_classes=3)
    built = dict(head.metrics().items())
    assert {name: type(metric) for name, metric in built.items()} == head_class.metric_types
    known = known_metrics(head_class)
    for name, metric in built.items():  # torchmetrics' own declaration, read on the built objects
        assert known[f"val/{name}"] == known[f"train/{name}"] == ("max" if metric.higher_is_better else "min")
    assert known["val/loss"] == "min"


@pytest.mark.parametrize(
    ("target", "metric", "mode"),
    [
        ("attnlab.heads.SequenceHead", "val/acc", "max"),
        ("attnlab.heads.SequenceHead", "val/loss", "min"),
        ("attnlab.heads.TokenHead", "val/f1", "max"),
        ("attnlab.heads.CTCHead", "val/cer", "min"),
        ("attnlab.heads.CTCHead", "train/loss", "min"),
    ],
)
def test_metrics_have_their_natural_direction(target, metric, mode):
    objective = resolve(metric, get_class(target))
    assert objective == Objective(metric, mode)
    assert objective.direction == {"max": "maximize", "min": "minimize"}[mode]


def test_a_metric_no_head_logs_names_the_ones_that_exist():
    with pytest.raises(ConfigError) as info:
        resolve("val/accuracy", get_class("attnlab.heads.SequenceHead"))
    assert str(info.value) == (
        "optimized_metric=val/accuracy is not logged by head SequenceHead; "
        "known: val/acc, val/loss, train/acc, train/loss"
    )
    with pytest.raises(ConfigError, match="known: val/cer, val/loss, train/cer, train/loss"):
        resolve("test/cer", get_class("attnlab.heads.CTCHead"))  # test metrics do not exist while fitting


VALUES = [0.5, math.nan, 0.2, 0.4]


@pytest.mark.parametrize("mode", ["min", "max"])
def test_best_and_ranking_follow_the_direction(mode):
    objective = Objective("val/x", mode)
    finite = [v for v in VALUES if not math.isnan(v)]
    assert objective.best(VALUES) == (min(finite) if mode == "min" else max(finite))
    assert objective.best([math.nan]) is None
    ranked = sorted([*VALUES, None], key=objective.rank_key)
    assert ranked[:3] == sorted(finite, reverse=mode == "max")
    assert ranked[3] is not None and math.isnan(ranked[3]) and ranked[4] is None


@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_tracker_keeps_the_best_epoch_not_the_last(mode):
    tracker = TrackObjective(Objective("val/x", mode))
    trainer = SimpleNamespace(sanity_checking=True, current_epoch=0, callback_metrics={"val/x": torch.tensor(9.0)})
    tracker.on_validation_end(trainer, None)  # the sanity check does not count
    for epoch, value in enumerate([0.5, 0.2, 0.4]):
        trainer = SimpleNamespace(sanity_checking=False, current_epoch=epoch, callback_metrics={"val/x": value})
        tracker.on_validation_end(trainer, None)
        tracker.on_train_epoch_end(trainer, None)  # a validation metric is read once per validation
    assert tracker.values == [(0, 0.5), (1, 0.2), (2, 0.4)]
    assert tracker.best == (0.2 if mode == "min" else 0.5)
    resumed = TrackObjective(Objective("val/x", mode))
    resumed.load_state_dict(tracker.state_dict())
    assert resumed.values == tracker.values


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize(
    ("overrides", "metric", "mode"),
    [
        ([], "val/acc", "max"),
        (["optimized_metric=val/loss"], "val/loss", "min"),
        (["head=ctc"], "val/cer", "min"),
        (["experiment=speech_ctc"], "val/cer", "min"),
        (["modality=text", "head=token", "optimized_metric=val/f1"], "val/f1", "max"),
    ],
)
def test_checkpoints_and_optuna_read_the_objective(overrides, metric, mode):
    cfg = composed("hparams_search=optuna", *overrides)
    assert cfg.optimized_metric == metric
    assert (cfg.callbacks.model_checkpoint.monitor, cfg.callbacks.model_checkpoint.mode) == (metric, mode)
    assert cfg.hydra.sweeper.direction == Objective(metric, mode).direction
    assert "direction" not in cfg.hparams_search  # declared once: by the head, through the metric
