"""End-to-end runs in-process: metrics, checkpoints, W&B files, eval, resume, NaN guard."""

from __future__ import annotations

import csv
import json
import logging
import math

import pytest
import torch
import yaml

from attnlab import plugins
from attnlab.callbacks.confusion import class_names
from attnlab.errors import ConfigError, TrainingError
from attnlab.evaluate import evaluate
from attnlab.train import train
from conftest import FAST

NAMES = sorted(plugins.available())


def read_metrics(run) -> dict[str, float]:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_short_run_writes_metrics_checkpoints_config_and_wandb_files(name, make_config, tmp_path):
    value = train(make_config(f"modality={name}", *FAST))
    run = tmp_path / "run"
    metrics = read_metrics(run)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("train/acc", "val/acc", "test/acc"))
    assert value == metrics["val/acc_best"] == metrics["val/acc"]  # one epoch: the best is the last
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["head"]["num_classes"] == 10  # filled in from the data
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb")), "no offline W&B run was written"


def test_speech_recognition_with_ctc_reports_the_error_rate(make_config, tmp_path):
    small = [
        "data.source.generation.count=40",
        "data.source.generation.accents=[en-us,en]",
        "data.source.generation.variants=[m1,m3,f1,f4,m7]",
    ]
    value = train(make_config("experiment=speech_ctc", *FAST, *small, "data.batch_size=8"))
    metrics = read_metrics(tmp_path / "run")
    assert {"train/cer", "val/cer", "test/cer", "test/loss"} <= set(metrics)
    assert value == metrics["val/cer_best"] == metrics["val/cer"] and metrics["test/cer"] >= 0


def logged_per_epoch(run, key: str) -> dict[int, float]:
    """``key`` at each epoch, as the CSV logger wrote it (independent of the checkpoint callback)."""
    rows = csv.DictReader((run / "csv" / "metrics.csv").open())
    return {int(r["epoch"]): float(r[key]) for r in rows if r.get(key)}


@pytest.mark.parametrize("metric", ["val/loss", "val/acc"])
def test_the_checkpoint_and_the_returned_value_are_the_best_epoch_in_the_metrics_direction(
    metric, make_config, tmp_path
):
    value = train(make_config(*FAST, "trainer.max_epochs=4", "logger=csv", f"optimized_metric={metric}"))
    run = tmp_path / "run"
    per_epoch = logged_per_epoch(run, metric)
    assert sorted(per_epoch) == [0, 1, 2, 3]
    pick = min if metric.endswith("loss") else max  # a loss goes down, an accuracy up
    best = pick(per_epoch.values())
    assert value == pytest.approx(best) and read_metrics(run)[f"{metric}_best"] == pytest.approx(best)
    best_epochs = [e for e, v in per_epoch.items() if v == pytest.approx(best)]
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=False)["epoch"] == best_epochs[0]


def test_a_metric_no_head_logs_fails_before_any_training(make_config, tmp_path):
    with pytest.raises(ConfigError) as info:
        train(make_config(*FAST, "logger=csv", "optimized_metric=val/accuracy"))
    assert "optimized_metric=val/accuracy is not logged by head SequenceHead; known: val/acc, val/loss" in str(
        info.value
    )
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_speech_trains_with_a_recurrent_backbone(make_config, tmp_path):
    fast = [o for o in FAST if not o.startswith("backbone.heads")]  # an LSTM has no heads
    small = ["data.source.generation.per_voice=1", "data.source.generation.variants=[m1,m3,f1]"]
    train(make_config("modality=speech", "backbone=lstm", *fast, *small, "logger=csv", "test=false"))
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["backbone"]["_target_"] == "attnlab.backbone.RecurrentEncoder" and "attention" not in saved["backbone"]
    assert 0.0 <= read_metrics(tmp_path / "run")["val/acc"] <= 1.0


