"""The run's history on disk against what W&B received, W&B's best-value summary, media and artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from attnlab.callbacks.history import _keep_before, append
from attnlab.runs import read_jsonl
from attnlab.train import train
from conftest import FAST, compose_config
from helpers import wandb_records

SYSTEM = {"_timestamp", "_runtime", "_step", "trainer/global_step"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One offline W&B run of two epochs with attention maps and checkpoint artifacts."""
    folder = tmp_path_factory.mktemp("history") / "run"
    overrides = [
        *FAST,
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "callbacks.throughput.window_size=2",
        "attention_maps=true",
        "callbacks.attention_maps.examples=2",
        "logger.wandb.log_model=true",
    ]
    train(compose_config(overrides, output_dir=folder))
    return folder


def wandb_file(run: Path) -> Path:
    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    return path


def wandb_history(run: Path) -> list[dict]:
    """Every history row of the run: flat key -> decoded JSON value."""
    rows = []
    for record in wandb_records(wandb_file(run)):
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


def wandb_summary(run: Path) -> dict:
    """The run's final summary, from the summary updates in order."""
    summary: dict = {}
    for record in wandb_records(wandb_file(run)):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return summary


def test_the_history_on_disk_is_what_wandb_received(run):
    logged = read_jsonl(run / "history" / "logged.jsonl")
    scalars = []
    for row in wandb_history(run):
        values = {k: v for k, v in row.items() if k not in SYSTEM}
        if values and all(isinstance(v, (int, float)) for v in values.values()):  # not media
            scalars.append({"step": row["trainer/global_step"], **values})
    assert len(logged) == len(scalars) > 10
    for ours, theirs in zip(logged, scalars):
        assert ours.keys() == theirs.keys()
        assert ours == pytest.approx(theirs, rel=1e-6)
    keys = {k for record in logged for k in record}
    assert {"train/loss_step", "train/lr", "val/acc", "test/acc", "train/device/samples_per_sec"} <= keys


def test_one_epoch_record_per_epoch_with_the_values_of_metrics_json(run):
    epochs = read_jsonl(run / "history" / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert [e["step"] for e in epochs] == [3, 6]  # limit_train_batches=3
    assert epochs[0]["time"] <= epochs[1]["time"]
    final = json.loads((run / "metrics.json").read_text())
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert epochs[-1][key] == pytest.approx(final[key])
    logged_val = [r["val/acc"] for r in read_jsonl(run / "history" / "logged.jsonl") if "val/acc" in r]
    assert [e["val/acc"] for e in epochs] == pytest.approx(logged_val)


def test_model_statistics_are_kept_as_wandb_got_them(run):
    hparams = json.loads((run / "history" / "hparams.json").read_text())
    config = {}
    for record in wandb_records(wandb_file(run)):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    stats = {k: v for k, v in config.items() if k.startswith("model/")}
    assert stats and stats == {k: v for k, v in hparams.items() if k.startswith("model/")}
    assert hparams["model/params"] > 0 and hparams["model/attention_peak_bytes"] > 0


def test_the_wandb_summary_holds_the_best_validation_value_not_the_last(run):
    values = [r["val/acc"] for r in wandb_history(run) if "val/acc" in r]
    assert len(values) == 2
    assert wandb_summary(run)["val/acc"] == {"max": max(values)}


def test_a_loss_objective_is_summarised_by_its_minimum(tmp_path):
    overrides = [*FAST, "trainer.max_epochs=2", "optimized_metric=val/loss", "test=false"]
    train(compose_config(overrides, output_dir=tmp_path / "run"))
    values = [r["val/loss"] for r in wandb_history(tmp_path / "run") if "val/loss" in r]
    assert wandb_summary(tmp_path / "run")["val/loss"] == {"min": pytest.approx(min(values))}


def test_confusion_matrix_and_attention_maps_reach_wandb_with_class_names(run):
    rows = wandb_history(run)
    names = [line.split(",")[0] for line in (run / "confusion_matrix.csv").read_text().splitlines()[1:]]
    chart = next(r for r in rows if "test/confusion_matrix_chart_table/_type" in r)
    assert chart["test/confusion_matrix_chart_table/_type"] == "table-file"
    captions = json.loads((run / "attention" / "test" / "captions.json").read_text())
    assert set(captions) == {"example0", "example1"}
    for text in captions.values():
        true, predicted = (part.split()[-1] for part in text.split(": ", 1)[1].split(", "))
        assert true in names and predicted in names
    logged = [r["attention/test/rollout/captions"] for r in rows if "attention/test/rollout/captions" in r]
    assert logged == [[captions["example0"], captions["example1"]]]


def test_checkpoints_are_logged_as_artifacts_when_asked(run):
    artifacts = [r.artifact for r in wandb_records(wandb_file(run)) if r.WhichOneof("record_type") == "artifact"]
    models = [a for a in artifacts if a.type == "model"]
    assert sorted(json.loads(a.metadata)["original_filename"] for a in models) == ["best.ckpt", "last.ckpt"]
    assert "best" in next(a for a in models if "best.ckpt" in a.metadata).aliases


def test_no_checkpoint_artifacts_by_default(tmp_path):
    train(compose_config([*FAST, "test=false"], output_dir=tmp_path / "run"))
    kinds = [r.artifact.type for r in wandb_records(wandb_file(tmp_path / "run")) if r.HasField("artifact")]
    assert "model" not in kinds


def test_the_history_is_kept_without_any_logger(tmp_path):
    train(compose_config([*FAST, "~logger", "test=false"], output_dir=tmp_path / "run"))
    epochs = read_jsonl(tmp_path / "run" / "history" / "epochs.jsonl")
    assert len(epochs) == 1 and 0.0 <= epochs[0]["val/acc"] <= 1.0
    assert not (tmp_path / "run" / "wandb").exists()


def test_a_resumed_run_drops_the_records_past_its_checkpoint(tmp_path):
    path = tmp_path / "logged.jsonl"
    records = [
        {"step": 2, "epoch": 0, "train/loss_step": 1.0},
        {"step": 2, "validate/samples": 16},  # no epoch: belongs to epoch 0
        {"step": 3, "epoch": 0, "val/acc": 0.5},
        {"step": 5, "epoch": 1, "train/loss_step": 0.9},
        {"step": 1, "validate/samples": 16},  # epoch 1
        {"step": 7, "epoch": 1, "train/loss_step": 0.8},
    ]
    for record in records:
        append(path, record)
    _keep_before(path, epoch=1, step=6)  # resumed from a checkpoint inside epoch 1, at step 6
    assert read_jsonl(path) == records[:4]
    _keep_before(path, epoch=0, step=0)  # a fresh run in the same folder
    assert read_jsonl(path) == []


def test_non_finite_values_are_written_as_null_and_half_a_line_is_skipped(tmp_path):
    path = tmp_path / "epochs.jsonl"
    append(path, {"epoch": 0, "val/loss": math.nan, "train/loss": math.inf})
    with path.open("a") as f:
        f.write('{"epoch": 1, "val/lo')  # a writer caught mid-line
    assert read_jsonl(path) == [{"epoch": 0, "val/loss": None, "train/loss": None}]