def test_eval_reproduces_the_test_metrics_of_the_best_checkpoint(make_config, tmp_path):
    train(make_config(*FAST))
    trained = read_metrics(tmp_path / "run")
    eval_cfg = make_config(
        f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}",
        "trainer.limit_test_batches=2",
        "logger=csv",
        name="eval",
    )
    metrics = evaluate(eval_cfg)
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    assert read_metrics(tmp_path / "run") == metrics

    # The confusion matrix counts the same predictions: 2 test batches of 16, its trace the correct ones.
    rows = list(csv.reader((tmp_path / "run" / "confusion_matrix.csv").open()))
    assert rows[0][1:] == [str(i) for i in range(10)] and [r[0] for r in rows[1:]] == rows[0][1:]
    matrix = torch.tensor([[int(v) for v in r[1:]] for r in rows[1:]])
    assert int(matrix.sum()) == 32
    assert int(matrix.trace()) / 32 == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert (tmp_path / "run" / "confusion_matrix.png").stat().st_size > 0


def test_eval_draws_attention_maps_of_the_checkpoint(make_config, tmp_path):
    train(make_config(*FAST, "logger=csv", "test=false"))
    eval_cfg = make_config(
        f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}", "attention_maps=true", "~logger", name="eval"
    )
    eval_cfg.paths.output_dir = str(tmp_path / "eval")
    evaluate(eval_cfg)
    drawn = sorted(p.name for p in (tmp_path / "eval" / "attention" / "test").glob("example0_*.png"))
    assert drawn == [
        "example0_layer0_head0.png",
        "example0_layer0_head1.png",
        "example0_layer0_mean.png",
        "example0_rollout.png",
        "example0_view.png",
    ]


def test_resuming_from_last_ckpt_continues_where_it_stopped(make_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pytorch_lightning")
    train(make_config(*FAST, "logger=csv"))
    # last.ckpt is a full checkpoint by choice: Lightning logs a line per save when it has to guess
    assert not [r for r in caplog.records if "weights_only" in r.getMessage()]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    resumed = make_config(*FAST, "logger=csv", "trainer.max_epochs=2", f"ckpt_path={last}")
    resumed.paths.output_dir = str(tmp_path / "resumed")
    train(resumed)
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 6 and state["epoch"] == 1

    other = make_config(*FAST, "logger=csv", "backbone.dim=16", f"ckpt_path={last}")
    other.paths.output_dir = str(tmp_path / "other")  # a new run from the checkpoint: only the model must match
    with pytest.raises(ConfigError, match=r"holds a different model \(backbone.dim=32 there, 16 here"):
        train(other)


def test_nonfinite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(make_config, tmp_path):
    cfg = make_config(
        *FAST,
        "logger=csv",
        "trainer.max_epochs=3",
        "frontend._target_=helpers.PoisonedPatchEmbed",
        "+frontend.poison_after=4",
    )
    with pytest.raises(
        TrainingError, match=r"training loss became nan at step 4 \(epoch 1\); the last good checkpoint"
    ):
        train(cfg)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_same_seed_same_run_other_seed_other_run(make_config, tmp_path):
    losses = []
    for i, seed in enumerate((7, 7, 8)):
        cfg = make_config(*FAST, "~logger", f"seed={seed}", "test=false")
        cfg.paths.output_dir = str(tmp_path / str(i))
        train(cfg)
        losses.append(read_metrics(tmp_path / str(i))["train/loss"])
    assert losses[0] == losses[1] and not math.isclose(losses[0], losses[2])


@pytest.mark.parametrize(("logger", "pattern"), [("csv", "csv/metrics.csv"), ("tensorboard", "tensorboard/events.*")])
def test_other_loggers(logger, pattern, make_config, tmp_path):
    train(make_config(*FAST, f"logger={logger}"))
    assert list((tmp_path / "run").glob(pattern))


def test_a_front_end_breaking_the_tokens_contract_is_named_in_one_line(make_config):
    cfg = make_config(*FAST, "~logger", "frontend._target_=helpers.FloatMaskPatchEmbed")
    with pytest.raises(ConfigError, match=r"front-end helpers\.FloatMaskPatchEmbed breaks the Tokens contract: .*bool"):
        train(cfg)


def test_confusion_matrix_names_classes_the_data_names():
    named = ("yes", "no", "up")
    assert class_names(named, 3) == ["yes", "no", "up"]
    assert class_names(named, 4) == ["0", "1", "2", "3"]  # a count that does not match: numbers
    assert class_names(None, 2) == ["0", "1"]
